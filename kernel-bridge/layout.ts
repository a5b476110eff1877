// Owns the byte layout of every eBPF map key and value (/work/kernel-contract.md,
// docs/kernel-maps.md): one encoder and one decoder per C struct of
// `kernel-bridge/bpf/portcullis.h`, and `LAYOUT`, the sizes and offsets the BTF test
// compares with the compiled object. The single TypeScript source of truth for them.
//
// INVARIANT: every struct is packed with each field naturally aligned (no implicit
// padding), little-endian except the LPM data bytes marked big-endian, so that a prefix
// of an address, uid, gid or port is its high bits (the kernel LPM trie compares data
// bytes in order, most significant bit first).

import { MAX_LIST_CLASSES } from "../compiler/tables.js";

export interface FieldLayout {
  readonly offset: number;
  readonly size: number;
}

export interface StructLayout {
  readonly size: number;
  readonly fields: Readonly<Record<string, FieldLayout>>;
}

/** Struct name (as in portcullis.h) → size and field offsets, in bytes. */
export const LAYOUT = {
  pc_ident_key: { size: 16, fields: { cgroup_id: { offset: 0, size: 8 }, uid: { offset: 8, size: 4 }, gid: { offset: 12, size: 4 } } },
  pc_ident_val: { size: 40, fields: { order: { offset: 0, size: 4 }, count: { offset: 4, size: 4 }, classes: { offset: 8, size: 32 } } },
  pc_pair4_key: { size: 12, fields: { prefixlen: { offset: 0, size: 4 }, cls: { offset: 4, size: 4 }, addr: { offset: 8, size: 4 } } },
  pc_pair6_key: { size: 24, fields: { prefixlen: { offset: 0, size: 4 }, cls: { offset: 4, size: 4 }, addr: { offset: 8, size: 16 } } },
  pc_row_val: { size: 8, fields: { row: { offset: 0, size: 4 }, protocol_block: { offset: 4, size: 4 } } },
  pc_uid_key: { size: 12, fields: { prefixlen: { offset: 0, size: 4 }, row: { offset: 4, size: 4 }, uid: { offset: 8, size: 4 } } },
  pc_gid_key: { size: 12, fields: { prefixlen: { offset: 0, size: 4 }, block: { offset: 4, size: 4 }, gid: { offset: 8, size: 4 } } },
  pc_port_key: {
    size: 12,
    fields: { prefixlen: { offset: 0, size: 4 }, block: { offset: 4, size: 4 }, protocol: { offset: 8, size: 1 }, pad: { offset: 9, size: 1 }, port: { offset: 10, size: 2 } },
  },
  pc_block_val: { size: 4, fields: { block: { offset: 0, size: 4 } } },
  pc_verdict_ref: { size: 4, fields: { verdict: { offset: 0, size: 4 } } },
  pc_verdict: { size: 8, fields: { flags: { offset: 0, size: 4 }, rule: { offset: 4, size: 4 } } },
} as const satisfies Record<string, StructLayout>;

export type StructName = keyof typeof LAYOUT;

/** `uid`/`gid` 0xffffffff in an identity key: the entry matches any uid/gid. */
export const ANY_ID = 0xffffffff;
/** `cgroup_id` 0 in an identity key: the entry matches any cgroup. */
export const ANY_CGROUP = 0n;
/**
 * At most this many cgroup levels are probed per lookup (the length of `pc_levels`); the
 * BPF program's loop bound. A policy needing more is refused by the lowering.
 */
export const MAX_CGROUP_LEVELS = 16;
/**
 * At most this many identity classes in a list (`pc_ident_val.classes`, the unidentified
 * list of a generation): the bound of the BPF program's class loop, the tables' own limit.
 */
