// Owns the checks of the VS Code extension in `editors/vscode`: the TextMate grammar's regexes
// compile and stay in the subset that Oniguruma (VS Code's engine) and JavaScript read alike,
// every reserved word of the lexer is highlighted as a keyword, address literals are
// highlighted exactly when the front end accepts them, and the spec's sample lines come out
// as a reader expects. A tiny TextMate tokenizer below runs the grammar, so no dependency is
// needed.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseIpv4, parseIpv6 } from "../../dsl/ip.js";
import { keywordTokens, policyLexer } from "../../dsl/tokens.js";
import { Random } from "../support/random.js";

const extensionDir = fileURLToPath(new URL("../../editors/vscode/", import.meta.url));
const policiesDir = fileURLToPath(new URL("../../policies/", import.meta.url));

function readJson<T>(relativePath: string): T {
  return JSON.parse(readFileSync(extensionDir + relativePath, "utf8")) as T;
}

interface Capture {
  readonly name?: string;
}

interface GrammarRule {
  readonly include?: string;
  readonly name?: string;
  readonly match?: string;
  readonly begin?: string;
  readonly end?: string;
  readonly captures?: Readonly<Record<string, Capture>>;
  readonly beginCaptures?: Readonly<Record<string, Capture>>;
  readonly endCaptures?: Readonly<Record<string, Capture>>;
  readonly patterns?: readonly GrammarRule[];
}

interface Grammar {
  readonly scopeName: string;
  readonly patterns: readonly GrammarRule[];
  readonly repository: Readonly<Record<string, GrammarRule>>;
}

interface ExtensionManifest {
  readonly contributes: {
    readonly languages: readonly { readonly id: string; readonly extensions: readonly string[]; readonly configuration: string }[];
    readonly grammars: readonly { readonly language: string; readonly scopeName: string; readonly path: string }[];
  };
}

const manifest = readJson<ExtensionManifest>("package.json");
const grammarPath = manifest.contributes.grammars[0]!.path;
const grammar = readJson<Grammar>(grammarPath);
const languageConfiguration = readJson<{ readonly wordPattern: string }>(manifest.contributes.languages[0]!.configuration);

// ------------------------------------------------------------------ a tiny TextMate tokenizer

interface Token {
  readonly text: string;
  readonly scopes: readonly string[];
}

/** An open `begin`/`end` rule (or the file itself, with no `end`). */
interface Frame {
  readonly rule: GrammarRule | undefined;
  readonly scopes: readonly string[];
  readonly end: RegExp | undefined;
  readonly patterns: readonly GrammarRule[];
}

const compiled = new Map<string, RegExp>();

function regex(source: string): RegExp {
  let re = compiled.get(source);
  if (re === undefined) {
    re = new RegExp(source, "dg");
    compiled.set(source, re);
  }
  return re;
}

function execAt(source: string, line: string, position: number): RegExpExecArray | null {
  const re = regex(source);
  re.lastIndex = position;
  return re.exec(line);
}

