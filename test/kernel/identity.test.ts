// Identity-map tests: processes with a given cgroup ancestry, uid and gid (and, when
// `portcullis exec` attested them in a managed cgroup, an executable and digest) resolve
// in the simulated kernel to the first matching workload in policy-set order, as the
// direct evaluation of the workloads' `match` blocks in test/support/processes.ts says,
// with that workload's class list (the tables' list of its SPIFFE ID), or to the
// unidentified list.
// Random workload sets with overlapping selectors (nested cgroups, shared uids and gids,
// exe/sha256 blocks, `/`, uid 4294967295) and random processes around them.
import { describe, expect, it } from "vitest";
import { manifestWorkloads } from "../../compiler/bundle.js";
import { checkSources } from "../../compiler/program.js";
import { DecisionTableReader } from "../../compiler/table-eval.js";
import { buildDecisionTables } from "../../compiler/tables.js";
import { execPlacement, managedCgroupPath, needsAttestation } from "../../kernel-bridge/lower.js";
import { KernelSimEvaluator, SIM_MANAGED_ROOT } from "../../kernel-bridge/sim.js";
import { firstWorkload, INVALID_ID, type ProcessFacts } from "../support/processes.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env["PORTCULLIS_KSIM_SEED"] ?? 20261122);
const SETS = 150;
const PROCESSES_PER_SET = 200;

const CGROUPS = ["/", "/a", "/a/b", "/a/b/c", "/d", "/d/e", "/portcullis", "/portcullis/svc"];
/** Where processes run: the selector paths, below them, beside them, and a name sharing a prefix but not a segment. */
const PROCESS_CGROUPS = [...CGROUPS, "/a/b/c/z", "/a/bx", "/d/e/f/g", "/z", "/portcullis/other"];
const IDS = [0, 1000, 1001, 2000, INVALID_ID];
const EXES = ["/usr/bin/node", "/usr/bin/python3"];
const DIGESTS = ["a".repeat(64), "b".repeat(64)];

function randomBlock(rng: Random): string {
  const keys = ["cgroup", "uid", "gid", "exe", "sha256"].filter(() => rng.chance(0.4));
  if (keys.length === 0) keys.push(rng.pick(["cgroup", "uid", "gid"]));
  const value = (key: string) =>
    key === "cgroup" ? `"${rng.pick(CGROUPS)}"` : key === "exe" ? `"${rng.pick(EXES)}"` : key === "sha256" ? `"${rng.pick(DIGESTS)}"` : String(rng.pick(IDS));
  return `match { ${keys.map((k) => `${k} = ${value(k)}`).join(", ")} }`;
}

function randomWorkloads(rng: Random): string {
  const n = rng.between(2, 8);
  return Array.from({ length: n }, (_, i) => `workload w${i} { id = "spiffe://t.test/w${i}"; ${Array.from({ length: rng.between(1, 3) }, () => randomBlock(rng)).join(" ")} }`).join("\n");
}

function setUp(text: string) {
  const result = checkSources([{ path: "w.policy", relPath: "w.policy", text }]);
  expect(result.policySet, `${result.diagnostics.map((d) => d.message).join("\n")}\n${text}`).toBeDefined();
  const policy = result.policySet!;
  const tables = buildDecisionTables(policy);
  const workloads = manifestWorkloads(policy, tables);
  return { workloads, reader: new DecisionTableReader(tables.words, tables.ruleIds), sim: new KernelSimEvaluator({ ...tables, workloads }) };
}

function randomId(rng: Random): number {
  return rng.chance(0.8) ? rng.pick(IDS.filter((v) => v !== INVALID_ID)) : rng.int(5000);
}

