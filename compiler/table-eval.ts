// Owns the `tables` engine: deciding a request from the encoded decision tables alone
// (docs/bundle-format.md), by the same lookup sequence the WASM evaluator and the kernel
// run. Loading validates every section bound and every stored index once, so a corrupt
// table is refused and can never be read out of bounds.
import type { Decision, Request } from "./request.js";
import { EMPTY_SLOT, fnv1a, globMatches, MAX_LIST_CLASSES, pairHash, SECTION, VERDICT_ALLOW, VERDICT_DEFAULT } from "./tables.js";
import type { Evaluator } from "./tests.js";

export class TableError extends Error {}

function fail(message: string): never {
  throw new TableError(message);
}

export interface Sections {
  readonly [id: number]: Uint32Array;
}

/** The sections of encoded tables by id, with the directory's bounds checked (not their contents). */
export function readSections(words: Uint32Array): Sections {
  if (words.length < 1) fail("the tables are empty");
  const count = words[0]!;
  if (count > 64 || 1 + count * 3 > words.length) fail("the table directory is truncated");
  const out: Record<number, Uint32Array> = {};
  for (let i = 0; i < count; i++) {
    const id = words[1 + i * 3]!;
    const offset = words[2 + i * 3]!;
    const length = words[3 + i * 3]!;
    if (offset + length > words.length || offset < 1 + count * 3) fail(`section ${id} lies outside the tables`);
    if (out[id] !== undefined) fail(`section ${id} appears twice`);
    out[id] = words.subarray(offset, offset + length);
  }
  for (const id of Object.values(SECTION)) if (out[id] === undefined) fail(`section ${id} is missing`);
  return out;
}

/** Checks that every entry of `values` (taken with `stride` and `at`) is below `limit`. */
function checkIndices(name: string, values: Uint32Array, limit: number, stride = 1, at = 0, skip?: (i: number) => boolean): void {
  for (let i = at; i < values.length; i += stride) {
    if (skip?.(i)) continue;
    if (values[i]! >= limit) fail(`${name} holds index ${values[i]} out of range (${limit})`);
  }
}

export class DecisionTableReader {
  /** Per component: input classes, byte-class map, transitions, state → class list (views into DFA_DATA). */
  private readonly components: readonly { inputClasses: number; byteClass: Uint32Array; transitions: Uint32Array; stateList: Uint32Array }[];
  private readonly patterns: readonly (readonly Uint8Array[])[];
  private readonly termIndex: Uint32Array;
  private readonly termData: Uint32Array;
  private readonly emptyTermList: number;
  private readonly unidentifiedList: number;
  private unidentifiedClasses: readonly number[] | undefined;
  private readonly classLists: Uint32Array;
  private readonly parent: Uint32Array;
  private readonly exactIds: Uint32Array;
  private readonly exactBytes: Uint8Array;
  private readonly v4 = new Map<number, Map<number, number>>();
  private readonly v6 = new Map<number, Map<string, number>>();
  private readonly v4Prefixes: number[];
  private readonly v6Prefixes: number[];
  private readonly pairs: Uint32Array;
  private readonly defaultRow: Uint32Array;
  private readonly rowIndex: Uint32Array;
  private readonly rowData: Uint32Array;
  private readonly verdicts: Uint32Array;
  private readonly reasonIndex: Uint32Array;
  private readonly reasonData: Uint32Array;
  private readonly identityCache = new Map<string, readonly number[]>();