/** The `match`/`begin` rules a `patterns` list stands for, with `include`s resolved. */
function expand(patterns: readonly GrammarRule[]): GrammarRule[] {
  return patterns.flatMap((p) => {
    if (p.include === undefined) return [p];
    if (p.include === "$self") return expand(grammar.patterns);
    const target = grammar.repository[p.include.replace(/^#/, "")];
    if (target === undefined) throw new Error(`unknown include \`${p.include}\``);
    return target.match !== undefined || target.begin !== undefined ? [target] : expand(target.patterns ?? []);
  });
}

/**
 * Tokenizes like TextMate: per line (with its `\n`), the earliest match wins, the first rule
 * on a tie, and an open rule's `end` beats its patterns on a tie.
 */
function tokenize(text: string): Token[] {
  const root: Frame = { rule: undefined, scopes: [grammar.scopeName], end: undefined, patterns: expand(grammar.patterns) };
  const stack: Frame[] = [root];
  const tokens: Token[] = [];
  const emit = (t: string, scopes: readonly string[]): void => {
    if (t.length === 0) return;
    const last = tokens[tokens.length - 1];
    if (last !== undefined && last.scopes.join(" ") === scopes.join(" ")) tokens[tokens.length - 1] = { text: last.text + t, scopes };
    else tokens.push({ text: t, scopes });
  };
  const emitMatch = (m: RegExpExecArray, base: readonly string[], captures: Readonly<Record<string, Capture>> | undefined): void => {
    const perChar = Array.from(m[0], () => [...base]);
    const whole = captures?.["0"]?.name;
    if (whole !== undefined) perChar.forEach((s) => s.push(whole));
    for (let i = 1; i < m.length; i++) {
      const name = captures?.[String(i)]?.name;
      const range = m.indices?.[i];
      if (name === undefined || range === undefined) continue;
      for (let c = range[0]; c < range[1]; c++) perChar[c - m.index]!.push(name);
    }
    perChar.forEach((scopes, i) => emit(m[0][i]!, scopes));
  };

  for (const lineText of text.split("\n")) {
    const line = `${lineText}\n`;
    let position = 0;
    let stalls = 0;
    while (position < line.length) {
      const frame = stack[stack.length - 1]!;
      let best: { m: RegExpExecArray; rule: GrammarRule | undefined } | undefined;
      if (frame.rule?.end !== undefined) {
        const m = execAt(frame.rule.end, line, position);
        if (m !== null) best = { m, rule: undefined };
      }
      for (const rule of frame.patterns) {
        const m = execAt((rule.match ?? rule.begin)!, line, position);
        if (m !== null && (best === undefined || m.index < best.m.index)) best = { m, rule };
      }
      if (best === undefined) {
        emit(line.slice(position), frame.scopes);
        break;
      }
      const { m, rule } = best;
      emit(line.slice(position, m.index), frame.scopes);
      if (rule === undefined) {
        emitMatch(m, frame.scopes, frame.rule!.endCaptures ?? frame.rule!.captures);
        stack.pop();
      } else {
        const scopes = rule.name === undefined ? frame.scopes : [...frame.scopes, rule.name];
        if (rule.match !== undefined) {
          emitMatch(m, scopes, rule.captures);
        } else {
          emitMatch(m, scopes, rule.beginCaptures ?? rule.captures);
          stack.push({ rule, scopes, end: regex(rule.end!), patterns: expand(rule.patterns ?? []) });
        }
      }
      const next = m.index + m[0].length;
      stalls = next === position ? stalls + 1 : 0;
      if (stalls > 10) throw new Error(`the grammar loops at column ${position + 1} of \`${lineText}\``);
      position = next;
    }
  }
  return tokens;
}

/** The texts of the maximal runs of tokens that carry `scope`. */
function runs(text: string, scope: string): string[] {
  const out: string[] = [];
  let current: string | undefined;
  for (const t of tokenize(text)) {
    if (t.scopes.includes(scope)) current = (current ?? "") + t.text;
    else if (current !== undefined) {
      out.push(current);
      current = undefined;
    }
  }
  if (current !== undefined) out.push(current);
  return out.map((r) => r.replace(/\n$/, ""));
}

/** The scopes of the first character of the first occurrence of `fragment` in `text`. */
function scopesOf(text: string, fragment: string): readonly string[] {
  const at = text.indexOf(fragment);
  if (at < 0) throw new Error(`\`${fragment}\` is not in \`${text}\``);
  let offset = 0;
  for (const t of tokenize(text)) {
    if (at < offset + t.text.length) return t.scopes;
    offset += t.text.length;
  }
  throw new Error("unreachable: the tokens cover the text");
}

// ------------------------------------------------------------------ the regexes themselves

function allRegexes(): { where: string; source: string }[] {
  const out: { where: string; source: string }[] = [];
  const visit = (rule: GrammarRule, where: string): void => {
    for (const key of ["match", "begin", "end"] as const) {
      const source = rule[key];
      if (source !== undefined) out.push({ where: `${where}.${key}`, source });
    }
    (rule.patterns ?? []).forEach((p, i) => visit(p, `${where}.patterns[${i}]`));
  };
  grammar.patterns.forEach((p, i) => visit(p, `patterns[${i}]`));
  for (const [name, rule] of Object.entries(grammar.repository)) visit(rule, `repository.${name}`);
  return out;
}

/**
 * Constructs that Oniguruma and JavaScript read differently, or that only one of them has:
 * character classes (`\w \d \b` follow Unicode in Oniguruma, ASCII in JavaScript; the two
 * engines' `\s` differ at the edges),
 * Oniguruma-only escapes (`\h \A \z \G \K \R \X`), `\p{…}` (needs the `u` flag in JavaScript),
 * atomic groups, inline options, possessive quantifiers, `$` (end of line in Oniguruma, end of
 * input in JavaScript) and lookbehinds of variable length (Oniguruma rejects them).
 */
function portabilityProblems(source: string): string[] {
  const problems: string[] = [];
  let inClass = false;
  let lookbehindDepth: number[] = [];
  let depth = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i]!;
    const inLookbehind = lookbehindDepth.length > 0;
    if (c === "\\") {
      const e = source[i + 1] ?? "";
      if ("wWdDbBsShHAzZGKRXpP".includes(e)) problems.push(`\`\\${e}\` at ${i}`);
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "(") {
      depth++;
      const head = source.slice(i, i + 4);
      if (head.startsWith("(?>")) problems.push(`atomic group at ${i}`);
      if (/^\(\?[imx-]/.test(head)) problems.push(`inline option at ${i}`);
      if (head === "(?<=" || head === "(?<!") lookbehindDepth = [...lookbehindDepth, depth];
      // Skip the group's `?:`, `?=`, `?!`, `?<=`, `?<!` so that its `?` is not read as a quantifier.
      if (head[1] === "?") i += head[2] === "<" && (head[3] === "=" || head[3] === "!") ? 3 : 2;
    } else if (c === ")") {
      if (lookbehindDepth[lookbehindDepth.length - 1] === depth) lookbehindDepth = lookbehindDepth.slice(0, -1);
      depth--;
    } else if ("*+?{".includes(c)) {
      if (inLookbehind) problems.push(`quantifier in a lookbehind at ${i}`);
      if (c === "+" && "*+?".includes(source[i - 1] ?? "")) problems.push(`possessive quantifier at ${i}`);
    } else if (c === "|" && inLookbehind) problems.push(`alternation in a lookbehind at ${i}`);
    else if (c === "$") problems.push(`\`$\` at ${i}`);
  }
  return problems;
}

describe("policy.tmLanguage.json", () => {
  it("is the grammar the extension contributes for .policy files", () => {
    expect(grammar.scopeName).toBe("source.policy");
    expect(manifest.contributes.grammars[0]!.scopeName).toBe(grammar.scopeName);
    expect(manifest.contributes.languages[0]!.extensions).toContain(".policy");
    expect(manifest.contributes.grammars[0]!.language).toBe(manifest.contributes.languages[0]!.id);
  });

  it("has only regexes that compile in JavaScript", () => {
    const sources = allRegexes();
    expect(sources.length).toBeGreaterThan(30);
    for (const { where, source } of sources) expect(() => new RegExp(source), where).not.toThrow();
  });

  it("keeps to the regex subset that Oniguruma and JavaScript share", () => {
    const problems = allRegexes().flatMap(({ where, source }) => portabilityProblems(source).map((p) => `${where}: ${p}`));
    expect(problems).toEqual([]);
    expect(portabilityProblems("(?<![a-z]+)\\w$")).toHaveLength(3);
    expect(portabilityProblems("(?>a++)(?i)[$]\\$")).toHaveLength(3);
  });

  it("resolves every include", () => {
    expect(() => expand(grammar.patterns)).not.toThrow();
    for (const rule of Object.values(grammar.repository)) expect(() => expand(rule.patterns ?? [])).not.toThrow();
  });
});

describe("keywords", () => {
  const keywordRules = grammar.repository["keywords"]!.patterns!;
  const contextualWords = ["allow", "deny", "connect", "uid", "gid", "unidentified", "tcp", "udp"];
  const lexerWords = keywordTokens.map((t) => (t.PATTERN as RegExp).source);
  const words = [...lexerWords, ...contextualWords];

  it.each(words)("`%s` is matched by a keyword pattern", (word) => {
    const matching = keywordRules.filter((rule) => {
      const re = new RegExp(rule.match!, "y");
      return re.exec(word)?.[0] === word;
    });
    expect(matching).toHaveLength(1);
    expect(scopesOf(` ${word} `, word)).toContain(matching[0]!.name);
  });

  it("has no keyword the language does not reserve", () => {
    const grammarWords = keywordRules.flatMap((rule) => /\(\?:([a-z|]+)\)/.exec(rule.match!)![1]!.split("|"));
    expect([...grammarWords].sort()).toEqual([...words].sort());
  });

  it.each(["my-workload", "workloads", "in_house", "deny-all", "permit2", "tcp-proxy"])("does not highlight a keyword inside the name `%s`", (name) => {
    const keywordScopes = new Set(keywordRules.map((r) => r.name!));
    expect(scopesOf(`ip in net ${name};`, name).filter((s) => keywordScopes.has(s))).toEqual([]);
  });
});

describe("address literals", () => {
  it.each([
    ["resource == 10.0.1.10:8443/tcp;", "constant.other.endpoint.ipv4.policy", "10.0.1.10:8443/tcp"],
    ["resource == [fd00::1]:80/udp;", "constant.other.endpoint.ipv6.policy", "[fd00::1]:80/udp"],
    ["to [::ffff:127.0.0.1]:18080/tcp;", "constant.other.endpoint.ipv6.policy", "[::ffff:127.0.0.1]:18080/tcp"],
    ["resource in fd00::/8", "constant.other.cidr.ipv6.policy", "fd00::/8"],
    ["resource in ::/0", "constant.other.cidr.ipv6.policy", "::/0"],
    ["resource in 10.0.0.0/8", "constant.other.cidr.ipv4.policy", "10.0.0.0/8"],
    ["ip == ::1;", "constant.numeric.ipv6.policy", "::1"],
    ["ip == 192.0.2.1;", "constant.numeric.ipv4.policy", "192.0.2.1"],
    ["port in 8000..8999", "constant.other.port-range.policy", "8000..8999"],
    ["port in 8000 .. 8999", "constant.other.port-range.policy", "8000 .. 8999"],
    ["port >= 1024", "constant.numeric.integer.decimal.policy", "1024"],
  ])("`%s` has one %s: `%s`", (line, scope, literal) => {
    expect(runs(line, scope)).toEqual([literal]);
  });

  it("splits an endpoint into address, port and protocol", () => {
    const line = "to [fd00::10]:8443/tcp;";
    expect(runs(line, "constant.numeric.ipv6.policy")).toEqual(["fd00::10"]);
    expect(runs(line, "constant.numeric.port.policy")).toEqual(["8443"]);
    expect(runs(line, "support.constant.protocol.policy")).toEqual(["tcp"]);
    expect(runs("to 10.0.0.1:22/sctp;", "invalid.illegal.protocol.policy")).toEqual(["sctp"]);
  });

  /** Uniform numbers in [0, 1) from the tests' seeded generator, so a failure names a reproducible case. */
  function prng(seed: number): () => number {
    const random = new Random(seed);
    return () => random.float();
  }

  function candidateIpv4(random: () => number): string {
    const octet = (): string => {
      const r = random();
      if (r < 0.1) return `0${Math.floor(random() * 10)}`;
      if (r < 0.2) return String(250 + Math.floor(random() * 10));
      return String(Math.floor(random() * 256));
    };
    const count = random() < 0.85 ? 4 : 3 + Math.floor(random() * 3) * (random() < 0.5 ? 1 : -1);
    return Array.from({ length: Math.max(2, count) }, octet).join(".");
  }

  function candidateIpv6(random: () => number): string {
    const group = (): string => {
      const hex = Math.floor(random() * 0x10000).toString(16).slice(0, 1 + Math.floor(random() * 4));
      const cased = random() < 0.1 ? hex.toUpperCase() : hex;
      return random() < 0.03 ? `${cased}a` : cased;
    };
    const withV4 = random() < 0.3;
    const total = (withV4 ? 6 : 8) + (random() < 0.2 ? Math.floor(random() * 3) - 1 : 0);
    const groups = Array.from({ length: Math.max(0, total) }, group);
    let text: string;
    if (random() < 0.7) {
      const start = Math.floor(random() * (groups.length + 1));
      const removed = Math.floor(random() * (groups.length - start + 1));
      const left = groups.slice(0, start).join(":");
      const right = groups.slice(start + removed).join(":");
      text = `${left}::${right}`;
      if (random() < 0.05) text = `${text}::1`;
    } else {
      text = groups.join(":");
    }
    if (withV4) text = text.endsWith(":") || text === "" ? `${text}${candidateIpv4(random)}` : `${text}:${candidateIpv4(random)}`;
    return text;
  }

  it("highlights an IPv4 address exactly when the front end accepts it", () => {
    const random = prng(4);
    for (let i = 0; i < 3000; i++) {
      const text = candidateIpv4(random);
      const expected = parseIpv4(text) === undefined ? [] : [text];
      expect(runs(`ip == ${text};`, "constant.numeric.ipv4.policy"), text).toEqual(expected);
    }
  });

  it("highlights an IPv6 address in every textual form exactly when the front end accepts it", () => {
    const random = prng(6);
    let accepted = 0;
    for (let i = 0; i < 5000; i++) {
      const text = candidateIpv6(random);
      const valid = parseIpv6(text) !== undefined;
      if (valid) accepted++;
      expect(runs(`ip == ${text};`, "constant.numeric.ipv6.policy"), text).toEqual(valid ? [text] : []);
      expect(runs(`resource in ${text}/64;`, "constant.other.cidr.ipv6.policy"), text).toEqual(valid ? [`${text}/64`] : []);
    }
    // Both outcomes are exercised, or the comparison proves nothing.
    expect(accepted).toBeGreaterThan(1000);
    expect(accepted).toBeLessThan(4500);
  });

  it.each(["::", "::1", "fd00::", "1:2:3:4:5:6:7:8", "1::8", "::ffff:10.0.0.2", "64:ff9b::192.0.2.33", "1:2:3:4:5:6:1.2.3.4", "FD00:EC2::254"])(
    "highlights the IPv6 form `%s`",
    (text) => {
      expect(runs(`ip == ${text};`, "constant.numeric.ipv6.policy")).toEqual([text]);
    },
  );
});

describe("spec sample lines", () => {
  it.each([
    ['  id = "spiffe://shop.example/ns/web/sa/frontend";', "string.quoted.double.policy", ['"spiffe://shop.example/ns/web/sa/frontend"']],
    ['  id = "spiffe://shop.example/ns/web/sa/frontend";', "markup.underline.link.spiffe-id.policy", ["spiffe://shop.example/ns/web/sa/frontend"]],
    ['  id = "spiffe://shop.example/ns/web/sa/frontend";', "entity.name.namespace.trust-domain.policy", ["shop.example"]],
    ['  id = "spiffe://shop.example/ns/web/sa/frontend";', "variable.other.property.policy", ["id"]],
    ['  match { cgroup = "/shop/frontend" }          // cgroup v2 path below the cgroup2 mount', "comment.line.double-slash.policy", ["// cgroup v2 path below the cgroup2 mount"]],
    ['  match { cgroup = "/shop/frontend" }          // cgroup v2 path below the cgroup2 mount', "keyword.other.match.policy", ["match"]],
    ['  match { uid = 1001, exe = "/usr/bin/node" }', "variable.other.property.policy", ["uid", "exe"]],
    ['  match { uid = 1001, exe = "/usr/bin/node" }', "constant.numeric.integer.decimal.policy", ["1001"]],
    ["workload metadata-proxy {", "entity.name.type.policy", ["metadata-proxy"]],
    ['group web = [workload frontend, "spiffe://shop.example/ns/web/*"];', "entity.name.type.policy", ["web", "frontend"]],
    ['group web = [workload frontend, "spiffe://shop.example/ns/web/*"];', "keyword.operator.wildcard.policy", ["*"]],
    ["net private  = [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8];", "constant.other.cidr.ipv4.policy", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]],
    ["net private  = [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8];", "constant.other.cidr.ipv6.policy", ["fd00::/8"]],
    ["net metadata = [169.254.169.254/32, fd00:ec2::254/128];", "constant.other.cidr.ipv6.policy", ["fd00:ec2::254/128"]],
    ["ports web_ports = [80, 443, 8000..8999];", "constant.other.port-range.policy", ["8000..8999"]],
    ["ports web_ports = [80, 443, 8000..8999];", "entity.name.type.policy", ["web_ports"]],
    ["  endpoints = [10.0.1.10:8443/tcp, 10.0.1.11:8443/tcp, [fd00::10]:8443/tcp];", "constant.other.endpoint.ipv4.policy", ["10.0.1.10:8443/tcp", "10.0.1.11:8443/tcp"]],
    ["  endpoints = [10.0.1.10:8443/tcp, 10.0.1.11:8443/tcp, [fd00::10]:8443/tcp];", "constant.other.endpoint.ipv6.policy", ["[fd00::10]:8443/tcp"]],
    ["default unidentified allow;", "keyword.other.default.policy", ["default"]],
    ["default unidentified allow;", "constant.language.unidentified.policy", ["unidentified"]],
    ['@id("web-to-api")', "meta.annotation.policy", ["@id"]],
    ['@id("web-to-api")', "string.quoted.double.policy", ['"web-to-api"']],
    ["forbid (principal, action == connect, resource in net metadata)", "keyword.control.forbid.policy", ["forbid"]],
    ["forbid (principal, action == connect, resource in net metadata)", "variable.language.scope.policy", ["principal", "action", "resource"]],
    ["forbid (principal, action == connect, resource in net metadata)", "support.constant.action.policy", ["connect"]],
    ["unless { principal == workload metadata-proxy };", "keyword.control.conditional.policy", ["unless"]],
    ["unless { principal == workload metadata-proxy };", "entity.name.type.policy", ["metadata-proxy"]],
    ["when { protocol == tcp && port in ports web_ports && principal.uid != 0 };", "keyword.operator.logical.policy", ["&&", "&&"]],
    ["when { protocol == tcp && port in ports web_ports && principal.uid != 0 };", "keyword.operator.comparison.policy", ["==", "!="]],
    ["when { protocol == tcp && port in ports web_ports && principal.uid != 0 };", "variable.language.principal.policy", ["principal"]],
    ["when { protocol == tcp && port in ports web_ports && principal.uid != 0 };", "variable.other.property.policy", ["uid"]],
    ["when { protocol == udp && port == 53 && ip in [10.0.0.2/32, fd00::2/128] };", "constant.other.cidr.ipv4.policy", ["10.0.0.2/32"]],
    ["when { protocol == udp && port == 53 && ip in [10.0.0.2/32, fd00::2/128] };", "constant.other.cidr.ipv6.policy", ["fd00::2/128"]],
    ['test "web reaches the api" {', "keyword.other.test.policy", ["test"]],
    [
      '  deny  connect from "spiffe://shop.example/ns/web/sa/frontend" uid 0 to 169.254.169.254:80/tcp because "no-metadata";',
      "keyword.other.assertion.policy",
      ["from", "uid", "to", "because"],
    ],
    [
      '  deny  connect from "spiffe://shop.example/ns/web/sa/frontend" uid 0 to 169.254.169.254:80/tcp because "no-metadata";',
      "constant.other.endpoint.ipv4.policy",
      ["169.254.169.254:80/tcp"],
    ],
    ['  allow connect from workload api to [::ffff:10.0.0.2]:53/udp because "dns";', "constant.other.endpoint.ipv6.policy", ["[::ffff:10.0.0.2]:53/udp"]],
    ['  allow connect from workload api to [::ffff:10.0.0.2]:53/udp because "dns";', "keyword.other.verdict.policy", ["allow"]],
    ["  allow connect from unidentified to 8.8.8.8:443/tcp;", "constant.language.unidentified.policy", ["unidentified"]],
  ])("`%s`: %s", (line, scope, expected) => {
    expect(runs(line, scope)).toEqual(expected);
  });

  it("keeps a block comment open across lines, and nothing else in it", () => {
    const text = "/* a\n   permit 10.0.0.1 */ forbid";
    expect(runs(text, "comment.block.policy")).toEqual(["/* a\n   permit 10.0.0.1 */"]);
    expect(runs(text, "keyword.control.forbid.policy")).toEqual(["forbid"]);
  });

  it("reads string escapes and ends an unterminated string at the end of its line", () => {
    expect(runs('"a\\"b\\\\c" x', "string.quoted.double.policy")).toEqual(['"a\\"b\\\\c"']);
    expect(runs('"a\\"b\\\\c" x', "constant.character.escape.policy")).toEqual(['\\"', "\\\\"]);
    expect(runs('principal like "spiffe://td/star\\*/*";', "constant.character.escape.policy")).toEqual(["\\*"]);
    expect(runs('principal like "spiffe://td/star\\*/*";', "keyword.operator.wildcard.policy")).toEqual(["*"]);
    const unterminated = tokenize('"open\npermit');
    expect(unterminated.find((t) => t.text === "\n")?.scopes).toContain("invalid.illegal.unterminated-string.policy");
    expect(runs('"open\npermit', "string.quoted.double.policy")).toEqual(['"open']);
    expect(runs('"open\npermit', "keyword.control.permit.policy")).toEqual(["permit"]);
  });
});

