// Owns the diagnostic catalog (every code a user can see) and the two renderings of a
// diagnostic: human (`file(line,col): error PC2004: …` + source excerpt) and JSON.
//
// INVARIANT: codes are stable. A code is never reused for another meaning; retired codes
// stay in the catalog commented as retired. PC1xxx syntax, PC2xxx names and types,
// PC3xxx lowering, PC4xxx bundles, PC9xxx CLI and I/O, PC95xx the kernel path.
import type { Span } from "./ast.js";

export type Severity = "error" | "warning";

interface CatalogEntry {
  readonly code: string;
  readonly severity: Severity;
  /** Message template; `{0}`, `{1}`, … are replaced by the arguments. */
  readonly message: string;
}

function entry(code: string, severity: Severity, message: string): CatalogEntry {
  return { code, severity, message };
}

export const Catalog = {
  // PC1xxx — syntax
  UnexpectedCharacter: entry("PC1001", "error", "unexpected character `{0}`"),
  UnterminatedString: entry("PC1002", "error", "unterminated string; add a closing `\"`"),
  UnterminatedComment: entry("PC1003", "error", "unterminated block comment; add a closing `*/`"),
  InvalidEscape: entry("PC1004", "error", "invalid escape `{0}` in string; only `\\\"`, `\\\\` and (in patterns) `\\*` are allowed"),
  SyntaxExpected: entry("PC1005", "error", "expected {0}, found {1}"),
  SyntaxUnexpected: entry("PC1006", "error", "unexpected {0}; expected {1}"),
  InvalidIpv4: entry("PC1007", "error", "invalid IPv4 address `{0}`"),
  InvalidIpv6: entry("PC1008", "error", "invalid IPv6 address `{0}`"),
  IntTooLarge: entry("PC1009", "error", "number `{0}` is too large"),
  EndpointNeedsProtocol: entry("PC1011", "error", "endpoint `{0}` needs a protocol: add `/tcp` or `/udp`"),
  UnknownProtocol: entry("PC1012", "error", "unknown protocol `{0}`; expected `tcp` or `udp`"),
  InvalidPrefixLength: entry("PC1013", "error", "prefix length `/{0}` is out of range for {1} (0..{2})"),

  // PC2xxx — names and types
  DuplicateDeclaration: entry("PC2001", "error", "`{0}` is already declared (as a {1} at {2})"),
  DuplicateRuleId: entry("PC2002", "error", "rule id `{0}` is already used at {1}"),
  DuplicateAnnotation: entry("PC2003", "error", "annotation `@{0}` appears twice on this rule"),
  UnknownName: entry("PC2004", "error", "unknown {0} `{1}`{2}"),
  WrongKind: entry("PC2005", "error", "`{0}` is a {1}, not a {2}"),
  InvalidSpiffeId: entry("PC2006", "error", "invalid SPIFFE ID `{0}`: {1}"),
  CidrHostBits: entry("PC2008", "error", "CIDR `{0}` has host bits set; did you mean `{1}`?"),
  PortOutOfRange: entry("PC2009", "error", "port `{0}` is out of range 0..65535"),
  EmptyRange: entry("PC2010", "error", "port range `{0}..{1}` is empty: the low end must be <= the high end"),
  TypeMismatch: entry("PC2012", "error", "`{0}` cannot compare {1} with {2}"),
  InvalidIn: entry("PC2013", "error", "`in` cannot test {0} against {1}; {2}"),
  NotBoolean: entry("PC2014", "error", "a condition must be true or false, but this is {0}"),
  UnknownAttribute: entry("PC2015", "error", "unknown name `{0}`{1}"),
  InvalidScope: entry("PC2016", "error", "`{0}` is not a valid {1} scope; {2}"),
  UnknownAction: entry("PC2017", "error", "unknown action `{0}`; the only action is `connect`"),
  UnknownSelector: entry("PC2018", "error", "unknown selector `{0}`{1}"),
  InvalidSelectorValue: entry("PC2019", "error", "invalid value for selector `{0}`: {1}"),
  MissingEntry: entry("PC2020", "error", "{0} `{1}` has no `{2}`"),
  DuplicateEntry: entry("PC2021", "error", "`{0}` is given twice in {1}"),
  DuplicateDefault: entry("PC2022", "error", "`default unidentified` is already set at {0}"),
  InvalidDefault: entry("PC2023", "error", "{0}"),
  EmptyList: entry("PC2024", "error", "{0} must not be empty"),
  UnknownRuleId: entry("PC2026", "error", "unknown rule id `{0}`{1}"),
  MixedList: entry("PC2027", "error", "list mixes {0} and {1}"),
  InvalidTestTarget: entry("PC2028", "error", "a test destination must be an endpoint like `10.0.0.1:443/tcp`, found {0}"),
  UnknownEntryKey: entry("PC2029", "error", "unknown entry `{0}` in {1}; expected {2}"),
  InvalidListItem: entry("PC2030", "error", "{0} cannot hold {1}"),
  EmptyAnnotationValue: entry("PC2031", "error", "annotation `@{0}` needs a non-empty value"),
  CyclicReference: entry("PC2032", "error", "{0} `{1}` contains itself ({2})"),

  // PC21xx — warnings about names and types
  UnusedDeclaration: entry("PC2101", "warning", "{0} `{1}` is declared but never used"),
  OverlappingWorkloads: entry("PC2102", "warning", "workload `{0}` may match the same processes as `{1}` ({2}); `{1}` wins because it comes first"),
  MappedRangeInV6Cidr: entry("PC2103", "warning", "CIDR `{0}` includes the IPv4-mapped range `::ffff:0:0/96`, whose addresses are IPv4 and never match an IPv6 CIDR"),
  WorkloadWithoutMatch: entry("PC2104", "warning", "workload `{0}` has no `match` block, so no local process can have it"),
  PatternNeverMatches: entry("PC2105", "warning", "pattern `{0}` can never match a SPIFFE ID: {1}"),

  // PC3xxx — lowering (what the tables and the kernel can represent exactly)
  AttributeComparison: entry("PC3001", "error", "comparing two request attributes (`{0}` with `{1}`) cannot be lowered to decision tables; compare an attribute with a constant"),
  LoweringLimit: entry("PC3002", "error", "the policy set cannot be lowered: {0}"),

  // PC4xxx — bundles
  BundleTruncated: entry("PC4001", "error", "`{0}` is truncated: {1}"),
  BundleMagic: entry("PC4002", "error", "`{0}` is not a Portcullis bundle (bad magic)"),
  BundleVersion: entry("PC4003", "error", "`{0}` has bundle format version {1}; this portcullis reads version {2}"),
  BundleChecksum: entry("PC4004", "error", "`{0}` is corrupt: its SHA-256 checksum does not match its content"),
  BundleManifest: entry("PC4005", "error", "`{0}` has an invalid manifest: {1}"),
  BundleTables: entry("PC4006", "error", "`{0}` has corrupt decision tables: {1}"),

  // PC9xxx — command line and I/O
  FileNotFound: entry("PC9001", "error", "cannot read `{0}`: {1}"),
  NoPolicyFiles: entry("PC9002", "error", "no `.policy` files found in {0}"),
  NotFormatted: entry("PC9003", "error", "`{0}` is not formatted; run `portcullis fmt --write {0}`"),

  // PC95xx — the kernel path (kernel-bridge/loader.ts, `portcullis kernel`, `portcullis exec`)
  KernelNotRoot: entry("PC9501", "error", "the kernel path needs root (CAP_BPF, CAP_NET_ADMIN); rerun as root, or decide in user space with `--engine kernel-sim`"),
  KernelNoBpffs: entry("PC9502", "error", "bpffs is not mounted at /sys/fs/bpf; mount it with `mount -t bpf bpf /sys/fs/bpf`"),
  KernelNoCgroup2: entry("PC9503", "error", "no cgroup v2 mount in /proc/mounts; mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`"),
  KernelNoBtf: entry("PC9504", "error", "the kernel has no BTF (/sys/kernel/btf/vmlinux); a kernel built with CONFIG_DEBUG_INFO_BTF=y is needed"),
  KernelNotBuilt: entry("PC9505", "error", "the kernel path is not built (`{0}` is missing); run `scripts/setup-kernel.sh --install` as root"),
  KernelCgroupPath: entry("PC9506", "error", "`{0}` is not a cgroup v2 directory: {1}"),
  KernelCapacity: entry("PC9507", "error", "the bundle needs {0} entries in map `{1}`, which holds {2}; nothing was changed (unload, then load with `--capacity {1}={0}`)"),
  KernelNotLoaded: entry("PC9508", "error", "no policy named `{0}` is loaded in the kernel; run `portcullis kernel load` first"),
  KernelRefused: entry("PC9509", "error", "the kernel refused to {0}: {1}"),
  KernelOtherCgroup: entry("PC9510", "error", "policy `{0}` is attached at `{1}`, not `{2}`; unload it first or pick another `--name`"),
  KernelBadOption: entry("PC9511", "error", "{0}"),
  ExecMismatch: entry("PC9512", "error", "`{0}` cannot run as workload `{1}`: {2}"),
} as const;

