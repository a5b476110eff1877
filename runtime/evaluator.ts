// Owns the TypeScript API of the WASM evaluator (issue 4): loading a bundle's decision
// tables into a fresh instance of dist/runtime/evaluator.wasm (built from
// runtime/assembly/), and deciding requests with it — one `Request` at a time in the
// reference's `Decision` shape, in batches, or as integers for callers that keep their
// own encoding (benchmarks, the agent). docs/wasm-evaluator.md documents the module's ABI.
//
// INVARIANT: nothing a caller passes makes a WebAssembly trap escape. Requests are
// checked here (RequestError, one line per bad field) and again in the module; corrupt
// tables are refused at load (EvaluatorLoadError); a trap (only memory exhaustion can
// cause one) becomes an EvaluatorError and the instance refuses further use.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RequestError, type Decision, type Request } from "../compiler/request.js";

/** What the evaluator needs from a bundle (compiler/bundle.ts `Bundle`) or built tables. */
export interface TablesInput {
  readonly words: Uint32Array;
  readonly ruleIds: readonly string[];
}

/** The module's exports (runtime/assembly/core.ts documents each). */
interface EvaluatorExports {
  readonly memory: WebAssembly.Memory;
  alloc(bytes: number): number;
  free(ptr: number): void;
  loadTables(ptr: number, words: number, rules: number, ranks: number): number;
  loadErrorDetail(): number;
  classifyIdentity(ptr: number, length: number): number;
  identityCount(): number;
  decide(handle: number, uid: number, gid: number, protocol: number, port: number, family: number, a0: number, a1: number, a2: number, a3: number): number;
  decideBatch(requests: number, count: number, results: number): void;
  resultReasonCount(result: number): number;
  resultReasonAt(result: number, i: number): number;
  configureGroups(firstRegroup: number, budget: number): void;
  groupedIdentities(): number;
}

/** Identity handle of `unidentified`; no classification needed. */
export const UNIDENTIFIED_HANDLE = 0;
/** The handle of an ID classified once the identity cache is full: valid until the next classification. */
export const TRANSIENT_HANDLE = 1;
/** Words per request in a batch: handle, uid, gid, protocol, port, family, address words 0..3. */
export const REQUEST_WORDS = 10;
export const PROTOCOL_CODE = { tcp: 0, udp: 1 } as const;
/** A result's flags: bit 0 allow, bit 1 default; the rest names the reasons. */
export const RESULT_ALLOW = 1;
export const RESULT_DEFAULT = 2;
const INVALID_REQUEST = 0xffffffff;
const COMBINED_CAPACITY = 0xfffffffe;

/** The tables were refused at load; the message is one line. */
export class EvaluatorLoadError extends Error {}

/** The module failed while deciding (out of memory); the instance is unusable from then on. */
export class EvaluatorError extends Error {}

/** One line per LOAD_* code of core.ts (`%` is the detail: a section id or component index). */
const LOAD_ERRORS: Record<number, string> = {
  1: "the tables are empty",
  2: "the table directory is truncated",
  3: "section % lies outside the tables",
  4: "section % appears twice",
  5: "section % is missing",
  6: "META is truncated",
  7: "the tables have % rules but the manifest names #",
  8: "META's empty term names no class list",
  9: "COMPONENTS has the wrong size",
  10: "component % lies outside DFA_DATA",
  11: "component % byte classes hold an index out of range",
  12: "component % transitions hold an index out of range",
  13: "component % names no class list for a DFA state",
  14: "PATTERN_INDEX has the wrong size",
  15: "PATTERN_INDEX points outside PATTERN_DATA",
  16: "PATTERN_DATA points outside PATTERN_BYTES",
  17: "a term pattern has no wildcard",
  18: "TERM_INDEX has the wrong size",
  19: "TERM_INDEX is not ordered",
  20: "TERM_DATA holds a bad term",
  21: "TERM_DATA names a bad pattern",
  22: "TERM_DATA names no class list",
  23: "EXACT_IDS has the wrong size",
  24: "EXACT_IDS points outside its bytes",
  25: "a destination table has a partial entry",
  26: "DST_V4 holds a bad entry",
  27: "DST_V6 holds a bad entry",
  28: "PAIRS has the wrong size",
  29: "PAIRS holds a row out of range",
  30: "DEFAULT_ROW has the wrong size",
  31: "DEFAULT_ROW holds a row out of range",
  32: "ROW_INDEX has the wrong size",
  33: "VERDICTS has the wrong size",
  34: "VERDICTS holds a reason set out of range",
  35: "ROW_DATA block out of range",
  36: "ROW_DATA holds a bad list",
  37: "ROW_DATA protocol block out of range",
  38: "ROW_DATA holds a bad verdict",
  39: "REASON_INDEX has the wrong size",
  40: "REASON_INDEX is not ordered",
  41: "REASON_DATA holds a rule index out of range",
  42: "the evaluator is already loaded",
  43: "the tables have too many reason sets for the evaluator",
  44: "CLASS_LISTS holds a bad list",
  45: "META's unidentified names no class list",
  46: "DST_PARENT has the wrong size",
  47: "DST_PARENT holds a bad parent",
  48: "PAIRS holds an identity class out of range",
  49: "PAIRS holds a destination class out of range",
  50: "EXACT_IDS names no class list",
};

