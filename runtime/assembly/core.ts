// Owns deciding from the decision tables of docs/bundle-format.md inside WebAssembly:
// loading and validating the tables once, classifying identities (with a cache), and
// deciding integer-encoded requests with no rule loop. The entry modules (the fast-path
// evaluator, the OPA-ABI module) import this API and add only their own exports.
//
// API (all integers unsigned 32-bit; pointers are byte addresses in linear memory):
//   loadTables(ptr, words, ruleCount, ranks) → 0, or a LOAD_* error code (see loadErrorDetail)
//       The tables' words at `ptr` (4-byte aligned, owned by the evaluator from then on).
//       `ranks` (0 for none) points at `ruleCount` words: each rule's position in rule-id
//       order, which orders the reasons of a combined decision. Only the first call loads.
//   classifyIdentity(ptr, length) → identity handle of the UTF-8 SPIFFE ID at `ptr`
//       Cached per ID. UNIDENTIFIED (0) needs no classification (its class list is read at
//       load). Once the cache is full, an uncached ID gets TRANSIENT_HANDLE, valid until the
//       next classifyIdentity call.
//   decide(handle, uid, gid, protocol, port, family, a0, a1, a2, a3) → result
//       protocol 0 tcp / 1 udp; family 4 (address in a0) or 6 (a0..a3, most significant
//       first; a v4-mapped address is looked up as IPv4). INVALID_REQUEST for a handle,
//       protocol, port or family out of range; COMBINED_CAPACITY (never in practice).
//   decideBatch(requests, count, results): decides `count` requests of REQUEST_WORDS words
//       each (the decide arguments in order) and writes one result word per request;
//       TRANSIENT_HANDLE is refused there (it may stand for another ID by then).
//   A result is `flags | reasonRef << 2`: flags bit 0 allow, bit 1 default; reasonRef
//   names the deciding rules, read with resultReasonCount(result) / resultReasonAt(result, i)
//   (rule indices, in reason order).
//   configureGroups(firstRegroup, budget), groupedIdentities(): class groups (below), for tests.
//
// INVARIANT: after loadTables returns 0, no lookup can leave the tables: every offset,
// length and stored index was checked against what it indexes, exactly as strictly as
// compiler/table-eval.ts (DecisionTableReader), so both accept the same tables and decide
// every request alike. Nothing here traps on any input; only memory exhaustion can.

// ---------------------------------------------------------------- constants

export const UNIDENTIFIED: u32 = 0;
export const TRANSIENT_HANDLE: u32 = 1;
export const REQUEST_WORDS: u32 = 10;
export const INVALID_REQUEST: u32 = 0xffffffff;
export const COMBINED_CAPACITY: u32 = 0xfffffffe;
export const MAX_CACHED_IDENTITIES: u32 = 65536;
export const MAX_COMBINED: u32 = 1 << 20;

const EMPTY_SLOT: u32 = 0xffffffff;
const FLAG_ALLOW: u32 = 1;
const FLAG_DEFAULT: u32 = 2;
const MAX_SECTIONS: u32 = 64;
const SECTION_IDS: u32 = 21;
/** At most this many classes in one class list (compiler/tables.ts MAX_LIST_CLASSES). */
const MAX_LIST_CLASSES: u32 = 8;
/** reasonRef must stay below 2^30 - 1 so that no result equals an error code. */
const MAX_REASON_SETS: u32 = 1 << 28;

const META: u32 = 1;
const COMPONENTS: u32 = 2;
const DFA_DATA: u32 = 3;
const TERM_INDEX: u32 = 4;
const DST_V4: u32 = 5;
const DST_V6: u32 = 6;
const PAIRS: u32 = 7;
const DEFAULT_ROW: u32 = 8;
const ROW_INDEX: u32 = 9;
const ROW_DATA: u32 = 10;
const VERDICTS: u32 = 11;
const REASON_INDEX: u32 = 12;
const REASON_DATA: u32 = 13;
const EXACT_IDS: u32 = 14;
const EXACT_BYTES: u32 = 15;
const PATTERN_INDEX: u32 = 16;
const PATTERN_DATA: u32 = 17;
const PATTERN_BYTES: u32 = 18;
const TERM_DATA: u32 = 19;
const CLASS_LISTS: u32 = 20;
const DST_PARENT: u32 = 21;

// Load errors: runtime/evaluator.ts turns each into one line (loadErrorDetail adds the
// section id or the component index where it says so).
export const LOAD_OK: u32 = 0;
export const LOAD_EMPTY: u32 = 1;
export const LOAD_DIRECTORY: u32 = 2;
export const LOAD_SECTION_OUTSIDE: u32 = 3; // detail: section id
export const LOAD_SECTION_TWICE: u32 = 4; // detail: section id
export const LOAD_SECTION_MISSING: u32 = 5; // detail: section id
export const LOAD_META: u32 = 6;
export const LOAD_RULE_COUNT: u32 = 7; // detail: the tables' rule count
export const LOAD_EMPTY_TERM_LIST: u32 = 8;
export const LOAD_COMPONENTS_SIZE: u32 = 9;
export const LOAD_COMPONENT_OUTSIDE: u32 = 10; // detail: component
export const LOAD_COMPONENT_BYTE_CLASS: u32 = 11; // detail: component
export const LOAD_COMPONENT_TRANSITION: u32 = 12; // detail: component
export const LOAD_COMPONENT_STATE_LIST: u32 = 13; // detail: component
export const LOAD_PATTERN_INDEX: u32 = 14;
export const LOAD_PATTERN_OUTSIDE: u32 = 15;
export const LOAD_PATTERN_BYTES: u32 = 16;
export const LOAD_PATTERN_WILDCARD: u32 = 17;
export const LOAD_TERM_INDEX: u32 = 18;
export const LOAD_TERM_ORDER: u32 = 19;
export const LOAD_TERM: u32 = 20;
export const LOAD_TERM_PATTERN: u32 = 21;
export const LOAD_TERM_LIST: u32 = 22;
export const LOAD_EXACT_SIZE: u32 = 23;
export const LOAD_EXACT_OUTSIDE: u32 = 24;
export const LOAD_DST_PARTIAL: u32 = 25;
export const LOAD_DST_V4: u32 = 26;
export const LOAD_DST_V6: u32 = 27;
export const LOAD_PAIRS_SIZE: u32 = 28;
export const LOAD_PAIRS_ROW: u32 = 29;
export const LOAD_DEFAULT_ROW_SIZE: u32 = 30;
export const LOAD_DEFAULT_ROW: u32 = 31;
export const LOAD_ROW_INDEX: u32 = 32;
export const LOAD_VERDICTS_SIZE: u32 = 33;
export const LOAD_VERDICT_REASONS: u32 = 34;
export const LOAD_ROW_BLOCK: u32 = 35;
export const LOAD_ROW_LIST: u32 = 36;
export const LOAD_ROW_PROTOCOL: u32 = 37;
export const LOAD_ROW_VERDICT: u32 = 38;
export const LOAD_REASON_INDEX: u32 = 39;
export const LOAD_REASON_ORDER: u32 = 40;
export const LOAD_REASON_RULE: u32 = 41;
export const LOAD_ALREADY: u32 = 42;
export const LOAD_TOO_LARGE: u32 = 43;
export const LOAD_CLASS_LISTS: u32 = 44;
export const LOAD_UNIDENTIFIED_LIST: u32 = 45;
export const LOAD_DST_PARENT_SIZE: u32 = 46;
export const LOAD_DST_PARENT: u32 = 47;
export const LOAD_PAIRS_CLASS: u32 = 48;
export const LOAD_PAIRS_DESTINATION: u32 = 49;
export const LOAD_EXACT_LIST: u32 = 50;

// ---------------------------------------------------------------- memory helpers

@inline function wordAt(base: usize, index: u32): u32 {
  return load<u32>(base + ((<usize>index) << 2));
}

@inline function setWord(base: usize, index: u32, value: u32): void {
  store<u32>(base + ((<usize>index) << 2), value);
}

function allocWords(count: u32): usize {
  const p = heap.alloc((<usize>max<u32>(count, 1)) << 2);
  memory.fill(p, 0, (<usize>max<u32>(count, 1)) << 2);
  return p;
}

// ---------------------------------------------------------------- loaded state

let loaded = false;
let errorDetail: u32 = 0;
let ruleRanks: usize = 0;

/** Per section id 1..21: byte address and length in words. */
const sectionBase: usize = memory.data(4 * (SECTION_IDS + 1));
const sectionLength: usize = memory.data(4 * (SECTION_IDS + 1));

let identityClassCount: u32 = 0;
let destinationClassCount: u32 = 0;
let rowCount: u32 = 0;
let verdictCount: u32 = 0;
let reasonSetCount: u32 = 0;
let ruleCount: u32 = 0;
let componentCount: u32 = 0;
let patternCount: u32 = 0;
let emptyTermList: u32 = 0;
let unidentifiedList: u32 = 0;

let componentIndex: usize = 0;
let dfaData: usize = 0;
let termIndex: usize = 0;
let termData: usize = 0;
let pairs: usize = 0;
let pairMask: u32 = 0;
let defaultRow: usize = 0;
let rowIndex: usize = 0;
let rowData: usize = 0;
let rowDataLength: u32 = 0;
let verdicts: usize = 0;
let reasonIndex: usize = 0;
let reasonData: usize = 0;
let exactIds: usize = 0;
let exactMask: u32 = 0;
let exactBytes: usize = 0;
let patternIndex: usize = 0;
let patternData: usize = 0;
let patternBytes: usize = 0;
let classLists: usize = 0;
let classListsLength: u32 = 0;
let dstParent: usize = 0;
/** While validating: one byte per CLASS_LISTS word, 1 where a list starts. */
let listStarts: usize = 0;

/** Load error detail: the section id or component index a LOAD_* code names. */
export function loadErrorDetail(): u32 {
  return errorDetail;
}

function section(id: u32): usize {
  return wordAt(sectionBase, id);
}

function sectionWords(id: u32): u32 {
  return wordAt(sectionLength, id);
}

// ---------------------------------------------------------------- validation

/** The section directory: count, then (id, offset, length) per section, all within the tables. */
function readSections(base: usize, words: u32): u32 {
  if (words < 1) return LOAD_EMPTY;
  const count = wordAt(base, 0);
  if (count > MAX_SECTIONS || 1 + <u64>count * 3 > <u64>words) return LOAD_DIRECTORY;
  for (let i: u32 = 0; i < count; i++) {
    const id = wordAt(base, 1 + i * 3);
    const offset = wordAt(base, 2 + i * 3);
    const length = wordAt(base, 3 + i * 3);
    errorDetail = id;
    if (<u64>offset + <u64>length > <u64>words || offset < 1 + count * 3) return LOAD_SECTION_OUTSIDE;
    for (let j: u32 = 0; j < i; j++) if (wordAt(base, 1 + j * 3) == id) return LOAD_SECTION_TWICE;
    if (id >= 1 && id <= SECTION_IDS) {
      setWord(sectionBase, id, <u32>(base + ((<usize>offset) << 2)));
      setWord(sectionLength, id, length);
    }
  }
  for (let id: u32 = 1; id <= SECTION_IDS; id++) {
    let found = false;
    for (let j: u32 = 0; j < count; j++) if (wordAt(base, 1 + j * 3) == id) found = true;
    errorDetail = id;
    if (!found) return LOAD_SECTION_MISSING;
  }
  return LOAD_OK;
}

/** Every entry at `at`, `at + stride`, … of a section is below `limit`. */
function allBelow(base: usize, length: u32, limit: u32, stride: u32, at: u32): bool {
  for (let i = at; i < length; i += stride) if (wordAt(base, i) >= limit) return false;
  return true;
}

/**
 * CLASS_LISTS read from offset 0 as lists `count (1..MAX_LIST_CLASSES), class…` that cover
 * it exactly, every class below the identity class count; marks each list's start.
 */
function checkClassLists(): u32 {
  listStarts = heap.alloc(max<u32>(classListsLength, 1));
  memory.fill(listStarts, 0, max<u32>(classListsLength, 1));
  for (let at: u32 = 0; at < classListsLength; ) {
    const count = wordAt(classLists, at);
    if (count == 0 || count > MAX_LIST_CLASSES || <u64>at + 1 + <u64>count > <u64>classListsLength) return LOAD_CLASS_LISTS;
    if (!allBelow(classLists + ((<usize>(at + 1)) << 2), count, identityClassCount, 1, 0)) return LOAD_CLASS_LISTS;
    store<u8>(listStarts + at, 1);
    at += 1 + count;
  }
  return LOAD_OK;
}

/** Whether a stored list offset names a list of CLASS_LISTS (only while validating). */
function isList(at: u32): bool {
  return at < classListsLength && load<u8>(listStarts + at) != 0;
}