export const MAX_CLASSES = MAX_LIST_CLASSES;
/** `pc_row_val.protocol_block` of a row that depends on the uid or gid. */
export const NO_BLOCK = 0xffffffff;
/** `pc_verdict.rule` of a verdict without reasons (a default). */
export const NO_RULE = 0xffffffff;
/** `pc_verdict.flags` bits, as in the tables' VERDICTS section. */
export const FLAG_ALLOW = 1;
export const FLAG_DEFAULT = 2;
/** `pc_port_key.protocol`: IP protocol numbers. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/**
 * Bits of an LPM key's data that are always matched whole, before the value's prefix:
 * `cls` (pairs4, pairs6), `row` (uid), `block` (gid), `block` + `protocol` + `pad` (port).
 */
export const LPM_FIXED_BITS = { pair: 32, uid: 32, gid: 32, port: 48 } as const;

// ---------------------------------------------------------------- field access

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sized(name: StructName, bytes: Uint8Array): DataView {
  if (bytes.byteLength !== LAYOUT[name].size) throw new RangeError(`${name} is ${LAYOUT[name].size} bytes, not ${bytes.byteLength}`);
  return view(bytes);
}

function u32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) throw new RangeError(`${what} must be a u32, not ${value}`);
  return value;
}

/** Writes a u32 at `at`. Encoders write bytes directly: a DataView per entry costs more than the entry. */
function setU32(out: Uint8Array, at: number, value: number, littleEndian: boolean): void {
  for (let i = 0; i < 4; i++) out[at + (littleEndian ? i : 3 - i)] = (value >>> (8 * i)) & 255;
}

/** Writes a little-endian u32 field of `name` into `out`. */
function putU32<N extends StructName>(out: Uint8Array, name: N, field: keyof (typeof LAYOUT)[N]["fields"] & string, value: number): void {
  const f = (LAYOUT[name].fields as Record<string, FieldLayout>)[field]!;
  setU32(out, f.offset, u32(value, `${name}.${field}`), true);
}

function getU32<N extends StructName>(v: DataView, name: N, field: keyof (typeof LAYOUT)[N]["fields"] & string): number {
  return v.getUint32((LAYOUT[name].fields as Record<string, FieldLayout>)[field]!.offset, true);
}

function offsetOf(name: StructName, field: string): number {
  const f = (LAYOUT[name].fields as Record<string, FieldLayout>)[field];
  if (f === undefined) throw new RangeError(`${name} has no field ${field}`);
  return f.offset;
}

function checkPrefix(prefixlen: number, max: number, what: string): number {
  if (!Number.isInteger(prefixlen) || prefixlen < 0 || prefixlen > max) throw new RangeError(`${what} prefixlen must be in 0..${max}, not ${prefixlen}`);
  return prefixlen;
}

// ---------------------------------------------------------------- 1. identity

export interface IdentKey {
  /** cgroup v2 id (the directory's inode number); 0 = any cgroup. */
  readonly cgroupId: bigint;
  /** 0xffffffff = any uid. */
  readonly uid: number;
  /** 0xffffffff = any gid. */
  readonly gid: number;
}

export function encodeIdentKey(k: IdentKey): Uint8Array {
  const out = new Uint8Array(LAYOUT.pc_ident_key.size);
  if (k.cgroupId < 0n || k.cgroupId > 0xffffffffffffffffn) throw new RangeError(`pc_ident_key.cgroup_id must be a u64, not ${k.cgroupId}`);
  const at = offsetOf("pc_ident_key", "cgroup_id");
  setU32(out, at, Number(k.cgroupId & 0xffffffffn), true);
  setU32(out, at + 4, Number(k.cgroupId >> 32n), true);
  putU32(out, "pc_ident_key", "uid", k.uid);
  putU32(out, "pc_ident_key", "gid", k.gid);
  return out;
}

export function decodeIdentKey(bytes: Uint8Array): IdentKey {
  const v = sized("pc_ident_key", bytes);
  return { cgroupId: v.getBigUint64(offsetOf("pc_ident_key", "cgroup_id"), true), uid: getU32(v, "pc_ident_key", "uid"), gid: getU32(v, "pc_ident_key", "gid") };
}