let compiled: WebAssembly.Module | undefined;

/** The compiled module, read once: beside this file in dist/, or in dist/ when running from sources. */
function evaluatorModule(): WebAssembly.Module {
  if (compiled !== undefined) return compiled;
  const candidates = [new URL("./evaluator.wasm", import.meta.url), new URL("../dist/runtime/evaluator.wasm", import.meta.url)];
  for (const url of candidates) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = new Uint8Array(readFileSync(fileURLToPath(url)));
    } catch {
      continue;
    }
    compiled = new WebAssembly.Module(bytes);
    return compiled;
  }
  throw new EvaluatorLoadError("the WASM evaluator is not built (dist/runtime/evaluator.wasm is missing); run `npm run build`");
}

/** Rule index → position in rule-id order (the order of a combined decision's reasons). */
export function ruleRanks(ruleIds: readonly string[]): Uint32Array {
  const order = ruleIds.map((_, i) => i).sort((a, b) => (ruleIds[a]! < ruleIds[b]! ? -1 : ruleIds[a]! > ruleIds[b]! ? 1 : a - b));
  const ranks = new Uint32Array(ruleIds.length);
  order.forEach((rule, rank) => (ranks[rule] = rank));
  return ranks;
}

/** A request field that must be an integer in 0..limit (a u32 or a port). */
function checkInteger(field: string, value: unknown, limit: number): number {
  if (typeof value !== "number" || value >>> 0 !== value || value > limit) {
    throw new RequestError(field, `\`${field}\` must be an integer in 0..${limit}, not ${JSON.stringify(value)}`);
  }
  return value;
}

function badAddress(r: Request): RequestError {
  const family = r.family === 4 || r.family === 6 ? `IPv${r.family}` : `IPv4 or IPv6 (family 4 or 6, not ${JSON.stringify(r.family)})`;
  return new RequestError("ip", `\`ip\` must be the ${r.family === 6 ? 16 : 4} bytes (integers in 0..255) of an ${family} address`);
}