function checkComponents(): u32 {
  const index = section(COMPONENTS);
  const dataLength = <u64>sectionWords(DFA_DATA);
  const data = section(DFA_DATA);
  if (<u64>sectionWords(COMPONENTS) != <u64>componentCount * 5) return LOAD_COMPONENTS_SIZE;
  for (let c: u32 = 0; c < componentCount; c++) {
    errorDetail = c;
    const inputClasses = wordAt(index, c * 5);
    const states = wordAt(index, c * 5 + 1);
    const byteAt = wordAt(index, c * 5 + 2);
    const transAt = wordAt(index, c * 5 + 3);
    const classAt = wordAt(index, c * 5 + 4);
    if (states == 0 || inputClasses == 0 || <u64>byteAt + 256 > dataLength || <u64>transAt + <u64>states * <u64>inputClasses > dataLength || <u64>classAt + <u64>states > dataLength) {
      return LOAD_COMPONENT_OUTSIDE;
    }
    if (!allBelow(data + ((<usize>byteAt) << 2), 256, inputClasses, 1, 0)) return LOAD_COMPONENT_BYTE_CLASS;
    if (!allBelow(data + ((<usize>transAt) << 2), states * inputClasses, states, 1, 0)) return LOAD_COMPONENT_TRANSITION;
    for (let state: u32 = 0; state < states; state++) if (!isList(wordAt(data, classAt + state))) return LOAD_COMPONENT_STATE_LIST;
  }
  return LOAD_OK;
}

function checkPatterns(): u32 {
  const index = section(PATTERN_INDEX);
  const data = section(PATTERN_DATA);
  const dataLength = <u64>sectionWords(PATTERN_DATA);
  const byteLength = <u64>sectionWords(PATTERN_BYTES) * 4;
  if (<u64>sectionWords(PATTERN_INDEX) != <u64>patternCount + 1) return LOAD_PATTERN_INDEX;
  for (let i: u32 = 0; i < patternCount; i++) {
    const at = wordAt(index, i);
    const next = <u64>wordAt(index, i + 1);
    if (<u64>at >= dataLength || <u64>at + 1 + <u64>wordAt(data, at) * 2 > next || next > dataLength) return LOAD_PATTERN_OUTSIDE;
    const pieces = wordAt(data, at);
    for (let k: u32 = 0; k < pieces; k++) {
      if (<u64>wordAt(data, at + 1 + k * 2) + <u64>wordAt(data, at + 2 + k * 2) > byteLength) return LOAD_PATTERN_BYTES;
    }
    if (pieces < 2) return LOAD_PATTERN_WILDCARD;
  }
  return LOAD_OK;
}

/** Every term lies inside its group, starts with the group's pattern and names valid patterns and class lists. */
function checkTerms(): u32 {
  const index = section(TERM_INDEX);
  const data = section(TERM_DATA);
  const dataLength = sectionWords(TERM_DATA);
  if (<u64>sectionWords(TERM_INDEX) != <u64>patternCount + 1 || wordAt(index, patternCount) != dataLength) return LOAD_TERM_INDEX;
  // Ordered first, so that every group below lies inside TERM_DATA.
  for (let first: u32 = 0; first < patternCount; first++) if (wordAt(index, first) > wordAt(index, first + 1)) return LOAD_TERM_ORDER;
  for (let first: u32 = 0; first < patternCount; first++) {
    const end = wordAt(index, first + 1);
    for (let at = wordAt(index, first); at < end; ) {
      const size = wordAt(data, at);
      if (size == 0 || <u64>at + <u64>size + 2 > <u64>end || wordAt(data, at + 1) != first) return LOAD_TERM;
      for (let k: u32 = 0; k < size; k++) if (wordAt(data, at + 1 + k) >= patternCount) return LOAD_TERM_PATTERN;
      if (!isList(wordAt(data, at + 1 + size))) return LOAD_TERM_LIST;
      at += size + 2;
    }
  }
  return LOAD_OK;
}

function isPowerOfTwo(x: u32): bool {
  return x != 0 && (x & (x - 1)) == 0;
}

function checkExactIds(): u32 {
  const ids = section(EXACT_IDS);
  const length = sectionWords(EXACT_IDS);
  const capacity: u32 = length > 0 ? wordAt(ids, 0) : 0;
  if (!isPowerOfTwo(capacity) || <u64>length != 1 + <u64>capacity * 4) return LOAD_EXACT_SIZE;
  const byteLength = <u64>sectionWords(EXACT_BYTES) * 4;
  for (let i: u32 = 0; i < capacity; i++) {
    const slot = 1 + i * 4;
    const bytes = wordAt(ids, slot + 2);
    if (bytes == EMPTY_SLOT) continue;
    if (<u64>wordAt(ids, slot + 1) + <u64>bytes > byteLength) return LOAD_EXACT_OUTSIDE;
    if (!isList(wordAt(ids, slot + 3))) return LOAD_EXACT_LIST;
  }
  exactMask = capacity - 1;
  return LOAD_OK;
}

/** DST_PARENT: one word per destination class, [0] = 0 and [c] < c (so every walk ends at 0). */
function checkParents(): u32 {
  if (sectionWords(DST_PARENT) != destinationClassCount || destinationClassCount == 0 || wordAt(dstParent, 0) != 0) return LOAD_DST_PARENT_SIZE;
  for (let c: u32 = 1; c < destinationClassCount; c++) if (wordAt(dstParent, c) >= c) return LOAD_DST_PARENT;
  return LOAD_OK;
}

function checkDestinations(): u32 {
  const v4 = section(DST_V4);
  const v4Length = sectionWords(DST_V4);
  const v6 = section(DST_V6);
  const v6Length = sectionWords(DST_V6);
  if (v4Length % 3 != 0 || v6Length % 6 != 0) return LOAD_DST_PARTIAL;
  for (let i: u32 = 0; i < v4Length; i += 3) if (wordAt(v4, i + 1) > 32 || wordAt(v4, i + 2) >= destinationClassCount) return LOAD_DST_V4;
  for (let i: u32 = 0; i < v6Length; i += 6) if (wordAt(v6, i + 4) > 128 || wordAt(v6, i + 5) >= destinationClassCount) return LOAD_DST_V6;
  return LOAD_OK;
}

function checkPairs(): u32 {
  const p = section(PAIRS);
  const length = sectionWords(PAIRS);
  const capacity: u32 = length > 0 ? wordAt(p, 0) : 0;
  if (!isPowerOfTwo(capacity) || <u64>length != 1 + <u64>capacity * 3) return LOAD_PAIRS_SIZE;
  for (let i: u32 = 0; i < capacity; i++) {
    const slot = 1 + i * 3;
    const cls = wordAt(p, slot);
    if (cls == EMPTY_SLOT) continue;
    if (wordAt(p, slot + 2) >= rowCount) return LOAD_PAIRS_ROW;
    if (cls >= identityClassCount) return LOAD_PAIRS_CLASS;
    if (wordAt(p, slot + 1) >= destinationClassCount) return LOAD_PAIRS_DESTINATION;
  }
  pairMask = capacity - 1;
  return LOAD_OK;
}

/** A list `n, (start, x)…` at `offset` in ROW_DATA: inside it, non-empty, starting at 0. Returns n, or 0 when bad. */
function rowList(offset: u32): u32 {
  if (offset >= rowDataLength) return 0;
  const n = wordAt(rowData, offset);
  if (n == 0 || <u64>offset + 1 + <u64>n * 2 > <u64>rowDataLength || wordAt(rowData, offset + 1) != 0) return 0;
  return n;
}

/** Validates one row's nested lists (the same walk as DecisionTableReader.checkRow). */
function checkRow(at: u32): u32 {
  const nUid = rowList(at);
  if (nUid == 0) return at >= rowDataLength ? LOAD_ROW_BLOCK : LOAD_ROW_LIST;
  for (let u: u32 = 0; u < nUid; u++) {
    const gidBlock = wordAt(rowData, at + 2 + u * 2);
    const nGid = rowList(gidBlock);
    if (nGid == 0) return gidBlock >= rowDataLength ? LOAD_ROW_BLOCK : LOAD_ROW_LIST;
    for (let g: u32 = 0; g < nGid; g++) {
      const protoBlock = wordAt(rowData, gidBlock + 2 + g * 2);
      if (<u64>protoBlock + 2 > <u64>rowDataLength) return LOAD_ROW_PROTOCOL;
      for (let proto: u32 = 0; proto < 2; proto++) {
        const ports = wordAt(rowData, protoBlock + proto);
        const nPorts = rowList(ports);
        if (nPorts == 0) return ports >= rowDataLength ? LOAD_ROW_BLOCK : LOAD_ROW_LIST;
        for (let p: u32 = 0; p < nPorts; p++) if (wordAt(rowData, ports + 2 + p * 2) >= verdictCount) return LOAD_ROW_VERDICT;
      }
    }
  }
  return LOAD_OK;
}

function checkRowsAndReasons(): u32 {
  if (sectionWords(DEFAULT_ROW) != identityClassCount) return LOAD_DEFAULT_ROW_SIZE;
  if (!allBelow(defaultRow, identityClassCount, rowCount, 1, 0)) return LOAD_DEFAULT_ROW;
  if (sectionWords(ROW_INDEX) != rowCount) return LOAD_ROW_INDEX;
  if (<u64>sectionWords(VERDICTS) != <u64>verdictCount * 2) return LOAD_VERDICTS_SIZE;
  if (!allBelow(verdicts, verdictCount * 2, reasonSetCount, 2, 1)) return LOAD_VERDICT_REASONS;
  for (let r: u32 = 0; r < rowCount; r++) {
    const e = checkRow(wordAt(rowIndex, r));
    if (e != LOAD_OK) return e;
  }
  if (<u64>sectionWords(REASON_INDEX) != <u64>reasonSetCount + 1) return LOAD_REASON_INDEX;
  const reasonLength = sectionWords(REASON_DATA);
  for (let i: u32 = 0; i < reasonSetCount; i++) {
    if (wordAt(reasonIndex, i) > wordAt(reasonIndex, i + 1) || wordAt(reasonIndex, i + 1) > reasonLength) return LOAD_REASON_ORDER;
  }
  if (!allBelow(reasonData, reasonLength, ruleCount, 1, 0)) return LOAD_REASON_RULE;
  return LOAD_OK;
}

/** Validates the tables (the checks of DecisionTableReader's constructor); frees the validation scratch. */
function validate(base: usize, words: u32, rules: u32): u32 {
  listStarts = 0;
  const e = validateSections(base, words, rules);
  if (listStarts != 0) heap.free(listStarts);
  listStarts = 0;
  return e;
}

function validateSections(base: usize, words: u32, rules: u32): u32 {
  let e = readSections(base, words);
  if (e != LOAD_OK) return e;
  const meta = section(META);
  if (sectionWords(META) < 10) return LOAD_META;
  identityClassCount = wordAt(meta, 0);
  destinationClassCount = wordAt(meta, 1);
  rowCount = wordAt(meta, 2);
  verdictCount = wordAt(meta, 3);
  reasonSetCount = wordAt(meta, 4);
  ruleCount = wordAt(meta, 5);
  componentCount = wordAt(meta, 6);
  patternCount = wordAt(meta, 7);
  emptyTermList = wordAt(meta, 8);
  unidentifiedList = wordAt(meta, 9);
  errorDetail = ruleCount;
  if (ruleCount != rules) return LOAD_RULE_COUNT;
  classLists = section(CLASS_LISTS);
  classListsLength = sectionWords(CLASS_LISTS);
  if ((e = checkClassLists()) != LOAD_OK) return e;
  if (!isList(emptyTermList)) return LOAD_EMPTY_TERM_LIST;
  if (!isList(unidentifiedList)) return LOAD_UNIDENTIFIED_LIST;

  componentIndex = section(COMPONENTS);
  dfaData = section(DFA_DATA);
  termIndex = section(TERM_INDEX);
  termData = section(TERM_DATA);
  pairs = section(PAIRS);
  defaultRow = section(DEFAULT_ROW);
  rowIndex = section(ROW_INDEX);
  rowData = section(ROW_DATA);
  rowDataLength = sectionWords(ROW_DATA);
  verdicts = section(VERDICTS);
  reasonIndex = section(REASON_INDEX);
  reasonData = section(REASON_DATA);
  exactIds = section(EXACT_IDS);
  exactBytes = section(EXACT_BYTES);
  patternIndex = section(PATTERN_INDEX);
  patternData = section(PATTERN_DATA);
  patternBytes = section(PATTERN_BYTES);
  dstParent = section(DST_PARENT);

  if ((e = checkComponents()) != LOAD_OK) return e;
  if ((e = checkPatterns()) != LOAD_OK) return e;
  if ((e = checkTerms()) != LOAD_OK) return e;
  if ((e = checkParents()) != LOAD_OK) return e;
  if ((e = checkExactIds()) != LOAD_OK) return e;
  if ((e = checkDestinations()) != LOAD_OK) return e;
  if ((e = checkPairs()) != LOAD_OK) return e;
  if ((e = checkRowsAndReasons()) != LOAD_OK) return e;
  if (reasonSetCount >= MAX_REASON_SETS) return LOAD_TOO_LARGE;
  return LOAD_OK;
}

// ---------------------------------------------------------------- destination classes

// Each family's longest-prefix match is flattened at load into sorted disjoint intervals
// (start → class), so a lookup is one binary search. Entries are taken exactly as
// DecisionTableReader takes them: an entry whose address has bits past its prefix never
// matches, and of two entries with the same address and prefix the later one wins.
// Addresses are 128-bit keys (hi, lo); an IPv4 address a is (a << 32, 0).

let v4Count: u32 = 0;
let v4Starts: usize = 0;
let v4Classes: usize = 0;
let v6Count: u32 = 0;
let v6Starts: usize = 0; // (hi, lo) u64 pairs
let v6Classes: usize = 0;

let entryHi: usize = 0;
let entryLo: usize = 0;
let entryPrefix: usize = 0;
let entryClass: usize = 0;