export interface IdentVal {
  /** Position of the workload in policy-set order; the lowest among all hits wins. */
  readonly order: number;
  /** The workload's identity classes (1..MAX_CLASSES), in list order. */
  readonly classes: readonly number[];
}

export function encodeIdentVal(x: IdentVal): Uint8Array {
  const out = new Uint8Array(LAYOUT.pc_ident_val.size);
  if (x.classes.length === 0 || x.classes.length > MAX_CLASSES) throw new RangeError(`pc_ident_val holds 1..${MAX_CLASSES} classes, not ${x.classes.length}`);
  putU32(out, "pc_ident_val", "order", x.order);
  putU32(out, "pc_ident_val", "count", x.classes.length);
  const at = offsetOf("pc_ident_val", "classes");
  x.classes.forEach((cls, i) => setU32(out, at + 4 * i, u32(cls, "pc_ident_val.classes"), true));
  return out;
}

export function decodeIdentVal(bytes: Uint8Array): IdentVal {
  const v = sized("pc_ident_val", bytes);
  const count = getU32(v, "pc_ident_val", "count");
  if (count === 0 || count > MAX_CLASSES) throw new RangeError(`pc_ident_val.count must be 1..${MAX_CLASSES}, not ${count}`);
  const at = offsetOf("pc_ident_val", "classes");
  return { order: getU32(v, "pc_ident_val", "order"), classes: Array.from({ length: count }, (_, i) => v.getUint32(at + 4 * i, true)) };
}

// ---------------------------------------------------------------- 2+3. (class, destination) → row

export interface PairKey {
  /** 32 (the class, matched whole) + the CIDR's prefix: 32..64 for IPv4, 32..160 for IPv6. */
  readonly prefixlen: number;
  readonly identityClass: number;
  /** 4 or 16 bytes in network order; bits past the prefix are zero when encoded by the lowering. */
  readonly addr: readonly number[];
}

function encodePair(name: "pc_pair4_key" | "pc_pair6_key", bytes: number, k: PairKey): Uint8Array {
  if (k.addr.length !== bytes) throw new RangeError(`${name}.addr must be ${bytes} bytes, not ${k.addr.length}`);
  const out = new Uint8Array(LAYOUT[name].size);
  putU32(out, name, "prefixlen", checkPrefix(k.prefixlen, LPM_FIXED_BITS.pair + bytes * 8, name));
  putU32(out, name, "cls", k.identityClass);
  const at = offsetOf(name, "addr");
  k.addr.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 0 || b > 255) throw new RangeError(`${name}.addr holds a bad byte ${b}`);
    out[at + i] = b;
  });
  return out;
}

function decodePair(name: "pc_pair4_key" | "pc_pair6_key", bytes: Uint8Array): PairKey {
  const v = sized(name, bytes);
  const at = offsetOf(name, "addr");
  return { prefixlen: getU32(v, name, "prefixlen"), identityClass: getU32(v, name, "cls"), addr: [...bytes.subarray(at, at + LAYOUT[name].fields.addr.size)] };
}

export const encodePair4Key = (k: PairKey): Uint8Array => encodePair("pc_pair4_key", 4, k);
export const encodePair6Key = (k: PairKey): Uint8Array => encodePair("pc_pair6_key", 16, k);
export const decodePair4Key = (bytes: Uint8Array): PairKey => decodePair("pc_pair4_key", bytes);
export const decodePair6Key = (bytes: Uint8Array): PairKey => decodePair("pc_pair6_key", bytes);

// ---------------------------------------------------------------- single-u32 values and array keys

function encodeOne(name: "pc_block_val" | "pc_verdict_ref", field: string, value: number): Uint8Array {
  const out = new Uint8Array(LAYOUT[name].size);
  setU32(out, 0, u32(value, `${name}.${field}`), true);
  return out;
}

function decodeOne(name: "pc_block_val" | "pc_verdict_ref", bytes: Uint8Array): number {
  return sized(name, bytes).getUint32(0, true);
}

