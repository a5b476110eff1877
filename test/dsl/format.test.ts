// `formatPolicy` (dsl/format.ts, docs/formatting.md): over every policy file of the repo,
// a corpus of comment-heavy snippets and randomly re-spaced and commented policy sets,
// formatting is idempotent, never changes the AST or the diagnostics, and keeps every
// comment, in order, with its text; the spec example formats to its reviewed golden file.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { IToken } from "chevrotain";
import { describe, expect, it } from "vitest";
import { stripSpans } from "../../dsl/ast.js";
import { formatPolicy } from "../../dsl/format.js";
import { parsePolicy } from "../../dsl/parse.js";
import { generatePolicySet } from "../support/generate.js";
import { Random } from "../support/random.js";

const specExample = "test/fixtures/spec-example.policy";
const specGolden = "test/fixtures/spec-example.formatted.policy";

function policyFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return policyFiles(path);
      return name.endsWith(".policy") && !name.endsWith(".formatted.policy") ? [path] : [];
    });
}

/** A block comment's line breaks are printed as `\n`; nothing else about a comment changes. */
function commentTexts(text: string): string[] {
  const parsed = parsePolicy(text, "x.policy");
  return parsed.ast!.comments.map((c) => c.text.replace(/\r\n?/g, "\n"));
}

function diagnosticsWithoutSpans(text: string): string[] {
  return parsePolicy(text, "x.policy").diagnostics.map((d) => `${d.code} ${d.message}`);
}

function format(text: string): string {
  const parsed = parsePolicy(text, "x.policy");
  if (parsed.ast === undefined) throw new Error(`does not parse:\n${parsed.diagnostics.map((d) => d.message).join("\n")}`);
  return formatPolicy(parsed.ast, text);
}

/** Every property a formatted file must have, relative to its source. */
function expectWellFormatted(source: string): string {
  const formatted = format(source);
  const reparsed = parsePolicy(formatted, "x.policy");
  expect(reparsed.ast, `the output does not parse:\n${formatted}`).toBeDefined();
  expect(stripSpans(reparsed.ast!.items)).toEqual(stripSpans(parsePolicy(source, "x.policy").ast!.items));
  expect(diagnosticsWithoutSpans(formatted)).toEqual(diagnosticsWithoutSpans(source));
  expect(commentTexts(formatted)).toEqual(commentTexts(source));
  expect(format(formatted), "formatting is not idempotent").toBe(formatted);
  if (formatted !== "") expect(formatted).toMatch(/[^\n]\n$/);
  expect(formatted).not.toContain("\r");
  return formatted;
}

describe("formatPolicy over the repository's policy files", () => {
  const files = [...policyFiles("policies"), ...policyFiles("test/cases"), ...policyFiles("test/fixtures")];
  // Files with syntax errors (in the diagnostic corpus) are never formatted.
  const formattable = files.filter((f) => parsePolicy(readFileSync(f, "utf8"), f).ast !== undefined);

  it("covers the spec example", () => {
    expect(formattable).toContain(specExample);
  });

  it.each(formattable)("%s", (file) => {
    expectWellFormatted(readFileSync(file, "utf8"));
  });

  it("formats the spec example to the reviewed golden file", () => {
    const golden = readFileSync(specGolden, "utf8");
    expect(format(readFileSync(specExample, "utf8"))).toBe(golden);
    expect(format(golden)).toBe(golden);
  });
});