@inline function maskHi(prefix: u32): u64 {
  return prefix == 0 ? 0 : prefix >= 64 ? <u64>-1 : <u64>-1 << (64 - <u64>prefix);
}

@inline function maskLo(prefix: u32): u64 {
  return prefix <= 64 ? 0 : prefix >= 128 ? <u64>-1 : <u64>-1 << (128 - <u64>prefix);
}

@inline function hiOf(i: u32): u64 {
  return load<u64>(entryHi + ((<usize>i) << 3));
}

@inline function loOf(i: u32): u64 {
  return load<u64>(entryLo + ((<usize>i) << 3));
}

/** Entry order: address, then prefix (the larger block first), then table position. */
function entryBefore(a: u32, b: u32): bool {
  const ah = hiOf(a);
  const bh = hiOf(b);
  if (ah != bh) return ah < bh;
  const al = loOf(a);
  const bl = loOf(b);
  if (al != bl) return al < bl;
  const ap = wordAt(entryPrefix, a);
  const bp = wordAt(entryPrefix, b);
  if (ap != bp) return ap < bp;
  return a < b;
}

/**
 * Stable merge sort of `n` values of type T at `list` by `before` (scratch of n values at
 * `tmp`): the one merge sort (entries and interval starts at load, reason sets when uniting
 * them, interval starts when building groups).
 */
function sortBy<T>(list: usize, tmp: usize, n: u32, before: (a: T, b: T) => bool): void {
  const size = <usize>sizeof<T>();
  for (let width: u32 = 1; width < n; width <<= 1) {
    for (let left: u32 = 0; left < n; left += width * 2) {
      const mid = min<u32>(left + width, n);
      const right = min<u32>(left + width * 2, n);
      let i = left;
      let j = mid;
      let k = left;
      while (i < mid && j < right) {
        const a = load<T>(list + <usize>i * size);
        const b = load<T>(list + <usize>j * size);
        if (before(b, a)) {
          store<T>(tmp + <usize>k * size, b);
          j++;
        } else {
          store<T>(tmp + <usize>k * size, a);
          i++;
        }
        k++;
      }
      for (; i < mid; i++, k++) store<T>(tmp + <usize>k * size, load<T>(list + <usize>i * size));
      for (; j < right; j++, k++) store<T>(tmp + <usize>k * size, load<T>(list + <usize>j * size));
    }
    memory.copy(list, tmp, <usize>n * size);
  }
}

// The interval list being built.
let outCount: u32 = 0;
let outHi: usize = 0;
let outLo: usize = 0;
let outClass: usize = 0;

function emit(hi: u64, lo: u64, cls: u32): void {
  if (outCount > 0 && wordAt(outClass, outCount - 1) == cls) return;
  store<u64>(outHi + ((<usize>outCount) << 3), hi);
  store<u64>(outLo + ((<usize>outCount) << 3), lo);
  setWord(outClass, outCount, cls);
  outCount++;
}

/** Flattens `n` entries (prefixes in 0..128 over 128-bit keys) into the out* interval list. */
function flatten(n: u32): void {
  const order = allocWords(n);
  const tmp = allocWords(n);
  let valid: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const p = wordAt(entryPrefix, i);
    if ((hiOf(i) & ~maskHi(p)) == 0 && (loOf(i) & ~maskLo(p)) == 0) setWord(order, valid++, i);
  }
  sortBy<u32>(order, tmp, valid, entryBefore);
  // The same address and prefix: keep the last in table order (the last of its run).
  let kept: u32 = 0;
  for (let k: u32 = 0; k < valid; k++) {
    const i = wordAt(order, k);
    if (k + 1 < valid) {
      const j = wordAt(order, k + 1);
      if (hiOf(i) == hiOf(j) && loOf(i) == loOf(j) && wordAt(entryPrefix, i) == wordAt(entryPrefix, j)) continue;
    }
    setWord(order, kept++, i);
  }
  heap.free(tmp);
  outCount = 0;
  outHi = heap.alloc((<usize>(kept * 2 + 1)) << 3);
  outLo = heap.alloc((<usize>(kept * 2 + 1)) << 3);
  outClass = allocWords(kept * 2 + 1);
  // A stack of enclosing blocks (at most 129 nested distinct prefixes).
  const stackHi = heap.alloc(130 << 3);
  const stackLo = heap.alloc(130 << 3);
  const stackClass = allocWords(130);
  let depth: u32 = 0;
  let curHi: u64 = 0;
  let curLo: u64 = 0;
  let curValid = true;
  for (let k: u32 = 0; k <= kept; k++) {
    const last = k == kept;
    const i = last ? 0 : wordAt(order, k);
    const sHi = last ? 0 : hiOf(i);
    const sLo = last ? 0 : loOf(i);
    // Close every open block that ends before this entry starts (all of them at the end).
    while (depth > 0) {
      const eHi = load<u64>(stackHi + ((<usize>(depth - 1)) << 3));
      const eLo = load<u64>(stackLo + ((<usize>(depth - 1)) << 3));
      if (!last && (eHi > sHi || (eHi == sHi && eLo >= sLo))) break;
      if (curValid && (curHi < eHi || (curHi == eHi && curLo <= eLo))) emit(curHi, curLo, wordAt(stackClass, depth - 1));
      if (eHi == <u64>-1 && eLo == <u64>-1) curValid = false;
      else if (curValid) {
        curLo = eLo + 1;
        curHi = curLo == 0 ? eHi + 1 : eHi;
      }
      depth--;
    }
    if (last) break;
    if (curValid && (curHi < sHi || (curHi == sHi && curLo < sLo))) emit(curHi, curLo, depth > 0 ? wordAt(stackClass, depth - 1) : 0);
    const p = wordAt(entryPrefix, i);
    store<u64>(stackHi + ((<usize>depth) << 3), sHi | ~maskHi(p));
    store<u64>(stackLo + ((<usize>depth) << 3), sLo | ~maskLo(p));
    setWord(stackClass, depth, wordAt(entryClass, i));
    depth++;
    curHi = sHi;
    curLo = sLo;
    curValid = true;
  }
  if (curValid) emit(curHi, curLo, 0);
  heap.free(stackHi);
  heap.free(stackLo);
  heap.free(stackClass);
  heap.free(order);
}

function allocEntries(n: u32): void {
  entryHi = heap.alloc((<usize>max<u32>(n, 1)) << 3);
  entryLo = heap.alloc((<usize>max<u32>(n, 1)) << 3);
  entryPrefix = allocWords(n);
  entryClass = allocWords(n);
}

function freeEntries(): void {
  heap.free(entryHi);
  heap.free(entryLo);
  heap.free(entryPrefix);
  heap.free(entryClass);
}

function buildDestinations(): void {
  const v4 = section(DST_V4);
  const n4 = sectionWords(DST_V4) / 3;
  allocEntries(n4);
  for (let i: u32 = 0; i < n4; i++) {
    store<u64>(entryHi + ((<usize>i) << 3), (<u64>wordAt(v4, i * 3)) << 32);
    store<u64>(entryLo + ((<usize>i) << 3), 0);
    setWord(entryPrefix, i, wordAt(v4, i * 3 + 1));
    setWord(entryClass, i, wordAt(v4, i * 3 + 2));
  }
  flatten(n4);
  freeEntries();
  // IPv4 starts all have a zero low half (block ends + 1 are multiples of 2^32): keep 32 bits.
  v4Count = outCount;
  v4Starts = allocWords(outCount);
  v4Classes = allocWords(outCount);
  for (let k: u32 = 0; k < outCount; k++) {
    setWord(v4Starts, k, <u32>(load<u64>(outHi + ((<usize>k) << 3)) >> 32));
    setWord(v4Classes, k, wordAt(outClass, k));
  }
  heap.free(outHi);
  heap.free(outLo);
  heap.free(outClass);
  buildV4Index();

  const v6 = section(DST_V6);
  const n6 = sectionWords(DST_V6) / 6;
  allocEntries(n6);
  for (let i: u32 = 0; i < n6; i++) {
    store<u64>(entryHi + ((<usize>i) << 3), ((<u64>wordAt(v6, i * 6)) << 32) | <u64>wordAt(v6, i * 6 + 1));
    store<u64>(entryLo + ((<usize>i) << 3), ((<u64>wordAt(v6, i * 6 + 2)) << 32) | <u64>wordAt(v6, i * 6 + 3));
    setWord(entryPrefix, i, wordAt(v6, i * 6 + 4));
    setWord(entryClass, i, wordAt(v6, i * 6 + 5));
  }
  flatten(n6);
  freeEntries();
  v6Count = outCount;
  v6Starts = heap.alloc((<usize>max<u32>(outCount, 1)) << 4);
  for (let k: u32 = 0; k < outCount; k++) {
    store<u64>(v6Starts + ((<usize>k) << 4), load<u64>(outHi + ((<usize>k) << 3)));
    store<u64>(v6Starts + ((<usize>k) << 4) + 8, load<u64>(outLo + ((<usize>k) << 3)));
  }
  v6Classes = outClass;
  heap.free(outHi);
  heap.free(outLo);
}

// An index over the IPv4 intervals by the address's top v4Bits bits: entry b is the
// interval holding the first address of bucket b, so an address of bucket b lies in one of
// the intervals v4Index[b] ..= v4Index[b + 1] (the last entry is v4Count - 1), and the
// binary search runs over those only. About 4 buckets per interval, at most 2^16.
let v4Bits: u32 = 0;
let v4Index: usize = 0;

function buildV4Index(): void {
  v4Bits = 1;
  while (v4Bits < 16 && (<u32>1 << v4Bits) < v4Count * 4) v4Bits++;
  const buckets: u32 = 1 << v4Bits;
  v4Index = allocWords(buckets + 1);
  let k: u32 = 0;
  for (let b: u32 = 0; b < buckets; b++) {
    const first = b << (32 - v4Bits);
    while (k + 1 < v4Count && wordAt(v4Starts, k + 1) <= first) k++;
    setWord(v4Index, b, k);
  }
  setWord(v4Index, buckets, v4Count - 1);
}

/** Class of an IPv4 address: the interval whose start is the last one <= address. */
@inline function v4Class(address: u32): u32 {
  const b = address >> (32 - v4Bits);
  let lo = wordAt(v4Index, b);
  let n = wordAt(v4Index, b + 1) - lo + 1;
  while (n > 1) {
    const half = n >> 1;
    lo = wordAt(v4Starts, lo + half) <= address ? lo + half : lo;
    n -= half;
  }
  return wordAt(v4Classes, lo);
}

function v6Class(hi: u64, lo64: u64): u32 {
  let lo: u32 = 0;
  let n = v6Count;
  while (n > 1) {
    const half = n >> 1;
    const at = v6Starts + ((<usize>(lo + half)) << 4);
    const sHi = load<u64>(at);
    if (sHi < hi || (sHi == hi && load<u64>(at, 8) <= lo64)) lo += half;
    n -= half;
  }
  return wordAt(v6Classes, lo);
}

// ---------------------------------------------------------------- identities

// Identity records: per handle (hash, bytes at, byte length, classes at, class count |
// COMBINE_BIT, first class). Handle 0 is unidentified (its list, read at load); handle 1
// the transient slot; cached IDs follow.
// - Without COMBINE_BIT the identity has one class in the tables, at `classes at`, and its
//   verdict is that class's (DecisionTableReader.combine of one verdict).
// - With COMBINE_BIT it has several (a list of several, or a peer's several lists), so its
//   decision combines their verdicts (step 6). The record lists each class once, as its
//   equivalence representative, and leaves out the classes that never decide; the first
//   class (whose verdict decides when no class's does) is kept apart in the last word.
// Both are exact: a class and its representative give the same row at every destination,
// and a class that never decides adds nothing to a union of forbids or permits.
// Words 6 and 7: the record's class group (the address of its merged list, 0 for none) and
// how many of its classes, listed first, the group holds (see "class groups").
const RECORD_WORDS: u32 = 8;
const COMBINE_BIT: u32 = 0x80000000;
let records: usize = 0;
let recordCount: u32 = 0;
let recordCapacity: u32 = 0;
let cacheSlots: usize = 0; // handle per slot, 0 = empty
let cacheMask: u32 = 0;
let patternMatched: usize = 0; // one byte per term pattern
let classStamp: usize = 0; // per identity class: the classification that last listed it
let classStampNow: u32 = 0;
// The classification in progress: its listed classes (at classScratch), how many classes
// its lists held (duplicates included) and the representative of the first of them.
let classScratch: usize = 0;
let listedCount: u32 = 0;
let rawCount: u32 = 0;
let firstClass: u32 = 0;

function fnv1a(ptr: usize, length: u32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i: u32 = 0; i < length; i++) h = (h ^ <u32>load<u8>(ptr + i)) * 0x01000193;
  return h;
}

/** FNV-1a over `n` words at `list` (the keys of the combined lists, groups and entries). */
function wordsHash(list: usize, n: u32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i: u32 = 0; i < n; i++) h = (h ^ wordAt(list, i)) * 0x01000193;
  return h;
}

function bytesEqual(a: usize, b: usize, length: u32): bool {
  return memory.compare(a, b, length) == 0;
}