export interface RowVal {
  readonly row: number;
  /**
   * The protocol block every uid and gid of the row lead to, or NO_BLOCK when the row
   * depends on the uid or gid: with a block, the program skips the uid and gid lookups.
   */
  readonly protocolBlock: number;
}

export function encodeRowVal(x: RowVal): Uint8Array {
  const out = new Uint8Array(LAYOUT.pc_row_val.size);
  putU32(out, "pc_row_val", "row", x.row);
  putU32(out, "pc_row_val", "protocol_block", x.protocolBlock);
  return out;
}

export function decodeRowVal(bytes: Uint8Array): RowVal {
  const v = sized("pc_row_val", bytes);
  return { row: getU32(v, "pc_row_val", "row"), protocolBlock: getU32(v, "pc_row_val", "protocol_block") };
}
export const encodeBlockVal = (block: number): Uint8Array => encodeOne("pc_block_val", "block", block);
export const decodeBlockVal = (bytes: Uint8Array): number => decodeOne("pc_block_val", bytes);
export const encodeVerdictRef = (verdict: number): Uint8Array => encodeOne("pc_verdict_ref", "verdict", verdict);
export const decodeVerdictRef = (bytes: Uint8Array): number => decodeOne("pc_verdict_ref", bytes);

/** Key size of the ARRAY maps (`default_row`, `verdicts`): a __u32 index. */
export const ARRAY_KEY_SIZE = 4;

export function encodeArrayKey(index: number): Uint8Array {
  const out = new Uint8Array(ARRAY_KEY_SIZE);
  setU32(out, 0, u32(index, "array index"), true);
  return out;
}

export function decodeArrayKey(bytes: Uint8Array): number {
  if (bytes.byteLength !== ARRAY_KEY_SIZE) throw new RangeError(`an array key is ${ARRAY_KEY_SIZE} bytes, not ${bytes.byteLength}`);
  return view(bytes).getUint32(0, true);
}

// ---------------------------------------------------------------- 4. uid, gid, port LPM keys

/** A uid or gid LPM key: `prefixlen` = 32 (row/block) + bits of the value's prefix. */
export interface IdLpmKey {
  readonly prefixlen: number;
  /** The row (uid_lpm) or the gid block (gid_lpm). */
  readonly scope: number;
  /** The uid or gid; stored big-endian. */
  readonly value: number;
}

function encodeIdLpm(name: "pc_uid_key" | "pc_gid_key", scopeField: "row" | "block", valueField: "uid" | "gid", k: IdLpmKey): Uint8Array {
  const out = new Uint8Array(LAYOUT[name].size);
  putU32(out, name, "prefixlen", checkPrefix(k.prefixlen, 64, name));
  setU32(out, offsetOf(name, scopeField), u32(k.scope, `${name}.${scopeField}`), true);
  setU32(out, offsetOf(name, valueField), u32(k.value, `${name}.${valueField}`), false);
  return out;
}

function decodeIdLpm(name: "pc_uid_key" | "pc_gid_key", scopeField: "row" | "block", valueField: "uid" | "gid", bytes: Uint8Array): IdLpmKey {
  const v = sized(name, bytes);
  return { prefixlen: v.getUint32(0, true), scope: v.getUint32(offsetOf(name, scopeField), true), value: v.getUint32(offsetOf(name, valueField), false) };
}

export const encodeUidKey = (k: IdLpmKey): Uint8Array => encodeIdLpm("pc_uid_key", "row", "uid", k);
export const decodeUidKey = (bytes: Uint8Array): IdLpmKey => decodeIdLpm("pc_uid_key", "row", "uid", bytes);
export const encodeGidKey = (k: IdLpmKey): Uint8Array => encodeIdLpm("pc_gid_key", "block", "gid", k);
export const decodeGidKey = (bytes: Uint8Array): IdLpmKey => decodeIdLpm("pc_gid_key", "block", "gid", bytes);

export interface PortKey {
  /** 48 (block, protocol, pad) + bits of the port's prefix. */
  readonly prefixlen: number;
  readonly block: number;
  /** IPPROTO_TCP or IPPROTO_UDP. */
  readonly protocol: number;
  /** Stored big-endian. */
  readonly port: number;
}

