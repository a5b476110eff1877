// Owns the compiler benchmark: check + decision tables + bundle for generated policy sets
// of 1k / 10k / 100k rules (test/support/generate.ts), each size in a fresh child process
// with a time limit, reporting time, table size and peak memory — or why it did not finish.
//
//   node dist/bench/compiler.js --measure N   (the child's entry point)
import { fileURLToPath } from "node:url";
import { writeBundle } from "../compiler/bundle.js";
import { checkSources } from "../compiler/program.js";
import { buildDecisionTables, LoweringError } from "../compiler/tables.js";
import { generatePolicySet } from "../test/support/generate.js";
import type { BenchSection } from "./run.js";
import { measureInChild } from "./child.js";

const SIZES = [1_000, 10_000, 100_000];
const SEED = 1;
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
}

function measure(rules: number): CompilerMeasurement {
  const text = generatePolicySet({ rules, seed: SEED });
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
    return { rules, checkMs, tablesMs, bundleMs: performance.now() - t, bundleBytes: bundle.length, stats: { ...tables.stats }, peakRssMb: peak() };
  } catch (e) {
    if (!(e instanceof LoweringError)) throw e;
    return { rules, checkMs, refused: `PC3002 after ${((performance.now() - t) / 1000).toFixed(1)} s: ${e.message}`, peakRssMb: peak() };
  }
}


const ms = (x: number | undefined) => (x === undefined ? "–" : x.toFixed(0));

export const compilerSection: BenchSection = {
  id: "compiler",
  title: "Compiler: check, decision tables, bundle",
  describe: `\`checkSources\`, \`buildDecisionTables\` and \`writeBundle\` on the generated sets of the front-end section (seed ${SEED}), each size in a fresh process limited to ${LIMIT_SECONDS} s. Targets (issue 3): 10,000 rules in under 2 s, 100,000 in under 30 s with peak memory under 2 GiB.`,
  run() {
    const lines = ["| rules | check ms | tables ms | bundle ms | total ms | bundle bytes | identity classes | destination classes | pairs | rows | peak RSS MB | outcome |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"];
    for (const rules of SIZES) {
      const m = measureInChild<CompilerMeasurement>(fileURLToPath(import.meta.url), rules, LIMIT_SECONDS);
      if (typeof m === "string") {
        lines.push(`| ${rules.toLocaleString("en-US")} | – | – | – | – | – | – | – | – | – | – | ${m} |`);
        continue;
      }
      const total = m.checkMs + (m.tablesMs ?? 0) + (m.bundleMs ?? 0);
      const s = m.stats ?? {};
      const outcome = m.refused ?? `compiled${rules === 10_000 ? (total < 2000 ? " (target met)" : " (target missed)") : rules === 100_000 ? (total < 30000 ? " (target met)" : " (target missed)") : ""}`;
      lines.push(
        `| ${rules.toLocaleString("en-US")} | ${ms(m.checkMs)} | ${ms(m.tablesMs)} | ${ms(m.bundleMs)} | ${m.refused === undefined ? ms(total) : "–"} | ${m.bundleBytes?.toLocaleString("en-US") ?? "–"} | ${s["identityClasses"] ?? "–"} | ${s["destinationClasses"] ?? "–"} | ${s["pairs"] ?? "–"} | ${s["rows"] ?? "–"} | ${m.peakRssMb.toFixed(0)} | ${outcome} |`,
      );
    }
    return lines.join("\n");
  },
};

if (process.argv[2] === "--measure") {
  process.stdout.write(`${JSON.stringify(measure(Number(process.argv[3])))}\n`);
}