/** The class list (offset in CLASS_LISTS) of an exact ID of the policy, or -1. */
function exactList(ptr: usize, length: u32, hash: u32): i64 {
  const capacity = exactMask + 1;
  let i = hash & exactMask;
  for (let probes: u32 = 0; probes < capacity; probes++) {
    const slot = 1 + i * 4;
    const bytes = wordAt(exactIds, slot + 2);
    if (bytes == EMPTY_SLOT) return -1;
    if (wordAt(exactIds, slot) == hash && bytes == length && bytesEqual(exactBytes + wordAt(exactIds, slot + 1), ptr, length)) {
      return <i64>wordAt(exactIds, slot + 3);
    }
    i = (i + 1) & exactMask;
  }
  return -1;
}

/** First position >= from where the piece occurs wholly before `limit`, or -1. */
function indexOfPiece(id: usize, from: u32, limit: u32, piece: usize, length: u32): i64 {
  for (let i = from; <u64>i + <u64>length <= <u64>limit; i++) if (bytesEqual(id + i, piece, length)) return i;
  return -1;
}

/** Cedar `like`: the first piece a prefix, the last a suffix, the middle ones in order (compiler/tables.ts globMatches). */
function globMatches(pattern: u32, id: usize, length: u32): bool {
  const at = wordAt(patternIndex, pattern);
  const pieces = wordAt(patternData, at);
  const firstPtr = patternBytes + wordAt(patternData, at + 1);
  const firstLength = wordAt(patternData, at + 2);
  const lastPtr = patternBytes + wordAt(patternData, at + 1 + (pieces - 1) * 2);
  const lastLength = wordAt(patternData, at + 2 + (pieces - 1) * 2);
  if (<u64>length < <u64>firstLength + <u64>lastLength) return false;
  if (!bytesEqual(id, firstPtr, firstLength) || !bytesEqual(id + length - lastLength, lastPtr, lastLength)) return false;
  let from = firstLength;
  const limit = length - lastLength;
  for (let k: u32 = 1; k + 1 < pieces; k++) {
    const piecePtr = patternBytes + wordAt(patternData, at + 1 + k * 2);
    const pieceLength = wordAt(patternData, at + 2 + k * 2);
    const found = indexOfPiece(id, from, limit, piecePtr, pieceLength);
    if (found < 0) return false;
    from = <u32>found + pieceLength;
  }
  return true;
}

function beginClasses(): void {
  classStampNow++;
  listedCount = 0;
  rawCount = 0;
}

/** Adds the classes of the list at `at` (a validated CLASS_LISTS offset) to the classification in progress. */
function addList(at: u32): void {
  const count = wordAt(classLists, at);
  for (let k: u32 = 1; k <= count; k++) {
    const cls = wordAt(classRep, wordAt(classLists, at + k));
    if (rawCount++ == 0) firstClass = cls;
    if (load<u8>(neverDecides + cls) != 0 || wordAt(classStamp, cls) == classStampNow) continue;
    setWord(classStamp, cls, classStampNow);
    setWord(classScratch, listedCount++, cls);
  }
}

/** The record's class count word for the classification just made; its classes are at classScratch. */
function endClasses(): u32 {
  if (rawCount > 1) return listedCount | COMBINE_BIT;
  setWord(classScratch, 0, firstClass);
  return 1;
}

/** A peer's classes (step 1): every component's DFA final state's list, the empty term's, every matched term's. */
function addPeerLists(id: usize, length: u32): void {
  for (let c: u32 = 0; c < componentCount; c++) {
    const inputClasses = wordAt(componentIndex, c * 5);
    const byteClass = dfaData + ((<usize>wordAt(componentIndex, c * 5 + 2)) << 2);
    const transitions = dfaData + ((<usize>wordAt(componentIndex, c * 5 + 3)) << 2);
    const stateList = dfaData + ((<usize>wordAt(componentIndex, c * 5 + 4)) << 2);
    let state: u32 = 0;
    for (let i: u32 = 0; i < length; i++) state = wordAt(transitions, state * inputClasses + wordAt(byteClass, load<u8>(id + i)));
    addList(wordAt(stateList, state));
  }
  addList(emptyTermList);
  for (let p: u32 = 0; p < patternCount; p++) store<u8>(patternMatched + p, globMatches(p, id, length) ? 1 : 0);
  for (let first: u32 = 0; first < patternCount; first++) {
    if (load<u8>(patternMatched + first) == 0) continue;
    const end = wordAt(termIndex, first + 1);
    for (let at = wordAt(termIndex, first); at < end; ) {
      const size = wordAt(termData, at);
      let all = true;
      for (let k: u32 = 1; k < size; k++) if (load<u8>(patternMatched + wordAt(termData, at + 1 + k)) == 0) all = false;
      if (all) addList(wordAt(termData, at + 1 + size));
      at += size + 2;
    }
  }
}

/** A copy of the classes of the classification just made (`countWord` from endClasses). */
function copyClasses(countWord: u32, into: usize): usize {
  const bytes = (<usize>max<u32>(countWord & ~COMBINE_BIT, 1)) << 2;
  const classes = into == 0 ? heap.alloc(bytes) : heap.realloc(into, bytes);
  memory.copy(classes, classScratch, bytes);
  return classes;
}

function setRecord(handle: u32, hash: u32, bytes: usize, length: u32, classes: usize, countWord: u32): void {
  const r = records + (<usize>handle) * RECORD_WORDS * 4;
  setWord(r, 0, hash);
  setWord(r, 1, <u32>bytes);
  setWord(r, 2, length);
  setWord(r, 3, <u32>classes);
  setWord(r, 4, countWord);
  setWord(r, 5, firstClass);
  setWord(r, 6, 0);
  setWord(r, 7, 0);
}

function buildIdentities(): void {
  buildClassEquivalence();
  recordCapacity = 64;
  records = allocWords(recordCapacity * RECORD_WORDS);
  patternMatched = heap.alloc(max<u32>(patternCount, 1));
  classStamp = allocWords(identityClassCount);
  // A classification lists each class once: at most every identity class.
  classScratch = allocWords(identityClassCount);
  beginClasses();
  addList(unidentifiedList);
  const countWord = endClasses();
  setRecord(UNIDENTIFIED, 0, 0, 0, copyClasses(countWord, 0), countWord);
  // The transient record decides nothing (INVALID_REQUEST) until an ID is classified into it.
  setRecord(TRANSIENT_HANDLE, 0, 0, 0, allocWords(1), 0);
  recordCount = 2;
  cacheMask = 127;
  cacheSlots = allocWords(cacheMask + 1);
}

// ---------------------------------------------------------------- class info

// Per identity class, what the parent walk (pairRow) reads of it in one 16-byte record;
// the walk is used only while loading (class equivalence), and the records are freed
// before loadTables returns (decisions use the interval lists of buildSpans):
// (lowest, highest) destination class ≥ 1 of its PAIRS slots, or (MAX, 0) when it has none
// (a probe for any other destination class cannot hit; slots of destination class 0 are
// left out, the walk never probes 0); its default row; and 1 when that row gives only
// default verdicts (defaultOnlyRow), else 0.
const INFO_BYTES: u32 = 16;
let classInfo: usize = 0;

function buildClassInfo(): void {
  const n = identityClassCount;
  classInfo = heap.alloc((<usize>max<u32>(n, 1)) * INFO_BYTES);
  for (let c: u32 = 0; c < n; c++) {
    const row = wordAt(defaultRow, c);
    setWord(classInfo, c * 4, u32.MAX_VALUE);
    setWord(classInfo, c * 4 + 1, 0);
    setWord(classInfo, c * 4 + 2, row);
    setWord(classInfo, c * 4 + 3, <u32>load<u8>(defaultOnlyRow + row));
  }
  for (let i: u32 = 0; i <= pairMask; i++) {
    const c = wordAt(pairs, 1 + i * 3);
    const d = wordAt(pairs, 1 + i * 3 + 1);
    if (c >= n || d == 0) continue;
    if (d < wordAt(classInfo, c * 4)) setWord(classInfo, c * 4, d);
    if (d > wordAt(classInfo, c * 4 + 1)) setWord(classInfo, c * 4 + 1, d);
  }
}

// ---------------------------------------------------------------- rows by destination position

// Step 3 without the walk. Destination classes are renumbered at load in preorder of the
// DST_PARENT forest (class 0 its root, at position 0), so the classes a class c encloses
// are exactly the positions after c's up to the end of its subtree. Identity class s's row
// at destination d, the first of d, parent(d), … (not 0) paired with s, is then the row of
// the deepest of s's pairs whose subtree holds d's position: per class, its pairs' subtrees
// (nested or disjoint) flattened into sorted disjoint intervals of positions, start → row,
// covering every position (s's default row where no pair's subtree reaches). A lookup is
// one binary search over that class's starts, and the destination lookup gives the
// position directly (v4Classes and v6Classes hold positions once loaded).
//
// A row word is the row, with ROW_DEFAULT_ONLY set when the row only ever gives the
// default (defaultOnlyRow). Each pair's row is read from PAIRS by the probe the walk makes
// (the first slot of (s, c) in probe order; none for a slot behind an empty one), so
// duplicate or unreachable slots resolve exactly as the walk resolves them.
//
// INVARIANT: positions are below the destination class count; every list starts at 0, so
// the search always finds an interval, and every row word's row is below the row count.
const ROW_DEFAULT_ONLY: u32 = 0x80000000;
let positionOf: usize = 0; // destination class → position (only while loading)
let spans: usize = 0; // per identity class: (list byte address, interval count)
let spanData: usize = 0; // the lists: per class `starts[n], rowWords[n]`

/** The row PAIRS gives for (s, c) by the walk's probe, or NO_ROW. */
function probeRow(s: u32, c: u32): u32 {
  let i = (s * 0x9e3779b1 ^ (c * 0x85ebca77)) & pairMask;
  for (let probes: u32 = 0; probes <= pairMask; probes++) {
    const slot = pairs + ((<usize>(1 + i * 3)) << 2);
    const cls = load<u32>(slot);
    if (cls == EMPTY_SLOT) break;
    if (cls == s && load<u32>(slot, 4) == c) return load<u32>(slot, 8);
    i = (i + 1) & pairMask;
  }
  return NO_ROW;
}

@inline function rowWord(row: u32): u32 {
  return row | (<u32>load<u8>(defaultOnlyRow + row) << 31);
}

function keyBefore(a: u64, b: u64): bool {
  return a < b;
}

// The interval list being built: `spanCount` starts at spanStarts, row words at spanRows.
let spanCount: u32 = 0;
let spanStarts: usize = 0;
let spanRows: usize = 0;

/** From position `at` on, the row word is `w` (a later call at the same position overrides). */
function spanEmit(at: u32, w: u32): void {
  if (spanCount > 0 && wordAt(spanStarts, spanCount - 1) == at) {
    spanCount--;
  }
  if (spanCount > 0 && wordAt(spanRows, spanCount - 1) == w) return;
  setWord(spanStarts, spanCount, at);
  setWord(spanRows, spanCount, w);
  spanCount++;
}

