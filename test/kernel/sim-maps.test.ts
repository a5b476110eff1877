// The simulator's map semantics on hand-made images: its (class, address) LPM tries find,
// for each class, the longest matching prefix of random nested prefix sets as a
// brute-force scan does, never another class's, and the class's default row without one
// (IPv4 and IPv6); they ignore an entry's bits past its prefixlen as the kernel does; and
// the simulator refuses images the kernel would not hold (duplicate keys, wrong sizes,
// more entries than capacity, an empty unidentified list).
import { describe, expect, it } from "vitest";
import { encodeArrayKey, encodeIdentKey, encodeIdentVal, encodePair4Key, encodePair6Key, encodeRowVal, LPM_FIXED_BITS, MAP_NAMES, NO_BLOCK, type MapName } from "../../kernel-bridge/layout.js";
import type { MapEntry, MapImages } from "../../kernel-bridge/lower.js";
import { KernelSimulator, SimulatorError } from "../../kernel-bridge/sim.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env["PORTCULLIS_KSIM_SEED"] ?? 20261122);

function images(maps: Partial<Record<MapName, MapEntry[]>>, capacity: Partial<Record<MapName, number>> = {}, unidentified: number[] = [0]): MapImages {
  const all = Object.fromEntries(MAP_NAMES.map((m) => [m, maps[m] ?? []])) as Record<MapName, MapEntry[]>;
  return {
    maps: all,
    levels: [],
    unidentified,
    counts: Object.fromEntries(MAP_NAMES.map((m) => [m, all[m].length])) as Record<MapName, number>,
    capacity: Object.fromEntries(MAP_NAMES.map((m) => [m, capacity[m] ?? Math.max(1, all[m].length)])) as Record<MapName, number>,
  };
}

/** Does `addr` lie in prefix `bits` of `base`? Bit by bit. */
function inPrefix(addr: readonly number[], base: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) if (((addr[i >> 3]! >> (7 - (i & 7))) & 1) !== ((base[i >> 3]! >> (7 - (i & 7))) & 1)) return false;
  return true;
}

const CLASSES = 3;
/** Class c's default row: a row number no trie entry uses. */
const defaultRowOf = (cls: number) => 1000 + cls;

describe("the simulated (class, address) LPM tries", () => {
  for (const family of [4, 6] as const) {
    it(`find per class the longest matching prefix, as a brute-force scan, else the class's default row (IPv${family})`, () => {
      const rng = new Random(SEED + family);
      const bytes = family === 4 ? 4 : 16;
      for (let run = 0; run < 30; run++) {
        // Nested prefixes around a few anchors shared by the classes, so that many lookups
        // match several entries, some of them another class's.
        const anchors = Array.from({ length: 3 }, () => Array.from({ length: bytes }, () => rng.int(256)));
        const entries = new Map<string, { cls: number; base: number[]; bits: number; row: number }>();
        for (let k = 0; k < 60; k++) {
          const cls = rng.int(CLASSES);
          const bits = rng.int(bytes * 8 + 1);
          // Host bits are left set on purpose: the trie must ignore them.
          const base = rng.pick(anchors).map((b) => (rng.chance(0.2) ? rng.int(256) : b));
          const key = `${cls}:${bits}/${base.map((b, i) => b & ((0xff00 >> Math.max(0, Math.min(8, bits - i * 8))) & 0xff)).join(".")}`;
          if (!entries.has(key)) entries.set(key, { cls, base, bits, row: entries.size });
        }
        const encode = family === 4 ? encodePair4Key : encodePair6Key;
        const list = [...entries.values()];
        const defaults = Array.from({ length: CLASSES }, (_, cls) => ({ key: encodeArrayKey(cls), value: encodeRowVal({ row: defaultRowOf(cls), protocolBlock: NO_BLOCK }) }));
        const trie = list.map((e) => ({ key: encode({ prefixlen: LPM_FIXED_BITS.pair + e.bits, identityClass: e.cls, addr: e.base }), value: encodeRowVal({ row: e.row, protocolBlock: NO_BLOCK }) }));
        const sim = new KernelSimulator(images({ [family === 4 ? "pairs4" : "pairs6"]: trie, default_row: defaults }));
        for (let q = 0; q < 200; q++) {
          const addr = rng.pick(anchors).map((b) => (rng.chance(0.15) ? rng.int(256) : b));
          // A v4-mapped IPv6 address would go to pairs4: keep IPv6 queries out of ::ffff:0:0/96.
          if (family === 6) addr[0] = 0x20;
          for (let cls = 0; cls < CLASSES; cls++) {
            const matching = list.filter((e) => e.cls === cls && inPrefix(addr, e.base, e.bits)).sort((a, b) => b.bits - a.bits);
            expect(sim.row(cls, family, addr).row, `class ${cls}, ${addr} in ${JSON.stringify(list)}`).toBe(matching[0]?.row ?? defaultRowOf(cls));
          }
        }
      }
    });
  }

  it("decide a v4-mapped IPv6 address in pairs4", () => {
    const sim = new KernelSimulator(
      images({ pairs4: [{ key: encodePair4Key({ prefixlen: LPM_FIXED_BITS.pair + 8, identityClass: 1, addr: [127, 0, 0, 0] }), value: encodeRowVal({ row: 5, protocolBlock: NO_BLOCK }) }], default_row: [0, 1].map((c) => ({ key: encodeArrayKey(c), value: encodeRowVal({ row: 9, protocolBlock: NO_BLOCK }) })) }),
    );
    expect(sim.row(1, 6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]).row).toBe(5);
    expect(sim.row(1, 6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1]).row).toBe(9);
    expect(sim.row(0, 6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1]).row).toBe(9);
  });
});