describe("the identity map", () => {
  it("resolves every process to the first matching workload in policy-set order", () => {
    const rng = new Random(SEED);
    let identified = 0;
    let attested = 0;
    let shadowed = 0;
    for (let set = 0; set < SETS; set++) {
      const text = randomWorkloads(rng);
      const { workloads, reader, sim } = setUp(text);
      const exeBlocks = workloads.flatMap((w, index) => w.match.filter(needsAttestation).map((b) => ({ index, w, b })));
      for (let k = 0; k < PROCESSES_PER_SET; k++) {
        let facts: ProcessFacts;
        if (exeBlocks.length > 0 && rng.chance(0.3)) {
          // Started by `portcullis exec --as w`: checked against one of w's attested blocks,
          // run with its uid/gid when it has them, placed in its managed cgroup.
          const { index, w, b } = rng.pick(exeBlocks);
          facts = { cgroup: managedCgroupPath(SIM_MANAGED_ROOT, w.name, b), uid: b.uid ?? randomId(rng), gid: b.gid ?? randomId(rng), exe: b.exe ?? rng.pick(EXES), sha256: b.sha256 ?? rng.pick(DIGESTS) };
          // exec refuses a command whose first matching workload is another one.
          if (facts.uid === INVALID_ID || facts.gid === INVALID_ID || firstWorkload(workloads, facts) !== index) continue;
          attested++;
        } else {
          facts = { cgroup: rng.pick(PROCESS_CGROUPS), uid: randomId(rng), gid: randomId(rng) };
        }
        const expected = firstWorkload(workloads, facts);
        const got = sim.kernel.identify(sim.cgroups.ancestors(facts.cgroup), facts.uid, facts.gid);
        const classes = reader.identityClasses(expected === undefined ? null : workloads[expected]!.id);
        if (got.order !== expected || got.classes.join(",") !== classes.join(",")) {
          expect.fail(`process ${JSON.stringify(facts)}: kernel says workload #${got.order} (classes ${got.classes}), the match blocks say #${expected} (classes ${classes})\n${text}`);
        }
        if (expected !== undefined) identified++;
        if (expected !== undefined && workloads.slice(expected + 1).some((w) => w.match.some((b) => !needsAttestation(b) && b.uid === facts.uid))) shadowed++;
      }
    }
    // Not vacuous: many identified processes, attested ones, and ones a later workload also matches.
    expect(identified).toBeGreaterThan(SETS * PROCESSES_PER_SET * 0.2);
    expect(attested).toBeGreaterThan(SETS * 5);
    expect(shadowed).toBeGreaterThan(SETS);
  });

  it("on the spec's workloads: cgroup subtree, uid, attested exe, and nothing for an unattested exe", () => {
    const { sim } = setUp(`
      workload frontend { id = "spiffe://shop.example/ns/web/sa/frontend"; match { cgroup = "/shop/frontend" } match { uid = 1001, exe = "/usr/bin/node" } }
      workload api { id = "spiffe://shop.example/ns/api/sa/api"; match { cgroup = "/shop/api" } }
      workload batch { id = "spiffe://shop.example/ns/jobs/sa/batch"; match { uid = 2001 } }
    `);
    const at = (cgroup: string, uid: number) => sim.kernel.identify(sim.cgroups.ancestors(cgroup), uid, 1000).order;
    expect(at("/shop/frontend", 5)).toBe(0);
    expect(at("/shop/frontend/worker", 2001)).toBe(0);
    expect(at("/shop/frontendx", 5)).toBeUndefined();
    expect(at("/shop/api", 2001)).toBe(1);
    expect(at("/elsewhere", 2001)).toBe(2);
    expect(at("/elsewhere", 1001)).toBeUndefined();
    expect(at(`${SIM_MANAGED_ROOT}/portcullis.frontend`, 1001)).toBe(0);
    expect(at(`${SIM_MANAGED_ROOT}/portcullis.frontend`, 1002)).toBeUndefined();
  });

  it("identifies every process `portcullis exec --as W` accepts as W, and exec refuses only where no block of W would be W", () => {
    const rng = new Random(SEED + 7);
    let accepted = 0;
    let refused = 0;
    for (let set = 0; set < SETS; set++) {
      const text = randomWorkloads(rng);
      const { workloads, sim } = setUp(text);
      for (let k = 0; k < 50; k++) {
        const w = rng.pick(workloads);
        const command = { exe: rng.pick(EXES), sha256: rng.pick(DIGESTS), uid: randomId(rng), gid: randomId(rng) };
        const placement = execPlacement(workloads, w.name, command, SIM_MANAGED_ROOT);
        const index = workloads.indexOf(w);
        if (placement.ok) {
          accepted++;
          const facts = { cgroup: placement.cgroup, uid: placement.uid, gid: placement.gid, exe: command.exe, sha256: command.sha256 };
          const block = w.match[placement.block]!;
          expect(block.exe ?? command.exe).toBe(command.exe);
          expect(block.sha256 ?? command.sha256).toBe(command.sha256);
          expect(firstWorkload(workloads, facts), `${JSON.stringify(facts)} as ${w.name}\n${text}`).toBe(index);
          expect(sim.kernel.identify(sim.cgroups.ancestors(facts.cgroup), facts.uid, facts.gid).order, `${JSON.stringify(facts)} as ${w.name}\n${text}`).toBe(index);
        } else {
          refused++;
          // No block of W that accepts the command, run in W's cgroups with its ids, is first W's.
          for (const b of w.match) {
            if ((b.exe ?? command.exe) !== command.exe || (b.sha256 ?? command.sha256) !== command.sha256 || b.uid === INVALID_ID || b.gid === INVALID_ID) continue;
            // Exec runs it in the block's own path when the kernel can see that path alone
            // (no exe/sha256) and it does not hold the attach point; else in the managed cgroup.
            const ownPath = !needsAttestation(b) && b.cgroup !== undefined && !`${SIM_MANAGED_ROOT}/`.startsWith(b.cgroup === "/" ? "/" : `${b.cgroup}/`);
            const cgroup = ownPath ? b.cgroup! : managedCgroupPath(SIM_MANAGED_ROOT, w.name, b);
            const facts = { cgroup, uid: b.uid ?? command.uid, gid: b.gid ?? command.gid, exe: command.exe, sha256: command.sha256 };
            expect(firstWorkload(workloads, facts), `exec refused ${JSON.stringify(facts)} as ${w.name}: ${placement.reason}\n${text}`).not.toBe(index);
          }
        }
      }
    }
    expect(accepted).toBeGreaterThan(SETS * 5);
    expect(refused).toBeGreaterThan(SETS * 5);
  });

  it("refuses a selector path with a segment reserved for managed cgroups", () => {
    expect(() => setUp(`workload a { id = "spiffe://t.test/a"; match { cgroup = "/x/portcullis.b" } }`)).toThrow("reserved for the cgroups `portcullis exec` manages");
  });
});