export type CatalogKey = keyof typeof Catalog;

export interface Diagnostic {
  readonly code: string;
  readonly severity: Severity;
  readonly message: string;
  /** Absent only for errors that concern no file position (e.g. "no files found"). */
  readonly span: Span | undefined;
}

export function diag(key: CatalogKey, span: Span | undefined, ...args: readonly (string | number)[]): Diagnostic {
  const e = Catalog[key];
  const message = e.message.replace(/\{(\d+)\}/g, (_m, i: string) => {
    const arg = args[Number(i)];
    return arg === undefined ? "" : String(arg);
  });
  return { code: e.code, severity: e.severity, message, span };
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === "error");
}

/** Orders diagnostics by file, then position, then code: stable output for baselines. */
export function sortDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => {
    const fa = a.span?.file ?? "";
    const fb = b.span?.file ?? "";
    if (fa !== fb) return fa < fb ? -1 : 1;
    const oa = a.span?.offset ?? -1;
    const ob = b.span?.offset ?? -1;
    if (oa !== ob) return oa - ob;
    return a.code < b.code ? -1 : a.code > b.code ? 1 : 0;
  });
}

/** `at 3:5` style position, used inside messages that point at another place. */
export function describePosition(span: Span, fromFile?: string): string {
  return span.file === fromFile ? `${span.line}:${span.column}` : `${span.file}(${span.line},${span.column})`;
}