  constructor(words: Uint32Array, private readonly ruleIds: readonly string[]) {
    const s = readSections(words);
    const meta = s[SECTION.META]!;
    if (meta.length < 10) fail("META is truncated");
    const [identityClasses, destinationClasses, rows, verdicts, reasonSets, rules, componentCount, patternCount, emptyTermList, unidentifiedList] = [...meta.subarray(0, 10)] as number[];
    if (rules !== ruleIds.length) fail(`the tables have ${rules} rules but the manifest names ${ruleIds.length}`);
    this.classLists = s[SECTION.CLASS_LISTS]!;
    const isList = checkClassLists(this.classLists, identityClasses!);
    const checkList = (what: string, at: number) => {
      if (!isList(at)) fail(`${what} names no class list`);
    };
    checkList("META's empty term", emptyTermList!);
    checkList("META's unidentified", unidentifiedList!);
    this.emptyTermList = emptyTermList!;
    this.unidentifiedList = unidentifiedList!;
    this.components = readComponents(s, componentCount!, (at) => checkList("a DFA state", at));
    this.patterns = readPatterns(s, patternCount!);
    this.termIndex = s[SECTION.TERM_INDEX]!;
    this.termData = s[SECTION.TERM_DATA]!;
    checkTerms(this.termIndex, this.termData, patternCount!, (at) => checkList("TERM_DATA", at));
    this.parent = s[SECTION.DST_PARENT]!;
    if (this.parent.length !== destinationClasses || this.parent[0] !== 0) fail("DST_PARENT has the wrong size");
    for (let c = 1; c < this.parent.length; c++) if (this.parent[c]! >= c) fail("DST_PARENT holds a bad parent");

    this.exactIds = s[SECTION.EXACT_IDS]!;
    const exactBytes = s[SECTION.EXACT_BYTES]!;
    this.exactBytes = new Uint8Array(exactBytes.buffer, exactBytes.byteOffset, exactBytes.byteLength);
    const capacity = this.exactIds[0] ?? 0;
    if (capacity === 0 || (capacity & (capacity - 1)) !== 0 || this.exactIds.length !== 1 + capacity * 4) fail("EXACT_IDS has the wrong size");
    for (let i = 0; i < capacity; i++) {
      const [, offset, length, list] = this.exactIds.subarray(1 + i * 4, 5 + i * 4) as unknown as number[];
      if (length === EMPTY_SLOT) continue;
      if (offset! + length! > this.exactBytes.length) fail("EXACT_IDS points outside its bytes");
      checkList("EXACT_IDS", list!);
    }

    const v4 = s[SECTION.DST_V4]!;
    const v6 = s[SECTION.DST_V6]!;
    if (v4.length % 3 !== 0 || v6.length % 6 !== 0) fail("a destination table has a partial entry");
    for (let i = 0; i < v4.length; i += 3) {
      const prefix = v4[i + 1]!;
      if (prefix > 32 || v4[i + 2]! >= destinationClasses!) fail("DST_V4 holds a bad entry");
      if (!this.v4.has(prefix)) this.v4.set(prefix, new Map());
      this.v4.get(prefix)!.set(v4[i]!, v4[i + 2]!);
    }
    for (let i = 0; i < v6.length; i += 6) {
      const prefix = v6[i + 4]!;
      if (prefix > 128 || v6[i + 5]! >= destinationClasses!) fail("DST_V6 holds a bad entry");
      if (!this.v6.has(prefix)) this.v6.set(prefix, new Map());
      this.v6.get(prefix)!.set([...v6.subarray(i, i + 4)].join(","), v6[i + 5]!);
    }
    this.v4Prefixes = [...this.v4.keys()].sort((a, b) => b - a);
    this.v6Prefixes = [...this.v6.keys()].sort((a, b) => b - a);

    this.pairs = s[SECTION.PAIRS]!;
    const pairCapacity = this.pairs[0] ?? 0;
    if (pairCapacity === 0 || (pairCapacity & (pairCapacity - 1)) !== 0 || this.pairs.length !== 1 + pairCapacity * 3) fail("PAIRS has the wrong size");
    checkIndices("PAIRS", this.pairs, rows!, 3, 3, (i) => this.pairs[i - 2] === EMPTY_SLOT);
    checkIndices("PAIRS", this.pairs, identityClasses!, 3, 1, (i) => this.pairs[i] === EMPTY_SLOT);
    checkIndices("PAIRS", this.pairs, destinationClasses!, 3, 2, (i) => this.pairs[i - 1] === EMPTY_SLOT);
    this.defaultRow = s[SECTION.DEFAULT_ROW]!;
    if (this.defaultRow.length !== identityClasses) fail("DEFAULT_ROW has the wrong size");
    checkIndices("DEFAULT_ROW", this.defaultRow, rows!);
    this.rowIndex = s[SECTION.ROW_INDEX]!;
    this.rowData = s[SECTION.ROW_DATA]!;
    if (this.rowIndex.length !== rows) fail("ROW_INDEX has the wrong size");
    this.verdicts = s[SECTION.VERDICTS]!;
    if (this.verdicts.length !== verdicts! * 2) fail("VERDICTS has the wrong size");
    checkIndices("VERDICTS", this.verdicts, reasonSets!, 2, 1);
    for (let r = 0; r < rows!; r++) this.checkRow(this.rowIndex[r]!, verdicts!);
    this.reasonIndex = s[SECTION.REASON_INDEX]!;
    this.reasonData = s[SECTION.REASON_DATA]!;
    if (this.reasonIndex.length !== reasonSets! + 1) fail("REASON_INDEX has the wrong size");
    for (let i = 0; i < reasonSets!; i++) {
      if (this.reasonIndex[i]! > this.reasonIndex[i + 1]! || this.reasonIndex[i + 1]! > this.reasonData.length) fail("REASON_INDEX is not ordered");
    }
    checkIndices("REASON_DATA", this.reasonData, rules!);
  }

