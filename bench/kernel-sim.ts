// Owns the kernel-lowering benchmark: `lowerToMapImages` on the example sets and a
// generated 1,000-rule set (entries per map, time, entries per second), and the kernel
// simulator's decisions per second next to the tables engine's on the same requests.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { manifestWorkloads } from "../compiler/bundle.js";
import type { PolicySet } from "../compiler/model.js";
import { checkSources, loadPolicySet } from "../compiler/program.js";
import { TableEvaluator } from "../compiler/table-eval.js";
import { buildDecisionTables } from "../compiler/tables.js";
import { lowerToMapImages, requiredCgroupPaths } from "../kernel-bridge/lower.js";
import { KernelSimEvaluator, SIM_MANAGED_ROOT, SyntheticCgroups } from "../kernel-bridge/sim.js";
import { boundaryRequests } from "../test/support/boundary.js";
import { generatePolicySet } from "../test/support/generate.js";
import type { BenchSection } from "./run.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const GENERATED_RULES = 1_000;
const REQUESTS = 5_000;
const RUNS = 5;

function sets(): { name: string; policy: PolicySet }[] {
  const fixture = (p: string) => loadPolicySet([path.join(repoRoot, p)]).policySet!;
  const text = generatePolicySet({ rules: GENERATED_RULES, seed: 1 });
  const generated = checkSources([{ path: "generated.policy", relPath: "generated.policy", text }]).policySet!;
  return [
    { name: "policies/demo", policy: fixture("policies/demo") },
    { name: "policies/shop", policy: fixture("policies/shop") },
    { name: `generated ${GENERATED_RULES.toLocaleString("en-US")} rules`, policy: generated },
  ];
}

/** Best of `RUNS` wall-clock times of `f`, in ms. */
function best(f: () => void): number {
  let min = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    f();
    min = Math.min(min, performance.now() - t);
  }
  return min;
}

export const kernelSimSection: BenchSection = {
  id: "kernel-sim",
  title: "Kernel lowering and simulator",
  describe: `\`lowerToMapImages\` (decision tables → eBPF map images, made-up cgroup ids) on the example sets and a generated set (test/support/generate.ts, seed 1); best of ${RUNS}. Then ${REQUESTS.toLocaleString("en-US")} boundary requests decided by the tables engine and by \`kernel-sim\` (the simulated kernel lookups over the images), best of ${RUNS}, side by side in this run. The simulator is a test oracle, not a fast path: it encodes every key and hex-keys its maps.`,
  run() {
    const lines = [
      "| policy set | ident | pairs4+pairs6 | default rows | uid | gid | port | verdicts | all entries | lower ms | entries/s | tables µs/decision | kernel-sim µs/decision | ratio |",
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    for (const { name, policy } of sets()) {
      const tables = buildDecisionTables(policy);
      const workloads = manifestWorkloads(policy, tables);
      const cgroupIds = new SyntheticCgroups().idsFor(requiredCgroupPaths(workloads, SIM_MANAGED_ROOT));
      let images = lowerToMapImages(tables.words, tables.ruleIds, { workloads, cgroupIds, managedRoot: SIM_MANAGED_ROOT });
      const lowerMs = best(() => {
        images = lowerToMapImages(tables.words, tables.ruleIds, { workloads, cgroupIds, managedRoot: SIM_MANAGED_ROOT });
      });
      const c = images.counts;
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      const requests = boundaryRequests(policy, { limit: REQUESTS });
      const tableEngine = new TableEvaluator(tables);
      const sim = new KernelSimEvaluator({ ...tables, workloads });
      const perDecision = (decide: () => void) => (best(decide) * 1000) / requests.length;
      const tablesUs = perDecision(() => requests.forEach((r) => tableEngine.decide(r)));
      const simUs = perDecision(() => requests.forEach((r) => sim.decide(r)));
      lines.push(
        `| ${name} | ${c.ident} | ${c.pairs4 + c.pairs6} | ${c.default_row} | ${c.uid_lpm} | ${c.gid_lpm} | ${c.port_lpm} | ${c.verdicts} | ${total.toLocaleString("en-US")} | ${lowerMs.toFixed(1)} | ${Math.round((total / lowerMs) * 1000).toLocaleString("en-US")} | ${tablesUs.toFixed(2)} | ${simUs.toFixed(2)} | ×${(simUs / tablesUs).toFixed(1)} |`,
      );
    }
    return lines.join("\n");
  },
};
