// Differential tests of the kernel simulator (DESIGN.md, invariant 1) over the map images
// that lower.ts builds:
// - `eval` requests: kernel-sim = reference = tables (decision, sorted reasons, default)
//   on every boundary point of the example sets and on seeded random policy sets;
// - processes: one placed for each match block of each workload (in its cgroup, with its
//   uid/gid or boundary ones, attested in its managed cgroup when it needs exe/sha256)
//   at the boundary destinations; the simulated kernel's identity is the first matching
//   workload (the oracle in test/support/processes.ts) with that workload's class list
//   (or the unidentified list), its allow/deny the reference's for that workload, its
//   verdicts combined in user space the reference's whole decision, and its rule the
//   first rule of the deciding verdict (half of the IPv4 destinations given as v4-mapped
//   IPv6, as connect6 sees them);
// - the (class, address) tries give every identity class at every boundary destination
//   the row of the tables' walk over DST_PARENT;
// - the verdict map holds each verdict's flags and first rule.
//
// Requests per run: fixtures 2,777 + 16,191 + 565 boundary + 500 random each; random sets
// 40 × (500 boundary + 300 random) = 32,000; processes: up to 400 destinations in each of
// the 43 sets. About 25 s on this 2-core machine at a load average of 9. Reproduce with
// PORTCULLIS_KSIM_SEED=<seed> npx vitest run test/kernel/sim.test.ts.
import { describe, expect, it } from "vitest";
import { manifestWorkloads } from "../../compiler/bundle.js";
import type { PolicySet } from "../../compiler/model.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import type { Decision, Request } from "../../compiler/request.js";
import { DecisionTableReader, TableEvaluator } from "../../compiler/table-eval.js";
import { buildDecisionTables } from "../../compiler/tables.js";
import { formatIp } from "../../dsl/ip.js";
import { NO_RULE } from "../../kernel-bridge/layout.js";
import { KernelSimEvaluator, SIM_MANAGED_ROOT } from "../../kernel-bridge/sim.js";
import { boundaryRequests } from "../support/boundary.js";
import { blockProcesses, firstWorkload, INVALID_ID } from "../support/processes.js";
import { randomRequests } from "../support/random-policy.js";
import { decisionJson, fixturePolicy, randomSet as randomSetOf, requestJson } from "../support/policy-sets.js";

const SEED = Number(process.env["PORTCULLIS_KSIM_SEED"] ?? 20261122);
const RANDOM_SETS = 40;
const SETS_PER_TEST = 8;
const BOUNDARY_PER_SET = 500;
const RANDOM_PER_SET = 300;
const RANDOM_PER_FIXTURE = 500;
const PROCESS_DESTINATIONS = 400;
const REPORTED = 5;
const FIXTURES = [["test/fixtures/spec-example.policy"], ["policies/shop"], ["policies/demo"]] as const;

function same(a: Decision, b: Decision): boolean {
  return a.decision === b.decision && a.default === b.default && a.reasons.join("\n") === b.reasons.join("\n") && a.reasons.length === b.reasons.length;
}


const randomSet = (index: number) => randomSetOf(SEED, index, "PORTCULLIS_KSIM_SEED");

function simulatorOf(policy: PolicySet) {
  const tables = buildDecisionTables(policy);
  const workloads = manifestWorkloads(policy, tables);
  return { tables, workloads, sim: new KernelSimEvaluator({ ...tables, workloads }) };
}

/** Messages for every request where kernel-sim differs from the reference or the tables. */
function evalDisagreements(policy: PolicySet, requests: readonly Request[], origin: string): string[] {
  const { tables, sim } = simulatorOf(policy);
  const reference = new ReferenceEvaluator(policy);
  const table = new TableEvaluator(tables);
  const out: string[] = [];
  let count = 0;
  for (const r of requests) {
    const expected = reference.decide(r);
    const fromTables = table.decide(r);
    const actual = sim.decide(r);
    if (same(actual, expected) && same(fromTables, expected)) continue;
    if (count++ < REPORTED) out.push(`request ${requestJson(r)}\n  reference:  ${decisionJson(expected)}\n  tables:     ${decisionJson(fromTables)}\n  kernel-sim: ${decisionJson(actual)}`);
  }
  if (count > 0) out.push(`${count} disagreement(s) on ${origin}`);
  return out;
}