describe("language-configuration.json", () => {
  it.each(["metadata-proxy", "web_ports", "api-svc", "10.0.1.10", "10.0.0.0/8"])("takes `%s` as one word", (word) => {
    const re = new RegExp(languageConfiguration.wordPattern, "g");
    expect(`x ${word}, y`.match(re)).toContain(word);
  });
});

describe("the example policies", () => {
  const files = readdirSync(policiesDir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".policy"))
    .sort();

  /** The scopes of every character of `text` (with a `\n` after its last line). */
  function scopesPerChar(text: string): (readonly string[])[] {
    return tokenize(text).flatMap((t) => Array.from(t.text, () => t.scopes));
  }

  /** The grammar scope a lexer token must carry from its first to its last character. */
  function expectedScope(tokenType: string, image: string): string | undefined {
    switch (tokenType) {
      case "Endpoint4":
        return "constant.other.endpoint.ipv4.policy";
      case "Endpoint6":
        return "constant.other.endpoint.ipv6.policy";
      case "Ipv4":
        return image.includes("/") ? "constant.other.cidr.ipv4.policy" : "constant.numeric.ipv4.policy";
      case "Ipv6":
        return image.includes("/") ? "constant.other.cidr.ipv6.policy" : "constant.numeric.ipv6.policy";
      case "Int":
        return "constant.numeric.integer.decimal.policy";
      case "StringLiteral":
        return "string.quoted.double.policy";
      case "Annotation":
        return "meta.annotation.policy";
      default:
        return undefined;
    }
  }

  it("exist", () => {
    expect(files.length).toBeGreaterThanOrEqual(4);
  });

  it.each(files)("`%s` is highlighted token for token as the lexer reads it", (file) => {
    const text = readFileSync(join(policiesDir, file), "utf8");
    const scopes = scopesPerChar(text);
    expect(scopes).toHaveLength(text.length + 1);
    expect(scopes.flat().filter((s) => s.startsWith("invalid."))).toEqual([]);

    const lexed = policyLexer().tokenize(text);
    expect(lexed.errors).toEqual([]);
    const keywordScopes = new Set(grammar.repository["keywords"]!.patterns!.map((r) => r.name!));
    for (const t of lexed.tokens) {
      const where = `${file}(${t.startLine},${t.startColumn}) \`${t.image}\``;
      const end = t.startOffset + t.image.length;
      const scope = expectedScope(t.tokenType.name, t.image);
      if (scope !== undefined) {
        for (let i = t.startOffset; i < end; i++) expect(scopes[i], where).toContain(scope);
        expect(scopes[t.startOffset - 1] ?? [], where).not.toContain(scope);
        expect(scopes[end], where).not.toContain(scope);
      } else if (keywordTokens.includes(t.tokenType)) {
        // A keyword is highlighted as one, or (after `principal.`) as the property it names.
        const highlighted = scopes[t.startOffset]!.filter((s) => keywordScopes.has(s) || s === "variable.language.principal.policy");
        expect(highlighted, where).not.toEqual([]);
      }
    }
    for (const t of (lexed.groups["comments"] ?? []) as typeof lexed.tokens) {
      const name = t.image.startsWith("//") ? "comment.line.double-slash.policy" : "comment.block.policy";
      for (let i = t.startOffset; i < t.startOffset + t.image.length; i++) expect(scopes[i], `${file}(${t.startLine})`).toContain(name);
    }
  });
});