function buildSpans(): void {
  const n = identityClassCount;
  const D = destinationClassCount;
  // Subtree sizes (children after their parent: [c] < c), then preorder positions.
  const size = allocWords(D);
  for (let c: u32 = 0; c < D; c++) setWord(size, c, 1);
  for (let c = D - 1; c >= 1; c--) {
    const p = wordAt(dstParent, c);
    setWord(size, p, wordAt(size, p) + wordAt(size, c));
  }
  positionOf = allocWords(D);
  const classAt = allocWords(D); // position → destination class
  const next = allocWords(D); // the next free position inside each class's subtree
  setWord(next, 0, 1);
  for (let c: u32 = 1; c < D; c++) {
    const p = wordAt(dstParent, c);
    const at = wordAt(next, p);
    setWord(positionOf, c, at);
    setWord(classAt, at, c);
    setWord(next, p, at + wordAt(size, c));
    setWord(next, c, at + 1);
  }
  heap.free(next);
  // PAIRS slots grouped by identity class (destination class 0 is never probed: left out).
  const slotStart = allocWords(n + 1);
  for (let i: u32 = 0; i <= pairMask; i++) {
    const c = wordAt(pairs, 1 + i * 3);
    if (c < n && wordAt(pairs, 1 + i * 3 + 1) != 0) setWord(slotStart, c + 1, wordAt(slotStart, c + 1) + 1);
  }
  for (let c: u32 = 0; c < n; c++) setWord(slotStart, c + 1, wordAt(slotStart, c + 1) + wordAt(slotStart, c));
  const total = wordAt(slotStart, n);
  const keys = heap.alloc((<usize>max<u32>(total, 1)) << 3);
  const fill = allocWords(n);
  for (let i: u32 = 0; i <= pairMask; i++) {
    const c = wordAt(pairs, 1 + i * 3);
    const d = wordAt(pairs, 1 + i * 3 + 1);
    if (c >= n || d == 0) continue;
    // Position ascending, then the larger subtree first (an enclosing class before those it encloses).
    const at = wordAt(positionOf, d);
    store<u64>(keys + ((<usize>(wordAt(slotStart, c) + wordAt(fill, c))) << 3), ((<u64>at) << 32) | <u64>(~wordAt(size, d)));
    setWord(fill, c, wordAt(fill, c) + 1);
  }
  heap.free(fill);
  // At most 2 intervals per pair plus 1 per class; per class `starts, rows`.
  spans = allocWords(n * 2);
  spanData = allocWords((total * 2 + n) * 2);
  const tmp = heap.alloc((<usize>max<u32>(total, 1)) << 3);
  const stackEnd = allocWords(total + 1);
  const stackRow = allocWords(total + 1);
  spanStarts = allocWords(total * 2 + 1);
  spanRows = allocWords(total * 2 + 1);
  let out: u32 = 0;
  for (let s: u32 = 0; s < n; s++) {
    const from = wordAt(slotStart, s);
    const count = wordAt(slotStart, s + 1) - from;
    const k0 = keys + ((<usize>from) << 3);
    sortBy<u64>(k0, tmp, count, keyBefore);
    const dflt = rowWord(wordAt(defaultRow, s));
    spanCount = 0;
    spanEmit(0, dflt);
    let depth: u32 = 0;
    let last: u32 = u32.MAX_VALUE;
    for (let k: u32 = 0; k <= count; k++) {
      const done = k == count;
      const at: u32 = done ? D : <u32>(load<u64>(k0 + ((<usize>k) << 3)) >> 32);
      // Close the open subtrees that end at or before this one's start.
      while (depth > 0 && wordAt(stackEnd, depth - 1) <= at) {
        const end = wordAt(stackEnd, depth - 1);
        depth--;
        if (end < D) spanEmit(end, depth > 0 ? wordAt(stackRow, depth - 1) : dflt);
      }
      if (done) break;
      if (at == last) continue; // a duplicate slot of the same (s, c): the same probe, the same row
      last = at;
      const d = wordAt(classAt, at);
      // A slot its probe cannot reach (behind an empty slot) is one the walk never finds.
      const row = probeRow(s, d);
      if (row == NO_ROW) continue;
      const w = rowWord(row);
      spanEmit(at, w);
      setWord(stackEnd, depth, at + wordAt(size, d));
      setWord(stackRow, depth, w);
      depth++;
    }
    const list = spanData + ((<usize>out) << 2);
    memory.copy(list, spanStarts, (<usize>spanCount) << 2);
    memory.copy(list + ((<usize>spanCount) << 2), spanRows, (<usize>spanCount) << 2);
    setWord(spans, s * 2, <u32>list);
    setWord(spans, s * 2 + 1, spanCount);
    out += spanCount * 2;
  }
  heap.free(spanStarts);
  heap.free(spanRows);
  heap.free(stackEnd);
  heap.free(stackRow);
  heap.free(tmp);
  heap.free(keys);
  heap.free(slotStart);
  heap.free(classAt);
  heap.free(size);
  // A class that never forbids: none of its interval lists' rows can.
  noForbidClass = heap.alloc(max<u32>(n, 1));
  for (let c: u32 = 0; c < n; c++) {
    const list = <usize>wordAt(spans, c * 2);
    const count = wordAt(spans, c * 2 + 1);
    let never: u8 = 1;
    for (let i: u32 = 0; i < count; i++) never &= load<u8>(noForbidRow + (wordAt(list + ((<usize>count) << 2), i) & ~ROW_DEFAULT_ONLY));
    store<u8>(noForbidClass + c, never);
  }
  // The destination lookups give positions from now on.
  for (let k: u32 = 0; k < v4Count; k++) setWord(v4Classes, k, wordAt(positionOf, wordAt(v4Classes, k)));
  for (let k: u32 = 0; k < v6Count; k++) setWord(v6Classes, k, wordAt(positionOf, wordAt(v6Classes, k)));
  heap.free(positionOf);
  positionOf = 0;
}

/** Identity class s's row word at destination position `at` (see above). */
@inline function classRow(s: u32, at: u32): u32 {
  const span = spans + ((<usize>s) << 3);
  const list = <usize>load<u32>(span);
  let n = load<u32>(span, 4);
  let lo: u32 = 0;
  while (n > 1) {
    const half = n >> 1;
    lo = wordAt(list, lo + half) <= at ? lo + half : lo;
    n -= half;
  }
  return wordAt(list + ((<usize>load<u32>(span, 4)) << 2), lo);
}

// ---------------------------------------------------------------- equivalent classes

// Identity classes that give the same row at every destination class decide every request
// alike, so an identity in several needs only one of them (the compiler keeps, e.g., the
// classes of DFA states that accept different patterns but apply the same rules). Found at
// load: a signature per class over what pairRow returns for each of its PAIRS slots, then
// an exact check of each candidate against the first class with its signature.
//
// INVARIANT (why checking the slots' destinations suffices under the DST_PARENT walk): for
// any destination d, let e be the first class on d's walk that a PAIRS slot of a or of b
// names. Before e neither a's nor b's walk can stop, so both give at d what they give at e,
// which sameRows compared; with no such e both give their default rows, also compared.
let classRep: usize = 0; // identity class → representative (itself, or an equivalent lower class)
// One byte per identity class: the default row and the row of every PAIRS slot of the class
// give only default verdicts, so whatever the walk finds, the class never decides.
let neverDecides: usize = 0;

function pairMix(d: u32, row: u32): u64 {
  let x = ((<u64>d) << 32) | <u64>row;
  x = (x ^ (x >> 33)) * 0xff51afd7ed558ccd;
  x = (x ^ (x >> 33)) * 0xc4ceb3fe1a85ec53;
  return x ^ (x >> 33);
}

/** Whether classes a and b give the same row for every destination class (slotList: PAIRS slots by class, from slotStart). */
function sameRows(a: u32, b: u32, slotStart: usize, slotList: usize): bool {
  if (wordAt(defaultRow, a) != wordAt(defaultRow, b)) return false;
  for (let side: u32 = 0; side < 2; side++) {
    const c = side == 0 ? a : b;
    const other = side == 0 ? b : a;
    for (let k = wordAt(slotStart, c); k < wordAt(slotStart, c + 1); k++) {
      const d = wordAt(pairs, 1 + wordAt(slotList, k) * 3 + 1);
      if (pairRow(c, d) != pairRow(other, d)) return false;
    }
  }
  return true;
}

function buildClassEquivalence(): void {
  const n = identityClassCount;
  classRep = allocWords(n);
  neverDecides = heap.alloc(max<u32>(n, 1));
  // PAIRS slots grouped by their identity class (validated: below n unless empty).
  const slotStart = allocWords(n + 1);
  for (let i: u32 = 0; i <= pairMask; i++) {
    const c = wordAt(pairs, 1 + i * 3);
    if (c < n) setWord(slotStart, c + 1, wordAt(slotStart, c + 1) + 1);
  }
  for (let c: u32 = 0; c < n; c++) setWord(slotStart, c + 1, wordAt(slotStart, c + 1) + wordAt(slotStart, c));
  const slotList = allocWords(wordAt(slotStart, n));
  const fill = allocWords(n);
  for (let i: u32 = 0; i <= pairMask; i++) {
    const c = wordAt(pairs, 1 + i * 3);
    if (c >= n) continue;
    setWord(slotList, wordAt(slotStart, c) + wordAt(fill, c), i);
    setWord(fill, c, wordAt(fill, c) + 1);
  }
  heap.free(fill);
  // Signatures: the default row and, summed over the class's slots, (d, what pairRow gives).
  const signature = heap.alloc((<usize>max<u32>(n, 1)) << 3);
  for (let c: u32 = 0; c < n; c++) {
    let never = load<u8>(defaultOnlyRow + wordAt(defaultRow, c));
    let sum = pairMix(0xffffffff, wordAt(defaultRow, c));
    for (let k = wordAt(slotStart, c); k < wordAt(slotStart, c + 1); k++) {
      const slot = 1 + wordAt(slotList, k) * 3;
      const d = wordAt(pairs, slot + 1);
      sum += pairMix(d, pairRow(c, d));
      never &= load<u8>(defaultOnlyRow + wordAt(pairs, slot + 2));
    }
    store<u64>(signature + ((<usize>c) << 3), sum);
    store<u8>(neverDecides + c, never);
  }
  // The first class of each signature represents every later class that checks equal to it.
  let mask: u32 = 1;
  while (mask < n * 2) mask = mask * 2 + 1;
  const firstOf = allocWords(mask + 1); // class + 1 per slot, 0 = empty
  for (let c: u32 = 0; c < n; c++) {
    const sig = load<u64>(signature + ((<usize>c) << 3));
    setWord(classRep, c, c);
    let i = <u32>sig & mask;
    while (true) {
      const first = wordAt(firstOf, i);
      if (first == 0) {
        setWord(firstOf, i, c + 1);
        break;
      }
      if (load<u64>(signature + ((<usize>(first - 1)) << 3)) == sig) {
        if (sameRows(first - 1, c, slotStart, slotList)) setWord(classRep, c, first - 1);
        break;
      }
      i = (i + 1) & mask;
    }
  }
  heap.free(firstOf);
  heap.free(signature);
  heap.free(slotList);
  heap.free(slotStart);
}

function cacheInsert(handle: u32): void {
  let i = wordAt(records + (<usize>handle) * RECORD_WORDS * 4, 0) & cacheMask;
  while (wordAt(cacheSlots, i) != 0) i = (i + 1) & cacheMask;
  setWord(cacheSlots, i, handle);
}

function growCache(): void {
  heap.free(cacheSlots);
  cacheMask = cacheMask * 2 + 1;
  cacheSlots = allocWords(cacheMask + 1);
  for (let h: u32 = 2; h < recordCount; h++) cacheInsert(h);
}

/** The identity handle of the UTF-8 SPIFFE ID at `ptr` (see the header). */
export function classifyIdentity(ptr: usize, length: u32): u32 {
  if (!loaded) return INVALID_REQUEST;
  const hash = fnv1a(ptr, length);
  for (let i = hash & cacheMask; ; i = (i + 1) & cacheMask) {
    const h = wordAt(cacheSlots, i);
    if (h == 0) break;
    const r = records + (<usize>h) * RECORD_WORDS * 4;
    if (wordAt(r, 0) == hash && wordAt(r, 2) == length && bytesEqual(<usize>wordAt(r, 1), ptr, length)) return h;
  }
  beginClasses();
  const exact = exactList(ptr, length, hash);
  if (exact >= 0) addList(<u32>exact);
  else addPeerLists(ptr, length);
  const countWord = endClasses();
  if (recordCount - 2 >= MAX_CACHED_IDENTITIES) {
    const r = records + (<usize>TRANSIENT_HANDLE) * RECORD_WORDS * 4;
    setRecord(TRANSIENT_HANDLE, hash, 0, length, copyClasses(countWord, <usize>wordAt(r, 3)), countWord);
    return TRANSIENT_HANDLE;
  }
  if (recordCount == recordCapacity) {
    records = heap.realloc(records, (<usize>recordCapacity) * 2 * RECORD_WORDS * 4);
    recordCapacity *= 2;
  }
  const bytes = heap.alloc(max<u32>(length, 1));
  memory.copy(bytes, ptr, length);
  const handle = recordCount++;
  setRecord(handle, hash, bytes, length, copyClasses(countWord, 0), countWord);
  if ((recordCount - 2) * 2 > cacheMask + 1) growCache();
  else cacheInsert(handle);
  if (countWord & COMBINE_BIT) groupNewRecord(handle);
  return handle;
}

/**
 * Forgets every cached identity and combined reason list: back to the state right after
 * loadTables. For hosts that reset the heap between decisions (the OPA ABI, opa.ts), so
 * that what classifyIdentity and decide allocate is scratch that no later decision reads.
 * INVARIANT: between two clears at most one identity is cached and one list interned, so
 * the records, cache slots and combined lists allocated at load are never reallocated.
 */
export function clearIdentityCache(): void {
  if (!loaded) return;
  // Groups off for good, and unidentified leaves its group: what a heap reset may reclaim is never read.
  groupsOff = true;
  setWord(records, 6, 0);
  setWord(records, 7, 0);
  recordCount = 2;
  memory.fill(cacheSlots, 0, (<usize>cacheMask + 1) << 2);
  combinedCount = 1;
  memory.fill(combinedSlots, 0, (<usize>combinedMask + 1) << 3);
}

/** Number of identity handles handed out (2 + cached IDs). */
export function identityCount(): u32 {
  return recordCount;
}

// ---------------------------------------------------------------- class groups

// Most identities that combine several classes share many of them: on the generated
// 10,000-rule set, 13 classes are in 69-100 % of the decisions (the classes a peer gets
// from the components it does not match), and each costs a binary search. A *group*
// merges a set of classes: the union of their interval starts, each merged interval -> an
// *entry*, the distinct rows its classes give there that are not default-only. A decision
// then finds the group's entry at its destination position (through an index by the
// position's top bits, then a binary search of a few starts) and looks up the record's
// other classes one by one.
//
// Which classes: the *hot* ones, in at least HOT_PERCENT % of the cached identities that
// combine classes. They are chosen when that count reaches regroupAt (which then doubles),
// and every record is regrouped; a record classified in between takes the group of its hot
// classes under the current choice. A record's class list is reordered: its group's
// classes first (ascending, the group's key), then the others; word 7 of the record says
// how many are in the group. Groups are interned by their classes, entries by their rows
// (in one store shared by all groups). Groups stop being built once they take groupBudget
// bytes (store and tables included); a record without a group keeps every class apart
// (the path without groups). A host that clears the identity cache (the OPA ABI resets its
// heap between decisions) turns groups off for good.
//
// Layouts (words; addresses are absolute): a group block is `hash, k, classes[k]`, then
// its merged list `n, shift, b, index[b + 1], starts[n], entries[n]` (a record's word 6 is
// the address of n): index[i] is the interval holding position i << shift, index[b] =
// n - 1; an entry is `c, rows[c]`, the rows that can forbid first, each part ascending.
// INVARIANT: a merged list starts at 0 and covers every destination position; at position
// p its entry holds exactly the distinct rows with ROW_DEFAULT_ONLY clear that the group's
// classes give there (classRow), so a decision gathers the same rows with or without the
// group (a row seen twice changes nothing), and decides alike.
const HOT_PERCENT: u32 = 2;
const REFUSED_GROUP: u32 = 0x80000000;
let groupsOff = false;
let regroupAt: u32 = 64;
let groupBudget: usize = 0;
let groupBytes: usize = 0;
let groupSlots: usize = 0; // group block address per slot, 0 = empty
let groupMask: u32 = 0;
let groupCount: u32 = 0;
let combiningRecords: u32 = 0; // cached identities that combine classes
let classUses: usize = 0; // per identity class: the cached combining identities that list it
let hotClass: usize = 0; // one byte per identity class
let coreScratch: usize = 0; // per identity class: a record's hot classes, then its others
let otherScratch: usize = 0;