/** Address bytes `at..at+3` as one big-endian word; -1 when any is not a byte. */
function addressWord(ip: readonly number[], at: number): number {
  const a = ip[at]!;
  const b = ip[at + 1]!;
  const c = ip[at + 2]!;
  const d = ip[at + 3]!;
  if ((a & 255) !== a || (b & 255) !== b || (c & 255) !== c || (d & 255) !== d) return -1;
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

export class WasmEvaluator {
  private readonly exports: EvaluatorExports;
  private readonly ruleIds: readonly string[];
  private readonly tableBytes: number;
  private readonly handles = new Map<string, number>();
  private readonly decisions = new Map<number, Decision>();
  private readonly encoder = new TextEncoder();
  private readonly scratch = new Uint32Array(REQUEST_WORDS);
  private idBuffer = 0;
  private idBufferBytes = 0;
  private broken: string | undefined;

  constructor(tables: TablesInput) {
    this.exports = new WebAssembly.Instance(evaluatorModule(), {}).exports as unknown as EvaluatorExports;
    this.ruleIds = tables.ruleIds;
    this.tableBytes = tables.words.byteLength;
    const e = this.exports;
    const ranks = ruleRanks(tables.ruleIds);
    let code: number;
    try {
      const tablesPtr = e.alloc(tables.words.byteLength);
      new Uint32Array(e.memory.buffer, tablesPtr, tables.words.length).set(tables.words);
      const ranksPtr = e.alloc(Math.max(ranks.byteLength, 4));
      new Uint32Array(e.memory.buffer, ranksPtr, ranks.length).set(ranks);
      code = e.loadTables(tablesPtr, tables.words.length, tables.ruleIds.length, ranksPtr);
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError || error instanceof RangeError) {
        throw new EvaluatorLoadError(`the WASM evaluator cannot hold tables of ${tables.words.byteLength} bytes (${error.message})`);
      }
      throw error;
    }
    if (code !== 0) {
      const detail = e.loadErrorDetail() >>> 0;
      const template = LOAD_ERRORS[code] ?? `the evaluator refused the tables (code ${code})`;
      throw new EvaluatorLoadError(template.replace("%", String(detail)).replace("#", String(tables.ruleIds.length)));
    }
    this.reserveIdBuffer(256);
  }

  /**
   * Tuning, for tests: the module merges the classes many identities share into class groups
   * (docs/wasm-evaluator.md), choosing them first once `firstRegroup` classified identities
   * combine classes (64 by default) and building none past `budgetBytes` (a quarter of the
   * tables by default). Only before the first classification; ignored after it.
   */
  configureGroups(firstRegroup: number, budgetBytes: number): void {
    this.checkUsable();
    this.exports.configureGroups(firstRegroup >>> 0, Math.min(budgetBytes, 0xffffffff) >>> 0);
  }

  /** Classified identities whose decisions go through a class group. */
  get groupedIdentities(): number {
    return this.exports.groupedIdentities() >>> 0;
  }

  /** Bytes of linear memory the instance holds (tables, lookup structures, caches). */
  get memoryBytes(): number {
    return this.exports.memory.buffer.byteLength;
  }

  /** Bytes of the tables as loaded. */
  get tableSize(): number {
    return this.tableBytes;
  }

  private reserveIdBuffer(bytes: number): void {
    if (this.idBufferBytes >= bytes) return;
    if (this.idBuffer !== 0) this.exports.free(this.idBuffer);
    this.idBufferBytes = Math.max(bytes, this.idBufferBytes * 2);
    this.idBuffer = this.exports.alloc(this.idBufferBytes);
  }

  private trap(e: unknown): never {
    if (e instanceof WebAssembly.RuntimeError) {
      this.broken = `the WASM evaluator failed (${e.message}); load the tables again`;
      throw new EvaluatorError(this.broken);
    }
    throw e;
  }

  private checkUsable(): void {
    if (this.broken !== undefined) throw new EvaluatorError(this.broken);
  }

  /**
   * The identity handle of a principal (null: unidentified), classified once and cached.
   * A handle equal to TRANSIENT_HANDLE is valid only until the next classification.
   */
  identityHandle(principal: string | null): number {
    if (principal === null) return UNIDENTIFIED_HANDLE;
    const cached = this.handles.get(principal);
    if (cached !== undefined) return cached;
    if (typeof principal !== "string") throw new RequestError("principal", `\`principal\` must be a SPIFFE ID or null, not ${JSON.stringify(principal)}`);
    this.checkUsable();
    try {
      this.reserveIdBuffer(principal.length * 3);
      const view = new Uint8Array(this.exports.memory.buffer, this.idBuffer, this.idBufferBytes);
      const { written } = this.encoder.encodeInto(principal, view);
      const handle = this.exports.classifyIdentity(this.idBuffer, written) >>> 0;
      if (handle !== TRANSIENT_HANDLE) this.handles.set(principal, handle);
      return handle;
    } catch (e) {
      return this.trap(e);
    }
  }

  /** Decides one integer-encoded request (see docs/wasm-evaluator.md): the raw result word. */
  decideEncoded(handle: number, uid: number, gid: number, protocol: number, port: number, family: number, a0: number, a1: number, a2: number, a3: number): number {
    this.checkUsable();
    try {
      return this.exports.decide(handle, uid, gid, protocol, port, family, a0, a1, a2, a3) >>> 0;
    } catch (e) {
      return this.trap(e);
    }
  }

  /** Decides `count` encoded requests at `requests` in the module's memory, writing result words at `results`. */
  decideBatchAt(requests: number, count: number, results: number): void {
    this.checkUsable();
    try {
      this.exports.decideBatch(requests, count, results);
    } catch (e) {
      this.trap(e);
    }
  }

  /** Decides one request in the reference's shape. */
  decide(request: Request): Decision {
    return this.decision(this.resultOf(request));
  }

  /**
   * Decides many requests with one call into the module. A request whose identity did not
   * fit the cache (TRANSIENT_HANDLE) is decided alone, at once, since its handle is
   * reused by the next such identity.
   */
  decideBatch(requests: readonly Request[]): Decision[] {
    const batch = this.createBatch(requests.length);
    const alone = new Map<number, number>();
    try {
      requests.forEach((r, i) => {
        const w = this.scratch;
        this.encodeInto(r, w, 0);
        if (w[0] === TRANSIENT_HANDLE) alone.set(i, this.decideEncoded(w[0], w[1]!, w[2]!, w[3]!, w[4]!, w[5]!, w[6]!, w[7]!, w[8]!, w[9]!));
        batch.requests.set(w, i * REQUEST_WORDS);
      });
      batch.run(requests.length);
      return requests.map((_, i) => this.decision(alone.get(i) ?? batch.result(i)));
    } finally {
      batch.release();
    }
  }

  /** A buffer of `capacity` requests in the module's memory, decided with one call (see RequestBatch). */
  createBatch(capacity: number): RequestBatch {
    this.checkUsable();
    return new RequestBatch(this, this.exports, capacity);
  }

  /** Encodes and checks a request; returns its raw result. */
  private resultOf(r: Request): number {
    const w = this.scratch;
    this.encodeInto(r, w, 0);
    return this.decideEncoded(w[0]!, w[1]!, w[2]!, w[3]!, w[4]!, w[5]!, w[6]!, w[7]!, w[8]!, w[9]!);
  }

  /** The request's REQUEST_WORDS words; RequestError for any field out of range. */
  encode(r: Request): Uint32Array {
    const words = new Uint32Array(REQUEST_WORDS);
    this.encodeInto(r, words, 0);
    return words;
  }

  /**
   * Writes the request's REQUEST_WORDS words at `target[offset]`; RequestError for any
   * field out of range. `target` must not be a view of the module's memory: classifying
   * the identity may grow it (RequestBatch.set copies through a scratch array).
   */
  encodeInto(r: Request, target: Uint32Array, offset: number): void {
    const uid = checkInteger("uid", r.uid, 0xffffffff);
    const gid = checkInteger("gid", r.gid, 0xffffffff);
    const port = checkInteger("port", r.port, 65535);
    const protocol = r.protocol === "tcp" ? PROTOCOL_CODE.tcp : r.protocol === "udp" ? PROTOCOL_CODE.udp : -1;
    if (protocol < 0) throw new RequestError("protocol", `\`protocol\` must be "tcp" or "udp", not ${JSON.stringify(r.protocol)}`);
    const ip = r.ip;
    const length = r.family === 4 ? 4 : r.family === 6 ? 16 : -1;
    if (!Array.isArray(ip) || ip.length !== length) throw badAddress(r);
    let a0 = addressWord(ip, 0);
    let a1 = 0;
    let a2 = 0;
    let a3 = 0;
    if (length === 16) {
      a1 = addressWord(ip, 4);
      a2 = addressWord(ip, 8);
      a3 = addressWord(ip, 12);
    }
    if (a0 < 0 || a1 < 0 || a2 < 0 || a3 < 0) throw badAddress(r);
    target[offset] = this.identityHandle(r.principal);
    target[offset + 1] = uid;
    target[offset + 2] = gid;
    target[offset + 3] = protocol;
    target[offset + 4] = port;
    target[offset + 5] = length === 4 ? 4 : 6;
    target[offset + 6] = a0;
    target[offset + 7] = a1;
    target[offset + 8] = a2;
    target[offset + 9] = a3;
  }

  /** The decision a result word stands for (cached per result); an error result throws. */
  decision(result: number): Decision {
    const cached = this.decisions.get(result);
    if (cached !== undefined) return cached;
    if (result === INVALID_REQUEST) throw new RequestError("request", "the evaluator refused the request (a field out of range, or an unknown identity handle)");
    if (result === COMBINED_CAPACITY) throw new EvaluatorError("the evaluator holds too many distinct combined decisions; load the tables again");
    const e = this.exports;
    const reasons: string[] = [];
    const n = e.resultReasonCount(result) >>> 0;
    for (let i = 0; i < n; i++) reasons.push(this.ruleIds[e.resultReasonAt(result, i) >>> 0]!);
    const decision: Decision = Object.freeze({ decision: result & RESULT_ALLOW ? "allow" : "deny", reasons: Object.freeze(reasons), default: (result & RESULT_DEFAULT) !== 0 });
    this.decisions.set(result, decision);
    return decision;
  }
}

