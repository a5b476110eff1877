// Property tests of the front end on random input. Mutation fuzzing: valid policy files
// (the spec's example, every `policies/**/*.policy`, a generated set) are damaged at the
// level of characters, tokens and lines, and every mutant must check without throwing and
// with well-formed diagnostics (catalog code, a span inside the text whose line and column
// agree with its offset, a one-line message). Differential test: `parseIp` accepts exactly
// what Node's `net` module accepts, and `formatIp` round-trips and is RFC 5952 canonical.
//
// Reproduce a failure with the seed it prints: PORTCULLIS_FUZZ_SEED=<seed> npx vitest run test/dsl/fuzz.test.ts
// More mutants: PORTCULLIS_FUZZ_MUTANTS=200000 (default 10,000).
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkSources } from "../../compiler/program.js";
import type { Diagnostic } from "../../dsl/diagnostics.js";
import { formatIp, parseIp } from "../../dsl/ip.js";
import { generatePolicySet } from "../support/generate.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env["PORTCULLIS_FUZZ_SEED"] ?? 20240601);
const MUTANTS = Number(process.env["PORTCULLIS_FUZZ_MUTANTS"] ?? 10_000);
/** Mutants per `it`, so that progress shows and a slow block is easy to rerun with `-t`. */
const BLOCK_SIZE = 2_500;
const FILE = "f.policy";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// ---------------------------------------------------------------- corpus

function policyFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .flatMap((e) => (e.isDirectory() ? policyFiles(path.join(dir, e.name)) : e.name.endsWith(".policy") ? [path.join(dir, e.name)] : []));
}

/** Every policy file, and each directory's files joined into one text (names are global to a set). */
function policySets(root: string): string[] {
  const byDir = new Map<string, string[]>();
  for (const file of policyFiles(root)) byDir.set(path.dirname(file), [...(byDir.get(path.dirname(file)) ?? []), readFileSync(file, "utf8")]);
  return [...byDir.values()].flatMap((texts) => (texts.length > 1 ? [...texts, texts.join("\n")] : texts));
}

const specExample = readFileSync(path.join(repoRoot, "test/fixtures/spec-example.policy"), "utf8");
const generated = generatePolicySet({ rules: 20, seed: SEED });
const corpus: readonly string[] = [specExample, generated, ...policySets(path.join(repoRoot, "policies"))];

// ---------------------------------------------------------------- mutations

const LANGUAGE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/*\\\"@{}[]()<>=!&|,; \t\n\r";
const OTHER_CHARS = ["#", "$", "%", "^", "~", "`", "'", "?", "+", "\0", "\x7f", "\f", "\v"];
const UNICODE = ["é", "ß", "中文", "😀", "\u{1F1FA}\u{1F1F8}", "\uD800", "\uDC00", "\u2028", "\u2029", "\u00A0", "\u200B", "\uFEFF", "e\u0301", "\uFFFD", "İ", "\u212A", "ﬁ", "\u0085"];
const SNIPPETS = [
  "workload", "group", "net", "ports", "service", "default", "permit", "forbid", "when", "unless", "principal", "action", "resource",
  "in", "like", "match", "test", "from", "to", "because", "true", "false", "connect", "tcp", "udp", "unidentified", "allow", "deny",
  "principal.uid", "principal.gid", "port", "ip", "protocol", "id", "endpoints", "cgroup", "uid", "gid", "exe", "sha256",
  "==", "!=", "<=", ">=", "<", ">", "=", "&&", "||", "!", "..", ".", ",", ";", "(", ")", "{", "}", "[", "]",
  "10.0.0.1", "10.0.0.0/8", "fd00::1", "fd00::/8", "::ffff:10.0.0.2", "10.0.1.10:8443/tcp", "[fd00::10]:8443/udp", "8000..8999",
  "65535", "65536", "4294967296", '"spiffe://shop.example/ns/web/*"', '"spiffe://Shop.Example/a"', '"x\\q"', '"\\*"', "@id(\"dup\")", "@description(\"d\")",
  "/*", "*/", "//", '"', "[::]:1/tcp", "1.2.3.4:5", "10.0.0.1:80/sctp", "0..0", "9..1",
];
const HUGE_NUMBERS = ["4294967295", "4294967296", "65536", "99999999999999999999", "1" + "0".repeat(310), "9".repeat(400), "007", "0", "-1"];

