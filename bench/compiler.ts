// Owns the compiler benchmark: check + decision tables + bundle for generated policy sets
// of 1k / 10k / 100k rules (test/support/generate.ts), each size in a fresh child process
// with a time limit, reporting time, table size and peak memory — or why it did not finish;
// and `portcullis compile` itself on the same set, as a user runs it (process start, module
// loading, reading the file and writing the bundle included), which the targets are judged on.
//
//   node dist/bench/compiler.js --measure N   (the child's entry point)
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeBundle } from "../compiler/bundle.js";
import { checkSources } from "../compiler/program.js";
import { buildDecisionTables, LoweringError } from "../compiler/tables.js";
import { generatePolicySet } from "../test/support/generate.js";
import type { BenchSection } from "./run.js";
import { median } from "./stats.js";
import { measureInChild } from "./child.js";

const SIZES = [1_000, 10_000, 100_000];
/** Fresh processes per size: these machines are shared, and one run's wall time varies by a fifth. */
const RUNS: Readonly<Record<number, number>> = { 1_000: 5, 10_000: 5, 100_000: 3 };
const SEED = 1;
/** The sizes at which `node bin/portcullis.js compile` (Node's default thread pool) is also timed, beside the command. */
const DEFAULT_POOL_SIZES = [1_000, 10_000];
const LIMIT_SECONDS = 300;

interface CompilerMeasurement {
  readonly rules: number;
  readonly checkMs: number;
  readonly tablesMs?: number;
  readonly bundleMs?: number;
  readonly bundleBytes?: number;
  readonly stats?: Record<string, number>;
  readonly refused?: string;
  readonly peakRssMb: number;
  /** The main thread's CPU time over check, tables and bundle (Linux; undefined elsewhere): the work done, whatever else the machine runs. */
  readonly mainCpuMs?: number;
}

/** The CPU time of the calling thread so far, in ms (Linux's schedstat), or undefined. */
function threadCpuMs(): number | undefined {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]) / 1e6;
  } catch {
    return undefined;
  }
}

function measure(rules: number): CompilerMeasurement {
  const text = generatePolicySet({ rules, seed: SEED });
  const cpu0 = threadCpuMs();
  const cpu = () => (cpu0 === undefined ? undefined : threadCpuMs()! - cpu0);
  let t = performance.now();
  const checked = checkSources([{ path: "generated.policy", relPath: "generated.policy", text }]);
  const checkMs = performance.now() - t;
  if (checked.policySet === undefined) throw new Error(`the generated set of ${rules} rules does not check`);
  const peak = () => process.resourceUsage().maxRSS / 1024;
  t = performance.now();
  try {
    const tables = buildDecisionTables(checked.policySet);
    const tablesMs = performance.now() - t;
    t = performance.now();
    const bundle = writeBundle(checked.policySet, "bench", tables);
    return { rules, checkMs, tablesMs, bundleMs: performance.now() - t, bundleBytes: bundle.length, stats: { ...tables.stats }, peakRssMb: peak(), mainCpuMs: cpu() };
  } catch (e) {
    if (!(e instanceof LoweringError)) throw e;
    return { rules, checkMs, refused: `PC3002 after ${((performance.now() - t) / 1000).toFixed(1)} s: ${e.message}`, peakRssMb: peak() };
  }
}


const ms = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(0));

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin");
/** Preloaded into the CLI's process (the command itself is unchanged): prints its peak RSS on stderr at exit. */
const RSS_PROBE = `data:text/javascript,${encodeURIComponent("process.on('exit', () => process.stderr.write(`maxrss=${process.resourceUsage().maxRSS}\\n`));")}`;

/**
 * How the CLI is started: as the `portcullis` command (bin/portcullis, which sizes Node's
 * helper-thread pool to the machine), or as `node bin/portcullis.js` (Node's defaults).
 */
type Launch = "command" | "node";

interface CliMeasurement {
  readonly wallMs: number;
  readonly peakRssMb: number;
}

/** One `portcullis compile FILE -o OUT` in a fresh process, timed from spawn to exit; or why it failed. */
function runCli(launch: Launch, file: string, out: string): CliMeasurement | string {
  const args = ["compile", file, "-o", out];
  const [command, argv] = launch === "command" ? [path.join(BIN, "portcullis"), args] : [process.execPath, [path.join(BIN, "portcullis.js"), ...args]];
  const env = { ...process.env, NODE_OPTIONS: `${process.env["NODE_OPTIONS"] ?? ""} --import=${RSS_PROBE}`.trim() };
  const t = performance.now();
  const child = spawnSync(command, argv, { encoding: "utf8", env, timeout: LIMIT_SECONDS * 1000, maxBuffer: 16 * 1024 * 1024 });
  const wallMs = performance.now() - t;
  if (child.error !== undefined || child.signal !== null) return `portcullis compile not finished within ${LIMIT_SECONDS} s`;
  if (child.status !== 0) return `portcullis compile failed (exit ${child.status}): ${child.stderr.trim().split("\n")[0] ?? ""}`;
  const rss = /maxrss=(\d+)/.exec(child.stderr);
  if (rss === null) return "portcullis compile did not report its peak RSS";
  return { wallMs, peakRssMb: Number(rss[1]) / 1024 };
}