/**
 * Processes placed for every match block, each at `destinations` (the destinations of
 * boundary requests): the simulated kernel's identity, verdict and rule against the
 * oracle identity and the reference's decision for it.
 */
function processDisagreements(policy: PolicySet, destinations: readonly Request[], origin: string): { messages: string[]; decided: number; attested: number; multiClass: number } {
  const { tables, workloads, sim } = simulatorOf(policy);
  const reference = new ReferenceEvaluator(policy);
  const reader = new DecisionTableReader(tables.words, tables.ruleIds);
  const processes = blockProcesses(workloads, SIM_MANAGED_ROOT);
  const out: string[] = [];
  let count = 0;
  let decided = 0;
  let multiClass = 0;
  destinations.forEach((d, i) => {
    if (processes.length === 0) return;
    const placed = processes[i % processes.length]!;
    // Two in three unattested processes take the destination's boundary uid/gid instead
    // of their block's (no process has 4294967295; exec sets an attested one's ids).
    const ownIds = placed.attested || i % 3 === 0 || d.uid === INVALID_ID || d.gid === INVALID_ID;
    const facts = ownIds ? placed.facts : { ...placed.facts, uid: d.uid, gid: d.gid };
    const index = firstWorkload(workloads, facts);
    const principal = index === undefined ? null : workloads[index]!.id;
    const expected = reference.decide({ ...d, principal, uid: facts.uid, gid: facts.gid });
    // Every other IPv4 destination as the v4-mapped IPv6 address a dual-stack socket passes to connect6.
    const destination = d.family === 4 && i % 2 === 1 ? { family: 6 as const, ip: [...new Array<number>(10).fill(0), 0xff, 0xff, ...d.ip] } : { family: d.family, ip: d.ip };
    const outcome = sim.kernel.decideProcess({ ...d, ...destination, cgroupAncestors: sim.cgroups.ancestors(facts.cgroup), uid: facts.uid, gid: facts.gid });
    decided++;
    if (outcome.classes.length > 1) multiClass++;
    const expectedClasses = index === undefined ? reader.identityClasses(null) : workloads[index]!.identityClasses;
    const combined = reader.combine(outcome.steps.map((x) => x.verdict));
    // The deciding verdict: the first forbid, else the first permit, else the first class's.
    const kinds = outcome.steps.map((x) => reader.decision(x.verdict));
    const forbid = kinds.findIndex((k) => k.decision === "deny" && !k.default);
    const permit = kinds.findIndex((k) => k.decision === "allow" && !k.default);
    const deciding = forbid >= 0 ? forbid : permit >= 0 ? permit : 0;
    const firstReason = kinds[deciding]!.reasons[0];
    const expectedRule = firstReason === undefined ? NO_RULE : tables.ruleIds.indexOf(firstReason);
    const problems = [
      outcome.order !== index ? `identity order ${outcome.order}, expected ${index}` : "",
      outcome.classes.join(",") !== expectedClasses.join(",") ? `classes ${outcome.classes}, expected ${expectedClasses}` : "",
      outcome.allow !== (expected.decision === "allow") ? `allow=${outcome.allow}` : "",
      !same(combined, expected) ? `verdicts combine to ${decisionJson(combined)}` : "",
      outcome.deciding !== deciding || outcome.rule !== expectedRule ? `deciding class #${outcome.deciding} rule ${outcome.rule}, expected #${deciding} rule ${expectedRule}` : "",
    ].filter((p) => p !== "");
    if (problems.length === 0) return;
    if (count++ < REPORTED) out.push(`process ${JSON.stringify(facts)} → ${formatIp(d.family, d.ip)}:${d.port}/${d.protocol}: ${problems.join("; ")}\n  reference as ${principal}: ${decisionJson(expected)}`);
  });
  if (count > 0) out.push(`${count} process disagreement(s) on ${origin}`);
  return { messages: out, decided, attested: processes.filter((p) => p.attested).length, multiClass };
}

function expectNone(messages: readonly string[]): void {
  if (messages.length > 0) expect.fail(messages.join("\n\n"));
}

