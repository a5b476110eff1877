// Tests of the lowering's building blocks: prefix covers partition the value space exactly
// (every value is inside exactly one prefix, the one of its interval) and are minimal; the
// lowering refuses what the maps cannot hold and reports what each map needs.
import { describe, expect, it } from "vitest";
import { manifestWorkloads } from "../../compiler/bundle.js";
import type { PolicySet } from "../../compiler/model.js";
import { checkSources } from "../../compiler/program.js";
import { readSections } from "../../compiler/table-eval.js";
import { buildDecisionTables, SECTION } from "../../compiler/tables.js";
import { decodeBlockVal, decodeGidKey, decodeRowVal, decodeUidKey, keySize, LPM_FIXED_BITS, MAP_NAMES, MAX_CGROUP_LEVELS, NO_BLOCK, valueSize } from "../../kernel-bridge/layout.js";
import { KernelLoweringError, lowerToMapImages, packEntries, prefixCover, requiredCgroupPaths, type Prefix } from "../../kernel-bridge/lower.js";
import { SIM_MANAGED_ROOT, SyntheticCgroups } from "../../kernel-bridge/sim.js";
import { fixturePolicy, randomSet } from "../support/policy-sets.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env["PORTCULLIS_KSIM_SEED"] ?? 20261122);

/** Sorted distinct cut points in 1..max: interval k is [cut k−1 (or 0), cut k − 1], the last up to max. */
function randomPartition(rng: Random, width: number, cuts: number): number[] {
  const max = 2 ** width - 1;
  const special = [1, 2, max, max - 1, 2 ** (width - 1), 2 ** (width - 1) + 1, 255, 256, 1000, 1024, 65535, 65536].filter((v) => v >= 1 && v <= max);
  const points = new Set<number>();
  while (points.size < cuts) points.add(rng.chance(0.3) ? rng.pick(special) : 1 + Math.floor(rng.float() * max));
  return [...points].sort((a, b) => a - b);
}

function intervalsOf(cuts: readonly number[], max: number): { low: number; high: number }[] {
  const starts = [0, ...cuts];
  return starts.map((low, i) => ({ low, high: i + 1 < starts.length ? starts[i + 1]! - 1 : max }));
}

/** Every prefix of every interval, indexed by its length and its value's leading bits. */
function indexCovers(intervals: readonly { low: number; high: number }[], width: number): Map<number, Map<number, number[]>> {
  const byBits = new Map<number, Map<number, number[]>>();
  intervals.forEach((iv, k) => {
    for (const p of prefixCover(iv.low, iv.high, width)) {
      const lead = Math.floor(p.value / 2 ** (width - p.bits));
      expect(lead * 2 ** (width - p.bits), `prefix ${p.value}/${p.bits} has host bits`).toBe(p.value);
      if (!byBits.has(p.bits)) byBits.set(p.bits, new Map());
      const at = byBits.get(p.bits)!;
      at.set(lead, [...(at.get(lead) ?? []), k]);
    }
  });
  return byBits;
}

/** The intervals of every prefix that contains `value` (obviously: test each length). */
function containing(byBits: Map<number, Map<number, number[]>>, value: number, width: number): number[] {
  const out: number[] = [];
  for (const [bits, at] of byBits) out.push(...(at.get(Math.floor(value / 2 ** (width - bits))) ?? []));
  return out;
}

function intervalOf(intervals: readonly { low: number; high: number }[], value: number): number {
  return intervals.findIndex((iv) => iv.low <= value && value <= iv.high);
}

/** The fewest aligned disjoint blocks whose union is low..high (dynamic programming over start points). */
function minimalCoverSize(low: number, high: number, width: number): number {
  const best = new Map<number, number>([[high + 1, 0]]);
  for (let at = high; at >= low; at--) {
    let m = Infinity;
    for (let free = 0; free <= width && at % 2 ** free === 0 && at + 2 ** free - 1 <= high; free++) m = Math.min(m, 1 + best.get(at + 2 ** free)!);
    best.set(at, m);
  }
  return best.get(low)!;
}

