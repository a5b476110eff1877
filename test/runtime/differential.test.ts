// The WASM evaluator against the reference and the tables engine (DESIGN.md, invariant
// 1): the same decision, reasons and default flag on every boundary point of the example
// sets and on seeded random policy sets, both one request per call and in one batch.
//
// Requests per run through the fast path (each one decided singly AND in a batch):
//   fixtures:    boundaryRequests (2,777 + 16,191 + 565) + 1,000 random each  =  22,533
//   random sets: 40 sets × (700 boundary + 700 random)                        =  56,000
//   78,533 requests, 157,066 fast-path decisions; the reference and the tables decide each
//   once. test/runtime/bad-input.test.ts adds some 100,000 more on corrupt tables.
//
// Reproduce a failure with the seed it prints:
//   PORTCULLIS_WASM_SEED=<seed> npx vitest run test/runtime/differential.test.ts
// More random sets: PORTCULLIS_WASM_SETS=400 (default 40).
import { describe, expect, it } from "vitest";
import type { PolicySet } from "../../compiler/model.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import type { Request } from "../../compiler/request.js";
import { DecisionTableReader, readSections, TableEvaluator } from "../../compiler/table-eval.js";
import { checkSources } from "../../compiler/program.js";
import { buildDecisionTables, EMPTY_SLOT, SECTION, type DecisionTables } from "../../compiler/tables.js";
import { loadEvaluator } from "../../runtime/evaluator.js";
import { boundaryRequests } from "../support/boundary.js";
import { Random } from "../support/random.js";
import { randomRequests } from "../support/random-policy.js";
import { decisionJson, fixturePolicy, randomSet as randomSetOf, requestJson } from "../support/policy-sets.js";

const SEED = Number(process.env["PORTCULLIS_WASM_SEED"] ?? 20261122);
const RANDOM_SETS = Number(process.env["PORTCULLIS_WASM_SETS"] ?? 40);
const SETS_PER_TEST = 10;
const BOUNDARY_PER_SET = 700;
const RANDOM_PER_SET = 700;
const RANDOM_PER_FIXTURE = 1_000;
const REPORTED_MISMATCHES = 5;


const randomSet = (index: number) => randomSetOf(SEED, index, "PORTCULLIS_WASM_SEED");


/** How often requests exercised the paths of format 2 that a one-class, no-parent table would not. */
interface Coverage {
  /** Requests of an identity in several classes (step 6), and of those, of a workload's exact ID or `unidentified`. */
  several: number;
  severalExact: number;
  severalUnidentified: number;
  /** (class, request) pairs whose row was found at a parent of the destination class (step 3). */
  parentRows: number;
}

function cover(coverage: Coverage, policy: PolicySet, tables: DecisionTables, requests: readonly Request[]): void {
  const reader = new DecisionTableReader(tables.words, tables.ruleIds);
  const s = readSections(tables.words);
  const pairs = s[SECTION.PAIRS]!;
  const defaultRow = s[SECTION.DEFAULT_ROW]!;
  const paired = new Set<string>();
  for (let i = 0; i < pairs[0]!; i++) if (pairs[1 + i * 3] !== EMPTY_SLOT) paired.add(`${pairs[1 + i * 3]},${pairs[2 + i * 3]}`);
  const workloadIds = new Set(policy.workloads.map((w) => w.id));
  for (const r of requests) {
    const classes = reader.identityClasses(r.principal);
    if (classes.length > 1) {
      coverage.several++;
      if (r.principal === null) coverage.severalUnidentified++;
      else if (workloadIds.has(r.principal)) coverage.severalExact++;
    }
    const d = reader.destinationClass(r.family, r.ip);
    for (const c of classes) if (!paired.has(`${c},${d}`) && reader.row(c, d) !== defaultRow[c]) coverage.parentRows++;
  }
}

/**
 * Decides every request with the reference, the tables engine and the WASM evaluator (one
 * call each, then all in one batch); returns one message per disagreement (a few at most).
 */