/** Snippets with comments in every place the grammar has a gap. */
const corpus: Record<string, string> = {
  "comments between annotations": `@id("a") // after id\n// own line\n/* block */\n@description("x")\npermit (principal, action, resource);\n`,
  "comments in match blocks": `workload w {\n  id = "spiffe://a.b/w"; // id\n  match { /* first */ cgroup = "/a", // after comma\n    uid = 1 /* last */ } ; // after optional semicolon\n  match { // nothing inside\n  }\n  // before the closing brace\n}\n`,
  "comments in lists": `net n = [ // open\n  10.0.0.0/8, /* between */ 172.16.0.0/12 // last\n  // before close\n];\ngroup g = [/* only */];\nports p = [80 /* before comma */, 443];\n`,
  "comments in conditions": `permit (principal, action, resource)\nwhen { port == 80 // after 80\n  && /* inline */ protocol == tcp }\n// between conditions\nunless { ( ip in [10.0.0.1/32] // in a list\n  || !(port < 10) ) };\n`,
  "a comment inside an operand": `permit (principal, action, resource) when { port // before the operator\n == 80 };\n`,
  "a comment inside a reference": `group g = [workload // between keyword and name\n w];\n`,
  "comments inside a test assertion": `test "t" {\n  allow connect // after connect\n    from workload w to 10.0.0.1:80/tcp;\n  deny connect from unidentified /* id */ uid 1 to 10.0.0.1:80/tcp because "a", // first\n "b";\n}\n`,
  "comments after semicolons": `default unidentified deny; // trailing\nnet a = [10.0.0.0/8]; /* block */ // line\n`,
  "comments in the rule head": `forbid ( // open\n  principal == workload w, // p\n  action, /* a */ resource // r\n) ;\n`,
  "comments only": `// nothing but comments\n\n/* and a block */\n`,
  "end of file without newline": `net n = [10.0.0.0/8]; // last`,
  "block comment at end of file without newline": `net n = [10.0.0.0/8];\n/* last */`,
  "block comments spanning lines": `/*\n * header\n */\nworkload w { /* a\n  b */ id = "spiffe://a.b/w";\n  match { uid = /* x\ny */ 1 }\n}\n`,
  "CRLF input": `// crlf\r\nnet n = [10.0.0.0/8, // one\r\n  fd00::/8];\r\n/* two\r\n lines */\r\n\r\n\r\npermit (principal, action, resource);\r\n`,
  "comments before punctuation": `group g = [a // before comma\n, b\n/* own line before comma */\n, c];\n`,
  "several comments on one line": `net n = [/* a */ /* b */ 10.0.0.0/8 /* c */ /* d */ // e\n];\n/* f */ /* g */ net m = [];\n`,
  "blank lines collapse": `\n\n// top\n\n\n\nnet a = [];\n\n\n\nnet b = [];\nnet c = [];\n\n\n`,
  "long lists wrap": `net n = [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fd00::/8, 100.64.0.0/10, 198.18.0.0/15, 169.254.0.0/16];\n`,
  "long rules wrap": `@id("r") permit (principal in group a-very-long-group-name, action == connect, resource == service a-long-service-name) when { protocol == tcp && port in ports a-long-ports-name && principal.uid != 0 && principal.gid != 0 || ip in net a-long-net-name };\n`,
  "deeply nested parentheses": `permit (principal, action, resource) when { ((port == 1 || port == 2) && (protocol == tcp || (ip == 10.0.0.1 && !(principal.uid == 0)))) };\n`,
  "unknown entries": `service s {\n  id = "spiffe://a.b/s";\n  match { uid = 1 }; // not allowed in a service\n  endpoints = [10.0.0.1:80/tcp];\n  colour = "blue";\n}\nworkload w { endpoints = [10.0.0.1:80/tcp]; }\n`,
  "literals printed as written": `net n = [::ffff:10.0.0.0/104, FD00:0:0::/16];\nports p = [0080, 1..2];\npermit (principal, action, resource == ::ffff:10.0.0.1) when { ip == FD00::0001 };\n`,
  "empty blocks": `workload w {}\ntest "t" {\n}\nservice s { /* empty */ }\n`,
};