/** `runs` runs of the CLI per launch on the generated set of `rules` rules (the launches interleaved), or why one failed. */
function measureCli(rules: number, runs: number, launches: readonly Launch[]): Map<Launch, CliMeasurement[]> | string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "portcullis-bench-"));
  try {
    const file = path.join(dir, "generated.policy");
    writeFileSync(file, generatePolicySet({ rules, seed: SEED }));
    const out = new Map<Launch, CliMeasurement[]>(launches.map((l) => [l, []]));
    for (let k = 0; k < runs; k++) {
      for (const launch of launches) {
        const m = runCli(launch, file, path.join(dir, "generated.bundle"));
        if (typeof m === "string") return `${launch === "node" ? "node bin/portcullis.js" : "portcullis"}: ${m}`;
        out.get(launch)!.push(m);
      }
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Issue 3's targets, judged on the CLI: under `wallMs`, and (where given) under `rssMb` of peak memory. */
const TARGETS: Readonly<Record<number, { wallMs: number; rssMb?: number }>> = { 10_000: { wallMs: 2000 }, 100_000: { wallMs: 30_000, rssMb: 2048 } };

export const compilerSection: BenchSection = {
  id: "compiler",
  title: "Compiler: check, decision tables, bundle",
  describe: `\`checkSources\`, \`buildDecisionTables\` and \`writeBundle\` on the generated sets of the front-end section (seed ${SEED}), each run in a fresh process limited to ${LIMIT_SECONDS} s; ${SIZES.map((n) => `${RUNS[n]} runs at ${n.toLocaleString("en-US")} rules`).join(", ")}. Times are wall-clock medians over the runs (the total's range beside it), and the median CPU time of the main thread over the three steps (the work done, whatever else the shared machine runs; garbage collection and compilation on helper threads not counted). Peak RSS is the largest of the runs. Then \`portcullis compile FILE -o OUT\` on the same set, the command as installed (bin/portcullis, which sizes Node's helper-thread pool to the machine), as many runs, each a fresh process timed from spawn to exit (Node's start, loading the modules, reading the file, checking, building and writing the bundle): its median (range) and largest peak RSS; at ${DEFAULT_POOL_SIZES.map((n) => n.toLocaleString("en-US")).join(" and ")} rules, \`node bin/portcullis.js compile\` (Node's default pool of 4 threads) too, its runs interleaved with the command's. Targets (issue 3), judged on the CLI: 10,000 rules in under 2 s, 100,000 in under 30 s with peak memory under 2 GiB.`,
  run() {
    const lines = ["| rules | check ms | tables ms | bundle ms | total ms (range) | main-thread CPU ms | bundle bytes | identity classes | destination classes | pairs | rows | peak RSS MB | \`portcullis compile\` ms (range) | its peak RSS MB | \`node bin/portcullis.js compile\` ms (range) | outcome |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"];
    for (const rules of SIZES) {
      const runs: CompilerMeasurement[] = [];
      let failed: string | undefined;
      for (let k = 0; k < RUNS[rules]! && failed === undefined; k++) {
        const m = measureInChild<CompilerMeasurement>(fileURLToPath(import.meta.url), rules, LIMIT_SECONDS);
        if (typeof m === "string") failed = m;
        else runs.push(m);
      }
      if (failed !== undefined) {
        lines.push(`| ${rules.toLocaleString("en-US")} | – | – | – | – | – | – | – | – | – | – | – | – | – | – | ${failed} |`);
        continue;
      }
      const m = runs[0]!;
      const of = (f: (r: CompilerMeasurement) => number | undefined) => {
        const xs = runs.map(f).filter((x): x is number => x !== undefined);
        return xs.length === runs.length ? median(xs) : undefined;
      };
      const totals = runs.map((r) => r.checkMs + (r.tablesMs ?? 0) + (r.bundleMs ?? 0));
      const total = median(totals);
      const s = m.stats ?? {};
      const range = `${ms(Math.min(...totals))}–${ms(Math.max(...totals))}`;
      const launches: Launch[] = DEFAULT_POOL_SIZES.includes(rules) ? ["command", "node"] : ["command"];
      const cli = m.refused === undefined ? measureCli(rules, RUNS[rules]!, launches) : "not run (refused)";
      let cliCells = "– | – | –";
      let outcome = m.refused ?? "compiled";
      if (typeof cli === "string") outcome += `; ${cli}`;
      else {
        const cell = (runs: readonly CliMeasurement[] | undefined) => {
          if (runs === undefined) return "–";
          const walls = runs.map((c) => c.wallMs);
          return `${ms(median(walls))} (${ms(Math.min(...walls))}–${ms(Math.max(...walls))})`;
        };
        const command = cli.get("command")!;
        const cliWall = median(command.map((c) => c.wallMs));
        const cliRss = Math.max(...command.map((c) => c.peakRssMb));
        cliCells = `${cell(command)} | ${cliRss.toFixed(0)} | ${cell(cli.get("node"))}`;
        const target = TARGETS[rules];
        if (target !== undefined) outcome += cliWall < target.wallMs && (target.rssMb === undefined || cliRss < target.rssMb) ? " (target met)" : " (target missed)";
      }
      lines.push(
        `| ${rules.toLocaleString("en-US")} | ${ms(of((r) => r.checkMs))} | ${ms(of((r) => r.tablesMs))} | ${ms(of((r) => r.bundleMs))} | ${m.refused === undefined ? `${ms(total)} (${range})` : "–"} | ${ms(of((r) => r.mainCpuMs))} | ${m.bundleBytes?.toLocaleString("en-US") ?? "–"} | ${s["identityClasses"] ?? "–"} | ${s["destinationClasses"] ?? "–"} | ${s["pairs"] ?? "–"} | ${s["rows"] ?? "–"} | ${Math.max(...runs.map((r) => r.peakRssMb)).toFixed(0)} | ${cliCells} | ${outcome} |`,
      );
    }
    return lines.join("\n");
  },
};

if (process.argv[2] === "--measure") {
  process.stdout.write(`${JSON.stringify(measure(Number(process.argv[3])))}\n`);
}