function buildGroups(tableBytes: usize): void {
  groupBudget = tableBytes >> 2;
  classUses = allocWords(identityClassCount);
  hotClass = heap.alloc(max<u32>(identityClassCount, 1));
  memory.fill(hotClass, 0, max<u32>(identityClassCount, 1));
  coreScratch = allocWords(identityClassCount);
  otherScratch = allocWords(identityClassCount);
  groupMask = 15;
  groupSlots = allocWords(groupMask + 1);
  entryMask = 15;
  entrySlots = allocWords(entryMask + 1);
}

/**
 * For tests and tuning: choose the hot classes first once `firstRegroup` cached identities
 * combine classes (64 by default), and stop building groups once they take `budget` bytes
 * (a quarter of the tables by default). Ignored once an identity was classified.
 */
export function configureGroups(firstRegroup: u32, budget: u32): void {
  if (!loaded || recordCount > 2) return;
  regroupAt = max<u32>(firstRegroup, 1);
  groupBudget = <usize>budget;
}

/** Handed-out identities whose decisions go through a group (for tests). */
export function groupedIdentities(): u32 {
  let n: u32 = 0;
  for (let h: u32 = 0; h < recordCount; h++) if (wordAt(records + (<usize>h) * RECORD_WORDS * 4, 6) != 0) n++;
  return n;
}

// The store: chunks (word 0 links the previous one), bump-allocated, freed whole at regroup.
let storeChunk: usize = 0;
let storeUsed: u32 = 0;
let storeCapacity: u32 = 0;
let storeNextWords: u32 = 1024;

function storeAlloc(words: u32): usize {
  if (storeChunk == 0 || storeUsed + words > storeCapacity) {
    const capacity = max<u32>(storeNextWords, words + 1);
    storeNextWords = min<u32>(storeNextWords * 2, 1 << 16);
    const chunk = heap.alloc((<usize>capacity) << 2);
    groupBytes += (<usize>capacity) << 2;
    setWord(chunk, 0, <u32>storeChunk);
    storeChunk = chunk;
    storeUsed = 1;
    storeCapacity = capacity;
  }
  const at = storeChunk + ((<usize>storeUsed) << 2);
  storeUsed += words;
  return at;
}

function storeFree(): void {
  while (storeChunk != 0) {
    const previous = <usize>wordAt(storeChunk, 0);
    heap.free(storeChunk);
    storeChunk = previous;
  }
  storeNextWords = 1024;
}

// Entries, interned by their rows: an open-addressing table of addresses in the store.
let entrySlots: usize = 0;
let entryMask: u32 = 0;
let entryCount: u32 = 0;

/** Puts `value` (not 0) in the first empty slot from `hash` of an open-addressing table of words. */
function slotPut(slots: usize, mask: u32, value: u32, hash: u32): void {
  let i = hash & mask;
  while (wordAt(slots, i) != 0) i = (i + 1) & mask;
  setWord(slots, i, value);
}

/** The table at `old` (mask `oldMask`) with twice the slots, each value put again by `hashOf`; `old` is freed. */
function slotsGrown(old: usize, oldMask: u32, hashOf: (value: u32) => u32): usize {
  const mask = oldMask * 2 + 1;
  const slots = allocWords(mask + 1);
  for (let i: u32 = 0; i <= oldMask; i++) {
    const value = wordAt(old, i);
    if (value != 0) slotPut(slots, mask, value, hashOf(value));
  }
  heap.free(old);
  return slots;
}

function entryHash(entry: u32): u32 {
  return wordsHash(<usize>entry, load<u32>(<usize>entry) + 1);
}

/** The interned entry equal to `count, rows…` at `key`: its address in the store. */
function entryOf(key: usize): u32 {
  const words = load<u32>(key) + 1;
  const hash = wordsHash(key, words);
  for (let i = hash & entryMask; ; i = (i + 1) & entryMask) {
    const other = <usize>wordAt(entrySlots, i);
    if (other == 0) break;
    if (load<u32>(other) + 1 == words && bytesEqual(other, key, words << 2)) return <u32>other;
  }
  const entry = storeAlloc(words);
  memory.copy(entry, key, (<usize>words) << 2);
  entryCount++;
  if (entryCount * 2 > entryMask + 1) {
    groupBytes += (<usize>(entryMask + 1)) << 2;
    entrySlots = slotsGrown(entrySlots, entryMask, entryHash);
    entryMask = entryMask * 2 + 1;
  }
  slotPut(entrySlots, entryMask, <u32>entry, hash);
  return <u32>entry;
}

/** An entry lists the rows that can forbid first (see combineClasses), each part ascending. */
@inline function entryOrder(row: u32): u64 {
  return ((<u64>load<u8>(noForbidRow + row)) << 32) | <u64>row;
}

/** Builds the group block of the `k` classes at coreScratch (see the layouts above). */
function buildGroup(hash: u32, k: u32): usize {
  // The union of the classes' starts (each list starts at 0).
  let total: u32 = 0;
  for (let j: u32 = 0; j < k; j++) total += load<u32>(spans + ((<usize>wordAt(coreScratch, j)) << 3), 4);
  const keys = heap.alloc((<usize>total) << 3);
  const tmp = heap.alloc((<usize>total) << 3);
  let at: u32 = 0;
  for (let j: u32 = 0; j < k; j++) {
    const span = spans + ((<usize>wordAt(coreScratch, j)) << 3);
    const list = <usize>load<u32>(span);
    const n = load<u32>(span, 4);
    for (let i: u32 = 0; i < n; i++) {
      store<u64>(keys + ((<usize>at) << 3), <u64>wordAt(list, i));
      at++;
    }
  }
  sortBy<u64>(keys, tmp, total, keyBefore);
  heap.free(tmp);
  const starts = allocWords(total);
  const entries = allocWords(total);
  const key = allocWords(k + 1);
  const cursor = allocWords(k);
  let m: u32 = 0;
  for (let i: u32 = 0; i < total; i++) {
    const b = <u32>load<u64>(keys + ((<usize>i) << 3));
    if (i > 0 && <u64>b == load<u64>(keys + ((<usize>(i - 1)) << 3))) continue;
    // The distinct rows with ROW_DEFAULT_ONLY clear at b, ascending: the entry's key.
    let count: u32 = 0;
    for (let j: u32 = 0; j < k; j++) {
      const span = spans + ((<usize>wordAt(coreScratch, j)) << 3);
      const spanStart = <usize>load<u32>(span);
      const n = load<u32>(span, 4);
      let c = wordAt(cursor, j);
      while (c + 1 < n && wordAt(spanStart, c + 1) <= b) c++;
      setWord(cursor, j, c);
      const w = wordAt(spanStart + ((<usize>n) << 2), c);
      if (w & ROW_DEFAULT_ONLY) continue;
      let p = count;
      while (p > 0 && entryOrder(wordAt(key, p)) > entryOrder(w)) p--;
      if (p > 0 && wordAt(key, p) == w) continue;
      for (let q = count; q > p; q--) setWord(key, q + 1, wordAt(key, q));
      setWord(key, p + 1, w);
      count++;
    }
    setWord(key, 0, count);
    const entry = entryOf(key);
    if (m > 0 && wordAt(entries, m - 1) == entry) continue;
    setWord(starts, m, b);
    setWord(entries, m, entry);
    m++;
  }
  heap.free(cursor);
  heap.free(key);
  heap.free(keys);
  // The index: about 2 buckets of positions per interval.
  let shift: u32 = 0;
  while (shift < 31 && ((destinationClassCount - 1) >> shift) + 1 > m * 2) shift++;
  const buckets = ((destinationClassCount - 1) >> shift) + 1;
  const bytes = (<usize>(6 + k + buckets + m * 2)) << 2;
  const g = heap.alloc(bytes);
  groupBytes += bytes;
  setWord(g, 0, hash);
  setWord(g, 1, k);
  memory.copy(g + 8, coreScratch, (<usize>k) << 2);
  const merged = g + ((<usize>(2 + k)) << 2);
  setWord(merged, 0, m);
  setWord(merged, 1, shift);
  setWord(merged, 2, buckets);
  const index = merged + 12;
  let i: u32 = 0;
  for (let bucket: u32 = 0; bucket < buckets; bucket++) {
    const first = bucket << shift;
    while (i + 1 < m && wordAt(starts, i + 1) <= first) i++;
    setWord(index, bucket, i);
  }
  setWord(index, buckets, m - 1);
  const mergedStarts = index + ((<usize>(buckets + 1)) << 2);
  memory.copy(mergedStarts, starts, (<usize>m) << 2);
  memory.copy(mergedStarts + ((<usize>m) << 2), entries, (<usize>m) << 2);
  heap.free(entries);
  heap.free(starts);
  return g;
}

function groupHash(g: u32): u32 {
  return load<u32>(<usize>g);
}

/**
 * The group of the `k` classes at coreScratch (ascending), built when new; 0 once groups
 * take the budget (remembered as a block with REFUSED_GROUP set in its count word).
 */
function groupOf(k: u32): usize {
  const hash = wordsHash(coreScratch, k);
  for (let i = hash & groupMask; ; i = (i + 1) & groupMask) {
    const g = <usize>wordAt(groupSlots, i);
    if (g == 0) break;
    if (load<u32>(g) == hash && (load<u32>(g, 4) & ~REFUSED_GROUP) == k && bytesEqual(g + 8, coreScratch, k << 2)) {
      return load<u32>(g, 4) & REFUSED_GROUP ? 0 : g;
    }
  }
  const refused = groupBytes >= groupBudget;
  let g: usize;
  if (refused) {
    g = heap.alloc((<usize>(2 + k)) << 2);
    groupBytes += (<usize>(2 + k)) << 2;
    setWord(g, 0, hash);
    setWord(g, 1, k | REFUSED_GROUP);
    memory.copy(g + 8, coreScratch, (<usize>k) << 2);
  } else g = buildGroup(hash, k);
  groupCount++;
  if (groupCount * 2 > groupMask + 1) {
    groupSlots = slotsGrown(groupSlots, groupMask, groupHash);
    groupMask = groupMask * 2 + 1;
  }
  slotPut(groupSlots, groupMask, <u32>g, hash);
  return refused ? 0 : g;
}

/** Puts combining record `handle` in the group of its hot classes (when there are two or more and groups have room). */
function assignGroup(handle: u32): void {
  const r = records + (<usize>handle) * RECORD_WORDS * 4;
  setWord(r, 6, 0);
  setWord(r, 7, 0);
  const classes = <usize>wordAt(r, 3);
  const n = wordAt(r, 4) & ~COMBINE_BIT;
  let k: u32 = 0;
  let others: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const c = wordAt(classes, i);
    if (load<u8>(hotClass + c) == 0) {
      setWord(otherScratch, others++, c);
      continue;
    }
    let p = k++;
    while (p > 0 && wordAt(coreScratch, p - 1) > c) {
      setWord(coreScratch, p, wordAt(coreScratch, p - 1));
      p--;
    }
    setWord(coreScratch, p, c);
  }
  if (k < 2) return;
  const g = groupOf(k);
  if (g == 0) return;
  memory.copy(classes, coreScratch, (<usize>k) << 2);
  memory.copy(classes + ((<usize>k) << 2), otherScratch, (<usize>others) << 2);
  setWord(r, 6, <u32>(g + ((<usize>(2 + k)) << 2)));
  setWord(r, 7, k);
}

/** Drops every group and the store (records keep stale group words until regrouped). */
function dropGroups(): void {
  for (let i: u32 = 0; i <= groupMask; i++) {
    const g = wordAt(groupSlots, i);
    if (g != 0) heap.free(<usize>g);
  }
  memory.fill(groupSlots, 0, (<usize>groupMask + 1) << 2);
  groupCount = 0;
  storeFree();
  memory.fill(entrySlots, 0, (<usize>entryMask + 1) << 2);
  entryCount = 0;
  groupBytes = (<usize>entryMask + 1) << 2;
}

/** Chooses the hot classes again and regroups every record (the old groups are freed). */
function regroup(): void {
  for (let c: u32 = 0; c < identityClassCount; c++) {
    const uses = <u64>wordAt(classUses, c);
    store<u8>(hotClass + c, uses >= 2 && uses * 100 >= <u64>combiningRecords * HOT_PERCENT ? 1 : 0);
  }
  dropGroups();
  for (let h: u32 = 0; h < recordCount; h++) {
    if (h != TRANSIENT_HANDLE && (wordAt(records + (<usize>h) * RECORD_WORDS * 4, 4) & COMBINE_BIT) != 0) assignGroup(h);
  }
}

