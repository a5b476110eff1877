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
      const identVal = { order: u32(), classes: Array.from({ length: 1 + r.int(L.MAX_CLASSES) }, u32) };
      expect(L.decodeIdentVal(L.encodeIdentVal(identVal))).toEqual(identVal);
      const pair4 = { prefixlen: r.int(65), identityClass: u32(), addr: [u32() & 255, u32() & 255, u32() & 255, u32() & 255] };
      expect(L.decodePair4Key(L.encodePair4Key(pair4))).toEqual(pair4);
      const pair6 = { prefixlen: r.int(161), identityClass: u32(), addr: Array.from({ length: 16 }, () => u32() & 255) };
      expect(L.decodePair6Key(L.encodePair6Key(pair6))).toEqual(pair6);
      const uidKey = { prefixlen: 32 + r.int(33), scope: u32(), value: u32() };
      expect(L.decodeUidKey(L.encodeUidKey(uidKey))).toEqual(uidKey);
      expect(L.decodeGidKey(L.encodeGidKey(uidKey))).toEqual(uidKey);
      const portKey = { prefixlen: 48 + r.int(17), block: u32(), protocol: r.chance(0.5) ? L.IPPROTO_TCP : L.IPPROTO_UDP, port: u32() & 0xffff };
      expect(L.decodePortKey(L.encodePortKey(portKey))).toEqual(portKey);
      const verdict = { flags: u32() & 3, rule: u32() };
      expect(L.decodeVerdict(L.encodeVerdict(verdict))).toEqual(verdict);
      const one = u32();
      const rowVal = { row: u32(), protocolBlock: u32() };
      expect(L.decodeRowVal(L.encodeRowVal(rowVal))).toEqual(rowVal);
      expect(L.decodeBlockVal(L.encodeBlockVal(one))).toBe(one);
      expect(L.decodeVerdictRef(L.encodeVerdictRef(one))).toBe(one);
      expect(L.decodeArrayKey(L.encodeArrayKey(one))).toBe(one);
    }
  });

  it("write little-endian fields and big-endian LPM data where the contract puts them", () => {
    expect(hex(L.encodeIdentKey({ cgroupId: 0x0102030405060708n, uid: 0x11223344, gid: L.ANY_ID }))).toBe("0807060504030201" + "44332211" + "ffffffff");
    expect(hex(L.encodeIdentVal({ order: 3, classes: [0x0a0b, 7] }))).toBe("03000000" + "02000000" + "0b0a0000" + "07000000" + "00000000".repeat(6));
    expect(hex(L.encodePair4Key({ prefixlen: 56, identityClass: 0x0102, addr: [10, 1, 2, 0] }))).toBe("38000000" + "02010000" + "0a010200");
    expect(hex(L.encodePair6Key({ prefixlen: 40, identityClass: 9, addr: [0xfd, ...new Array<number>(15).fill(0)] }))).toBe("28000000" + "09000000" + "fd" + "00".repeat(15));
    expect(hex(L.encodeUidKey({ prefixlen: 40, scope: 7, value: 0x01020304 }))).toBe("28000000" + "07000000" + "01020304");
    expect(hex(L.encodeGidKey({ prefixlen: 64, scope: 0x100, value: 1000 }))).toBe("40000000" + "00010000" + "000003e8");
    expect(hex(L.encodePortKey({ prefixlen: 60, block: 2, protocol: L.IPPROTO_UDP, port: 0x1f90 }))).toBe("3c000000" + "02000000" + "11" + "00" + "1f90");
    expect(hex(L.encodeVerdict({ flags: L.FLAG_ALLOW, rule: L.NO_RULE }))).toBe("01000000" + "ffffffff");
    expect(hex(L.encodeRowVal({ row: 0x0102, protocolBlock: L.NO_BLOCK }))).toBe("02010000" + "ffffffff");
  });

  it("refuse values that do not fit their field", () => {
    expect(() => L.encodeIdentKey({ cgroupId: -1n, uid: 0, gid: 0 })).toThrow(RangeError);
    expect(() => L.encodeIdentVal({ order: 2 ** 32, classes: [0] })).toThrow(RangeError);
    expect(() => L.encodeIdentVal({ order: 0, classes: [] })).toThrow(RangeError);
    expect(() => L.encodeIdentVal({ order: 0, classes: new Array<number>(L.MAX_CLASSES + 1).fill(1) })).toThrow(RangeError);
    expect(() => L.decodeIdentVal(new Uint8Array(L.LAYOUT.pc_ident_val.size))).toThrow(RangeError);
    expect(() => L.encodePair4Key({ prefixlen: 65, identityClass: 0, addr: [0, 0, 0, 0] })).toThrow(RangeError);
    expect(() => L.encodePair6Key({ prefixlen: 0, identityClass: 0, addr: [0, 0, 0, 0] })).toThrow(RangeError);
    expect(() => L.encodePortKey({ prefixlen: 48, block: 0, protocol: 6, port: 65536 })).toThrow(RangeError);
    expect(() => L.decodeVerdict(new Uint8Array(7))).toThrow(RangeError);
  });
});
