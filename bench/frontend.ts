// Owns the front-end benchmark: parse and check generated policy sets of 1,000, 10,000
// and 100,000 rules (test/support/generate.ts), each size in a fresh `node --expose-gc`
// child so that heap and RSS figures do not leak between sizes.
//
// Run directly with `--measure RULES` this file is that child: it prints one JSON line
// (`FrontendMeasurement`) and nothing else on stdout.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { checkPolicySet } from "../compiler/check.js";
import { checkSources } from "../compiler/program.js";
import type { PolicySource } from "../compiler/model.js";
import { parsePolicy } from "../dsl/parse.js";
import { generatePolicySet } from "../test/support/generate.js";
import type { BenchSection } from "./run.js";

export const FRONTEND_SIZES = [1_000, 10_000, 100_000] as const;
/**
 * The front end's share of issue 3's budget (10,000 rules compiled in under 2 s, 100,000 in
 * under 30 s): parse and check in at most these times.
 */
const TARGETS = [
  { rules: 10_000, ms: 300 },
  { rules: 100_000, ms: 3_500 },
] as const;
const SEED = 1;

export interface FrontendMeasurement {
  readonly rules: number;
  readonly sourceBytes: number;
  /** The best of the repetitions, by total time: the figure least disturbed by other load. */
  readonly parseMs: number;
  readonly checkMs: number;
  readonly totalMs: number;
  /** CPU time (user + system, all threads, GC included) of the best run. */
  readonly cpuMs: number;
  /**
   * One parse + check in a fresh process with no flags, no warm-up and no forced GC: what
   * one `portcullis check` of the file costs.
   */
  readonly firstMs: number;
  readonly repetitions: number;
  /** Heap still in use (after a full GC) while the AST and the checked policy set are alive, minus the heap before parsing. */
  readonly heapMb: number;
  /** Peak resident set size of the whole child process (generation included). */
  readonly peakRssMb: number;
  readonly warnings: number;
}

const MB = 1024 * 1024;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error("run with `node --expose-gc`");
  collect();
  collect();
}

/** Parse, then check, as `checkSources` does for one file; timed apart. */
function parseAndCheck(sources: readonly PolicySource[]): { parseMs: number; checkMs: number; cpuMs: number; kept: unknown } {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const parsed = parsePolicy(sources[0]!.text, sources[0]!.path);
  const t1 = performance.now();
  if (parsed.ast === undefined) throw new Error(`generated set has syntax errors: ${parsed.diagnostics[0]?.message}`);
  const checked = checkPolicySet(sources, [parsed.ast]);
  const t2 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  return { parseMs: t1 - t0, checkMs: t2 - t1, cpuMs: (cpu.user + cpu.system) / 1000, kept: checked.policySet };
}

/**
 * Checks that the generated set checks without errors and returns its number of warnings.
 * A function of its own, so that its policy set is garbage once it returns and does not
 * weigh on the measured runs' collections.
 */
function validate(sources: readonly PolicySource[], rules: number): number {
  const result = checkSources(sources);
  const errors = result.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || result.policySet?.rules.length !== rules) {
    throw new Error(`generated set of ${rules} rules does not check: ${errors.length} errors, first: ${errors[0]?.code} ${errors[0]?.message}`);
  }
  return result.diagnostics.length;
}

/** The child's work: one size, measured after a warm-up on a small set. */
export function measureFrontend(rules: number): FrontendMeasurement {
  const warmUp: PolicySource[] = [{ path: "warm-up.policy", relPath: "warm-up.policy", text: generatePolicySet({ rules: 500, seed: SEED + 1 }) }];
  for (let i = 0; i < 5; i++) parseAndCheck(warmUp);

  const text = generatePolicySet({ rules, seed: SEED });
  const sources: PolicySource[] = [{ path: "generated.policy", relPath: "generated.policy", text }];
  const warnings = validate(sources, rules);

  const repetitions = rules <= 1_000 ? 9 : rules <= 10_000 ? 5 : 2;
  // The first run also measures the heap. Full GCs shrink the young generation, which
  // slows the next run down (as in a fresh process), so only that run is preceded by one.
  gc();
  const before = process.memoryUsage().heapUsed;
  let first: ReturnType<typeof parseAndCheck> | undefined = parseAndCheck(sources);
  gc();
  const heapMb = (process.memoryUsage().heapUsed - before) / MB;
  // INVARIANT: the result is alive until the heap was measured.
  if (first.kept === undefined) throw new Error("no policy set");
  // Only timings are kept from here on: a run's result is garbage once measured, as in one
  // `portcullis check`, so it must not weigh on the next run's collections.
  const runs = [{ ...first, kept: undefined }];
  first = undefined;
  gc();
  for (let r = 1; r < repetitions; r++) runs.push({ ...parseAndCheck(sources), kept: undefined });
  runs.sort((a, b) => a.parseMs + a.checkMs - (b.parseMs + b.checkMs));
  const best = runs[0]!;
  return {
    rules,
    sourceBytes: Buffer.byteLength(text, "utf8"),
    parseMs: best.parseMs,
    checkMs: best.checkMs,
    totalMs: best.parseMs + best.checkMs,
    cpuMs: best.cpuMs,
    firstMs: Number.NaN,
    repetitions,
    heapMb,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    warnings,
  };
}

