// The WASM evaluator's class groups (docs/wasm-evaluator.md, "Class groups") against the
// reference: identities that combine classes decide through a group's merged interval list
// once enough of them are cached, and through the classes one by one when no group fits the
// budget; both must decide every request as the reference does, singly and in a batch.
//
// Random sets: groups chosen from the 4th combining identity on (regrouped at 8, 16, …),
// with no budget to speak of, with a small one (some identities grouped, the others not)
// and with none (no identity grouped). A generated 1,000-rule set (many peers, many
// classes per peer) with the default configuration.
//
// Reproduce a failure with the seed it prints:
//   PORTCULLIS_WASM_SEED=<seed> npx vitest run test/runtime/groups.test.ts
import { describe, expect, it } from "vitest";
import type { PolicySet } from "../../compiler/model.js";
import { checkSources } from "../../compiler/program.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import type { Request } from "../../compiler/request.js";
import { buildDecisionTables, type DecisionTables } from "../../compiler/tables.js";
import { loadEvaluator } from "../../runtime/evaluator.js";
import { boundaryRequests } from "../support/boundary.js";
import { generatePolicySet } from "../support/generate.js";
import { Random } from "../support/random.js";
import { randomRequests } from "../support/random-policy.js";
import { decisionJson, randomSet as randomSetOf, requestJson } from "../support/policy-sets.js";

const SEED = Number(process.env["PORTCULLIS_WASM_SEED"] ?? 20261123);
const SETS = 16;
const REQUESTS_PER_SET = 1_200;
const REPORTED_MISMATCHES = 5;
const UNLIMITED = 0xffffffff;
/** Enough for a group or two of a random set, not for all of them. */
const SMALL_BUDGET = 1_024;

interface Run {
  messages: string[];
  /** Identities handed out, and of those, decided through a group. */
  identities: number;
  grouped: number;
}

/** Decides every request with the reference and with an evaluator whose groups are configured so (singly, then in one batch). */
function run(policy: PolicySet, tables: DecisionTables, requests: readonly Request[], groups: { firstRegroup: number; budget: number } | undefined, origin: string): Run {
  const reference = new ReferenceEvaluator(policy);
  const wasm = loadEvaluator(tables);
  if (groups !== undefined) wasm.configureGroups(groups.firstRegroup, groups.budget);
  const single = requests.map((r) => decisionJson(wasm.decide(r)));
  const batch = wasm.decideBatch(requests).map(decisionJson);
  const messages: string[] = [];
  requests.forEach((r, i) => {
    const expected = decisionJson(reference.decide(r));
    for (const [path, actual] of [["wasm single", single[i]!], ["wasm batch", batch[i]!]] as const) {
      if (actual !== expected && messages.length < REPORTED_MISMATCHES) {
        messages.push(`${path} disagrees with the reference\n  request:   ${requestJson(r)}\n  reference: ${expected}\n  ${path}: ${actual}\n  policy: ${origin}`);
      }
    }
  });
  const identities = new Set(requests.map((r) => r.principal)).size;
  return { messages, identities, grouped: wasm.groupedIdentities };
}

/** Requests with many distinct principals: boundary points, then random requests. */
function requestsOf(policy: PolicySet, index: number): Request[] {
  return [...boundaryRequests(policy, { limit: REQUESTS_PER_SET / 2 }), ...randomRequests(policy, Random.forItem(SEED, index).uint32(), REQUESTS_PER_SET / 2)];
}

describe("class groups decide as the reference", () => {
  const budgets = [
    { name: "with no budget to speak of", budget: UNLIMITED },
    { name: "past a small budget", budget: SMALL_BUDGET },
    { name: "with no room for any group", budget: 0 },
  ];
  const grouped: number[] = [];
  budgets.forEach(({ name, budget }, b) => {
    it(`on random policy sets 0..${SETS - 1}, ${name}`, () => {
      let total = 0;
      let identities = 0;
      for (let index = 0; index < SETS; index++) {
        const { policy, origin } = randomSetOf(SEED, index, "PORTCULLIS_WASM_SEED");
        const tables = buildDecisionTables(policy);
        const result = run(policy, tables, requestsOf(policy, index), { firstRegroup: 4, budget }, origin);
        if (result.messages.length > 0) expect.fail(result.messages.join("\n\n"));
        total += result.grouped;
        identities += result.identities;
      }
      grouped[b] = total;
      // The paths under test were taken: groups for many identities without a budget, for
      // fewer past a small one, for none without room.
      if (budget === UNLIMITED) expect(total).toBeGreaterThan(identities / 10);
      else if (budget === 0) expect(total).toBe(0);
      else {
        expect(total).toBeGreaterThan(0);
        expect(total).toBeLessThan(grouped[0]!);
      }
    });
  });

  it("on a generated 1,000-rule set (10,000 random requests), as configured by default", () => {
    const text = generatePolicySet({ rules: 1_000, seed: 2 });
    const checked = checkSources([{ path: "generated.policy", relPath: "generated.policy", text }]);
    const policy = checked.policySet!;
    const tables = buildDecisionTables(policy);
    const requests = randomRequests(policy, SEED, 10_000);
    const result = run(policy, tables, requests, undefined, "generatePolicySet({ rules: 1000, seed: 2 })");
    if (result.messages.length > 0) expect.fail(result.messages.join("\n\n"));
    expect(result.grouped).toBeGreaterThan(result.identities / 2);
  });
});