/**
 * Requests laid out in the module's memory, REQUEST_WORDS words each, and their result
 * words: fill them (`set`, or `requests` directly), then `run(n)` decides the first n with
 * one call. Views are renewed when the module's memory grows.
 */
export class RequestBatch {
  private readonly requestPtr: number;
  private readonly resultPtr: number;
  private buffer: ArrayBuffer | undefined;
  private requestView = new Uint32Array(0);
  private resultView = new Uint32Array(0);

  constructor(
    private readonly evaluator: WasmEvaluator,
    private readonly exports: Pick<EvaluatorExports, "memory" | "alloc" | "free">,
    readonly capacity: number,
  ) {
    this.requestPtr = exports.alloc(Math.max(1, capacity) * REQUEST_WORDS * 4);
    this.resultPtr = exports.alloc(Math.max(1, capacity) * 4);
  }

  private views(): void {
    const buffer = this.exports.memory.buffer;
    if (buffer === this.buffer) return;
    this.buffer = buffer;
    this.requestView = new Uint32Array(buffer, this.requestPtr, this.capacity * REQUEST_WORDS);
    this.resultView = new Uint32Array(buffer, this.resultPtr, this.capacity);
  }

  /** The request words (valid until the module's memory grows: re-read after classifying or running). */
  get requests(): Uint32Array {
    this.views();
    return this.requestView;
  }