interface Piece {
  readonly start: number;
  readonly end: number;
}

/** A rough token split (not the real lexer, on purpose): words, literals, operators, single characters. */
const ROUGH_TOKEN = /\/\/[^\n]*|\/\*[\s\S]*?\*\/|"(?:[^"\\\n]|\\.)*"|\[[0-9A-Fa-f:.]*\]:[0-9]+\/\w+|[0-9A-Fa-f]*::?[0-9A-Fa-f:.]*(?:\/[0-9]+)?|[0-9]+(?:\.[0-9]+)*(?::[0-9]+)?(?:\/\w+)?|@?[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)?|==|!=|<=|>=|&&|\|\||\.\.|\S/g;

function tokens(text: string): Piece[] {
  return [...text.matchAll(ROUGH_TOKEN)].map((m) => ({ start: m.index, end: m.index + m[0].length }));
}

type TokenClass = "comment" | "string" | "word" | "number" | "address" | "operator";

function classOf(token: string): TokenClass {
  if (token.startsWith("//") || token.startsWith("/*")) return "comment";
  if (token.startsWith('"')) return "string";
  if (/^@?[A-Za-z_]/.test(token)) return "word";
  if (/^[0-9]+$/.test(token)) return "number";
  return /[0-9A-Fa-f][.:]|[.:][0-9A-Fa-f]/.test(token) ? "address" : "operator";
}

/** Tokens of the corpus and the snippets by class: a same-class swap mostly keeps the syntax valid, so the checker runs. */
const tokensByClass = new Map<TokenClass, string[]>();
for (const token of new Set([...corpus.flatMap((t) => tokens(t).map((p) => t.slice(p.start, p.end))), ...SNIPPETS, ...HUGE_NUMBERS])) {
  tokensByClass.set(classOf(token), [...(tokensByClass.get(classOf(token)) ?? []), token]);
}

function sameClassReplace(rng: Random, text: string): string {
  const pieces = tokens(text);
  if (pieces.length === 0) return text;
  const p = rng.pick(pieces);
  const pool = tokensByClass.get(classOf(text.slice(p.start, p.end))) ?? [];
  return pool.length === 0 ? text : splice(text, p.start, p.end, rng.pick(pool));
}

/** Edits inside a string literal: SPIFFE IDs, patterns, paths and annotation values. */
function stringEdit(rng: Random, text: string): string {
  return replaceOne(rng, text, /"(?:[^"\\\n]|\\.)*"/g, (lit) => {
    const i = rng.between(1, Math.max(1, lit.length - 1));
    const insert = rng.pick(["/", "//", "/.", "/..", ".", "*", "\\*", "\\", "?q", "#f", " ", "A", "SPIFFE", "é", "%41", ":", ":8080", "x".repeat(2100), ""]);
    return splice(lit, i, rng.chance(0.3) ? Math.min(lit.length - 1, i + rng.between(1, 6)) : i, insert);
  });
}

function lines(text: string): Piece[] {
  const out: Piece[] = [];
  let start = 0;
  for (const m of text.matchAll(/\r\n|\r|\n/g)) {
    out.push({ start, end: m.index + m[0].length });
    start = m.index + m[0].length;
  }
  if (start < text.length) out.push({ start, end: text.length });
  return out;
}