/** Like one CLI run: generate (outside the timing), then parse and check once. */
function measureOnce(rules: number): number {
  const text = generatePolicySet({ rules, seed: SEED });
  const t0 = performance.now();
  const result = checkSources([{ path: "generated.policy", relPath: "generated.policy", text }]);
  const ms = performance.now() - t0;
  if (result.policySet === undefined) throw new Error("no policy set");
  return ms;
}

function measureOnceInChild(rules: number): number {
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--measure-once", String(rules)], { encoding: "utf8", maxBuffer: 16 * MB });
  if (child.status !== 0) throw new Error(`front-end bench (one run) for ${rules} rules failed (exit ${child.status ?? child.signal}):\n${child.stderr}`);
  return Number(child.stdout.trim().split("\n").pop());
}

function measureInChild(rules: number): FrontendMeasurement {
  const child = spawnSync(process.execPath, ["--expose-gc", "--max-old-space-size=8192", fileURLToPath(import.meta.url), "--measure", String(rules)], {
    encoding: "utf8",
    maxBuffer: 16 * MB,
  });
  if (child.status !== 0) throw new Error(`front-end bench for ${rules} rules failed (exit ${child.status ?? child.signal}):\n${child.stderr}`);
  return JSON.parse(child.stdout.trim().split("\n").pop()!) as FrontendMeasurement;
}

const fixed = (x: number, digits: number) => x.toFixed(digits);
const grouped = (x: number) => x.toLocaleString("en-US");

export function frontendTable(rows: readonly FrontendMeasurement[]): string {
  const lines = [
    "| rules | source bytes | parse ms | check ms | total ms | ms per 1k rules | cpu ms | one cold run ms | heap MB | peak RSS MB |",
    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map((m) =>
      `| ${grouped(m.rules)} | ${grouped(m.sourceBytes)} | ${fixed(m.parseMs, 1)} | ${fixed(m.checkMs, 1)} | ${fixed(m.totalMs, 1)} | ${fixed((m.totalMs / m.rules) * 1000, 1)} | ${fixed(m.cpuMs, 0)} | ${fixed(m.firstMs, 0)} | ${fixed(m.heapMb, 1)} | ${fixed(m.peakRssMb, 0)} |`,
    ),
  ];
  lines.push("", `- Every generated set checks with 0 errors (asserted) and ${rows.map((m) => m.warnings).join(" / ")} warnings.`);
  for (const target of TARGETS) {
    const row = rows.find((m) => m.rules === target.rules);
    if (row === undefined) continue;
    const met = (ms: number) => (ms <= target.ms ? "met" : "missed");
    lines.push(
      `- Target: ${grouped(target.rules)} rules parsed and checked in at most ${grouped(target.ms)} ms — best run ${met(row.totalMs)} (${fixed(row.totalMs, 0)} ms), one cold run ${met(row.firstMs)} (${fixed(row.firstMs, 0)} ms).`,
    );
  }
  const largest = rows[rows.length - 1];
  if (largest !== undefined) {
    lines.push(`- Peak RSS at ${grouped(largest.rules)} rules: ${fixed(largest.peakRssMb, 0)} MB, of issue 3's 2 GiB for the whole compile (the front end's share: well under 1 GiB).`);
  }
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1]!;
    const b = rows[i]!;
    lines.push(
      `- Growth from ${grouped(a.rules)} to ${grouped(b.rules)} rules (×${b.rules / a.rules}): best-run time ×${fixed(b.totalMs / a.totalMs, 1)}, cold-run time ×${fixed(b.firstMs / a.firstMs, 1)}, heap ×${fixed(b.heapMb / a.heapMb, 1)}.`,
    );
  }
  return lines.join("\n");
}

export const frontendSection: BenchSection = {
  id: "frontend",
  title: "Front end: parse and check",
  describe:
    "`parsePolicy` then `checkPolicySet` (what `checkSources` does) on one generated file (`generatePolicySet`, test/support/generate.ts; seed 1) that checks with zero errors; " +
    "best of 9 / 5 / 2 warm runs (after a warm-up on a small set; only the first run follows a full GC), each size in a fresh `node --expose-gc` process. " +
    "Times are wall clock; cpu ms is user + system time of the same run (all threads, GC included). " +
    "Heap: heap in use after a full GC with the AST and policy set alive, minus before parsing. Peak RSS: the whole process, generation included. " +
    "One cold run: a single parse + check in another fresh process with no flags, no warm-up and no forced GC, as one `portcullis check` runs (code not yet optimised by the JIT). " +
    "Targets: the front end's share of issue 3's budget (10,000 rules compiled in under 2 s and 100,000 in under 30 s, within 2 GiB).",
  run(): string {
    const rows = FRONTEND_SIZES.map((rules) => {
      process.stderr.write(`frontend: ${grouped(rules)} rules…\n`);
      return { ...measureInChild(rules), firstMs: measureOnceInChild(rules) };
    });
    return frontendTable(rows);
  },
};

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--measure") {
  process.stdout.write(`${JSON.stringify(measureFrontend(Number(process.argv[3])))}\n`);
}
if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === "--measure-once") {
  process.stdout.write(`${measureOnce(Number(process.argv[3]))}\n`);
}