describe("the simulated identity map", () => {
  it("gives the lowest order's list among all hits, and the unidentified list without one", () => {
    const entry = (cgroupId: bigint, uid: number, order: number, classes: number[]) => ({ key: encodeIdentKey({ cgroupId, uid, gid: 0xffffffff }), value: encodeIdentVal({ order, classes }) });
    const sim = new KernelSimulator({ ...images({ ident: [entry(7n, 5, 2, [4, 5]), entry(0n, 6, 1, [3]), entry(0n, 5, 3, [6, 7, 8])] }, {}, [1, 2]), levels: [1] });
    expect(sim.identify([1n, 7n], 5, 0)).toEqual({ order: 2, classes: [4, 5] });
    expect(sim.identify([1n, 8n], 5, 0)).toEqual({ order: 3, classes: [6, 7, 8] });
    expect(sim.identify([1n, 7n], 6, 0)).toEqual({ order: 1, classes: [3] });
    expect(sim.identify([1n, 7n], 9, 0)).toEqual({ order: undefined, classes: [1, 2] });
  });
});

describe("the simulator refuses images the kernel would not hold", () => {
  it("two entries for one LPM prefix (host bits aside), a duplicate hash key, a wrong size, more entries than capacity, no unidentified class", () => {
    const a = { key: encodePair4Key({ prefixlen: 40, identityClass: 1, addr: [10, 0, 0, 0] }), value: encodeRowVal({ row: 1, protocolBlock: NO_BLOCK }) };
    const b = { key: encodePair4Key({ prefixlen: 40, identityClass: 1, addr: [10, 9, 9, 9] }), value: encodeRowVal({ row: 2, protocolBlock: NO_BLOCK }) };
    expect(() => new KernelSimulator(images({ pairs4: [a, b] }))).toThrow(SimulatorError);
    const ident = { key: encodeIdentKey({ cgroupId: 1n, uid: 2, gid: 3 }), value: encodeIdentVal({ order: 0, classes: [1] }) };
    expect(() => new KernelSimulator(images({ ident: [ident, ident] }))).toThrow(SimulatorError);
    expect(() => new KernelSimulator(images({ ident: [{ key: ident.key, value: new Uint8Array(3) }] }))).toThrow(SimulatorError);
    expect(() => new KernelSimulator(images({ pairs4: [a] }, { pairs4: 0 }))).toThrow(SimulatorError);
    expect(() => new KernelSimulator(images({}, {}, []))).toThrow(SimulatorError);
  });
});