describe("kernel-sim decides eval requests as the reference and the tables", () => {
  FIXTURES.forEach((paths, index) => {
    it(`on the boundary points of ${paths.join(" ")}`, () => {
      const policy = fixturePolicy(...paths);
      const requests = [...boundaryRequests(policy), ...randomRequests(policy, SEED + index, RANDOM_PER_FIXTURE)];
      expectNone(evalDisagreements(policy, requests, paths.join(" ")));
    });
  });

  for (let first = 0; first < RANDOM_SETS; first += SETS_PER_TEST) {
    it(`on random policy sets ${first}..${first + SETS_PER_TEST - 1}`, () => {
      const messages: string[] = [];
      for (let index = first; index < first + SETS_PER_TEST; index++) {
        const { policy, origin, seed } = randomSet(index);
        const requests = [...boundaryRequests(policy, { limit: BOUNDARY_PER_SET }), ...randomRequests(policy, seed, RANDOM_PER_SET)];
        messages.push(...evalDisagreements(policy, requests, origin));
      }
      expectNone(messages);
    });
  }
});

describe("the simulated kernel decides processes as the reference decides their workload", () => {
  it("on the example sets and random sets, for a process of every match block", () => {
    const messages: string[] = [];
    let decided = 0;
    let attested = 0;
    let multiClass = 0;
    const cases = [...FIXTURES.map((paths) => ({ policy: fixturePolicy(...paths), origin: paths.join(" ") })), ...Array.from({ length: RANDOM_SETS }, (_, i) => randomSet(i))];
    for (const c of cases) {
      const result = processDisagreements(c.policy, boundaryRequests(c.policy, { limit: PROCESS_DESTINATIONS }), c.origin);
      messages.push(...result.messages);
      decided += result.decided;
      attested += result.attested;
      multiClass += result.multiClass;
    }
    expectNone(messages);
    expect(decided).toBeGreaterThan(5_000);
    // Some blocks need exe/sha256, so some processes sit in managed cgroups.
    expect(attested).toBeGreaterThan(0);
    process.stderr.write(`kernel-sim processes: ${decided} decided, ${multiClass} with several classes\n`);
  });
});

describe("the (class, address) tries", () => {
  it("give every identity class at every boundary destination the row of the tables' walk over DST_PARENT", () => {
    let compared = 0;
    let walked = 0;
    const cases = [...FIXTURES.map((paths) => ({ policy: fixturePolicy(...paths), origin: paths.join(" ") })), ...Array.from({ length: RANDOM_SETS }, (_, i) => randomSet(i))];
    for (const c of cases) {
      const { tables, sim } = simulatorOf(c.policy);
      const reader = new DecisionTableReader(tables.words, tables.ruleIds);
      const destinations = new Map(boundaryRequests(c.policy, { limit: PROCESS_DESTINATIONS }).map((r) => [`${r.family}:${r.ip.join(".")}`, r] as const));
      for (let s = 0; s < tables.stats.identityClasses; s++) {
        for (const r of destinations.values()) {
          const d = reader.destinationClass(r.family, r.ip);
          const expected = reader.row(s, d);
          const got = sim.kernel.row(s, r.family, r.ip).row;
          if (got !== expected) expect.fail(`${c.origin}: class ${s} at ${formatIp(r.family, r.ip)} (destination class ${d}): the trie gives row ${got}, the tables ${expected}`);
          compared++;
          if (d !== 0 && expected !== reader.row(s, 0)) walked++;
        }
      }
    }
    expect(compared).toBeGreaterThan(10_000);
    expect(walked, "some destinations must be paired, or the test shows nothing").toBeGreaterThan(100);
  });
});

describe("the verdict map", () => {
  it("holds each verdict's flags and the first rule of its reasons", () => {
    for (const c of [...FIXTURES.map((paths) => fixturePolicy(...paths)), ...Array.from({ length: 6 }, (_, i) => randomSet(i).policy)]) {
      const { tables, sim } = simulatorOf(c);
      const reader = new DecisionTableReader(tables.words, tables.ruleIds);
      const count = sim.images.counts.verdicts;
      expect(count).toBe(tables.stats.verdicts);
      for (let v = 0; v < count; v++) {
        const d = reader.decision(v);
        const record = sim.kernel.verdictRecord(v);
        expect(record.flags & 1, `verdict ${v}`).toBe(d.decision === "allow" ? 1 : 0);
        expect((record.flags & 2) !== 0, `verdict ${v}`).toBe(d.default);
        expect(record.rule === NO_RULE ? undefined : tables.ruleIds[record.rule], `verdict ${v}`).toBe(d.reasons[0]);
      }
    }
  });
});