describe("formatPolicy over tricky snippets", () => {
  it.each(Object.entries(corpus))("%s", (_name, source) => {
    expectWellFormatted(source);
  });

  it("keeps a trailing comment on the line of the token before it", () => {
    const out = format(corpus["comments in match blocks"]!);
    expect(out).toContain(`  id = "spiffe://a.b/w"; // id\n`);
    expect(out).toContain(`    cgroup = "/a", // after comma\n`);
    expect(out).toContain("} // after optional semicolon\n");
  });

  it("keeps an own-line comment on its own line, indented as the code after it", () => {
    const out = format(corpus["comments between annotations"]!);
    expect(out).toBe(`@id("a") // after id\n// own line\n/* block */\n@description("x")\npermit (principal, action, resource);\n`);
    expect(format(corpus["comments in match blocks"]!)).toContain("\n  // before the closing brace\n}\n");
  });

  it("breaks the line right after a line comment inside a construct printed on one line", () => {
    expect(format(corpus["a comment inside an operand"]!)).toBe(
      "permit (principal, action, resource)\nwhen {\n  port // before the operator\n  == 80\n};\n",
    );
    expect(format(corpus["comments inside a test assertion"]!)).toContain(`  allow connect // after connect\n  from workload w`);
  });

  it("breaks a list whose items carry line comments, one item per line", () => {
    expect(format(corpus["comments in lists"]!)).toBe(
      "net n = [ // open\n  10.0.0.0/8, /* between */\n  172.16.0.0/12 // last\n  // before close\n];\n\ngroup g = [/* only */];\nports p = [80 /* before comma */, 443];\n",
    );
  });

  it("collapses blank lines and keeps adjacent one-line declarations together, aligned", () => {
    expect(format(corpus["blank lines collapse"]!)).toBe("// top\n\nnet a = [];\n\nnet b = [];\nnet c = [];\n");
    expect(format("net ab = [];\nports p = [1];\ngroup g = [];\n")).toBe("net ab  = [];\nports p = [1];\ngroup g = [];\n");
  });

  it("wraps at 100 columns", () => {
    const lists = format(corpus["long lists wrap"]!);
    expect(lists).toBe(
      "net n = [\n  10.0.0.0/8,\n  172.16.0.0/12,\n  192.168.0.0/16,\n  fd00::/8,\n  100.64.0.0/10,\n  198.18.0.0/15,\n  169.254.0.0/16\n];\n",
    );
    const rules = format(corpus["long rules wrap"]!);
    expect(rules).toBe(
      [
        `@id("r")`,
        "permit (",
        "  principal in group a-very-long-group-name,",
        "  action == connect,",
        "  resource == service a-long-service-name",
        ")",
        "when {",
        "  protocol == tcp && port in ports a-long-ports-name && principal.uid != 0 && principal.gid != 0",
        "  || ip in net a-long-net-name",
        "};",
        "",
      ].join("\n"),
    );
    for (const out of [lists, rules]) for (const line of out.split("\n")) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("prints literals exactly as written", () => {
    const out = format(corpus["literals printed as written"]!);
    for (const literal of ["::ffff:10.0.0.0/104", "FD00:0:0::/16", "0080", "1..2", "::ffff:10.0.0.1", "FD00::0001"]) expect(out).toContain(literal);
  });

  it("formats CRLF input as the same text as LF input", () => {
    const crlf = corpus["CRLF input"]!;
    expect(format(crlf)).toBe(format(crlf.replace(/\r\n/g, "\n")));
  });

  it("formats a file without tokens or comments to the empty text", () => {
    expect(format("")).toBe("");
    expect(format("\n  \n\t\n")).toBe("");
  });
});

// ---------------------------------------------------------------- random re-spacing

/** What stands between two tokens: spaces, line breaks and comments. */
type GapPart = { kind: "space" } | { kind: "newlines"; count: number } | { kind: "comment"; text: string };

/** A token stream with a random gap (always at least one space, break or comment) before each token and at the end. */
function randomLayout(tokens: readonly IToken[], rng: Random): GapPart[][] {
  let serial = 0;
  const gap = (): GapPart[] => {
    const parts: GapPart[] = [];
    const n = rng.weighted<number>([
      [6, 1],
      [3, 2],
      [1, 3],
    ]);
    for (let i = 0; i < n; i++) {
      const part = rng.weighted<GapPart>([
        [5, { kind: "space" }],
        [3, { kind: "newlines", count: rng.pick([1, 1, 2, 3]) }],
        [1, { kind: "comment", text: `/* c${serial} */` }],
        [1, { kind: "comment", text: `/* c${serial}\n   spans lines */` }],
        [2, { kind: "comment", text: `// c${serial}` }],
      ]);
      serial++;
      parts.push(part);
      // A line comment runs to the end of its line.
      if (part.kind === "comment" && part.text.startsWith("//")) parts.push({ kind: "newlines", count: 1 });
    }
    return parts;
  };
  return [...tokens.map(() => gap()), gap()];
}

/** The text of `layout` around `tokens`; `spaces` and `newline` vary only what the formatter must ignore. */
function writeLayout(tokens: readonly IToken[], layout: readonly GapPart[][], spaces: () => string, newline: string): string {
  const render = (parts: readonly GapPart[]): string =>
    parts
      .map((p) => (p.kind === "space" ? spaces() : p.kind === "newlines" ? newline.repeat(p.count) : p.text.replace(/\n/g, newline)))
      .join("");
  return tokens.map((t, i) => render(layout[i]!) + t.image).join("") + render(layout[tokens.length]!);
}

describe("formatPolicy over randomly re-spaced and commented policy sets", () => {
  // The spec example, a generated policy set, and every construct of the snippets above.
  const sources = [readFileSync(specExample, "utf8"), generatePolicySet({ rules: 12, seed: 7 }), Object.values(corpus).join("\n")];
  const seeds = Array.from({ length: 100 }, (_, i) => i);

  it.each(sources.flatMap((source, s) => seeds.map((seed) => [s, seed, source] as const)))("source %i, seed %i", (_s, seed, source) => {
    const tokens = parsePolicy(source, "x.policy").tokens;
    const rng = new Random(seed);
    const layout = randomLayout(tokens, rng);
    const text = writeLayout(tokens, layout, () => " ", "\n");
    expect(stripSpans(parsePolicy(text, "x.policy").ast?.items)).toEqual(stripSpans(parsePolicy(source, "x.policy").ast!.items));
    const formatted = expectWellFormatted(text);
    // Horizontal whitespace and line-break style never change the output.
    const respaced = writeLayout(tokens, layout, () => rng.pick([" ", "  ", "\t", " \t  "]), rng.pick(["\n", "\r\n"]));
    expect(format(respaced)).toBe(formatted);
  });
});