/** A cached identity that combines classes was just classified: count its classes, then group it (or regroup all). */
function groupNewRecord(handle: u32): void {
  if (groupsOff) return;
  const r = records + (<usize>handle) * RECORD_WORDS * 4;
  const classes = <usize>wordAt(r, 3);
  const n = wordAt(r, 4) & ~COMBINE_BIT;
  for (let i: u32 = 0; i < n; i++) {
    const c = wordAt(classes, i);
    setWord(classUses, c, wordAt(classUses, c) + 1);
  }
  combiningRecords++;
  if (combiningRecords >= regroupAt) {
    regroupAt = regroupAt >= 0x80000000 ? u32.MAX_VALUE : regroupAt * 2;
    regroup();
  } else assignGroup(handle);
}

// ---------------------------------------------------------------- rows and verdicts

/** No row: a row index is below ROW_INDEX's length, itself below 2^30 words. */
const NO_ROW: u32 = 0xffffffff;

/**
 * Step 3 up to the default, by the walk (load time only; decisions use classRow): the row
 * of the first of d, its parent, … (while not 0) paired
 * with identity class s in PAIRS, or NO_ROW. Only classes within s's range (`info`, its
 * classInfo record) are probed: the walk only descends, so once below it nothing more
 * can be found.
 * INVARIANT: d < destination classes, so every DST_PARENT read is inside it and the walk
 * ends (validated: [c] < c; the range's low end is at least 1).
 */
@inline function pairedRow(s: u32, info: usize, d: u32): u32 {
  const low = load<u32>(info);
  const high = load<u32>(info, 4);
  for (let c = d; c >= low; c = wordAt(dstParent, c)) {
    if (c > high) continue;
    const row = probeRow(s, c);
    if (row != NO_ROW) return row;
  }
  return NO_ROW;
}

/** Step 3: the row of identity class s at destination class d, else s's default row (DecisionTableReader.row). */
@inline function pairRow(s: u32, d: u32): u32 {
  const info = classInfo + (<usize>s) * INFO_BYTES;
  const row = pairedRow(s, info, d);
  return row == NO_ROW ? load<u32>(info, 8) : row;
}

/** In a list `n, (start, x)…` at word `offset` of `base`, the x of the last entry whose start <= value. */
@inline function pickIn(base: usize, offset: u32, value: u32): u32 {
  const list = base + ((<usize>offset) << 2);
  let lo: u32 = 0;
  let n = load<u32>(list);
  while (n > 1) {
    const half = n >> 1;
    lo = load<u32>(list + 4 + ((<usize>(lo + half)) << 3)) <= value ? lo + half : lo;
    n -= half;
  }
  return load<u32>(list + 8 + ((<usize>lo) << 3));
}

/** pickIn over ROW_DATA. */
@inline function pick(offset: u32, value: u32): u32 {
  return pickIn(rowData, offset, value);
}

// Per row and protocol, where its descent starts (built at load, buildRowRefs): a row with
// one uid interval holding one gid interval (most rows: their classes read neither axis)
// keeps its port list's offset, so the lookup skips the two levels that cannot change the
// outcome. Any other row keeps DESCEND | an offset in rowFlat, where its uid list is
// copied for that protocol: `n, (start, gid list)…`, each gid list `n, (start, port list)…`
// naming the port list in ROW_DATA directly. So a descent reads one small block (all of
// them lie together, apart from the 2 MB of ROW_DATA) and then the port list, instead of
// the uid list, a gid list and a protocol block in ROW_DATA. The lists are copied in their
// stored order, so pickIn finds there what pick finds in ROW_DATA. A row whose copy would
// take more than FLAT_ROW_WORDS (never in compiled tables, where these lists are short;
// possible in accepted corrupt ones) keeps DESCEND | IN_ROW_DATA | its offset, and
// descends uid -> gid -> protocol in ROW_DATA.
// Where a port list (found either way) has one interval, its verdict is kept instead,
// as ONE_VERDICT | verdict: 40 % of the port lists of the generated 10,000-rule set.
const DESCEND: u32 = 0x80000000;
const IN_ROW_DATA: u32 = 0x40000000;
const ONE_VERDICT: u32 = 0x40000000;
const FLAT_ROW_WORDS: u32 = 256;
let rowRefs: usize = 0;
let rowFlat: usize = 0;

/** Words of the flat copy of the row at `at` for one protocol, or FLAT_ROW_WORDS + 1 when larger. */
function flatWords(at: u32): u32 {
  const nUid = wordAt(rowData, at);
  if (nUid > FLAT_ROW_WORDS) return FLAT_ROW_WORDS + 1;
  let words: u32 = 1 + nUid * 2;
  for (let u: u32 = 0; u < nUid; u++) {
    words += 1 + wordAt(rowData, wordAt(rowData, at + 2 + u * 2)) * 2;
    if (words > FLAT_ROW_WORDS) return FLAT_ROW_WORDS + 1;
  }
  return words;
}

/** A port list's offset, or ONE_VERDICT | its verdict when it has one interval (offsets and verdicts are below 2^30). */
function portsRef(ports: u32): u32 {
  return wordAt(rowData, ports) == 1 ? ONE_VERDICT | wordAt(rowData, ports + 2) : ports;
}

function buildRowRefs(): void {
  rowRefs = allocWords(rowCount * 2);
  let total: u32 = 0;
  for (let r: u32 = 0; r < rowCount; r++) {
    const at = wordAt(rowIndex, r);
    const gidBlock = wordAt(rowData, at + 2);
    if (wordAt(rowData, at) == 1 && wordAt(rowData, gidBlock) == 1) {
      const protoBlock = wordAt(rowData, gidBlock + 2);
      setWord(rowRefs, r * 2, portsRef(wordAt(rowData, protoBlock)));
      setWord(rowRefs, r * 2 + 1, portsRef(wordAt(rowData, protoBlock + 1)));
      continue;
    }
    const words = flatWords(at);
    if (words > FLAT_ROW_WORDS) {
      setWord(rowRefs, r * 2, DESCEND | IN_ROW_DATA | at);
      setWord(rowRefs, r * 2 + 1, DESCEND | IN_ROW_DATA | at);
    } else total += words * 2;
  }
  rowFlat = allocWords(total);
  let out: u32 = 0;
  for (let r: u32 = 0; r < rowCount; r++) {
    const at = wordAt(rowIndex, r);
    const gidBlock = wordAt(rowData, at + 2);
    if ((wordAt(rowData, at) == 1 && wordAt(rowData, gidBlock) == 1) || flatWords(at) > FLAT_ROW_WORDS) continue;
    const nUid = wordAt(rowData, at);
    for (let protocol: u32 = 0; protocol < 2; protocol++) {
      setWord(rowRefs, r * 2 + protocol, DESCEND | out);
      const uidList = out;
      setWord(rowFlat, uidList, nUid);
      out += 1 + nUid * 2;
      for (let u: u32 = 0; u < nUid; u++) {
        const gids = wordAt(rowData, at + 2 + u * 2);
        const nGid = wordAt(rowData, gids);
        setWord(rowFlat, uidList + 1 + u * 2, wordAt(rowData, at + 1 + u * 2));
        setWord(rowFlat, uidList + 2 + u * 2, out);
        setWord(rowFlat, out, nGid);
        for (let g: u32 = 0; g < nGid; g++) {
          setWord(rowFlat, out + 1 + g * 2, wordAt(rowData, gids + 1 + g * 2));
          setWord(rowFlat, out + 2 + g * 2, portsRef(wordAt(rowData, wordAt(rowData, gids + 2 + g * 2) + protocol)));
        }
        out += 1 + nGid * 2;
      }
    }
  }
}

@inline function verdictOf(row: u32, uid: u32, gid: u32, protocol: u32, port: u32): u32 {
  let ports = wordAt(rowRefs, row * 2 + protocol);
  if (ports & DESCEND) {
    if (ports & IN_ROW_DATA) {
      const gidBlock = pick(ports & ~(DESCEND | IN_ROW_DATA), uid);
      const protoBlock = pick(gidBlock, gid);
      ports = wordAt(rowData, protoBlock + protocol);
      return pick(ports, port);
    }
    ports = pickIn(rowFlat, pickIn(rowFlat, ports & ~DESCEND, uid), gid);
  }
  return ports & ONE_VERDICT ? ports & ~ONE_VERDICT : pick(ports, port);
}

@inline function verdictResult(v: u32): u32 {
  return (wordAt(verdicts, v * 2) & 3) | (wordAt(verdicts, v * 2 + 1) << 2);
}

// ---------------------------------------------------------------- combining classes

// Combined reason lists, interned by the sorted distinct reason sets they unite. Entry k
// (reasonRef = reasonSetCount + k) is (key at, key length, hash, list at, list length); its
// key block is `hash, length, sets…`. A slot of combinedSlots is (k, key at), so a lookup
// reads a slot and then a key block. Entry 0 is never used (k = 0 marks an empty slot).
const COMBINED_WORDS: u32 = 5;
let combined: usize = 0;
let combinedCount: u32 = 0;
let combinedCapacity: u32 = 0;
let combinedSlots: usize = 0;
let combinedMask: u32 = 0;
let canonicalSet: usize = 0; // one byte per reason set: its rules strictly increase in rank
let ruleStamp: usize = 0;
let ruleStampNow: u32 = 0;
let unionScratch: usize = 0;
let unionTmp: usize = 0;
let setScratch: usize = 0;
let rowScratch: usize = 0;
let searchScratch: usize = 0; // per listed class: (list at, intervals left, low index, row words at)
let defaultOnlyRow: usize = 0; // one byte per row: every verdict it holds has the default flag
let noForbidRow: usize = 0; // one byte per row: none of its verdicts is a forbid
let noForbidClass: usize = 0; // one byte per identity class: none of the rows it gives at any destination can forbid

/** Bit f set for each flags value f (FLAG_* bits) of the verdicts reachable from the row (validated); stops once both a forbid and a permit are seen. */
function rowVerdictFlags(at: u32): u32 {
  let seen: u32 = 0;
  const nUid = wordAt(rowData, at);
  for (let u: u32 = 0; u < nUid; u++) {
    const gidBlock = wordAt(rowData, at + 2 + u * 2);
    const nGid = wordAt(rowData, gidBlock);
    for (let g: u32 = 0; g < nGid; g++) {
      const protoBlock = wordAt(rowData, gidBlock + 2 + g * 2);
      for (let proto: u32 = 0; proto < 2; proto++) {
        const ports = wordAt(rowData, protoBlock + proto);
        const nPorts = wordAt(rowData, ports);
        for (let p: u32 = 0; p < nPorts; p++) {
          seen |= 1 << (wordAt(verdicts, wordAt(rowData, ports + 2 + p * 2) * 2) & 3);
          if ((seen & 3) == 3) return seen;
        }
      }
    }
  }
  return seen;
}

@inline function rankOf(rule: u32): u32 {
  return ruleRanks == 0 ? rule : wordAt(ruleRanks, rule);
}

function buildCombining(): void {
  canonicalSet = heap.alloc(max<u32>(reasonSetCount, 1));
  for (let s: u32 = 0; s < reasonSetCount; s++) {
    let canonical: u8 = 1;
    const end = wordAt(reasonIndex, s + 1);
    for (let at = wordAt(reasonIndex, s); at + 1 < end; at++) if (rankOf(wordAt(reasonData, at)) >= rankOf(wordAt(reasonData, at + 1))) canonical = 0;
    store<u8>(canonicalSet + s, canonical);
  }
  ruleStamp = allocWords(ruleCount);
  unionScratch = allocWords(ruleCount);
  unionTmp = allocWords(ruleCount);
  setScratch = allocWords(identityClassCount);
  rowScratch = allocWords(identityClassCount);
  searchScratch = allocWords(identityClassCount * 4);
  defaultOnlyRow = heap.alloc(max<u32>(rowCount, 1));
  noForbidRow = heap.alloc(max<u32>(rowCount, 1));
  for (let r: u32 = 0; r < rowCount; r++) {
    // A forbid is a verdict with flags 0 (deny, not default), a permit one with flags 1.
    const seen = rowVerdictFlags(wordAt(rowIndex, r));
    store<u8>(defaultOnlyRow + r, (seen & 3) == 0 ? 1 : 0);
    store<u8>(noForbidRow + r, (seen & 1) == 0 ? 1 : 0);
  }
  combinedCapacity = 16;
  combined = allocWords(combinedCapacity * COMBINED_WORDS);
  combinedMask = 31;
  combinedSlots = allocWords((combinedMask + 1) * 2);
  combinedCount = 1; // entry 0 is never used
}

function combinedEntry(k: u32): usize {
  return combined + (<usize>k) * COMBINED_WORDS * 4;
}

function combinedInsert(k: u32): void {
  const e = combinedEntry(k);
  let i = wordAt(e, 2) & combinedMask;
  while (wordAt(combinedSlots, i * 2) != 0) i = (i + 1) & combinedMask;
  setWord(combinedSlots, i * 2, k);
  setWord(combinedSlots, i * 2 + 1, wordAt(e, 0));
}

/** Whether rule index `a` comes before `b` in rule-id order. */
function rankBefore(a: u32, b: u32): bool {
  return rankOf(a) < rankOf(b);
}

