// Tests of kernel-bridge/layout.ts: every struct is packed with natural alignment (what the
// C side declares), every encoder round-trips through its decoder, and the bytes sit
// where the contract puts them (little-endian fields, big-endian LPM data).
import { describe, expect, it } from "vitest";
import * as L from "../../kernel-bridge/layout.js";
import { Random } from "../support/random.js";

const ROUND_TRIPS = 2_000;
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("LAYOUT", () => {
  it("describes packed structs: fields naturally aligned, in order, without gaps, filling the size", () => {
    for (const [name, layout] of Object.entries(L.LAYOUT) as [string, L.StructLayout][]) {
      let at = 0;
      let widest = 1;
      for (const [field, f] of Object.entries(layout.fields)) {
        expect(f.offset, `${name}.${field}`).toBe(at);
        const scalar = [1, 2, 4, 8].includes(f.size) ? f.size : 1;
        expect(f.offset % scalar, `${name}.${field} alignment`).toBe(0);
        widest = Math.max(widest, scalar);
        at += f.size;
      }
      expect(at, name).toBe(layout.size);
      expect(layout.size % widest, `${name} tail padding`).toBe(0);
    }
  });

  it("names a key and value struct of the right size for every map", () => {
    for (const map of L.MAP_NAMES) {
      const spec = L.MAPS[map];
      expect(L.keySize(map)).toBe(spec.key === "u32" ? 4 : L.LAYOUT[spec.key].size);
      expect(L.valueSize(map)).toBe(L.LAYOUT[spec.value].size);
      const keyFields: readonly string[] = spec.key === "u32" ? [] : Object.keys(L.LAYOUT[spec.key as L.StructName].fields);
      if (spec.type === "lpm_trie") expect(keyFields[0]).toBe("prefixlen");
    }
  });
});

describe("encoders", () => {
  it("round-trip random values through their decoders", () => {
    const r = new Random(0x1a7007);
    const u32 = () => r.uint32();
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const identKey = { cgroupId: (BigInt(u32()) << 32n) | BigInt(u32()), uid: u32(), gid: u32() };
      expect(L.decodeIdentKey(L.encodeIdentKey(identKey))).toEqual(identKey);
      const identVal = { order: u32(), identityClass: u32() };
      expect(L.decodeIdentVal(L.encodeIdentVal(identVal))).toEqual(identVal);
      const dst4 = { prefixlen: r.int(33), addr: [u32() & 255, u32() & 255, u32() & 255, u32() & 255] };
      expect(L.decodeDst4Key(L.encodeDst4Key(dst4))).toEqual(dst4);
      const dst6 = { prefixlen: r.int(129), addr: Array.from({ length: 16 }, () => u32() & 255) };
      expect(L.decodeDst6Key(L.encodeDst6Key(dst6))).toEqual(dst6);
      const pair = { identityClass: u32(), destinationClass: u32() };
      expect(L.decodePairKey(L.encodePairKey(pair))).toEqual(pair);
      const uidKey = { prefixlen: 32 + r.int(33), scope: u32(), value: u32() };
      expect(L.decodeUidKey(L.encodeUidKey(uidKey))).toEqual(uidKey);
      expect(L.decodeGidKey(L.encodeGidKey(uidKey))).toEqual(uidKey);
      const portKey = { prefixlen: 48 + r.int(17), block: u32(), protocol: r.chance(0.5) ? L.IPPROTO_TCP : L.IPPROTO_UDP, port: u32() & 0xffff };
      expect(L.decodePortKey(L.encodePortKey(portKey))).toEqual(portKey);
      const verdict = { flags: u32() & 3, rule: u32() };
      expect(L.decodeVerdict(L.encodeVerdict(verdict))).toEqual(verdict);
      const one = u32();
      expect(L.decodeClassVal(L.encodeClassVal(one))).toBe(one);
      expect(L.decodeRowVal(L.encodeRowVal(one))).toBe(one);
      expect(L.decodeBlockVal(L.encodeBlockVal(one))).toBe(one);
      expect(L.decodeVerdictRef(L.encodeVerdictRef(one))).toBe(one);
      expect(L.decodeArrayKey(L.encodeArrayKey(one))).toBe(one);
    }
  });

  it("write little-endian fields and big-endian LPM data where the contract puts them", () => {
    expect(hex(L.encodeIdentKey({ cgroupId: 0x0102030405060708n, uid: 0x11223344, gid: L.ANY_ID }))).toBe("0807060504030201" + "44332211" + "ffffffff");
    expect(hex(L.encodeIdentVal({ order: 3, identityClass: 0x0a0b }))).toBe("03000000" + "0b0a0000");
    expect(hex(L.encodeDst4Key({ prefixlen: 24, addr: [10, 1, 2, 0] }))).toBe("18000000" + "0a010200");
    expect(hex(L.encodeDst6Key({ prefixlen: 8, addr: [0xfd, ...new Array<number>(15).fill(0)] }))).toBe("08000000" + "fd" + "00".repeat(15));
    expect(hex(L.encodeUidKey({ prefixlen: 40, scope: 7, value: 0x01020304 }))).toBe("28000000" + "07000000" + "01020304");
    expect(hex(L.encodeGidKey({ prefixlen: 64, scope: 0x100, value: 1000 }))).toBe("40000000" + "00010000" + "000003e8");
    expect(hex(L.encodePortKey({ prefixlen: 60, block: 2, protocol: L.IPPROTO_UDP, port: 0x1f90 }))).toBe("3c000000" + "02000000" + "11" + "00" + "1f90");
    expect(hex(L.encodeVerdict({ flags: L.FLAG_ALLOW, rule: L.NO_RULE }))).toBe("01000000" + "ffffffff");
  });

  it("refuse values that do not fit their field", () => {
    expect(() => L.encodeIdentKey({ cgroupId: -1n, uid: 0, gid: 0 })).toThrow(RangeError);
    expect(() => L.encodeIdentVal({ order: 2 ** 32, identityClass: 0 })).toThrow(RangeError);
    expect(() => L.encodeDst4Key({ prefixlen: 33, addr: [0, 0, 0, 0] })).toThrow(RangeError);
    expect(() => L.encodeDst6Key({ prefixlen: 0, addr: [0, 0, 0, 0] })).toThrow(RangeError);
    expect(() => L.encodePortKey({ prefixlen: 48, block: 0, protocol: 6, port: 65536 })).toThrow(RangeError);
    expect(() => L.decodeVerdict(new Uint8Array(7))).toThrow(RangeError);
  });
});