describe("prefix covers", () => {
  it("partition the 16-bit port space: every port lies in exactly one prefix, its interval's", () => {
    const rng = new Random(SEED);
    for (let run = 0; run < 12; run++) {
      const intervals = intervalsOf(randomPartition(rng, 16, 1 + rng.int(40)), 0xffff);
      const byBits = indexCovers(intervals, 16);
      for (let port = 0; port <= 0xffff; port++) {
        const hits = containing(byBits, port, 16);
        if (hits.length !== 1 || hits[0] !== intervalOf(intervals, port)) expect.fail(`port ${port} lies in the prefixes of intervals [${hits}] of ${JSON.stringify(intervals)}`);
      }
    }
  });

  it("partition the 32-bit uid/gid space: every value at and around each cut, and random ones, lies in exactly one prefix, its interval's", () => {
    const rng = new Random(SEED + 1);
    const max = 0xffffffff;
    for (let run = 0; run < 40; run++) {
      const cuts = randomPartition(rng, 32, 1 + rng.int(30));
      const intervals = intervalsOf(cuts, max);
      const byBits = indexCovers(intervals, 32);
      const values = [0, 1, max, max - 1, ...cuts.flatMap((c) => [c - 2, c - 1, c, c + 1]), ...Array.from({ length: 500 }, () => rng.uint32())].filter((v) => v >= 0 && v <= max);
      for (const v of values) {
        const hits = containing(byBits, v, 32);
        if (hits.length !== 1 || hits[0] !== intervalOf(intervals, v)) expect.fail(`value ${v} lies in the prefixes of intervals [${hits}] of cuts ${cuts}`);
      }
    }
  });

  it("are minimal: as few prefixes as the best exact cover, for every interval of a 7-bit space", () => {
    for (let low = 0; low < 128; low++) {
      for (let high = low; high < 128; high++) expect(prefixCover(low, high, 7).length, `${low}..${high}`).toBe(minimalCoverSize(low, high, 7));
    }
  });

  it("cover the whole space with one /0 and a single value with one full-length prefix", () => {
    expect(prefixCover(0, 0xffffffff, 32)).toEqual<Prefix[]>([{ value: 0, bits: 0 }]);
    expect(prefixCover(0, 0xffff, 16)).toEqual<Prefix[]>([{ value: 0, bits: 0 }]);
    expect(prefixCover(443, 443, 16)).toEqual<Prefix[]>([{ value: 443, bits: 16 }]);
    expect(prefixCover(8000, 8999, 16).map((p) => `${p.value}/${p.bits}`)).toEqual(["8000/10", "8064/9", "8192/7", "8704/8", "8960/11", "8992/13"]);
    expect(() => prefixCover(5, 4, 16)).toThrow(RangeError);
    expect(() => prefixCover(0, 0x10000, 16)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------- the lowering as a whole

function checked(text: string): PolicySet {
  const result = checkSources([{ path: "t.policy", relPath: "t.policy", text }]);
  expect(result.policySet, result.diagnostics.map((d) => d.message).join("\n")).toBeDefined();
  return result.policySet!;
}

function lowerText(text: string, cgroupIds?: Map<string, bigint>) {
  const { tables, workloads, ids } = prepared(text, cgroupIds);
  return lowerToMapImages(tables.words, tables.ruleIds, { workloads, cgroupIds: ids, managedRoot: SIM_MANAGED_ROOT });
}

function prepared(text: string, cgroupIds?: Map<string, bigint>) {
  const policy = checked(text);
  const tables = buildDecisionTables(policy);
  const workloads = manifestWorkloads(policy, tables);
  const ids = cgroupIds ?? new SyntheticCgroups().idsFor(requiredCgroupPaths(workloads, SIM_MANAGED_ROOT));
  return { tables, workloads, ids };
}

describe("lowerToMapImages", () => {
  it("reports per map the entries and a capacity that holds them, and the probed cgroup levels", () => {
    const images = lowerText(`
      workload a { id = "spiffe://t.test/a"; match { cgroup = "/x/y" } match { uid = 7, exe = "/bin/a" } }
      workload b { id = "spiffe://t.test/b"; match { cgroup = "/x/y/z", gid = 3 } match { uid = 8 } }
      permit (principal == workload a, action, resource in 10.0.0.0/8) when { port in 8000..8999 };
      forbid (principal, action, resource) when { principal.uid == 0 };
    `);
    for (const m of MAP_NAMES) {
      expect(images.counts[m]).toBe(images.maps[m].length);
      expect(images.capacity[m]).toBeGreaterThanOrEqual(Math.max(1, images.counts[m]));
      const packed = packEntries(m, images.maps[m]);
      images.maps[m].forEach((e, i) => {
        expect(packed.keys.subarray(i * keySize(m), (i + 1) * keySize(m))).toEqual(e.key);
        expect(packed.values.subarray(i * valueSize(m), (i + 1) * valueSize(m))).toEqual(e.value);
      });
    }
    // /x/y (2), /x/y/z (3), the managed /portcullis/portcullis.a (2).
    expect(images.levels).toEqual([2, 3]);
    expect(images.counts.ident).toBe(4);
    expect(images.counts.pairs4).toBeGreaterThan(0);
    expect(images.unidentified.length).toBeGreaterThanOrEqual(1);
  });

  it("gives a selector of uid or gid 4294967295, which no process can have, no identity entry", () => {
    const images = lowerText(`workload a { id = "spiffe://t.test/a"; match { uid = 4294967295 } match { gid = 4294967295, cgroup = "/q" } match { uid = 5 } }`);
    expect(images.counts.ident).toBe(1);
    expect(images.levels).toEqual([]);
  });

  it("refuses, with one line naming the workload, a cgroup whose id is not given", () => {
    expect(() => lowerText(`workload a { id = "spiffe://t.test/a"; match { cgroup = "/shop/a" } }`, new Map())).toThrow(
      new KernelLoweringError("workload `a` needs the id of cgroup `/shop/a`, which was not given (does the cgroup exist?)"),
    );
    expect(() => lowerText(`workload a { id = "spiffe://t.test/a"; match { cgroup = "/shop/a" } }`, new Map([["/shop/a", 0n]]))).toThrow(KernelLoweringError);
  });

  it(`refuses cgroups at more than ${MAX_CGROUP_LEVELS} levels`, () => {
    const workloads = (n: number) =>
      Array.from({ length: n }, (_, i) => `workload w${i} { id = "spiffe://t.test/w${i}"; match { cgroup = "${"/l".repeat(i + 1)}" } }`).join("\n");
    expect(lowerText(workloads(MAX_CGROUP_LEVELS)).levels).toHaveLength(MAX_CGROUP_LEVELS);
    expect(() => lowerText(workloads(MAX_CGROUP_LEVELS + 1))).toThrow(KernelLoweringError);
  });

  it("lowers a cgroup selector of `/` (every process) to the any-cgroup key, which needs no id", () => {
    const images = lowerText(`workload a { id = "spiffe://t.test/a"; match { cgroup = "/" } }`, new Map());
    expect(images.counts.ident).toBe(1);
    expect(images.levels).toEqual([]);
  });

  it("refuses a manifest whose class list is not a list of the tables, not its classes, or not its SPIFFE ID's", () => {
    const { tables, workloads, ids } = prepared(`
      workload a { id = "spiffe://t.test/a"; match { uid = 1 } }
      workload b { id = "spiffe://t.test/b"; match { uid = 2 } }
      permit (principal == workload a, action, resource in 10.0.0.0/8);
    `);
    const lower = (w: typeof workloads) => () => lowerToMapImages(tables.words, tables.ruleIds, { workloads: w, cgroupIds: ids, managedRoot: SIM_MANAGED_ROOT });
    expect(lower(workloads)).not.toThrow();
    const [a, b] = workloads as [(typeof workloads)[number], (typeof workloads)[number]];
    expect(lower([{ ...a, identityList: a.identityList + 1 }, b])).toThrow(KernelLoweringError);
    expect(lower([{ ...a, identityClasses: [...a.identityClasses, 0] }, b])).toThrow(KernelLoweringError);
    expect(lower([{ ...a, identityList: b.identityList, identityClasses: b.identityClasses }, b])).toThrow("its class list is not the one the tables give `spiffe://t.test/a`");
  });

  it("refuses tables whose DST_PARENT is not the containment of their CIDRs (what the pair tries rely on)", () => {
    const { tables, workloads, ids } = prepared(`
      workload a { id = "spiffe://t.test/a"; match { uid = 1 } }
      permit (principal == workload a, action, resource in 10.0.0.0/8);
      forbid (principal == workload a, action, resource in 10.1.0.0/16);
    `);
    const words = tables.words.slice();
    const parent = readSections(words)[SECTION.DST_PARENT]!;
    const child = parent.findIndex((p) => p !== 0);
    expect(child).toBeGreaterThan(0);
    parent[child] = 0;
    expect(() => lowerToMapImages(words, tables.ruleIds, { workloads, cgroupIds: ids, managedRoot: SIM_MANAGED_ROOT })).toThrow(/DST_PARENT gives class \d+ the parent 0/);
  });

  it("names a row's protocol block exactly when its one uid interval leads to a gid block of one interval, and that block", () => {
    let named = 0;
    let unnamed = 0;
    const sets = [fixturePolicy("policies/shop"), fixturePolicy("policies/demo"), ...Array.from({ length: 8 }, (_, i) => randomSet(SEED, i, "PORTCULLIS_KSIM_SEED").policy)];
    for (const policy of sets) {
      const tables = buildDecisionTables(policy);
      const workloads = manifestWorkloads(policy, tables);
      const ids = new SyntheticCgroups().idsFor(requiredCgroupPaths(workloads, SIM_MANAGED_ROOT));
      const images = lowerToMapImages(tables.words, tables.ruleIds, { workloads, cgroupIds: ids, managedRoot: SIM_MANAGED_ROOT });
      const uids = images.maps.uid_lpm.map((e) => ({ key: decodeUidKey(e.key), block: decodeBlockVal(e.value) }));
      const gids = images.maps.gid_lpm.map((e) => ({ key: decodeGidKey(e.key), block: decodeBlockVal(e.value) }));
      for (const e of [...images.maps.pairs4, ...images.maps.pairs6, ...images.maps.default_row]) {
        const { row, protocolBlock } = decodeRowVal(e.value);
        const rowUids = uids.filter((u) => u.key.scope === row);
        const gidBlock = rowUids.length === 1 && rowUids[0]!.key.prefixlen === LPM_FIXED_BITS.uid ? rowUids[0]!.block : undefined;
        const blockGids = gids.filter((g) => g.key.scope === gidBlock);
        const single = gidBlock !== undefined && blockGids.length === 1 && blockGids[0]!.key.prefixlen === LPM_FIXED_BITS.gid ? blockGids[0]!.block : NO_BLOCK;
        expect(protocolBlock, `row ${row}`).toBe(single);
        if (protocolBlock === NO_BLOCK) unnamed++;
        else named++;
      }
    }
    expect(named).toBeGreaterThan(100);
    expect(unnamed).toBeGreaterThan(10);
  });
});