/** The reasonRef of the union of `n` distinct reason sets (sorted ascending at setScratch), or MAX when full. */
function internUnion(n: u32): u32 {
  const hash = wordsHash(setScratch, n);
  for (let i = hash & combinedMask; ; i = (i + 1) & combinedMask) {
    const k = wordAt(combinedSlots, i * 2);
    if (k == 0) break;
    const key = <usize>wordAt(combinedSlots, i * 2 + 1);
    if (load<u32>(key) == hash && load<u32>(key, 4) == n && bytesEqual(key + 8, setScratch, n << 2)) return reasonSetCount + k;
  }
  if (combinedCount >= MAX_COMBINED) return u32.MAX_VALUE;
  // The union, each rule once, in rank order.
  ruleStampNow++;
  let count: u32 = 0;
  for (let k: u32 = 0; k < n; k++) {
    const s = wordAt(setScratch, k);
    const end = wordAt(reasonIndex, s + 1);
    for (let at = wordAt(reasonIndex, s); at < end; at++) {
      const rule = wordAt(reasonData, at);
      if (wordAt(ruleStamp, rule) == ruleStampNow) continue;
      setWord(ruleStamp, rule, ruleStampNow);
      setWord(unionScratch, count++, rule);
    }
  }
  sortBy<u32>(unionScratch, unionTmp, count, rankBefore);
  if (combinedCount == combinedCapacity) {
    combined = heap.realloc(combined, (<usize>combinedCapacity) * 2 * COMBINED_WORDS * 4);
    combinedCapacity *= 2;
  }
  const key = heap.alloc((<usize>(n + 2)) << 2);
  store<u32>(key, hash);
  store<u32>(key, n, 4);
  memory.copy(key + 8, setScratch, (<usize>n) << 2);
  const list = heap.alloc((<usize>max<u32>(count, 1)) << 2);
  memory.copy(list, unionScratch, (<usize>count) << 2);
  const k = combinedCount++;
  const e = combinedEntry(k);
  setWord(e, 0, <u32>key);
  setWord(e, 1, n);
  setWord(e, 2, hash);
  setWord(e, 3, <u32>list);
  setWord(e, 4, count);
  if (combinedCount * 2 > combinedMask + 1) {
    heap.free(combinedSlots);
    combinedMask = combinedMask * 2 + 1;
    combinedSlots = allocWords((combinedMask + 1) * 2);
    for (let j: u32 = 1; j < combinedCount; j++) combinedInsert(j);
  } else combinedInsert(k);
  return reasonSetCount + k;
}

// The combination in progress (combineClasses): the best group of the verdicts so far
// (a forbid, flags 0, outranks a permit, 1, which outranks the default, 2) and how many
// distinct reason sets of that group are at setScratch, ascending.
let foldGroup: u32 = FLAG_DEFAULT;
let foldSets: u32 = 0;

/** Adds verdict v to the combination in progress. */
@inline function foldVerdict(v: u32): void {
  const flags = wordAt(verdicts, v * 2) & 3;
  if (flags & FLAG_DEFAULT) return;
  if (flags != foldGroup) {
    if (flags > foldGroup) return;
    foldGroup = flags;
    foldSets = 0;
  }
  // Insert the verdict's reason set into the sorted distinct list.
  const s = wordAt(verdicts, v * 2 + 1);
  let at = foldSets;
  while (at > 0 && wordAt(setScratch, at - 1) > s) at--;
  if (at > 0 && wordAt(setScratch, at - 1) == s) return;
  for (let j = foldSets; j > at; j--) setWord(setScratch, j, wordAt(setScratch, j - 1));
  setWord(setScratch, at, s);
  foldSets++;
}

/** The entry of the group whose merged list is at `merged` at destination position d: through the index by d's top bits, then a binary search. */
@inline function groupEntry(merged: usize, d: u32): usize {
  const n = load<u32>(merged);
  const index = merged + 12;
  const bucket = d >> load<u32>(merged, 4);
  let lo = wordAt(index, bucket);
  let m = wordAt(index, bucket + 1) - lo + 1;
  const starts = index + ((<usize>(load<u32>(merged, 8) + 1)) << 2);
  while (m > 1) {
    const half = m >> 1;
    lo = wordAt(starts, lo + half) <= d ? lo + half : lo;
    m -= half;
  }
  return <usize>wordAt(starts + ((<usize>n) << 2), lo);
}

/**
 * Step 6, the decision of the identity of record `r` in several classes (`entry`: its
 * group's entry at d, or 0 without a group): forbids win with
 * the union of their reasons, else permits with theirs, else the first class's verdict
 * (DecisionTableReader.combine). Each row is looked up once; a row that only ever gives
 * the default cannot decide, and once a forbid decides, neither can a row or class that
 * never forbids (noForbidRow, noForbidClass), so those are skipped.
 */
function combineClasses(r: usize, d: u32, entry: usize, uid: u32, gid: u32, protocol: u32, port: u32): u32 {
  const classes = <usize>load<u32>(r, 12);
  const count = load<u32>(r, 16) & ~COMBINE_BIT;
  const first = load<u32>(r, 20);
  foldGroup = FLAG_DEFAULT;
  foldSets = 0;
  let entryRows: usize = 0;
  let fromEntry: u32 = 0;
  let k: u32 = 0;
  if (entry != 0) {
    // The group's classes at once: the rows of its entry at d.
    fromEntry = load<u32>(entry);
    entryRows = entry + 4;
    // Its rows that can forbid come first.
    for (let j: u32 = 0; j < fromEntry; j++) {
      const row = wordAt(entryRows, j);
      if (foldGroup == 0 && load<u8>(noForbidRow + row) != 0) break;
      foldVerdict(verdictOf(row, uid, gid, protocol, port));
    }
    k = load<u32>(r, 28);
  }
  // The other classes' rows, not the entry's again, at rowScratch.
  let firstRow = NO_ROW;
  let rows: u32 = 0;
  for (; k < count; k++) {
    const c = wordAt(classes, k);
    if (foldGroup == 0 && load<u8>(noForbidClass + c) != 0) continue;
    const w = classRow(c, d);
    const row = w & ~ROW_DEFAULT_ONLY;
    if (c == first) firstRow = row;
    if (w & ROW_DEFAULT_ONLY) continue;
    let seen = false;
    for (let j: u32 = 0; j < fromEntry; j++) if (wordAt(entryRows, j) == row) seen = true;
    for (let j: u32 = 0; j < rows; j++) if (wordAt(rowScratch, j) == row) seen = true;
    if (!seen) setWord(rowScratch, rows++, row);
  }
  for (let j: u32 = 0; j < rows; j++) {
    const row = wordAt(rowScratch, j);
    if (foldGroup == 0 && load<u8>(noForbidRow + row) != 0) continue;
    foldVerdict(verdictOf(row, uid, gid, protocol, port));
  }
  const group = foldGroup;
  const n = foldSets;
  if (group == FLAG_DEFAULT) {
    // No class decides: the first class's verdict (its row is known when it was looked up apart).
    const row = firstRow != NO_ROW ? firstRow : classRow(first, d) & ~ROW_DEFAULT_ONLY;
    return verdictResult(verdictOf(row, uid, gid, protocol, port));
  }
  const s0 = wordAt(setScratch, 0);
  if (n == 1 && load<u8>(canonicalSet + s0) != 0) return group | (s0 << 2);
  const ref = internUnion(n);
  return ref == u32.MAX_VALUE ? COMBINED_CAPACITY : group | (ref << 2);
}

// ---------------------------------------------------------------- deciding

/** The destination position of an address (family 4 or 6, see the header), or NO_POSITION for another family. */
@inline function positionOfAddress(family: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  if (family == 4) return v4Class(a0);
  if (family == 6) return a0 == 0 && a1 == 0 && a2 == 0xffff ? v4Class(a3) : v6Class(((<u64>a0) << 32) | <u64>a1, ((<u64>a2) << 32) | <u64>a3);
  return NO_POSITION;
}

/** Positions are below the destination class count, itself below 2^30. */
const NO_POSITION: u32 = 0xffffffff;

/** The group entry of record `r` at position d, or 0 when the record has no group. */
@inline function recordEntry(r: usize, d: u32): usize {
  const merged = <usize>load<u32>(r, 24);
  return merged == 0 ? 0 : groupEntry(merged, d);
}

/** Decides for record `r` at position d (its group entry there found already, or 0). */
@inline function decideAt(r: usize, d: u32, entry: usize, uid: u32, gid: u32, protocol: u32, port: u32): u32 {
  const countWord = load<u32>(r, 16);
  if (countWord == 1) return verdictResult(verdictOf(classRow(load<u32>(<usize>load<u32>(r, 12)), d) & ~ROW_DEFAULT_ONLY, uid, gid, protocol, port));
  if (countWord == 0) return INVALID_REQUEST;
  return combineClasses(r, d, entry, uid, gid, protocol, port);
}

/** Decides one request (see the header); INVALID_REQUEST for fields out of range. */
export function decide(handle: u32, uid: u32, gid: u32, protocol: u32, port: u32, family: u32, a0: u32, a1: u32, a2: u32, a3: u32): u32 {
  if (handle >= recordCount || protocol > 1 || port > 65535) return INVALID_REQUEST;
  const d = positionOfAddress(family, a0, a1, a2, a3);
  if (d == NO_POSITION) return INVALID_REQUEST;
  const r = records + (<usize>handle) * RECORD_WORDS * 4;
  return decideAt(r, d, recordEntry(r, d), uid, gid, protocol, port);
}

// decideBatch works through its requests in chunks of BATCH_CHUNK, in stages: every
// request's destination position, then every group entry, then the rest. The requests of a
// stage are independent, so the processor overlaps their cache misses, where one request at
// a time waits for each in turn.
const BATCH_CHUNK: u32 = 64;
const batchPositions: usize = memory.data(4 * BATCH_CHUNK);
const batchEntries: usize = memory.data(4 * BATCH_CHUNK);

/**
 * Decides `count` requests of REQUEST_WORDS words at `requests`; writes one result word each
 * at `results`. TRANSIENT_HANDLE is refused here (INVALID_REQUEST): in a batch it could
 * stand for several IDs, so a request of an uncached ID is decided alone.
 */
export function decideBatch(requests: usize, count: u32, results: usize): void {
  for (let base: u32 = 0; base < count; base += BATCH_CHUNK) {
    const n = min<u32>(BATCH_CHUNK, count - base);
    const chunk = requests + (<usize>base) * REQUEST_WORDS * 4;
    for (let i: u32 = 0; i < n; i++) {
      const q = chunk + (<usize>i) * REQUEST_WORDS * 4;
      const handle = load<u32>(q);
      const valid = handle != TRANSIENT_HANDLE && handle < recordCount && load<u32>(q, 12) <= 1 && load<u32>(q, 16) <= 65535;
      setWord(batchPositions, i, valid ? positionOfAddress(load<u32>(q, 20), load<u32>(q, 24), load<u32>(q, 28), load<u32>(q, 32), load<u32>(q, 36)) : NO_POSITION);
    }
    for (let i: u32 = 0; i < n; i++) {
      const d = wordAt(batchPositions, i);
      const q = chunk + (<usize>i) * REQUEST_WORDS * 4;
      setWord(batchEntries, i, d == NO_POSITION ? 0 : <u32>recordEntry(records + (<usize>load<u32>(q)) * RECORD_WORDS * 4, d));
    }
    for (let i: u32 = 0; i < n; i++) {
      const d = wordAt(batchPositions, i);
      const q = chunk + (<usize>i) * REQUEST_WORDS * 4;
      const r = records + (<usize>load<u32>(q)) * RECORD_WORDS * 4;
      setWord(results, base + i, d == NO_POSITION ? INVALID_REQUEST : decideAt(r, d, <usize>wordAt(batchEntries, i), load<u32>(q, 4), load<u32>(q, 8), load<u32>(q, 12), load<u32>(q, 16)));
    }
  }
}

/** Number of deciding rules a result names (0 for an error result). */
export function resultReasonCount(result: u32): u32 {
  if (result >= COMBINED_CAPACITY) return 0;
  const ref = result >> 2;
  if (ref < reasonSetCount) return wordAt(reasonIndex, ref + 1) - wordAt(reasonIndex, ref);
  if (ref - reasonSetCount >= combinedCount) return 0;
  return wordAt(combinedEntry(ref - reasonSetCount), 4);
}

/** The i-th deciding rule (rule index) of a result; i below resultReasonCount(result). */
export function resultReasonAt(result: u32, i: u32): u32 {
  if (i >= resultReasonCount(result)) return u32.MAX_VALUE;
  const ref = result >> 2;
  if (ref < reasonSetCount) return wordAt(reasonData, wordAt(reasonIndex, ref) + i);
  return wordAt(<usize>wordAt(combinedEntry(ref - reasonSetCount), 3), i);
}

// ---------------------------------------------------------------- loading

/** Validates the tables at `ptr` and builds the lookup structures (see the header). */
export function loadTables(ptr: usize, words: u32, rules: u32, ranks: usize): u32 {
  if (loaded) return LOAD_ALREADY;
  errorDetail = 0;
  const e = validate(ptr, words, rules);
  if (e != LOAD_OK) return e;
  ruleRanks = ranks;
  buildDestinations();
  buildCombining();
  buildClassInfo();
  buildIdentities();
  buildSpans();
  buildRowRefs();
  buildGroups((<usize>words) << 2);
  heap.free(classInfo);
  classInfo = 0;
  loaded = true;
  return LOAD_OK;
}
