// Format 2's lookups on tables shaped as the compiler may write them but need not yet:
// every class list rewritten to up to 8 classes (in any order, duplicates included), so
// exact IDs and `unidentified` have several classes whose first one decides when none
// does; PAIRS entries dropped and added and parents redrawn, so that the DST_PARENT walk
// decides. The WASM evaluator must decide such tables exactly as the tables engine
// (compiler/table-eval.ts) does, and, with words of the format-2 fields damaged, refuse
// exactly the tables the tables engine refuses.
//
// Per run: 14 rewritten tables × 1,000 requests (singly and in a batch), then 200 damaged
// copies of each × 100 requests.
//
// Reproduce a failure with the seed it prints:
//   PORTCULLIS_WASM_SEED=<seed> npx vitest run test/runtime/lists-and-parents.test.ts
import { describe, expect, it } from "vitest";
import type { PolicySet } from "../../compiler/model.js";
import type { Request } from "../../compiler/request.js";
import { DecisionTableReader, TableError, TableEvaluator } from "../../compiler/table-eval.js";
import { buildDecisionTables, EMPTY_SLOT, MAX_LIST_CLASSES, pairHash, SECTION } from "../../compiler/tables.js";
import { EvaluatorLoadError, loadEvaluator, type WasmEvaluator } from "../../runtime/evaluator.js";
import { boundaryRequests } from "../support/boundary.js";
import { Random } from "../support/random.js";
import { randomRequests } from "../support/random-policy.js";
import { decisionJson, fixturePolicy, randomSet, requestJson } from "../support/policy-sets.js";

const SEED = Number(process.env["PORTCULLIS_WASM_SEED"] ?? 20261122);
const RANDOM_SETS = 12;
const REQUESTS = 1_000;
const DAMAGED_PER_SET = 200;
const REQUESTS_PER_DAMAGED = 100;

type Sections = Map<number, number[]>;

function sectionsOf(words: Uint32Array): Sections {
  const out: Sections = new Map();
  for (let i = 0; i < words[0]!; i++) {
    const [id, offset, length] = [words[1 + i * 3]!, words[2 + i * 3]!, words[3 + i * 3]!];
    out.set(id, [...words.subarray(offset, offset + length)]);
  }
  return out;
}

/** The tables' words: the directory, then the sections in id order (as compiler/tables.ts encodes them). */
function encode(sections: Sections): { words: Uint32Array; offsets: Map<number, number> } {
  const ordered = [...sections.entries()].sort(([a], [b]) => a - b);
  const offsets = new Map<number, number>();
  let offset = 1 + ordered.length * 3;
  const head: number[] = [ordered.length];
  for (const [id, data] of ordered) {
    head.push(id, offset, data.length);
    offsets.set(id, offset);
    offset += data.length;
  }
  const words = new Uint32Array(offset);
  words.set(head);
  for (const [id, data] of ordered) words.set(data, offsets.get(id)!);
  return { words, offsets };
}

/** Every word that holds a class list offset, as (section id, index in the section). */
function listReferences(s: Sections): [number, number][] {
  const out: [number, number][] = [[SECTION.META, 8], [SECTION.META, 9]];
  const exact = s.get(SECTION.EXACT_IDS)!;
  for (let i = 0; i < exact[0]!; i++) if (exact[3 + i * 4] !== EMPTY_SLOT) out.push([SECTION.EXACT_IDS, 4 + i * 4]);
  const termData = s.get(SECTION.TERM_DATA)!;
  for (let at = 0; at < termData.length; at += termData[at]! + 2) out.push([SECTION.TERM_DATA, at + 1 + termData[at]!]);
  const components = s.get(SECTION.COMPONENTS)!;
  for (let c = 0; c * 5 < components.length; c++) {
    for (let state = 0; state < components[c * 5 + 1]!; state++) out.push([SECTION.DFA_DATA, components[c * 5 + 4]! + state]);
  }
  return out;
}

/**
 * Valid tables with the same sections but: each class list given extra classes (up to 8,
 * shuffled in, some repeated), a third of the PAIRS entries dropped and a quarter as many
 * random ones added, and a third of the parents redrawn (any smaller class).
 */