  /** Validates one row's nested lists: every block inside ROW_DATA, non-empty, starting at 0. */
  private checkRow(at: number, verdictCount: number): void {
    const list = (offset: number, stride: number): number => {
      if (offset >= this.rowData.length) fail("ROW_DATA block out of range");
      const n = this.rowData[offset]!;
      if (n === 0 || offset + 1 + n * stride > this.rowData.length || this.rowData[offset + 1] !== 0) fail("ROW_DATA holds a bad list");
      return n;
    };
    const nUid = list(at, 2);
    for (let u = 0; u < nUid; u++) {
      const gidBlock = this.rowData[at + 2 + u * 2]!;
      const nGid = list(gidBlock, 2);
      for (let g = 0; g < nGid; g++) {
        const protoBlock = this.rowData[gidBlock + 2 + g * 2]!;
        if (protoBlock + 2 > this.rowData.length) fail("ROW_DATA protocol block out of range");
        for (const ports of [this.rowData[protoBlock]!, this.rowData[protoBlock + 1]!]) {
          const nPorts = list(ports, 2);
          for (let p = 0; p < nPorts; p++) if (this.rowData[ports + 2 + p * 2]! >= verdictCount) fail("ROW_DATA holds a bad verdict");
        }
      }
    }
  }

  /** The classes of the list at word offset `at` of CLASS_LISTS. */
  listClasses(at: number): number[] {
    return [...this.classLists.subarray(at + 1, at + 1 + this.classLists[at]!)];
  }

  /**
   * The identity classes of a principal (docs/bundle-format.md, step 1): its list for
   * unidentified and for an exact ID of the policy; for any other ID, the lists of every
   * component's DFA final state, of the empty term and of every term all of whose patterns
   * it matches. Cached per identity.
   */
  identityClasses(principal: string | null): readonly number[] {
    if (principal === null) return (this.unidentifiedClasses ??= this.listClasses(this.unidentifiedList));
    const cached = this.identityCache.get(principal);
    if (cached !== undefined) return cached;
    const utf8 = new TextEncoder().encode(principal);
    const exact = this.exactList(utf8);
    let classes: number[];
    if (exact !== undefined) classes = this.listClasses(exact);
    else {
      classes = this.components.flatMap((c) => {
        let state = 0;
        for (const byte of utf8) state = c.transitions[state * c.inputClasses + c.byteClass[byte]!]!;
        return this.listClasses(c.stateList[state]!);
      });
      classes.push(...this.listClasses(this.emptyTermList));
      const matched = this.patterns.map((pieces) => globMatches(pieces, utf8));
      matched.forEach((isMatched, first) => {
        if (!isMatched) return;
        for (let at = this.termIndex[first]!; at < this.termIndex[first + 1]!; ) {
          const size = this.termData[at]!;
          let all = true;
          for (let k = 1; k < size; k++) all &&= matched[this.termData[at + 1 + k]!]!;
          if (all) classes.push(...this.listClasses(this.termData[at + 1 + size]!));
          at += size + 2;
        }
      });
    }
    this.identityCache.set(principal, classes);
    return classes;
  }

  private exactList(utf8: Uint8Array): number | undefined {
    const capacity = this.exactIds[0]!;
    const hash = fnv1a(utf8);
    for (let i = hash & (capacity - 1), probes = 0; probes < capacity; i = (i + 1) & (capacity - 1), probes++) {
      const slot = 1 + i * 4;
      const length = this.exactIds[slot + 2]!;
      if (length === EMPTY_SLOT) return undefined;
      if (this.exactIds[slot] !== hash || length !== utf8.length) continue;
      const offset = this.exactIds[slot + 1]!;
      if (utf8.every((b, k) => this.exactBytes[offset + k] === b)) return this.exactIds[slot + 3]!;
    }
    return undefined;
  }