function compare(policy: PolicySet, tables: DecisionTables, requests: readonly Request[], origin: string): string[] {
  const reference = new ReferenceEvaluator(policy);
  const tablesEngine = new TableEvaluator(tables);
  const wasm = loadEvaluator(tables);
  const batch = wasm.decideBatch(requests);
  const messages: string[] = [];
  requests.forEach((r, i) => {
    const expected = decisionJson(reference.decide(r));
    const got = { tables: decisionJson(tablesEngine.decide(r)), "wasm single": decisionJson(wasm.decide(r)), "wasm batch": decisionJson(batch[i]!) };
    for (const [engine, actual] of Object.entries(got)) {
      if (actual !== expected && messages.length < REPORTED_MISMATCHES) {
        messages.push(`${engine} disagrees with the reference\n  request:   ${requestJson(r)}\n  reference: ${expected}\n  ${engine}: ${actual}\n  policy: ${origin}`);
      }
    }
  });
  return messages;
}

describe("the WASM evaluator decides as the reference", () => {
  const fixtures = [["test/fixtures/spec-example.policy"], ["policies/shop"], ["policies/demo"]];
  fixtures.forEach((paths, index) => {
    it(`on every boundary point of ${paths.join(" ")}, singly and in a batch`, () => {
      const policy = fixturePolicy(...paths);
      const tables = buildDecisionTables(policy);
      const requests = [...boundaryRequests(policy), ...randomRequests(policy, SEED + index, RANDOM_PER_FIXTURE)];
      expect(compare(policy, tables, requests, paths.join(" "))).toEqual([]);
    });
  });

  it("on rows with more uid intervals than the evaluator copies out of ROW_DATA (FLAT_ROW_WORDS)", () => {
    // 150 forbids on one uid each: every row lists about 300 uid intervals, so the module
    // descends these rows in ROW_DATA itself rather than through its flat copies.
    const rules = Array.from({ length: 150 }, (_, i) => `@id("u${i}")\nforbid (principal, action == connect, resource) when { principal.uid == ${1000 + i * 3} && port == ${i + 1} && protocol == tcp };`);
    const text = ['net inside = [10.0.0.0/8];', '@id("inside")\npermit (principal, action == connect, resource in net inside);', ...rules].join("\n");
    const checked = checkSources([{ path: "uids.policy", relPath: "uids.policy", text }]);
    const policy = checked.policySet!;
    const tables = buildDecisionTables(policy);
    const s = readSections(tables.words);
    const rowIndex = s[SECTION.ROW_INDEX]!;
    const rowData = s[SECTION.ROW_DATA]!;
    expect(Math.max(...Array.from(rowIndex, (at) => rowData[at]!))).toBeGreaterThan(256);
    const uids = [0, 999, ...Array.from({ length: 150 }, (_, i) => [999 + i * 3, 1000 + i * 3, 1001 + i * 3]).flat()];
    const requests = [...boundaryRequests(policy), ...uids.flatMap((uid, i) => randomRequests(policy, SEED + i, 4).map((r) => ({ ...r, uid })))];
    expect(compare(policy, tables, requests, text)).toEqual([]);
  });

  for (let first = 0; first < RANDOM_SETS; first += SETS_PER_TEST) {
    const last = Math.min(RANDOM_SETS, first + SETS_PER_TEST) - 1;
    it(`on random policy sets ${first}..${last}, singly and in a batch`, () => {
      const coverage: Coverage = { several: 0, severalExact: 0, severalUnidentified: 0, parentRows: 0 };
      for (let index = first; index <= last; index++) {
        const { policy, origin } = randomSet(index);
        const tables = buildDecisionTables(policy);
        const requests = [...boundaryRequests(policy, { limit: BOUNDARY_PER_SET }), ...randomRequests(policy, Random.forItem(SEED, index).uint32(), RANDOM_PER_SET)];
        const messages = compare(policy, tables, requests, origin);
        if (messages.length > 0) expect.fail(messages.join("\n\n"));
        cover(coverage, policy, tables, requests);
      }
      // Every format-2 path must have decided requests: several classes to combine, for
      // peers, workloads' exact IDs and unidentified, and rows found at a parent.
      expect(coverage.several).toBeGreaterThan(1_000);
      expect(coverage.severalExact).toBeGreaterThan(500);
      expect(coverage.severalUnidentified).toBeGreaterThan(5);
      expect(coverage.parentRows).toBeGreaterThan(500);
    });
  }
});