const splice = (text: string, start: number, end: number, insert: string) => text.slice(0, start) + insert + text.slice(end);
const randomChar = (rng: Random) => (rng.chance(0.85) ? rng.pick([...LANGUAGE_CHARS]) : rng.chance(0.5) ? rng.pick(OTHER_CHARS) : rng.pick(UNICODE));

/** Replaces one match of `pattern` (chosen at random) by `replace(match)`; unchanged when none. */
function replaceOne(rng: Random, text: string, pattern: RegExp, replace: (m: string) => string): string {
  const matches = [...text.matchAll(pattern)];
  if (matches.length === 0) return text;
  const m = rng.pick(matches);
  return splice(text, m.index, m.index + m[0].length, replace(m[0]));
}

function pieceOp(rng: Random, text: string, pieces: Piece[]): string {
  if (pieces.length === 0) return text;
  const a = rng.pick(pieces);
  const b = rng.pick(pieces);
  switch (rng.int(4)) {
    case 0:
      return splice(text, a.start, a.end, "");
    case 1:
      return splice(text, a.end, a.end, text.slice(a.start, a.end));
    case 2: {
      const [x, y] = a.start <= b.start ? [a, b] : [b, a];
      if (x.end > y.start) return text;
      return text.slice(0, x.start) + text.slice(y.start, y.end) + text.slice(x.end, y.start) + text.slice(x.start, x.end) + text.slice(y.end);
    }
    default:
      return splice(text, a.start, a.end, rng.chance(0.5) ? rng.pick(SNIPPETS) : text.slice(b.start, b.end));
  }
}

type Mutation = (rng: Random, text: string) => string;

const deleteChars: Mutation = (rng, t) => {
  const i = rng.int(t.length + 1);
  return splice(t, i, Math.min(t.length, i + rng.between(1, 8)), "");
};

const insertChars: Mutation = (rng, t) => {
  const i = rng.int(t.length + 1);
  let s = "";
  for (let n = rng.between(1, 4); n > 0; n--) s += randomChar(rng);
  return splice(t, i, i, s);
};

const insertUnicode: Mutation = (rng, t) => {
  const i = rng.int(t.length + 1);
  return splice(t, i, i, rng.pick(UNICODE));
};

const duplicateChars: Mutation = (rng, t) => {
  const i = rng.int(t.length + 1);
  const j = Math.min(t.length, i + rng.between(1, 20));
  return splice(t, j, j, t.slice(i, j));
};

const swapAdjacentChars: Mutation = (rng, t) => {
  if (t.length < 2) return t;
  const i = rng.int(t.length - 1);
  return t.slice(0, i) + t[i + 1] + t[i] + t.slice(i + 2);
};

const tokenEdit: Mutation = (rng, t) => pieceOp(rng, t, tokens(t));
const lineEdit: Mutation = (rng, t) => pieceOp(rng, t, lines(t));

const duplicateLine: Mutation = (rng, t) => {
  const all = lines(t);
  if (all.length === 0) return t;
  const p = rng.pick(all);
  return splice(t, p.end, p.end, t.slice(p.start, p.end));
};

const truncate: Mutation = (rng, t) => t.slice(0, rng.int(t.length + 1));

/** The head of this text and the tail of another corpus file. */
const spliceFiles: Mutation = (rng, t) => {
  const other = rng.pick(corpus);
  return t.slice(0, rng.int(t.length + 1)) + other.slice(rng.int(other.length + 1));
};

const hugeNumber: Mutation = (rng, t) => replaceOne(rng, t, /[0-9]+/g, () => rng.pick(HUGE_NUMBERS));

const breakIpv4: Mutation = (rng, t) =>
  replaceOne(rng, t, /\b[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:\/[0-9]+)?/g, (ip) =>
    rng.pick<(s: string) => string>([
      (s) => s.replace(/[0-9]+(?=[^.]*$)/, "256"),
      (s) => s.replace(/^[0-9]+/, "999"),
      (s) => s.replace(/\.[0-9]+/, ".01"),
      (s) => s.replace(/\.[0-9]+/, ""),
      (s) => s.replace(/\.[0-9]+/, ".1.1"),
      (s) => s.replace(/\./, ".."),
      (s) => `${s.replace(/\/.*$/, "")}/${rng.pick(["33", "0", "64", "007", "99999999999"])}`,
    ])(ip),
  );