  destinationClass(family: 4 | 6, ip: readonly number[]): number {
    if (family === 4) {
      const address = ((ip[0]! << 24) | (ip[1]! << 16) | (ip[2]! << 8) | ip[3]!) >>> 0;
      for (const prefix of this.v4Prefixes) {
        const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
        const cls = this.v4.get(prefix)!.get((address & mask) >>> 0);
        if (cls !== undefined) return cls;
      }
      return 0;
    }
    const words: number[] = [];
    for (let i = 0; i < 16; i += 4) words.push(((ip[i]! << 24) | (ip[i + 1]! << 16) | (ip[i + 2]! << 8) | ip[i + 3]!) >>> 0);
    for (const prefix of this.v6Prefixes) {
      const maskedWords = words.map((w, i) => {
        const bits = Math.max(0, Math.min(32, prefix - i * 32));
        return bits === 0 ? 0 : (w & ((0xffffffff << (32 - bits)) >>> 0)) >>> 0;
      });
      const cls = this.v6.get(prefix)!.get(maskedWords.join(","));
      if (cls !== undefined) return cls;
    }
    return 0;
  }

  /** Step 3: the first of the destination class and its parents paired with the identity class, else its default row. */
  row(identityClass: number, destinationClass: number): number {
    const capacity = this.pairs[0]!;
    for (let c = destinationClass; c !== 0; c = this.parent[c]!) {
      for (let i = pairHash(identityClass, c, capacity), probes = 0; probes < capacity; i = (i + 1) & (capacity - 1), probes++) {
        const slot = 1 + i * 3;
        const s = this.pairs[slot]!;
        if (s === EMPTY_SLOT) break;
        if (s === identityClass && this.pairs[slot + 1] === c) return this.pairs[slot + 2]!;
      }
    }
    return this.defaultRow[identityClass]!;
  }

  /** The last entry whose start is <= value, in a list `n, (start, x)…` at `offset`; returns x. */
  private pick(offset: number, value: number): number {
    const n = this.rowData[offset]!;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.rowData[offset + 1 + mid * 2]! <= value) lo = mid;
      else hi = mid - 1;
    }
    return this.rowData[offset + 2 + lo * 2]!;
  }

  verdict(row: number, uid: number, gid: number, protocol: "tcp" | "udp", port: number): number {
    const gidBlock = this.pick(this.rowIndex[row]!, uid);
    const protoBlock = this.pick(gidBlock, gid);
    return this.pick(this.rowData[protoBlock + (protocol === "tcp" ? 0 : 1)]!, port);
  }

  decision(verdict: number): Decision {
    const flags = this.verdicts[verdict * 2]!;
    return { decision: flags & VERDICT_ALLOW ? "allow" : "deny", reasons: this.reasons(verdict), default: (flags & VERDICT_DEFAULT) !== 0 };
  }

  private reasons(verdict: number): string[] {
    const set = this.verdicts[verdict * 2 + 1]!;
    return [...this.reasonData.subarray(this.reasonIndex[set]!, this.reasonIndex[set + 1]!)].map((i) => this.ruleIds[i]!);
  }

  /**
   * The verdict of a principal in several classes (step 6): its matching rules are the
   * union of each class's, so forbids win with the union of their reasons, else permits
   * with theirs, else the first class's (default) verdict.
   */
  combine(verdicts: readonly number[]): Decision {
    if (verdicts.length === 1) return this.decision(verdicts[0]!);
    const deciding = (wanted: number) =>
      verdicts.filter((v) => (this.verdicts[v * 2]! & (VERDICT_ALLOW | VERDICT_DEFAULT)) === wanted);
    const union = (vs: number[]) => [...new Set(vs.flatMap((v) => this.reasons(v)))].sort();
    const forbidden = deciding(0);
    if (forbidden.length > 0) return { decision: "deny", reasons: union(forbidden), default: false };
    const permitted = deciding(VERDICT_ALLOW);
    if (permitted.length > 0) return { decision: "allow", reasons: union(permitted), default: false };
    return this.decision(verdicts[0]!);
  }
}

