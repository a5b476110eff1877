// Owns the OPA WebAssembly ABI (1.2) of a compiled Portcullis policy: the exports an OPA
// SDK needs (`opa_eval` fast path, the evaluation-context path, value parse/dump, heap,
// version globals, `builtins`, `entrypoints`), imports limited to `env.memory` and
// `env.opa_abort`, and the one entrypoint `portcullis/decision`, which reads the input
// request and answers with the decision of the embedded tables through the evaluator core.
// docs/opa-wasm.md describes the ABI subset, the embedding and the error results.
//
// INVARIANT: no input makes an export trap. Every address the host passes is checked
// against the memory size before it is read; the host's heap resets can never reach the
// persistent part (payload, tables, static values).
// The abort hook (`--use abort=…` in package.json) must be part of the program.
import "./opa/abort";
import { decideRequest, decisionAllows, decisionIsDefault, decisionReason, decisionReasonCount, loadCore, writeCoreError } from "./opa/decide";
import { heapTop, sealHeap, setHeapTop } from "./opa/heap";
import { atEnd, scanValue, skipWhitespace, startScan } from "./opa/json";
import { loadPayload, ranks, ruleCount, ruleLiteral, ruleLiteralLength, tables, tableWords } from "./opa/payload";
import { family, addressBytes } from "./opa/address";
import { gid, identified, port, principal, principalLength, readRequest, tcp, uid, writeRefusal } from "./opa/request";
import { beginOutput, endOutput, writeAscii, writeBytes, writeUnsigned } from "./opa/writer";

export const opa_wasm_abi_version: i32 = 1;
export const opa_wasm_abi_minor_version: i32 = 2;

const STATE_READY: u32 = 0;
const STATE_BAD_PAYLOAD: u32 = 1;
const STATE_BAD_TABLES: u32 = 2;

// ---------------------------------------------------------------- values
// A value is an 8-byte record (address, length) of NUL-terminated JSON text; dumping it
// returns the text's address.

function makeValue(text: usize, length: usize): usize {
  const value = __alloc(8);
  store<u32>(value, <u32>text);
  store<u32>(value, <u32>length, 4);
  return value;
}

function makeStaticValue(text: string): usize {
  beginOutput();
  writeAscii(text);
  const address = endOutput();
  return makeValue(address, <usize>text.length);
}

// ---------------------------------------------------------------- instantiation

let state: u32 = STATE_READY;
if (!loadPayload()) state = STATE_BAD_PAYLOAD;
else if (!loadCore(tables, tableWords, ruleCount, ranks)) state = STATE_BAD_TABLES;
const builtinsValue = makeStaticValue("{}");
const entrypointsValue = makeStaticValue('{"portcullis/decision":0}');
const nullValue = makeStaticValue("null");
sealHeap();

// ---------------------------------------------------------------- bounds

/** Whether `[address, address + length)` lies inside the memory. */
function inMemory(address: usize, length: usize): bool {
  const size = <u64>memory.size() << 16;
  return <u64>address + <u64>length <= size;
}

// ---------------------------------------------------------------- evaluation

/** Evaluates entrypoint `entrypoint` on the input text; returns the NUL-terminated result set. */
function evaluateText(entrypoint: i32, input: usize, length: usize): usize {
  beginOutput();
  writeAscii('[{"result":{');
  if (entrypoint != 0) {
    writeAscii('"error":"unknown entrypoint ');
    writeUnsigned(<u32>entrypoint);
    writeAscii('; the only one is 0 (portcullis/decision)","field":"entrypoint"');
  } else if (state != STATE_READY) {
    writeAscii('"error":"');
    if (state == STATE_BAD_PAYLOAD) writeAscii("the module's embedded policy is malformed");
    else writeCoreError();
    writeAscii('","field":"policy"');
  } else if (!inMemory(input, length)) {
    writeAscii('"error":"the input lies outside the memory","field":"request"');
  } else if (!readRequest(input, length)) {
    writeRefusal();
  } else if (!decideRequest(identified, principal, principalLength, uid, gid, family, addressBytes, port, tcp)) {
    writeAscii('"error":"the evaluator could not decide this request","field":"request"');
  } else {
    writeAscii(decisionAllows() ? '"decision":"allow","reasons":[' : '"decision":"deny","reasons":[');
    const n = decisionReasonCount();
    for (let i: u32 = 0; i < n; i++) {
      if (i > 0) writeAscii(",");
      const rule = decisionReason(i);
      writeBytes(ruleLiteral(rule), ruleLiteralLength(rule));
    }
    writeAscii(decisionIsDefault() ? '],"default":true' : '],"default":false');
  }
  writeAscii("}}]");
  return endOutput();
}

