// Owns the payload a compiled OPA module carries (written by runtime/opa-module.ts, see
// docs/opa-wasm.md): the bundle's decision tables, each rule id as a ready JSON string
// literal, and each workload's name, SPIFFE ID and default uid/gid. It is copied out of a
// passive data segment once, at instantiation, and checked before anything reads it.
//
// Layout, 32-bit little-endian words:
//   0 magic "PCOW", 1 version, 2 table words T, 3 rules R, 4 workloads W, 5 string bytes S,
//   then T table words, R × (offset, length) of each rule's JSON literal, R ranks (each
//   rule's position in rule-id order), W × (name offset, name length, id offset, id length,
//   default uid, default gid), then S string bytes (padded to a multiple of 4).

export const PAYLOAD_MAGIC: u32 = 0x574f4350; // "PCOW"
export const PAYLOAD_VERSION: u32 = 1;
const HEADER_WORDS: usize = 6;
const RULE_WORDS: usize = 2;
const WORKLOAD_WORDS: usize = 6;

// The placeholders below are replaced by `portcullis compile --target opa-wasm` with
// functions that return the payload's size and copy it (memory.init of a passive segment).
// @ts-ignore: decorator
@external("portcullis", "payload_size")
declare function payloadSize(): usize;
// @ts-ignore: decorator
@external("portcullis", "payload_copy")
declare function payloadCopy(destination: usize): void;

export let tables: usize = 0;
export let tableWords: u32 = 0;
export let ruleCount: u32 = 0;
export let workloadCount: u32 = 0;
export let ranks: usize = 0;
let rules: usize = 0;
let workloads: usize = 0;
let strings: usize = 0;

/** Copies the payload into the heap and checks its layout; false when it is malformed. */
export function loadPayload(): bool {
  const size = payloadSize();
  if (size < HEADER_WORDS * 4 || size & 3) return false;
  const base = __alloc(size);
  payloadCopy(base);
  if (load<u32>(base) != PAYLOAD_MAGIC || load<u32>(base, 4) != PAYLOAD_VERSION) return false;
  tableWords = load<u32>(base, 8);
  ruleCount = load<u32>(base, 12);
  workloadCount = load<u32>(base, 16);
  const stringBytes = <u64>load<u32>(base, 20);
  const words = <u64>HEADER_WORDS + <u64>tableWords + <u64>ruleCount * (RULE_WORDS + 1) + <u64>workloadCount * WORKLOAD_WORDS;
  if (words * 4 + ((stringBytes + 3) & ~3) != <u64>size) return false;
  tables = base + HEADER_WORDS * 4;
  rules = tables + (<usize>tableWords << 2);
  ranks = rules + <usize>ruleCount * RULE_WORDS * 4;
  workloads = ranks + <usize>ruleCount * 4;
  strings = workloads + <usize>workloadCount * WORKLOAD_WORDS * 4;
  for (let i: u32 = 0; i < ruleCount; i++) if (!inStrings(rules + <usize>i * RULE_WORDS * 4, stringBytes)) return false;
  for (let i: u32 = 0; i < workloadCount; i++) {
    const w = workloads + <usize>i * WORKLOAD_WORDS * 4;
    if (!inStrings(w, stringBytes) || !inStrings(w + 8, stringBytes)) return false;
  }
  return true;
}

/** Whether the (offset, length) pair at `pair` lies inside the string bytes. */
function inStrings(pair: usize, stringBytes: u64): bool {
  return <u64>load<u32>(pair) + <u64>load<u32>(pair, 4) <= stringBytes;
}

/** Address and length of rule `index`'s id as a JSON string literal (quotes included). */
export function ruleLiteral(index: u32): usize {
  return strings + <usize>load<u32>(rules + <usize>index * RULE_WORDS * 4);
}

export function ruleLiteralLength(index: u32): usize {
  return <usize>load<u32>(rules + <usize>index * RULE_WORDS * 4, 4);
}

/** The workload named `name[0..length)`, or -1. */
export function findWorkload(name: usize, length: usize): i32 {
  for (let i: u32 = 0; i < workloadCount; i++) {
    const w = workloads + <usize>i * WORKLOAD_WORDS * 4;
    if (<usize>load<u32>(w, 4) == length && memory.compare(strings + <usize>load<u32>(w), name, length) == 0) return <i32>i;
  }
  return -1;
}

export function workloadId(index: i32): usize {
  return strings + <usize>load<u32>(workloads + <usize>index * WORKLOAD_WORDS * 4, 8);
}

export function workloadIdLength(index: i32): usize {
  return <usize>load<u32>(workloads + <usize>index * WORKLOAD_WORDS * 4, 12);
}

export function workloadUid(index: i32): u32 {
  return load<u32>(workloads + <usize>index * WORKLOAD_WORDS * 4, 16);
}

export function workloadGid(index: i32): u32 {
  return load<u32>(workloads + <usize>index * WORKLOAD_WORDS * 4, 20);
}