/** Validates CLASS_LISTS as a sequence of lists; returns whether a word offset starts one. */
function checkClassLists(words: Uint32Array, classes: number): (at: number) => boolean {
  const starts = new Set<number>();
  for (let at = 0; at < words.length; ) {
    const count = words[at]!;
    if (count === 0 || count > MAX_LIST_CLASSES || at + 1 + count > words.length) fail("CLASS_LISTS holds a bad list");
    checkIndices("CLASS_LISTS", words.subarray(at + 1, at + 1 + count), classes);
    starts.add(at);
    at += 1 + count;
  }
  return (at) => starts.has(at);
}

function readComponents(s: Sections, count: number, checkList: (at: number) => void) {
  const index = s[SECTION.COMPONENTS]!;
  const data = s[SECTION.DFA_DATA]!;
  if (index.length !== count * 5) fail("COMPONENTS has the wrong size");
  const out = [];
  for (let c = 0; c < count; c++) {
    const [inputClasses, states, byteAt, transAt, classAt] = [...index.subarray(c * 5, c * 5 + 5)] as number[];
    if (states! === 0 || inputClasses! === 0 || byteAt! + 256 > data.length || transAt! + states! * inputClasses! > data.length || classAt! + states! > data.length) {
      fail(`component ${c} lies outside DFA_DATA`);
    }
    const byteClass = data.subarray(byteAt!, byteAt! + 256);
    const transitions = data.subarray(transAt!, transAt! + states! * inputClasses!);
    const stateList = data.subarray(classAt!, classAt! + states!);
    checkIndices(`component ${c} byte classes`, byteClass, inputClasses!);
    checkIndices(`component ${c} transitions`, transitions, states!);
    for (const at of stateList) checkList(at);
    out.push({ inputClasses: inputClasses!, byteClass, transitions, stateList });
  }
  return out;
}

/** Every term lies inside TERM_DATA, starts with its group's pattern and names valid patterns and class lists. */
function checkTerms(index: Uint32Array, data: Uint32Array, patterns: number, checkList: (at: number) => void): void {
  if (index.length !== patterns + 1 || index[patterns] !== data.length) fail("TERM_INDEX has the wrong size");
  for (let first = 0; first < patterns; first++) {
    if (index[first]! > index[first + 1]!) fail("TERM_INDEX is not ordered");
    for (let at = index[first]!; at < index[first + 1]!; ) {
      const size = data[at]!;
      if (size === 0 || at + size + 2 > index[first + 1]! || data[at + 1] !== first) fail("TERM_DATA holds a bad term");
      for (let k = 0; k < size; k++) if (data[at + 1 + k]! >= patterns) fail("TERM_DATA names a bad pattern");
      checkList(data[at + 1 + size]!);
      at += size + 2;
    }
  }
}

function readPatterns(s: Sections, count: number): Uint8Array[][] {
  const index = s[SECTION.PATTERN_INDEX]!;
  const data = s[SECTION.PATTERN_DATA]!;
  const words = s[SECTION.PATTERN_BYTES]!;
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  if (index.length !== count + 1) fail("PATTERN_INDEX has the wrong size");
  const out: Uint8Array[][] = [];
  for (let i = 0; i < count; i++) {
    const at = index[i]!;
    if (at >= data.length || at + 1 + data[at]! * 2 > index[i + 1]! || index[i + 1]! > data.length) fail("PATTERN_INDEX points outside PATTERN_DATA");
    const pieces: Uint8Array[] = [];
    for (let k = 0; k < data[at]!; k++) {
      const offset = data[at + 1 + k * 2]!;
      const length = data[at + 2 + k * 2]!;
      if (offset + length > bytes.length) fail("PATTERN_DATA points outside PATTERN_BYTES");
      pieces.push(bytes.subarray(offset, offset + length));
    }
    if (pieces.length < 2) fail("a term pattern has no wildcard");
    out.push(pieces);
  }
  return out;
}

export class TableEvaluator implements Evaluator {
  private readonly reader: DecisionTableReader;

  /** Tables as built or read; a bundle's already validated reader is reused. */
  constructor(tables: { words: Uint32Array; ruleIds: readonly string[]; reader?: DecisionTableReader }) {
    this.reader = tables.reader ?? new DecisionTableReader(tables.words, tables.ruleIds);
  }

  decide(r: Request): Decision {
    const d = this.reader.destinationClass(r.family, r.ip);
    const verdicts = this.reader.identityClasses(r.principal).map((s) => this.reader.verdict(this.reader.row(s, d), r.uid, r.gid, r.protocol, r.port));
    return this.reader.combine(verdicts);
  }
}