function rewrite(words: Uint32Array, rng: Random): Sections {
  const s = sectionsOf(words);
  const meta = s.get(SECTION.META)!;
  const [identityClasses, destinationClasses, rows] = meta as [number, number, number];
  const lists = s.get(SECTION.CLASS_LISTS)!;
  const moved = new Map<number, number>();
  const rewritten: number[] = [];
  for (let at = 0; at < lists.length; at += 1 + lists[at]!) {
    const list = lists.slice(at + 1, at + 1 + lists[at]!);
    while (list.length < MAX_LIST_CLASSES && rng.chance(0.6)) list.splice(rng.int(list.length + 1), 0, rng.chance(0.2) ? rng.pick(list) : rng.int(identityClasses));
    moved.set(at, rewritten.length);
    rewritten.push(list.length, ...list);
  }
  for (const [id, i] of listReferences(s)) s.get(id)![i] = moved.get(s.get(id)![i]!)!;
  s.set(SECTION.CLASS_LISTS, rewritten);

  const pairs = s.get(SECTION.PAIRS)!;
  const entries: [number, number, number][] = [];
  for (let i = 0; i < pairs[0]!; i++) if (pairs[1 + i * 3] !== EMPTY_SLOT && !rng.chance(0.3)) entries.push([pairs[1 + i * 3]!, pairs[2 + i * 3]!, pairs[3 + i * 3]!]);
  const keys = new Set(entries.map(([c, d]) => `${c},${d}`));
  for (let k = entries.length >> 2; k > 0 && destinationClasses > 1; k--) {
    const entry: [number, number, number] = [rng.int(identityClasses), 1 + rng.int(destinationClasses - 1), rng.int(rows)];
    if (keys.has(`${entry[0]},${entry[1]}`)) continue;
    keys.add(`${entry[0]},${entry[1]}`);
    entries.push(entry);
  }
  let capacity = 1;
  while (capacity < entries.length * 2) capacity *= 2;
  const slots = new Array<number>(capacity * 3).fill(0);
  for (let i = 0; i < capacity; i++) slots[i * 3] = EMPTY_SLOT;
  for (const [c, d, row] of entries) {
    let i = pairHash(c, d, capacity);
    while (slots[i * 3] !== EMPTY_SLOT) i = (i + 1) & (capacity - 1);
    slots.splice(i * 3, 3, c, d, row);
  }
  s.set(SECTION.PAIRS, [capacity, ...slots]);

  const parent = s.get(SECTION.DST_PARENT)!;
  for (let c = 1; c < parent.length; c++) if (rng.chance(0.3)) parent[c] = rng.int(c);
  return s;
}

/** How much of format 2 a run exercised, counted with the tables engine. */
interface Coverage {
  multiClassExact: number;
  multiClassUnidentified: number;
  parentRows: number;
  firstClassDecides: number;
}

function count(coverage: Coverage, s: Sections, reader: DecisionTableReader, policy: PolicySet, requests: readonly Request[]): void {
  const pairs = s.get(SECTION.PAIRS)!;
  const defaultRow = s.get(SECTION.DEFAULT_ROW)!;
  const paired = new Set<string>();
  for (let i = 0; i < pairs[0]!; i++) if (pairs[1 + i * 3] !== EMPTY_SLOT) paired.add(`${pairs[1 + i * 3]},${pairs[2 + i * 3]}`);
  const workloadIds = new Set(policy.workloads.map((w) => w.id));
  for (const r of requests) {
    const classes = reader.identityClasses(r.principal);
    if (classes.length > 1 && r.principal === null) coverage.multiClassUnidentified++;
    if (classes.length > 1 && r.principal !== null && workloadIds.has(r.principal)) coverage.multiClassExact++;
    const d = reader.destinationClass(r.family, r.ip);
    const verdicts = classes.map((c) => {
      const row = reader.row(c, d);
      if (!paired.has(`${c},${d}`) && row !== defaultRow[c]) coverage.parentRows++;
      return reader.verdict(row, r.uid, r.gid, r.protocol, r.port);
    });
    if (classes.length > 1 && reader.combine(verdicts).default) coverage.firstClassDecides++;
  }
}

/**
 * Loads the tables with class groups from the second identity that combines classes on
 * (docs/wasm-evaluator.md), so that damaged tables are decided through groups here;
 * bad-input.test.ts decides them without (too few identities for the default).
 */
function load(words: Uint32Array, ruleIds: readonly string[]): { wasm?: WasmEvaluator; error?: string } {
  try {
    const wasm = loadEvaluator({ words, ruleIds });
    wasm.configureGroups(2, 0xffffffff);
    return { wasm };
  } catch (e) {
    if (!(e instanceof EvaluatorLoadError)) throw e;
    return { error: e.message };
  }
}

/** Returns how many of the identities were decided through a class group. */
function expectSameDecisions(wasm: WasmEvaluator, tables: TableEvaluator, requests: readonly Request[], where: string): number {
  const batch = wasm.decideBatch(requests);
  requests.forEach((r, i) => {
    const expected = decisionJson(tables.decide(r));
    expect(decisionJson(wasm.decide(r)), `${where}, request ${requestJson(r)}`).toBe(expected);
    expect(decisionJson(batch[i]!), `${where}, batched request ${requestJson(r)}`).toBe(expected);
  });
  return wasm.groupedIdentities;
}