/**
 * Human rendering, as in TypeScript's compiler:
 *
 *     shop.policy(12,3): error PC2004: unknown workload `fronted`; did you mean `frontend`?
 *         principal == workload fronted,
 *                               ~~~~~~~
 */
export function formatDiagnostic(d: Diagnostic, sourceText: string | undefined): string {
  if (d.span === undefined) return `${d.severity} ${d.code}: ${d.message}`;
  const { file, line, column, offset, length } = d.span;
  const head = `${file}(${line},${column}): ${d.severity} ${d.code}: ${d.message}`;
  if (sourceText === undefined) return head;
  const lineStart = sourceText.lastIndexOf("\n", offset - 1) + 1;
  let lineEnd = sourceText.indexOf("\n", lineStart);
  if (lineEnd < 0) lineEnd = sourceText.length;
  const lineText = sourceText.slice(lineStart, lineEnd).replace(/\r$/, "").replace(/\t/g, " ");
  const startCol = offset - lineStart;
  const underline = Math.max(1, Math.min(length, lineText.length - startCol));
  return `${head}\n    ${lineText}\n    ${" ".repeat(startCol)}${"~".repeat(underline)}`;
}

export interface JsonDiagnostic {
  code: string;
  severity: Severity;
  message: string;
  file: string | null;
  line: number | null;
  column: number | null;
  offset: number | null;
  length: number | null;
}

export function toJsonDiagnostic(d: Diagnostic): JsonDiagnostic {
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    file: d.span?.file ?? null,
    line: d.span?.line ?? null,
    column: d.span?.column ?? null,
    offset: d.span?.offset ?? null,
    length: d.span?.length ?? null,
  };
}

/** Three rows of `boundedEditDistance`, grown as needed and reused (it runs for every candidate name). */
let rows = [new Int32Array(64), new Int32Array(64), new Int32Array(64)];

/**
 * The edit distance of `a` and `b` with adjacent transpositions (optimal string alignment)
 * when it is at most `limit`, else `limit + 1`: rows are computed until their smallest value
 * exceeds `limit` (the smallest value of a row never decreases).
 */
export function boundedEditDistance(a: string, b: string, limit: number): number {
  const cols = b.length + 1;
  if (rows[0]!.length < cols) rows = [new Int32Array(cols * 2), new Int32Array(cols * 2), new Int32Array(cols * 2)];
  let [twoBack, previous, current] = rows as [Int32Array, Int32Array, Int32Array];
  for (let j = 0; j < cols; j++) previous[j] = j;
  for (let i = 1; i <= a.length; i++) {
    current[0] = i;
    let rowMin = i;
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, twoBack[j - 2]! + 1);
      current[j] = best;
      if (best < rowMin) rowMin = best;
    }
    if (rowMin > limit) return limit + 1;
    [twoBack, previous, current] = [previous, current, twoBack];
  }
  return Math.min(previous[cols - 1]!, limit + 1);
}

/** `; did you mean `x`?` for the closest candidate within a third of the name's length. */
export function didYouMean(name: string, candidates: Iterable<string>): string {
  const limit = Math.max(1, Math.floor(name.length / 3));
  const lower = name.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const other = c.toLowerCase();
    // The distance is at least the difference in length: such a candidate is never shown.
    if (Math.abs(other.length - lower.length) > limit) continue;
    const d = boundedEditDistance(lower, other, limit);
    if (d < bestDistance || (d === bestDistance && best !== undefined && c < best)) {
      best = c;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= limit ? `; did you mean \`${best}\`?` : "";
}
