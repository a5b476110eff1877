// The simulator's map semantics on hand-made images: its LPM trie finds the longest
// matching prefix of random nested prefix sets as a brute-force scan does (IPv4 and IPv6),
// ignores an entry's bits past its prefixlen as the kernel does, and refuses images the
// kernel would not hold (duplicate keys, wrong sizes, more entries than capacity).
import { describe, expect, it } from "vitest";
import { encodeClassVal, encodeDst4Key, encodeDst6Key, encodePairKey, encodeRowVal, MAP_NAMES, type MapName } from "../../kernel-bridge/layout.js";
import type { MapEntry, MapImages } from "../../kernel-bridge/lower.js";
import { KernelSimulator, SimulatorError } from "../../kernel-bridge/sim.js";
import { Random } from "../support/random.js";

const SEED = Number(process.env["PORTCULLIS_KSIM_SEED"] ?? 20261122);

function images(maps: Partial<Record<MapName, MapEntry[]>>, capacity: Partial<Record<MapName, number>> = {}): MapImages {
  const all = Object.fromEntries(MAP_NAMES.map((m) => [m, maps[m] ?? []])) as Record<MapName, MapEntry[]>;
  return {
    maps: all,
    levels: [],
    counts: Object.fromEntries(MAP_NAMES.map((m) => [m, all[m].length])) as Record<MapName, number>,
    capacity: Object.fromEntries(MAP_NAMES.map((m) => [m, capacity[m] ?? Math.max(1, all[m].length)])) as Record<MapName, number>,
  };
}

/** Does `addr` lie in prefix `bits` of `base`? Bit by bit. */
function inPrefix(addr: readonly number[], base: readonly number[], bits: number): boolean {
  for (let i = 0; i < bits; i++) if (((addr[i >> 3]! >> (7 - (i & 7))) & 1) !== ((base[i >> 3]! >> (7 - (i & 7))) & 1)) return false;
  return true;
}

describe("the simulated LPM trie", () => {
  for (const family of [4, 6] as const) {
    it(`finds the longest matching prefix, as a brute-force scan (IPv${family})`, () => {
      const rng = new Random(SEED + family);
      const bytes = family === 4 ? 4 : 16;
      for (let run = 0; run < 30; run++) {
        // Nested prefixes around a few anchors, so that many lookups match several entries.
        const anchors = Array.from({ length: 3 }, () => Array.from({ length: bytes }, () => rng.int(256)));
        const entries = new Map<string, { base: number[]; bits: number; cls: number }>();
        for (let k = 0; k < 40; k++) {
          const bits = rng.int(bytes * 8 + 1);
          // Host bits are left set on purpose: the trie must ignore them.
          const base = rng.pick(anchors).map((b) => (rng.chance(0.2) ? rng.int(256) : b));
          const key = `${bits}/${base.map((b, i) => b & ((0xff00 >> Math.max(0, Math.min(8, bits - i * 8))) & 0xff)).join(".")}`;
          if (!entries.has(key)) entries.set(key, { base, bits, cls: entries.size + 1 });
        }
        const encode = family === 4 ? encodeDst4Key : encodeDst6Key;
        const list = [...entries.values()];
        const sim = new KernelSimulator(images({ [family === 4 ? "dst4" : "dst6"]: list.map((e) => ({ key: encode({ prefixlen: e.bits, addr: e.base }), value: encodeClassVal(e.cls) })) }));
        for (let q = 0; q < 200; q++) {
          const addr = rng.pick(anchors).map((b) => (rng.chance(0.15) ? rng.int(256) : b));
          // A v4-mapped IPv6 address would go to dst4: keep IPv6 queries out of ::ffff:0:0/96.
          if (family === 6) addr[0] = 0x20;
          const matching = list.filter((e) => inPrefix(addr, e.base, e.bits)).sort((a, b) => b.bits - a.bits);
          expect(sim.destinationClass(family, addr), `${addr} in ${JSON.stringify(list)}`).toBe(matching[0]?.cls ?? 0);
        }
      }
    });
  }

  it("decides a v4-mapped IPv6 address in dst4", () => {
    const sim = new KernelSimulator(images({ dst4: [{ key: encodeDst4Key({ prefixlen: 8, addr: [127, 0, 0, 0] }), value: encodeClassVal(5) }] }));
    expect(sim.destinationClass(6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1])).toBe(5);
    expect(sim.destinationClass(6, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1])).toBe(0);
  });
});

describe("the simulator refuses images the kernel would not hold", () => {
  it("two entries for one LPM prefix (host bits aside), a duplicate hash key, a wrong size, more entries than capacity", () => {
    const a = { key: encodeDst4Key({ prefixlen: 8, addr: [10, 0, 0, 0] }), value: encodeClassVal(1) };
    const b = { key: encodeDst4Key({ prefixlen: 8, addr: [10, 9, 9, 9] }), value: encodeClassVal(2) };
    expect(() => new KernelSimulator(images({ dst4: [a, b] }))).toThrow(SimulatorError);
    const pair = { key: encodePairKey({ identityClass: 1, destinationClass: 2 }), value: encodeRowVal(3) };
    expect(() => new KernelSimulator(images({ pairs: [pair, pair] }))).toThrow(SimulatorError);
    expect(() => new KernelSimulator(images({ pairs: [{ key: pair.key, value: new Uint8Array(3) }] }))).toThrow(SimulatorError);
    expect(() => new KernelSimulator(images({ dst4: [a] }, { dst4: 0 }))).toThrow(SimulatorError);
  });
});