const breakIpv6: Mutation = (rng, t) =>
  replaceOne(rng, t, /[0-9A-Fa-f]*::?[0-9A-Fa-f:.]*(?:\/[0-9]+)?/g, (ip) =>
    rng.pick<(s: string) => string>([
      (s) => s.replace("::", ":::"),
      (s) => s.replace(":", "::"),
      (s) => s.replace(/[0-9A-Fa-f]+/, "12345"),
      (s) => s.replace(/[0-9A-Fa-f]/, "g"),
      (s) => `1:2:3:4:5:6:7:${s}`,
      (s) => `${s.replace(/\/.*$/, "")}/${rng.pick(["129", "128", "0", "999999"])}`,
      (s) => s.replace(/::/, ":1.2.3.4:"),
    ])(ip),
  );

/** Drops or adds one bracket, quote or comment delimiter. */
const unbalance: Mutation = (rng, t) => {
  if (rng.chance(0.5)) return replaceOne(rng, t, /[{}[\]()"]|\/\*|\*\//g, () => "");
  const i = rng.int(t.length + 1);
  return splice(t, i, i, rng.pick(["{", "}", "[", "]", "(", ")", '"', "/*", "*/", "//", "\\", "\n"]));
};

const lineEndings: Mutation = (rng, t) => t.replace(/\r?\n/g, rng.pick(["\r\n", "\r", "\n\r"]));

const mutations: readonly (readonly [number, Mutation])[] = [
  [3, deleteChars],
  [3, insertChars],
  [1, insertUnicode],
  [1, duplicateChars],
  [1, swapAdjacentChars],
  [6, tokenEdit],
  [8, sameClassReplace],
  [3, stringEdit],
  [3, lineEdit],
  [1, truncate],
  [1, spliceFiles],
  [2, hugeNumber],
  [2, breakIpv4],
  [2, breakIpv6],
  [3, unbalance],
  [1, lineEndings],
];

/** Mutations that mostly keep the syntax valid, so that the checker sees the mutant. */
const semanticMutations: readonly (readonly [number, Mutation])[] = [
  [4, sameClassReplace],
  [2, stringEdit],
  [1, duplicateLine],
  [1, lineEndings],
];

function mutate(rng: Random): string {
  let text = rng.pick(corpus);
  const ops = rng.chance(0.3) ? semanticMutations : mutations;
  for (let n = rng.weighted([[5, 1], [3, 2], [2, 3], [1, 6]] as const); n > 0; n--) text = rng.weighted(ops)(rng, text);
  return text;
}

// ---------------------------------------------------------------- properties

/** Where each line starts: after `\n`, `\r\n` or `\r`, the line terminators of the lexer and of LSP. */
function lineStarts(text: string): number[] {
  const starts = [0];
  for (const m of text.matchAll(/\r\n|\r|\n/g)) starts.push(m.index + m[0].length);
  return starts;
}

function position(starts: readonly number[], offset: number): { line: number; column: number } {
  let low = 0;
  let high = starts.length - 1;
  while (low < high) {
    const mid = (low + high + 1) >> 1;
    if (starts[mid]! <= offset) low = mid;
    else high = mid - 1;
  }
  return { line: low + 1, column: offset - starts[low]! + 1 };
}

interface Violation {
  /** What kind of defect, stable across mutants: failures are grouped and shrunk by it. */
  readonly key: string;
  readonly detail: string;
}

function violationsOf(text: string): { violations: Violation[]; diagnostics: readonly Diagnostic[] } {
  let diagnostics: readonly Diagnostic[];
  try {
    diagnostics = checkSources([{ path: FILE, relPath: FILE, text }]).diagnostics;
  } catch (e) {
    const error = e as Error;
    const where = (error.stack ?? "").split("\n").find((l) => l.includes("/dsl/") || l.includes("/compiler/")) ?? "";
    return { violations: [{ key: `throws ${error.name}: ${error.message}`, detail: `${error.name}: ${error.message}\n${where.trim()}` }], diagnostics: [] };
  }
  const out: Violation[] = [];
  let starts: number[] | undefined;
  for (const d of diagnostics) {
    const show = `${d.code} ${JSON.stringify(d.span)} ${JSON.stringify(d.message)}`;
    if (!/^PC\d{4}$/.test(d.code)) out.push({ key: `bad code ${d.code}`, detail: show });
    if (/[\r\n]/.test(d.message)) out.push({ key: `multi-line message ${d.code}`, detail: show });
    // User input is quoted in backticks; outside them, these words come from a missing argument.
    if (d.message.trim() === "" || /\bundefined\b|\bNaN\b|\[object /.test(d.message.replace(/`[^`]*`/g, ""))) out.push({ key: `message renders a missing value ${d.code}`, detail: show });
    if (d.severity !== "error" && d.severity !== "warning") out.push({ key: `bad severity ${d.code}`, detail: show });
    if (d.span === undefined) {
      if (!d.code.startsWith("PC9")) out.push({ key: `no span ${d.code}`, detail: show });
      continue;
    }
    const { file, offset, length, line, column } = d.span;
    if (file !== FILE) out.push({ key: `wrong file ${d.code}`, detail: show });
    if (![offset, length, line, column].every(Number.isInteger) || offset < 0 || length < 0 || offset + length > text.length) {
      out.push({ key: `span outside the text ${d.code}`, detail: `${show} (text length ${text.length})` });
      continue;
    }
    starts ??= lineStarts(text);
    const expected = position(starts, offset);
    if (expected.line !== line || expected.column !== column) {
      out.push({ key: `line/column disagree with offset ${d.code}`, detail: `${show}: offset ${offset} is at ${expected.line}:${expected.column}` });
    }
  }
  return { violations: out, diagnostics };
}

/** Greedy delta debugging: drops lines, then characters, while `key` is still violated. */
function shrink(text: string, key: string): string {
  let budget = 4000;
  const fails = (t: string) => budget-- > 0 && violationsOf(t).violations.some((v) => v.key === key);
  let current = text;
  for (const unit of ["line", "char"] as const) {
    let parts = unit === "line" ? lines(current).map((p) => current.slice(p.start, p.end)) : [...current];
    for (let size = Math.max(1, parts.length >> 1); size >= 1; size >>= 1) {
      for (let i = 0; i < parts.length; ) {
        const candidate = [...parts.slice(0, i), ...parts.slice(i + size)];
        if (fails(candidate.join(""))) parts = candidate;
        else i += size;
      }
    }
    current = parts.join("");
  }
  return current;
}

interface BlockResult {
  /** One entry per distinct violation key: the first mutant that showed it, shrunk. */
  readonly failures: string[];
  /** Mutants without syntax errors, so the checker ran on them. */
  readonly checked: number;
}

async function runBlock(first: number, count: number): Promise<BlockResult> {
  const seen = new Set<string>();
  const failures: string[] = [];
  let checked = 0;
  // The parser instance is shared: a text must check the same whatever was checked before it.
  let earlier: { index: number; text: string; diagnostics: string } | undefined;
  for (let index = first; index < first + count; index++) {
    // Lets vitest's worker answer its RPC during long runs (PORTCULLIS_FUZZ_MUTANTS).
    if (index % 250 === 0) await new Promise((resolve) => setImmediate(resolve));
    const text = mutate(Random.forItem(SEED, index));
    const { violations, diagnostics } = violationsOf(text);
    if (!diagnostics.some((d) => d.code.startsWith("PC1"))) checked++;
    if (earlier !== undefined) {
      const again = JSON.stringify(violationsOf(earlier.text).diagnostics);
      if (again !== earlier.diagnostics && !seen.has("state")) {
        seen.add("state");
        failures.push(`diagnostics depend on the previous input: mutant ${earlier.index} checks differently after mutant ${index} of seed ${SEED}\n  ${earlier.diagnostics}\n  ${again}`);
      }
      earlier = undefined;
    }
    if (index % 25 === 0) earlier = { index, text, diagnostics: JSON.stringify(diagnostics) };
    for (const v of violations) {
      if (seen.has(v.key)) continue;
      seen.add(v.key);
      const reproducer = shrink(text, v.key);
      const detail = violationsOf(reproducer).violations.find((w) => w.key === v.key)?.detail ?? v.detail;
      failures.push(`${v.key}\n  mutant ${index} of seed ${SEED}; minimal reproducer: ${JSON.stringify(reproducer)}\n  ${detail}`);
    }
  }
  if (failures.length > 0) console.error(`front-end fuzz failures (PORTCULLIS_FUZZ_SEED=${SEED}):\n${failures.join("\n")}`);
  return { failures, checked };
}

describe(`front end on mutated policy files (seed ${SEED}, ${MUTANTS} mutants of ${corpus.length} files)`, () => {
  it("starts from files that check without errors", () => {
    expect(checkSources([{ path: FILE, relPath: FILE, text: specExample }]).diagnostics.filter((d) => d.severity === "error")).toEqual([]);
    // The generator promises a set without a single diagnostic (test/support/generate.ts).
    expect(checkSources([{ path: FILE, relPath: FILE, text: generated }]).diagnostics).toEqual([]);
  });

  for (let first = 0; first < MUTANTS; first += BLOCK_SIZE) {
    const count = Math.min(BLOCK_SIZE, MUTANTS - first);
    it(`never throws and reports well-formed diagnostics: mutants ${first}..${first + count - 1} (seed ${SEED})`, { timeout: 120_000 }, async () => {
      const { failures, checked } = await runBlock(first, count);
      expect(failures, `PORTCULLIS_FUZZ_SEED=${SEED}`).toEqual([]);
      // A fuzzer whose mutants all fail to parse never exercises the checker.
      expect(checked, "mutants that reached the checker").toBeGreaterThan(count * 0.05);
    });
  }
});

// ---------------------------------------------------------------- parseIp against node:net

function randomAddressLike(rng: Random): string {
  const bytes = Array.from({ length: 16 }, () => (rng.chance(0.4) ? 0 : rng.int(256)));
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  const hexGroup = (g: number) => {
    const h = g.toString(16).padStart(rng.chance(0.2) ? rng.between(1, 4) : 1, "0");
    return rng.chance(0.2) ? h.toUpperCase() : h;
  };
  const dotted = (b: readonly number[]) => b.map((x) => (rng.chance(0.03) ? `0${x}` : String(x))).join(".");
  let text = rng.weighted<() => string>([
    [3, () => dotted(bytes.slice(0, 4))],
    [3, () => groups.map(hexGroup).join(":")],
    [4, () => {
      // `::` in place of a random run of groups (not always the longest, not always zeros).
      const start = rng.int(8);
      const end = rng.between(start, 8);
      return `${groups.slice(0, start).map(hexGroup).join(":")}::${groups.slice(end).map(hexGroup).join(":")}`;
    }],
    [2, () => {
      const head = groups.slice(0, 6).map(hexGroup);
      const start = rng.int(7);
      const end = rng.between(start, 6);
      const v4 = dotted(bytes.slice(12));
      return rng.chance(0.5) ? `${head.join(":")}:${v4}` : `${head.slice(0, start).join(":")}::${head.slice(end).join(":")}${end < 6 ? ":" : ""}${v4}`;
    }],
    [1, () => `::ffff:${dotted(bytes.slice(12))}`],
  ])();
  for (let n = rng.weighted([[6, 0], [3, 1], [1, 3]] as const); n > 0; n--) {
    const i = rng.int(text.length + 1);
    text = rng.pick<() => string>([
      () => splice(text, i, i + 1, ""),
      () => splice(text, i, i, rng.pick([..."0123456789abcdefABCDEFg:.", "::", "256"])),
      () => splice(text, i, i + 1, rng.pick([..."0123456789af:."])),
    ])();
  }
  return text;
}

/** The RFC 5952 text of an IPv6 address, as the WHATWG URL parser serialises it. */
function canonicalV6(text: string): string {
  return URL.canParse(`http://[${text}]/`) ? new URL(`http://[${text}]/`).hostname.slice(1, -1) : `(not an address: ${text})`;
}

describe("parseIp and formatIp", () => {
  it("accept exactly the addresses node:net accepts, and print them canonically", () => {
    const mismatches: string[] = [];
    let valid = 0;
    for (let index = 0; index < 30_000 && mismatches.length < 10; index++) {
      const text = randomAddressLike(Random.forItem(SEED, index));
      const parsed = parseIp(text);
      const family = net.isIPv4(text) ? 4 : net.isIPv6(text) ? 6 : 0;
      if ((parsed !== undefined) !== (family !== 0)) {
        mismatches.push(`${JSON.stringify(text)}: parseIp ${parsed === undefined ? "rejects" : "accepts"}, node:net ${family === 0 ? "rejects" : "accepts"}`);
        continue;
      }
      if (parsed === undefined) continue;
      valid++;
      const formatted = formatIp(parsed.family, parsed.bytes);
      let expected: string;
      if (family === 4) expected = text;
      else if (parsed.family === 4) expected = canonicalV6(text).replace(/^::ffff:/, "").split(":").flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]).join(".");
      else expected = canonicalV6(text);
      if (formatted !== expected) mismatches.push(`${JSON.stringify(text)}: formatIp gives ${formatted}, expected ${expected}`);
      const again = parseIp(formatted);
      if (again === undefined || again.family !== parsed.family || again.bytes.join() !== parsed.bytes.join()) {
        mismatches.push(`${JSON.stringify(text)}: ${formatted} does not parse back to the same address`);
      }
    }
    expect(mismatches, `PORTCULLIS_FUZZ_SEED=${SEED}`).toEqual([]);
    // Both outcomes must be common, or the comparison proves little.
    expect(valid).toBeGreaterThan(3_000);
    expect(valid).toBeLessThan(27_000);
  });

  it("round-trip random 16-byte addresses through formatIp and parseIp", () => {
    const rng = new Random(SEED);
    const mismatches: string[] = [];
    for (let n = 0; n < 10_000 && mismatches.length < 10; n++) {
      const bytes = Array.from({ length: 16 }, () => (rng.chance(0.5) ? 0 : rng.int(256)));
      if (rng.chance(0.05)) bytes.splice(0, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff);
      const text = formatIp(6, bytes);
      const mapped = bytes.slice(0, 12).join() === "0,0,0,0,0,0,0,0,0,0,255,255";
      const expected = mapped ? { family: 4, bytes: bytes.slice(12) } : { family: 6, bytes };
      const parsed = parseIp(text);
      if (!net.isIPv6(text) || text !== canonicalV6(text) || JSON.stringify(parsed) !== JSON.stringify(expected)) {
        mismatches.push(`${bytes.join(",")}: formatIp gives ${text} (node:net ${net.isIPv6(text) ? "accepts" : "rejects"}, canonical ${canonicalV6(text)}), parsed back as ${JSON.stringify(parsed)}`);
      }
    }
    expect(mismatches, `PORTCULLIS_FUZZ_SEED=${SEED}`).toEqual([]);
  });
});
