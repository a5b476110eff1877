// Owns the OPA module's use of the evaluator core (../core.ts): loading the embedded tables
// once, and deciding one parsed request — classify the principal, decide, read the
// deciding rules. The core's caches are cleared before each decision, because the OPA host
// resets the heap between evaluations (heap.ts), so nothing one decision allocates may be
// read by the next.
import { classifyIdentity, clearIdentityCache, decide, INVALID_REQUEST, COMBINED_CAPACITY, loadErrorDetail, loadTables, LOAD_OK, resultReasonAt, resultReasonCount, UNIDENTIFIED } from "../core";
import { writeAscii, writeUnsigned } from "./writer";

const FLAG_ALLOW: u32 = 1;
const FLAG_DEFAULT: u32 = 2;

let loadError: u32 = LOAD_OK;
let result: u32 = 0;

/** Loads the tables (`ranks`: each rule's position in rule-id order); false when the core refuses them. */
export function loadCore(tables: usize, words: u32, rules: u32, ranks: usize): bool {
  loadError = loadTables(tables, words, rules, ranks);
  return loadError == LOAD_OK;
}

/** Why the core refused the tables (inside a JSON string). */
export function writeCoreError(): void {
  writeAscii("the module's embedded decision tables are invalid (load error ");
  writeUnsigned(loadError);
  writeAscii(", detail ");
  writeUnsigned(loadErrorDetail());
  writeAscii(")");
}

/**
 * Decides one request: `address` holds 4 (family 4) or 16 bytes in network order.
 * Returns false only for a request the core refuses, which a parsed request never is.
 */
export function decideRequest(identified: bool, principal: usize, principalLength: usize, uid: u32, gid: u32, family: u32, address: usize, port: u32, tcp: bool): bool {
  clearIdentityCache();
  const handle = identified ? classifyIdentity(principal, <u32>principalLength) : UNIDENTIFIED;
  const protocol: u32 = tcp ? 0 : 1;
  if (family == 4) result = decide(handle, uid, gid, protocol, port, 4, bswap<u32>(load<u32>(address)), 0, 0, 0);
  else result = decide(handle, uid, gid, protocol, port, 6, bswap<u32>(load<u32>(address)), bswap<u32>(load<u32>(address, 4)), bswap<u32>(load<u32>(address, 8)), bswap<u32>(load<u32>(address, 12)));
  return result != INVALID_REQUEST && result != COMBINED_CAPACITY;
}

export function decisionAllows(): bool {
  return (result & FLAG_ALLOW) != 0;
}

export function decisionIsDefault(): bool {
  return (result & FLAG_DEFAULT) != 0;
}

export function decisionReasonCount(): u32 {
  return resultReasonCount(result);
}

/** The i-th deciding rule (rule index), in rule-id order. */
export function decisionReason(i: u32): u32 {
  return resultReasonAt(result, i);
}