export function encodePortKey(k: PortKey): Uint8Array {
  const out = new Uint8Array(LAYOUT.pc_port_key.size);
  putU32(out, "pc_port_key", "prefixlen", checkPrefix(k.prefixlen, 64, "pc_port_key"));
  putU32(out, "pc_port_key", "block", k.block);
  if (!Number.isInteger(k.protocol) || k.protocol < 0 || k.protocol > 255) throw new RangeError(`pc_port_key.protocol must be a u8, not ${k.protocol}`);
  out[offsetOf("pc_port_key", "protocol")] = k.protocol;
  out[offsetOf("pc_port_key", "pad")] = 0;
  if (!Number.isInteger(k.port) || k.port < 0 || k.port > 0xffff) throw new RangeError(`pc_port_key.port must be a u16, not ${k.port}`);
  const port = offsetOf("pc_port_key", "port");
  out[port] = k.port >>> 8;
  out[port + 1] = k.port & 255;
  return out;
}

export function decodePortKey(bytes: Uint8Array): PortKey {
  const v = sized("pc_port_key", bytes);
  return {
    prefixlen: getU32(v, "pc_port_key", "prefixlen"),
    block: getU32(v, "pc_port_key", "block"),
    protocol: v.getUint8(offsetOf("pc_port_key", "protocol")),
    port: v.getUint16(offsetOf("pc_port_key", "port"), false),
  };
}

// ---------------------------------------------------------------- 5. verdicts

export interface KernelVerdict {
  /** FLAG_ALLOW | FLAG_DEFAULT, as in the tables. */
  readonly flags: number;
  /** First rule index of the reason set; NO_RULE when there is none. */
  readonly rule: number;
}

export function encodeVerdict(x: KernelVerdict): Uint8Array {
  const out = new Uint8Array(LAYOUT.pc_verdict.size);
  putU32(out, "pc_verdict", "flags", x.flags);
  putU32(out, "pc_verdict", "rule", x.rule);
  return out;
}

export function decodeVerdict(bytes: Uint8Array): KernelVerdict {
  const v = sized("pc_verdict", bytes);
  return { flags: getU32(v, "pc_verdict", "flags"), rule: getU32(v, "pc_verdict", "rule") };
}

// ---------------------------------------------------------------- the maps

export type MapType = "hash" | "lpm_trie" | "array";

export interface MapSpec {
  readonly type: MapType;
  /** A struct of LAYOUT, or `u32` for an ARRAY map's index. */
  readonly key: StructName | "u32";
  readonly value: StructName;
}

/** The policy maps of one generation, by name, with their BPF map type and key/value structs. */
export const MAPS = {
  ident: { type: "hash", key: "pc_ident_key", value: "pc_ident_val" },
  pairs4: { type: "lpm_trie", key: "pc_pair4_key", value: "pc_row_val" },
  pairs6: { type: "lpm_trie", key: "pc_pair6_key", value: "pc_row_val" },
  default_row: { type: "array", key: "u32", value: "pc_row_val" },
  uid_lpm: { type: "lpm_trie", key: "pc_uid_key", value: "pc_block_val" },
  gid_lpm: { type: "lpm_trie", key: "pc_gid_key", value: "pc_block_val" },
  port_lpm: { type: "lpm_trie", key: "pc_port_key", value: "pc_verdict_ref" },
  verdicts: { type: "array", key: "u32", value: "pc_verdict" },
} as const satisfies Record<string, MapSpec>;

export type MapName = keyof typeof MAPS;
export const MAP_NAMES = Object.keys(MAPS) as MapName[];

export function keySize(map: MapName): number {
  const key = MAPS[map].key;
  return key === "u32" ? ARRAY_KEY_SIZE : LAYOUT[key].size;
}

export function valueSize(map: MapName): number {
  return LAYOUT[MAPS[map].value].size;
}