// ---------------------------------------------------------------- the ABI

/** Builtin functions the policy calls: none. */
export function builtins(): usize {
  return builtinsValue;
}

export function entrypoints(): usize {
  return entrypointsValue;
}

export function opa_malloc(size: usize): usize {
  return __alloc(size);
}

/** Blocks are reclaimed only by the host's heap resets (a bump allocator). */
export function opa_free(_address: usize): void {}

export function opa_heap_ptr_get(): usize {
  return heapTop();
}

export function opa_heap_ptr_set(address: usize): void {
  setHeapTop(address);
}

/** Parses JSON text into a value; 0 when the text is not one JSON value. */
export function opa_json_parse(text: usize, length: usize): usize {
  if (!inMemory(text, length)) return 0;
  startScan(text, text + length);
  skipWhitespace();
  if (scanValue(0) == 0 || !atEnd()) return 0;
  const copy = __alloc(length + 1);
  memory.copy(copy, text, length);
  store<u8>(copy + length, 0);
  return makeValue(copy, length);
}

/** The value text format of OPA is a superset of JSON; Portcullis reads JSON only. */
export function opa_value_parse(text: usize, length: usize): usize {
  return opa_json_parse(text, length);
}

export function opa_json_dump(value: usize): usize {
  if (value == 0 || !inMemory(value, 8)) value = nullValue;
  return <usize>load<u32>(value);
}

export function opa_value_dump(value: usize): usize {
  return opa_json_dump(value);
}

/**
 * ABI 1.2 fast path: the input text is at `input` (`length` bytes), the heap continues at
 * `heapAddress`; `data` is ignored (a Portcullis policy reads no data document) and the
 * result is always JSON text whatever `format` asks.
 */
export function opa_eval(_reserved: i32, entrypoint: i32, _data: usize, input: usize, length: usize, heapAddress: usize, _format: i32): usize {
  setHeapTop(heapAddress);
  return evaluateText(entrypoint, input, length);
}

// The evaluation-context path (ABI 1.0/1.1 hosts): a context is (input, data, entrypoint, result).

export function opa_eval_ctx_new(): usize {
  const context = __alloc(16);
  memory.fill(context, 0, 16);
  return context;
}

export function opa_eval_ctx_set_input(context: usize, value: usize): void {
  if (inMemory(context, 16)) store<u32>(context, <u32>value);
}

export function opa_eval_ctx_set_data(context: usize, value: usize): void {
  if (inMemory(context, 16)) store<u32>(context, <u32>value, 4);
}

export function opa_eval_ctx_set_entrypoint(context: usize, entrypoint: i32): void {
  if (inMemory(context, 16)) store<i32>(context, entrypoint, 8);
}

export function opa_eval_ctx_get_result(context: usize): usize {
  return inMemory(context, 16) ? <usize>load<u32>(context, 12) : nullValue;
}

/** Evaluates a context; returns 0 (OK). A refused input is a result, not an error code. */
export function eval(context: usize): i32 {
  if (!inMemory(context, 16)) return 1;
  let input = <usize>load<u32>(context);
  let text: usize = 0;
  let length: usize = 0;
  if (input != 0 && inMemory(input, 8)) {
    text = <usize>load<u32>(input);
    length = <usize>load<u32>(input, 4);
  }
  const result = evaluateText(load<i32>(context, 8), text, length);
  let end = result;
  while (load<u8>(end) != 0) end++;
  store<u32>(context, <u32>makeValue(result, end - result), 12);
  return 0;
}