  get results(): Uint32Array {
    this.views();
    return this.resultView;
  }

  /** Encodes request `i`. An identity that did not fit the cache cannot be batched (EvaluatorError): decide it alone. */
  set(i: number, r: Request): void {
    if (!(i >= 0 && i < this.capacity)) throw new RangeError(`batch index ${i} outside 0..${this.capacity - 1}`);
    const words = this.evaluator.encode(r);
    if (words[0] === TRANSIENT_HANDLE) throw new EvaluatorError("the identity cache is full: decide requests of this identity with decide(), not in a batch");
    this.requests.set(words, i * REQUEST_WORDS);
  }

  run(count: number): void {
    if (!(Number.isInteger(count) && count >= 0 && count <= this.capacity)) throw new RangeError(`batch count ${count} outside 0..${this.capacity}`);
    this.evaluator.decideBatchAt(this.requestPtr, count, this.resultPtr);
  }

  result(i: number): number {
    return this.results[i]! >>> 0;
  }

  release(): void {
    this.exports.free(this.requestPtr);
    this.exports.free(this.resultPtr);
  }
}

/** Loads a bundle's tables (or tables just built) into a fresh evaluator instance. */
export function loadEvaluator(tables: TablesInput): WasmEvaluator {
  return new WasmEvaluator(tables);
}