describe("tables with several classes per list and rows found through parents", () => {
  const sets: [string, () => PolicySet][] = [
    ["the spec example", () => fixturePolicy("test/fixtures/spec-example.policy")],
    ["policies/shop", () => fixturePolicy("policies/shop")],
    ...Array.from({ length: RANDOM_SETS }, (_, i): [string, () => PolicySet] => [`random set ${i}`, () => randomSet(SEED, 2000 + i, "PORTCULLIS_WASM_SEED").policy]),
  ];
  const rewritten = sets.map(([name, make], index) => {
    const policy = make();
    const ruleIds = policy.rules.map((r) => r.id);
    const sections = rewrite(buildDecisionTables(policy).words, Random.forItem(SEED, index));
    const requests = [...boundaryRequests(policy, { limit: REQUESTS / 2 }), ...randomRequests(policy, SEED + index, REQUESTS / 2)];
    return { name, policy, ruleIds, sections, requests, where: `${name} rewritten (PORTCULLIS_WASM_SEED=${SEED})` };
  });

  it("are decided as the tables engine decides them, singly and in a batch", () => {
    const coverage: Coverage = { multiClassExact: 0, multiClassUnidentified: 0, parentRows: 0, firstClassDecides: 0 };
    let grouped = 0;
    for (const { policy, ruleIds, sections, requests, where } of rewritten) {
      const { words } = encode(sections);
      const reader = new DecisionTableReader(words, ruleIds);
      const { wasm, error } = load(words, ruleIds);
      expect(error, where).toBeUndefined();
      grouped += expectSameDecisions(wasm!, new TableEvaluator({ words, ruleIds, reader }), requests, where);
      count(coverage, sections, reader, policy, requests);
    }
    // Each new path of the lookup sequence must have decided many requests.
    expect(coverage.multiClassExact).toBeGreaterThan(1000);
    expect(coverage.multiClassUnidentified).toBeGreaterThan(100);
    expect(coverage.parentRows).toBeGreaterThan(1000);
    expect(coverage.firstClassDecides).toBeGreaterThan(1000);
    expect(grouped).toBeGreaterThan(500);
  });

  it("with format-2 words damaged are refused exactly when the tables engine refuses them, else decided as it decides", () => {
    const rng = Random.forItem(SEED, 99);
    let refused = 0;
    let accepted = 0;
    let grouped = 0;
    for (const { ruleIds, sections, requests, where } of rewritten) {
      const { words, offsets } = encode(sections);
      // The words of the class lists, the parents, PAIRS and every list reference.
      const targets = [
        ...[SECTION.CLASS_LISTS, SECTION.DST_PARENT, SECTION.PAIRS].flatMap((id) => sections.get(id)!.map((_, i) => offsets.get(id)! + i)),
        ...listReferences(sections).map(([id, i]) => offsets.get(id)! + i),
      ];
      const some = requests.filter((_, i) => i % (REQUESTS / REQUESTS_PER_DAMAGED) === 0);
      for (let n = 0; n < DAMAGED_PER_SET; n++) {
        const bad = words.slice();
        for (let k = rng.between(1, 3); k > 0; k--) {
          const at = rng.pick(targets);
          const old = bad[at]!;
          bad[at] = rng.pick([0, 1, 0xffffffff, rng.uint32(), old + 1, old - 1, old ^ (1 << rng.int(32)), rng.int(16)]) >>> 0;
        }
        let reader: DecisionTableReader | undefined;
        let readerError: string | undefined;
        try {
          reader = new DecisionTableReader(bad, ruleIds);
        } catch (e) {
          if (!(e instanceof TableError)) throw e;
          readerError = e.message;
        }
        const { wasm, error } = load(bad, ruleIds);
        const at = `damage ${n} of ${where}`;
        if (readerError !== undefined) {
          expect(error, `${at}: the tables engine refused it (${readerError}), the WASM evaluator loaded it`).toBeDefined();
          expect(error).not.toContain("\n");
          refused++;
          continue;
        }
        expect(error, `${at}: the tables engine accepted it, the WASM evaluator refused it`).toBeUndefined();
        accepted++;
        grouped += expectSameDecisions(wasm!, new TableEvaluator({ words: bad, ruleIds, reader }), some, at);
      }
    }
    expect(refused).toBeGreaterThan((rewritten.length * DAMAGED_PER_SET) / 10);
    expect(accepted).toBeGreaterThan((rewritten.length * DAMAGED_PER_SET) / 10);
    expect(grouped).toBeGreaterThan(accepted);
  });
});
