// Owns the rows of the decision tables: for one identity class (a set of rules evaluated
// with a fixed set of identity atoms true), its default row and one row per CIDR its rules
// name, each a fully resolved verdict per (uid, gid, protocol, port) interval; and the
// interning of rows, verdicts and reason sets shared by every class (docs/bundle-format.md).
//
// INVARIANT: deterministic, and exact: a row's verdict in a cell is forbid > permit >
// default over exactly the class's rules that match in that cell (spec §5).
import type { Protocol } from "./model.js";
import type { NormalPolicy, NormalRule } from "./normalise.js";

/** A policy past a lowering limit: refused, never approximated (PC3002). */
export class LoweringError extends Error {}

/** The most cells (uid × gid × protocol × port intervals) one identity class's grid may have: about 30 bytes each while it is built (the largest class of the generated 100,000-rule set has 413,540). */
export const MAX_CLASS_CELLS = 2 ** 23;

/** The fewest rules of a class `groupClasses` may group (smaller classes are cheap alone). */
const GROUP_MIN_RULES = 32;
/** How many of the latest groups of the same atoms a class is compared with. */
const GROUP_CANDIDATES = 32;

/** What a class evaluates its rules with: its identity atoms and whether it is unidentified's (classes with equal keys may share a walk). */
export function atomsKey(c: IdentityClass): string {
  return `${c.unidentified ? "u" : "i"}|${[...c.atoms].sort((a, b) => a - b).join(",")}`;
}

/**
 * Groups the classes whose rows one walk builds (`TableBuilder.groupRows`): classes
 * evaluated with the same identity atoms whose rules differ in a few (at most 3 %, or 4),
 * such as an exact ID's part of negating rules, which is the shared one less the few rules
 * that negate that ID. Greedy in class order, so deterministic; a group's union of rules
 * stays within 5 % of its first class's. Groups are listed by their first class.
 */
export function groupClasses(classes: readonly IdentityClass[]): number[][] {
  const groups: number[][] = [];
  const open = new Map<string, { members: number[]; rules: Set<number>; limit: number }[]>();
  classes.forEach((c, s) => {
    if (c.rules.length < GROUP_MIN_RULES) {
      groups.push([s]);
      return;
    }
    const key = atomsKey(c);
    let candidates = open.get(key);
    if (candidates === undefined) open.set(key, (candidates = []));
    const slack = Math.max(4, Math.floor(c.rules.length * 0.03));
    for (let k = candidates.length - 1; k >= Math.max(0, candidates.length - GROUP_CANDIDATES); k--) {
      const g = candidates[k]!;
      // Its rules the group lacks, and the group's rules it lacks.
      let outside = 0;
      for (const r of c.rules) if (!g.rules.has(r.index) && ++outside > slack) break;
      if (outside > slack || outside + g.rules.size - (c.rules.length - outside) > slack || g.rules.size + outside > g.limit) continue;
      g.members.push(s);
      for (const r of c.rules) g.rules.add(r.index);
      return;
    }
    const group = { members: [s], rules: new Set(c.rules.map((r) => r.index)), limit: Math.floor(c.rules.length * 1.05) + 4 };
    candidates.push(group);
    groups.push(group.members);
  });
  return groups;
}

/** A class's rows: its default row, and (destination class, row) entries. */
export interface ClassRows {
  readonly defaultRow: number;
  readonly entries: [number, number][];
}

export const VERDICT_ALLOW = 1;
export const VERDICT_DEFAULT = 2;

/** An identity class: some rules, evaluated with exactly these identity atoms true. */
export interface IdentityClass {
  readonly atoms: ReadonlySet<number>;
  readonly unidentified: boolean;
  /** Sorted by rule index. */
  readonly rules: readonly NormalRule[];
}

/** What rows need of the destination classes (tables.ts builds them). */
export interface DestinationView {
  /** Class → the CIDR atoms containing its addresses. */
  readonly classCidrs: readonly ReadonlySet<number>[];
  /** CIDR atom → its class. */
  readonly cidrClass: readonly number[];
  /** Class → the class of the longest CIDR strictly containing it (0: none). */
  readonly parent: readonly number[];
}

type Axis = "uid" | "gid" | "port";
const AXIS_MAX: Readonly<Record<Axis, number>> = { uid: 0xffffffff, gid: 0xffffffff, port: 65535 };

/** The interval starts of the grid that rules' cuts on one axis make: 0, then every cut within range, sorted. */
export function axisStarts(rules: readonly NormalRule[], axis: Axis): number[] {
  const starts = new Set<number>([0]);
  for (const r of rules) for (const c of r.cuts[axis]) if (c > 0 && c <= AXIS_MAX[axis]) starts.add(c);
  return [...starts].sort((a, b) => a - b);
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

/**
 * An increasing list of numbers (rule positions or indices), with memoised verdicts and
 * edits. A node made by an edit is lazy: it is its parent's list with one element added or
 * removed, and its elements are written out only when they are read (`ListTable.canon`), so
 * that editing a long list costs no copy unless its verdict is needed.
 */
interface ListNode {
  /** Numbers nodes in the order they were made (`ListTable`'s memo keys). */
  readonly id: number;
  /** The sum of its elements' mixes: an edit updates it in constant time. */
  readonly hash: number;
  readonly length: number;
  /** Where its elements are in its table's arena, or -1 while lazy. */
  start: number;
  /** The interned node with the same elements (itself when it is that node); undefined while lazy. */
  canonical: ListNode | undefined;
  /** A lazy node's parent, and the element the edit added (`present`) or removed. */
  readonly parent: ListNode | undefined;
  readonly step: number;
  readonly present: boolean;
  /** The next interned node with the same hash. */
  next: ListNode | undefined;
  /** On an interned node: the verdict this list of matching rules resolves to alone (the class's lists hold only forbids or only permits). */
  verdict?: number;
  /** On an interned list: its union with other interned lists (`ListTable.union`). */
  unions?: Map<ListNode, ListNode>;
}

/** A 32-bit mix of an integer (murmur3's finaliser), summed into a list's hash. */
function mix(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The first index in `from` up to `end` of the increasing `data` whose element is not below `x`. */
function lowerBound(data: Int32Array, from: number, end: number, x: number): number {
  let lo = from;
  let hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (data[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Interns increasing lists by a hash of their elements: equal lists written out are one node
 * (`canon`). The elements live in one growing arena (a typed array per list made the edits
 * of long lists cost an allocation each, and the collector's work on them).
 */
class ListTable {
  private readonly byHash = new Map<number, ListNode>();
  /** Every node, by id. */
  private readonly nodes: ListNode[] = [];
  /**
   * The edits made, an open-addressing table: slot k holds `node.id + 1` (0: empty), the
   * edit `element * 2 + (added ? 1 : 0)` and the id of the node it gave. Typed arrays: a
   * Map keyed by a number past 2^31 boxes every key.
   */
  private editNode = new Int32Array(1 << 8);
  private editStep = new Int32Array(1 << 8);
  private editOut = new Int32Array(1 << 8);
  private editCount = 0;
  /** The elements of every list written out; `top` words are used. Replaced when it grows: read it after `canon` or `of`. */
  data = new Int32Array(256);
  private top = 0;
  /** A lazy node's edits, nearest first, and its changes by element (`canon`). */
  private readonly chain: ListNode[] = [];
  private readonly steps = new IntStack();
  readonly empty: ListNode = this.of(new Int32Array(0));

  /** Room for `n` more words at `top`. */
  private reserve(n: number): void {
    if (this.top + n <= this.data.length) return;
    const grown = new Int32Array(Math.max(this.data.length * 2, this.top + n));
    grown.set(this.data.subarray(0, this.top));
    this.data = grown;
  }

  private node(hash: number, length: number, parent: ListNode | undefined, step: number, present: boolean): ListNode {
    const node: ListNode = { id: this.nodes.length, hash, length, start: -1, canonical: undefined, parent, step, present, next: undefined };
    this.nodes.push(node);
    return node;
  }

  /** The interned node of the first `length` elements of `items` (copied when new). */
  of(items: Int32Array, length = items.length): ListNode {
    this.reserve(length);
    const data = this.data;
    let hash = 0;
    for (let i = 0; i < length; i++) {
      const x = items[i]!;
      data[this.top + i] = x;
      hash = (hash + mix(x)) | 0;
    }
    return this.intern(length, hash, undefined);
  }

  /**
   * The interned node of the `length` words at `top` (just written, not yet claimed), whose
   * hash is `hash`: an equal node, else `lazy` (or a new node) claiming the words.
   */
  private intern(length: number, hash: number, lazy: ListNode | undefined): ListNode {
    const data = this.data;
    const at = this.top;
    const first = this.byHash.get(hash);
    for (let node = first; node !== undefined; node = node.next) {
      if (node.length !== length) continue;
      let i = 0;
      const other = node.start;
      while (i < length && data[other + i] === data[at + i]) i++;
      if (i === length) return node;
    }
    const node = lazy ?? this.node(hash, length, undefined, 0, false);
    node.start = at;
    node.canonical = node;
    node.next = first;
    this.top += length;
    this.byHash.set(hash, node);
    return node;
  }

  /** The interned union of the interned, disjoint lists `a` and `b`, memoised on `a`. */
  union(a: ListNode, b: ListNode): ListNode {
    if (b.length === 0) return a;
    if (a.length === 0) return b;
    a.unions ??= new Map();
    let out = a.unions.get(b);
    if (out !== undefined) return out;
    this.reserve(a.length + b.length);
    const data = this.data;
    let at = this.top;
    let i = a.start;
    let j = b.start;
    const aEnd = a.start + a.length;
    const bEnd = b.start + b.length;
    while (i < aEnd || j < bEnd) data[at++] = j >= bEnd || (i < aEnd && data[i]! < data[j]!) ? data[i++]! : data[j++]!;
    // The elements are disjoint: the union's hash is the sum of theirs.
    out = this.intern(a.length + b.length, (a.hash + b.hash) | 0, undefined);
    a.unions.set(b, out);
    return out;
  }

  /** The interned node with `node`'s elements, written out if lazy: its parents' chain of edits applied to the nearest written-out one. */
  canon(node: ListNode): ListNode {
    if (node.canonical !== undefined) return node.canonical;
    const chain = this.chain;
    chain.length = 0;
    let base = node;
    while (base.canonical === undefined) {
      chain.push(base);
      base = base.parent!;
    }
    base = base.canonical;
    // Each element's last edit decides whether it is in the list: (element, added) pairs by
    // element, the nearest edit of each.
    const steps = this.steps;
    steps.length = 0;
    for (const edit of chain) {
      let at = steps.length;
      steps.push(0, 0);
      while (at > 0 && steps.at(at - 2) > edit.step) at -= 2;
      if (at > 0 && steps.at(at - 2) === edit.step) {
        steps.length -= 2;
        continue;
      }
      const buffer = steps.buffer;
      buffer.copyWithin(at + 2, at, steps.length - 2);
      buffer[at] = edit.step;
      buffer[at + 1] = edit.present ? 1 : 0;
    }
    this.reserve(base.length + steps.length / 2);
    const data = this.data;
    const changes = steps.buffer;
    let out = this.top;
    let i = base.start;
    const end = base.start + base.length;
    for (let k = 0; k < steps.length; k += 2) {
      const step = changes[k]!;
      // Elements below the change, then the change.
      const at = lowerBound(data, i, end, step);
      data.copyWithin(out, i, at);
      out += at - i;
      i = at < end && data[at] === step ? at + 1 : at;
      if (changes[k + 1]) data[out++] = step;
    }
    data.copyWithin(out, i, end);
    out += end - i;
    node.canonical = this.intern(out - this.top, node.hash, node);
    return node.canonical;
  }

  /** The slot of edit (`node`, `key`) in the edit table: where it is, or the empty slot to put it. */
  private editSlot(node: number, key: number): number {
    const mask = this.editNode.length - 1;
    let k = mix(Math.imul(node, 0x9e3779b1) ^ key) & mask;
    while (this.editNode[k] !== 0 && (this.editNode[k] !== node + 1 || this.editStep[k] !== key)) k = (k + 1) & mask;
    return k;
  }

  /** Records edit (`node`, `key`) → `out` at the empty slot `k`, growing the table past half full. */
  private remember(k: number, node: number, key: number, out: number): void {
    this.editNode[k] = node + 1;
    this.editStep[k] = key;
    this.editOut[k] = out;
    if (++this.editCount * 2 <= this.editNode.length) return;
    const [nodes, steps, outs] = [this.editNode, this.editStep, this.editOut];
    this.editNode = new Int32Array(nodes.length * 2);
    this.editStep = new Int32Array(nodes.length * 2);
    this.editOut = new Int32Array(nodes.length * 2);
    for (let j = 0; j < nodes.length; j++) {
      if (nodes[j] === 0) continue;
      const slot = this.editSlot(nodes[j]! - 1, steps[j]!);
      this.editNode[slot] = nodes[j]!;
      this.editStep[slot] = steps[j]!;
      this.editOut[slot] = outs[j]!;
    }
  }

  /**
   * `node`'s list with `step` (a non-negative 30-bit integer) added (`present`) or removed: a
   * lazy node, written out only when read. The caller knows that `step` is not in the list
   * when it adds it, and is when it removes it.
   */
  edit(node: ListNode, step: number, present: boolean): ListNode {
    const base = node.canonical ?? node;
    const key = step * 2 + (present ? 1 : 0);
    const slot = this.editSlot(base.id, key);
    if (this.editNode[slot] !== 0) return this.nodes[this.editOut[slot]!]!;
    const out = this.node((base.hash + (present ? mix(step) : -mix(step))) | 0, base.length + (present ? 1 : -1), base, step, present);
    this.remember(slot, base.id, key, out.id);
    return out;
  }
}

/** A stack of 32-bit integers in one growing buffer, kept from class to class. */
class IntStack {
  private data = new Int32Array(1024);
  length = 0;

  push(a: number, b?: number): void {
    const n = b === undefined ? 1 : 2;
    if (this.length + n > this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = a;
    if (b !== undefined) this.data[this.length++] = b;
  }

  pop(): number {
    return this.data[--this.length]!;
  }

  at(i: number): number {
    return this.data[i]!;
  }

  /** The buffer holding the stack (its first `length` elements). */
  get buffer(): Int32Array {
    return this.data;
  }
}

export class TableBuilder {
  readonly verdicts: { flags: number; reasonSet: number }[] = [];
  /** The reason sets (rule indices in rule-id order), as nodes of `outcomes`. */
  private readonly reasonSetNodes: ListNode[] = [];
  readonly rows: Uint32Array[] = [];
  /** Verdicts by `reasonSet * 4 + flags`. */
  private readonly verdictIndex = new Map<number, number>();
  /** Rows by a hash of their words (rows can be large: no string keys). */
  private readonly rowsByHash = new Map<number, number[]>();
  /** Rule index → its rank in rule-id order (reasons are "sorted rule ids"). */
  private readonly rank: number[];
  /**
   * The deciding rules of verdicts: interned lists of rule indices in rule-id order (a class
   * numbers its rules in that order), each a reason set; by node id, its reason set.
   */
  private readonly outcomes = new ListTable();
  private readonly reasonSetOf: number[] = [];
  /** The walk's undo stacks (`classRows`), reused by every class. */
  private readonly undoCells = new IntStack();
  private readonly undoLists: ListNode[] = [];
  private readonly undoVerdicts = new IntStack();
  private readonly touched = [new IntStack(), new IntStack(), new IntStack(), new IntStack()];
  /** A cell's deciding rules (rule indices, in rule-id order), for `unionVerdict`. */
  private readonly matched = new IntStack();

  constructor(private readonly policy: NormalPolicy) {
    const ids = policy.rules.map((r) => r.id);
    const order = ids.map((_id, i) => i).sort((a, b) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0));
    this.rank = new Array<number>(ids.length);
    order.forEach((ruleIndex, position) => (this.rank[ruleIndex] = position));
  }

  get reasonSetCount(): number {
    return this.reasonSetNodes.length;
  }

  /** REASON_INDEX (each reason set's start in REASON_DATA, then its length) and REASON_DATA (their rules). */
  reasonSetSections(): { index: Uint32Array; data: Uint32Array } {
    const arena = this.outcomes.data;
    const sets = this.reasonSetNodes;
    const index = new Uint32Array(sets.length + 1);
    let words = 0;
    sets.forEach((node, i) => {
      index[i] = words;
      words += node.length;
    });
    index[sets.length] = words;
    const data = new Uint32Array(words);
    sets.forEach((node, i) => data.set(arena.subarray(node.start, node.start + node.length), index[i]!));
    return { index, data };
  }

  /** The verdict with `flags` whose deciding rules are the list `node` of `outcomes`. */
  private verdict(flags: number, node: ListNode): number {
    let reasonSet = this.reasonSetOf[node.id];
    if (reasonSet === undefined) {
      reasonSet = this.reasonSetNodes.length;
      this.reasonSetNodes.push(node);
      this.reasonSetOf[node.id] = reasonSet;
    }
    const key = reasonSet * 4 + flags;
    let index = this.verdictIndex.get(key);
    if (index === undefined) {
      index = this.verdicts.length;
      this.verdicts.push({ flags, reasonSet });
      this.verdictIndex.set(key, index);
    }
    return index;
  }

  /**
   * The verdict of the matching rules in the union of the lists `a`…`d` of `lists` (interned,
   * disjoint, not all empty, all forbids or all permits): their effect, with them as the
   * deciding rules; memoised on the union's node.
   */
  unionVerdict(rules: readonly NormalRule[], lists: ListTable, a: ListNode, b: ListNode, c: ListNode, d: ListNode): number {
    const node = lists.union(lists.union(a, b), lists.union(c, d));
    if (node.verdict !== undefined) return node.verdict;
    const matched = this.matched;
    matched.length = 0;
    const data = lists.data;
    // Positions are in rule-id order.
    for (let k = node.start; k < node.start + node.length; k++) matched.push(rules[data[k]!]!.index);
    const forbid = rules[data[node.start]!]!.effect === "forbid";
    node.verdict = this.verdict(forbid ? 0 : VERDICT_ALLOW, this.outcomes.of(matched.buffer, matched.length));
    return node.verdict;
  }

  /** The verdict of a cell no rule matches. */
  defaultVerdict(unidentified: boolean): number {
    const allow = unidentified && this.policy.defaultUnidentified === "allow";
    return this.verdict(VERDICT_DEFAULT | (allow ? VERDICT_ALLOW : 0), this.outcomes.empty);
  }

  /**
   * Interns a row given its verdicts per cell, laid out `((ui * gids + gi) * 2 + pi) * ports + k`
   * over the uid, gid, protocol and port intervals starting at `uids`, `gids` and `ports`.
   * Adjacent intervals with equal contents are merged at every level. Block offsets are
   * relative to the row's start (made absolute when rows are joined).
   */
  row(uids: readonly number[], gids: readonly number[], ports: readonly number[], verdicts: Uint32Array): number {
    const P = ports.length;
    const gidSpan = 2 * P;
    const uidSpan = gids.length * gidSpan;
    const same = (a: number, b: number, length: number) => {
      for (let i = 0; i < length; i++) if (verdicts[a + i] !== verdicts[b + i]) return false;
      return true;
    };
    // A uid (gid) interval starts a block unless its verdicts equal the previous interval's.
    const uidStarts: number[] = [];
    for (let ui = 0; ui < uids.length; ui++) if (ui === 0 || !same(ui * uidSpan, (ui - 1) * uidSpan, uidSpan)) uidStarts.push(ui);
    const words: number[] = [uidStarts.length];
    for (const ui of uidStarts) words.push(uids[ui]!, 0);
    uidStarts.forEach((ui, u) => {
      words[2 + u * 2] = words.length;
      const base = ui * uidSpan;
      const gidStarts: number[] = [];
      for (let gi = 0; gi < gids.length; gi++) if (gi === 0 || !same(base + gi * gidSpan, base + (gi - 1) * gidSpan, gidSpan)) gidStarts.push(gi);
      words.push(gidStarts.length);
      const gidSlots = words.length;
      for (const gi of gidStarts) words.push(gids[gi]!, 0);
      gidStarts.forEach((gi, g) => {
        words[gidSlots + g * 2 + 1] = words.length;
        const protoSlots = words.length;
        words.push(0, 0);
        for (let pi = 0; pi < 2; pi++) {
          words[protoSlots + pi] = words.length;
          const countAt = words.length;
          words.push(0);
          const at = base + gi * gidSpan + pi * P;
          let previous = -1;
          for (let k = 0; k < P; k++) {
            const v = verdicts[at + k]!;
            if (v !== previous) words.push(ports[k]!, v);
            previous = v;
          }
          words[countAt] = (words.length - countAt - 1) / 2;
        }
      });
    });
    const packed = Uint32Array.from(words);
    let hash = 0x811c9dc5;
    for (let i = 0; i < packed.length; i++) hash = Math.imul(hash ^ packed[i]!, 0x01000193);
    const bucket = this.rowsByHash.get(hash);
    const equal = (row: Uint32Array) => {
      if (row.length !== packed.length) return false;
      for (let i = 0; i < row.length; i++) if (row[i] !== packed[i]) return false;
      return true;
    };
    const found = bucket?.find((index) => equal(this.rows[index]!));
    if (found !== undefined) return found;
    const index = this.rows.length;
    this.rows.push(packed);
    if (bucket === undefined) this.rowsByHash.set(hash, [index]);
    else bucket.push(index);
    return index;
  }

  /** The rows of one class (`groupRows` of a group of one). */
  classRows(cls: IdentityClass, dst: DestinationView): ClassRows {
    return this.groupRows([cls], dst)[0]!;
  }

  /**
   * The rows of each class of a group (`groupClasses`: the same identity atoms, nearly the
   * same rules): per class, its default row (a destination inside none of the CIDRs its
   * rules name) and, per CIDR its rules name, the row of that CIDR's destination class,
   * unless it equals the row its nearest named enclosing CIDR (or the default) already
   * gives (the lookup walks a destination's enclosing CIDRs: docs/bundle-format.md, step 3).
   *
   * One walk evaluates the union of the group's rules on its grid (the uid, gid and port
   * intervals their constants cut, both protocols; rows are merged over equal neighbours, so
   * a finer grid gives the same rows). Each rule is evaluated on its own grid (the intervals
   * its own constants cut, which the union's refines). The named CIDRs are visited depth
   * first (enclosing CIDRs first); a CIDR's matches differ from its nearest named enclosing
   * CIDR's only for the rules naming it, and only those are evaluated again: their changed
   * cells edit the enclosing CIDR's state, and the edits are undone when the walk leaves
   * the CIDR. A class's verdicts at a CIDR are the union's, with the cells where its
   * missing rules match decided again without them.
   */
  groupRows(classes: readonly IdentityClass[], dst: DestinationView): ClassRows[] {
    const cls = classes[0]!;
    const union = new Map<number, NormalRule>();
    for (const c of classes) for (const r of c.rules) union.set(r.index, r);
    // Positions in rule-id order, so that lists of matching rules are reason sets as they are.
    const rules = [...union.values()].sort((a, b) => this.rank[a.index]! - this.rank[b.index]!);
    const positionOf = new Map(rules.map((r, i) => [r.index, i]));
    /** Per class, the positions of the union's rules it lacks. */
    const missing = classes.map((c) => {
      const has = new Uint8Array(rules.length);
      for (const r of c.rules) has[positionOf.get(r.index)!] = 1;
      const out: number[] = [];
      has.forEach((h, i) => h === 0 && out.push(i));
      return out;
    });
    const uids = axisStarts(rules, "uid");
    const gids = axisStarts(rules, "gid");
    const ports = axisStarts(rules, "port");
    // A cell is (uid interval, gid interval) × (protocol, port interval): `ug * portCells + pk`.
    const P = ports.length;
    const G = gids.length;
    const portCells = 2 * P;
    const ugCount = uids.length * G;
    const cellCount = ugCount * portCells;
    // INVARIANT (undo records `index * 8 + kind` in 32 bits): cellCount * 8 < 2^31.
    if (cellCount > MAX_CLASS_CELLS && classes.length > 1) return classes.map((c) => this.classRows(c, dst));
    if (cellCount > MAX_CLASS_CELLS) throw new LoweringError(`one identity class (${rules.length} rules) cuts ${cellCount} uid × gid × protocol × port cells, more than ${MAX_CLASS_CELLS}`);
    const grids = rules.map((r) => ownGrid(r, uids, gids, ports));

    /** The number of cells of rule i's own grid. */
    const ownCells = (i: number) => grids[i]!.uids.length * grids[i]!.gids.length * 2 * grids[i]!.ports.length;
    // One cell object, moved over the grids (predicates do not keep it).
    const cell = { identity: cls.atoms, unidentified: cls.unidentified, destination: new Set<number>() as ReadonlySet<number>, uid: 0, gid: 0, port: 0, protocol: "tcp" as Protocol };
    /** Whether rule i matches, per cell of its own grid, at `destination`: into `out`. */
    const evaluate = (i: number, destination: ReadonlySet<number>, out: Uint8Array): Uint8Array => {
      const r = rules[i]!;
      const grid = grids[i]!;
      out.fill(0);
      // `matches` leaves the principal scope's atoms and the resource scope's CIDRs to the caller.
      if (r.principalAtoms !== undefined && (cls.unidentified || !r.principalAtoms.some((a) => cls.atoms.has(a)))) return out;
      if (r.resourceCidrs !== undefined && !r.resourceCidrs.some((c) => destination.has(c))) return out;
      cell.destination = destination;
      let at = 0;
      for (const uid of grid.uids) {
        cell.uid = uid;
        for (const gid of grid.gids) {
          cell.gid = gid;
          for (const protocol of PROTOCOLS) {
            cell.protocol = protocol;
            for (const port of grid.ports) {
              cell.port = port;
              out[at++] = r.matches(cell) ? 1 : 0;
            }
          }
        }
      }
      return out;
    };
    /** Where a rule is evaluated at a CIDR (copied when its matches change). */
    let scratch = new Uint8Array(256);

    // The positions of the matching rules, increasing, as interned lists, by what their rules
    // read (`axes`): per port cell for the rules that read neither uid nor gid (0, `flat`);
    // per uid interval and port cell for those that read uid only (1); per gid interval and
    // port cell for those that read gid only (2); per cell for those that read both (3). A
    // cell's matching rules are the union of its four lists, so that a rule reading one axis
    // edits a list per interval of that axis, not one per cell of the uid × gid grid. Forbids
    // and permits apart: a cell with a forbid is decided by its forbids alone.
    const U = uids.length;
    const M = classes.length;
    const lists = new ListTable();
    const empty = lists.empty;
    const spans = [portCells, U * portCells, G * portCells, cellCount];
    /** The lists a rule edits: by `axes * 2 + (permit ? 1 : 0)`. */
    const arrays = spans.flatMap((n) => [new Array<ListNode>(n).fill(empty), new Array<ListNode>(n).fill(empty)]);
    const [flatF, flatP, uidF, uidP, gidF, gidP, bothF, bothP] = arrays as [ListNode[], ListNode[], ListNode[], ListNode[], ListNode[], ListNode[], ListNode[], ListNode[]];
    let defaultVerdict: number | undefined;
    // The last lists decided: neighbouring cells often hold the same lists.
    let last0: ListNode | undefined;
    let last1: ListNode | undefined;
    let last2: ListNode | undefined;
    let last3: ListNode | undefined;
    let lastVerdict = 0;
    const unionVerdict = (a: ListNode, b: ListNode, c: ListNode, d: ListNode): number => {
      if (a === last0 && b === last1 && c === last2 && d === last3) return lastVerdict;
      last0 = a;
      last1 = b;
      last2 = c;
      last3 = d;
      if (b.length === 0 && c.length === 0 && d.length === 0) {
        // One list (every cell of a class whose rules read neither uid nor gid).
        const node = lists.canon(a);
        lastVerdict = node.verdict ?? this.unionVerdict(rules, lists, node, empty, empty, empty);
      } else lastVerdict = this.unionVerdict(rules, lists, lists.canon(a), lists.canon(b), lists.canon(c), lists.canon(d));
      return lastVerdict;
    };
    /** The verdict of a cell without forbids, whose permits are the union of these lists. */
    const permitsOrDefault = (ap: ListNode, bp: ListNode, xp: ListNode, yp: ListNode): number =>
      ap.length !== 0 || bp.length !== 0 || xp.length !== 0 || yp.length !== 0 ? unionVerdict(ap, bp, xp, yp) : (defaultVerdict ??= this.defaultVerdict(cls.unidentified));
    /** The verdict of cell c: (uid interval u, gid interval g) × port cell pk, with uk = u * portCells + pk, gk = g * portCells + pk. */
    const decideAt = (c: number, pk: number, uk: number, gk: number): number => {
      const a = flatF[pk]!;
      const b = uidF[uk]!;
      const x = gidF[gk]!;
      const y = bothF[c]!;
      if (a.length !== 0 || b.length !== 0 || x.length !== 0 || y.length !== 0) return unionVerdict(a, b, x, y);
      return permitsOrDefault(flatP[pk]!, uidP[uk]!, gidP[gk]!, bothP[c]!);
    };
    /** Which of `arrays` rule i edits. */
    const kinds = rules.map((r, i) => grids[i]!.axes * 2 + (r.effect === "forbid" ? 0 : 1));
    /**
     * The indices into its lists (`arrays[kinds[i]]`) of rule i's own cell `o`, into
     * `cellBuffer` from index 0; returns how many.
     */
    let cellBuffer = new Int32Array(256);
    const cellsOf = (i: number, o: number): number => {
      const g = grids[i]!;
      const k0 = o % g.ports.length;
      const rest = (o - k0) / g.ports.length;
      const pi = rest % 2;
      const ug = (rest - pi) / 2;
      const gj = ug % g.gids.length;
      const uj = (ug - gj) / g.gids.length;
      const kFrom = pi * P + g.portFrom[k0]!;
      const kTo = pi * P + g.portFrom[k0 + 1]!;
      // The rows of this own cell in the rule's lists: uid intervals, gid intervals or both.
      const uFrom = g.axes & 1 ? g.uidFrom[uj]! : 0;
      const uTo = g.axes & 1 ? g.uidFrom[uj + 1]! : 1;
      const gFrom = g.axes & 2 ? g.gidFrom[gj]! : 0;
      const gTo = g.axes & 2 ? g.gidFrom[gj + 1]! : 1;
      // A (uid, gid) cell's row is `ui * G + gi`; a uid (gid) list's is `ui` (`gi`), the other 0.
      const width = g.axes === 3 ? G : 1;
      const n = (uTo - uFrom) * (gTo - gFrom) * (kTo - kFrom);
      if (cellBuffer.length < n) cellBuffer = new Int32Array(2 * n);
      let at = 0;
      for (let ui = uFrom; ui < uTo; ui++) {
        for (let gi = gFrom; gi < gTo; gi++) {
          const base = (ui * width + gi) * portCells;
          for (let pk = kFrom; pk < kTo; pk++) cellBuffer[at++] = base + pk;
        }
      }
      return n;
    };

    /**
     * Visits the cells (uid interval, gid interval, port cell) of list `x` of a rule reading
     * `axes`: a flat list's port cell in every uid × gid cell, a uid (gid) list's in every gid
     * (uid) interval, a (uid, gid) list's one cell.
     */
    const cellsOfList = (axes: number, x: number, visit: (u: number, g: number, pk: number) => void) => {
      const pk = x % portCells;
      const at = (x - pk) / portCells;
      if (axes === 0) for (let u = 0; u < U; u++) for (let g = 0; g < G; g++) visit(u, g, pk);
      else if (axes === 1) for (let g = 0; g < G; g++) visit(at, g, pk);
      else if (axes === 2) for (let u = 0; u < U; u++) visit(u, at, pk);
      else visit((at - (at % G)) / G, at % G, pk);
    };

    const noDestination = new Set<number>();
    const current = rules.map((_r, i) => evaluate(i, noDestination, new Uint8Array(ownCells(i))));
    current.forEach((bits, i) => {
      const cells = arrays[kinds[i]!]!;
      for (let o = 0; o < bits.length; o++) {
        if (!bits[o]) continue;
        const n = cellsOf(i, o);
        for (let k = 0; k < n; k++) {
          const c = cellBuffer[k]!;
          cells[c] = lists.edit(cells[c]!, i, true);
        }
      }
    });
    const verdicts = new Uint32Array(cellCount);
    for (let u = 0, c = 0; u < U; u++) {
      for (let g = 0; g < G; g++) {
        for (let pk = 0; pk < portCells; pk++, c++) verdicts[c] = decideAt(c, pk, u * portCells + pk, g * portCells + pk);
      }
    }

    // A class's verdicts are the union's, with the cells where its missing rules match
    // decided again without them (`patch`), while its row is made (`memberRow`).
    const absent = missing.map((miss) => {
      const out = new Uint8Array(rules.length);
      for (const i of miss) out[i] = 1;
      return out;
    });
    /** Per rule some class lacks: the class's interval → the rule's own interval, per axis. */
    const ownIndex: { uid: Int32Array; gid: Int32Array; port: Int32Array }[] = [];
    const inverse = (from: Int32Array, n: number) => {
      const out = new Int32Array(n);
      for (let j = 0; j + 1 < from.length; j++) out.fill(j, from[j]!, from[j + 1]!);
      return out;
    };
    for (const miss of missing) for (const i of miss) ownIndex[i] ??= { uid: inverse(grids[i]!.uidFrom, U), gid: inverse(grids[i]!.gidFrom, G), port: inverse(grids[i]!.portFrom, P) };
    /** Whether rule i (some class lacks it) matches now in cell (u, g, pk). */
    const matchesAt = (i: number, u: number, g: number, pk: number): boolean => {
      const own = ownIndex[i]!;
      const grid = grids[i]!;
      const pi = pk >= P ? 1 : 0;
      return current[i]![((own.uid[u]! * grid.gids.length + own.gid[g]!) * 2 + pi) * grid.ports.length + own.port[pk - pi * P]!] === 1;
    };
    const patchAt = new Int32Array(M > 1 ? cellCount : 0);
    let patchEpoch = 0;
    const patchCells = new IntStack();
    const patchUndo = new IntStack();
    const markCell = (c: number) => {
      if (patchAt[c] === patchEpoch) return;
      patchAt[c] = patchEpoch;
      patchCells.push(c);
    };
    const markAt = (u: number, g: number, pk: number) => markCell((u * G + g) * portCells + pk);
    /** The missing rules that match in a cell being patched. */
    const patchHits = new IntStack();
    /** Decides again, without class m's missing rules, the cells where they match; returns how many verdicts changed (`unpatch` restores them). */
    const patch = (m: number): number => {
      const miss = missing[m]!;
      patchEpoch++;
      patchCells.length = patchUndo.length = 0;
      for (const i of miss) {
        const bits = current[i]!;
        for (let o = 0; o < bits.length; o++) {
          if (!bits[o]) continue;
          const n = cellsOf(i, o);
          for (let k = 0; k < n; k++) cellsOfList(grids[i]!.axes, cellBuffer[k]!, markAt);
        }
      }
      const hits = patchHits;
      for (let t = 0; t < patchCells.length; t++) {
        const c = patchCells.at(t);
        const pk = c % portCells;
        const ug = (c - pk) / portCells;
        const g = ug % G;
        const u = (ug - g) / G;
        const uk = u * portCells + pk;
        const gk = g * portCells + pk;
        hits.length = 0;
        for (const i of miss) if (matchesAt(i, u, g, pk)) hits.push(i);
        // Its matching forbids less the missing ones; unless one is missing, they decide as before.
        let a = flatF[pk]!;
        let b = uidF[uk]!;
        let x = gidF[gk]!;
        let y = bothF[c]!;
        let forbidGone = false;
        for (let h = 0; h < hits.length; h++) {
          const i = hits.at(h);
          const kind = kinds[i]!;
          if (kind & 1) continue;
          forbidGone = true;
          if (kind === 0) a = lists.edit(a, i, false);
          else if (kind === 2) b = lists.edit(b, i, false);
          else if (kind === 4) x = lists.edit(x, i, false);
          else y = lists.edit(y, i, false);
        }
        const forbids = a.length !== 0 || b.length !== 0 || x.length !== 0 || y.length !== 0;
        if (forbids && !forbidGone) continue;
        let v: number;
        if (forbids) v = unionVerdict(a, b, x, y);
        else {
          let ap = flatP[pk]!;
          let bp = uidP[uk]!;
          let xp = gidP[gk]!;
          let yp = bothP[c]!;
          for (let h = 0; h < hits.length; h++) {
            const i = hits.at(h);
            const kind = kinds[i]!;
            if (kind === 1) ap = lists.edit(ap, i, false);
            else if (kind === 3) bp = lists.edit(bp, i, false);
            else if (kind === 5) xp = lists.edit(xp, i, false);
            else if (kind === 7) yp = lists.edit(yp, i, false);
          }
          v = permitsOrDefault(ap, bp, xp, yp);
        }
        if (v !== verdicts[c]) {
          patchUndo.push(c, verdicts[c]!);
          verdicts[c] = v;
        }
      }
      return patchUndo.length / 2;
    };
    const unpatch = () => {
      while (patchUndo.length > 0) {
        const before = patchUndo.pop();
        verdicts[patchUndo.pop()] = before;
      }
    };
    /** A state of the walk: the union's row there (-1 until made) and each class's. */
    interface RowsAt {
      uRow: number;
      readonly rows: Int32Array;
    }
    /** The union's row now (in state `f`), made once. */
    const unionRow = (f: RowsAt) => (f.uRow >= 0 ? f.uRow : (f.uRow = this.row(uids, gids, ports, verdicts)));
    /** Class m's row now (in state `f`). */
    const memberRow = (m: number, f: RowsAt): number => {
      if (missing[m]!.length === 0 || patch(m) === 0) return unionRow(f);
      const row = this.row(uids, gids, ports, verdicts);
      unpatch();
      return row;
    };
    const base: RowsAt = { uRow: -1, rows: new Int32Array(M) };
    for (let m = 0; m < M; m++) base.rows[m] = memberRow(m, base);

    // Destination class of each CIDR the rules name → the positions of the rules naming it.
    const naming = new Map<number, number[]>();
    rules.forEach((r, i) => {
      for (const c of r.mentionedCidrs) {
        const d = dst.cidrClass[c]!;
        const list = naming.get(d);
        if (list === undefined) naming.set(d, [i]);
        else if (list[list.length - 1] !== i) list.push(i);
      }
    });
    // Destination classes are numbered in CIDR order (address, then prefix), so ascending
    // order visits every CIDR after those enclosing it, and before any CIDR outside it.
    const named = [...naming.keys()].sort((a, b) => a - b);
    // A CIDR's rules are evaluated in rule-index order (the order of its changed cells, and so of new verdicts).
    for (const list of naming.values()) if (list.length > 1) list.sort((a, b) => rules[a]!.index - rules[b]!.index);
    // The walk's state changes, undone when it leaves a CIDR: rules whose matches changed
    // (and their matches before); lists changed (as `index * 8 + kind`: `arrays[kind][index]`)
    // and the lists before; cells whose verdict changed, each followed by the verdict before.
    // A frame per CIDR on the walk's path holds where its changes start in each.
    const undoRules: number[] = [];
    const undoBits: Uint8Array[] = [];
    const undoCells = this.undoCells;
    const undoLists = this.undoLists;
    const undoVerdicts = this.undoVerdicts;
    undoCells.length = undoLists.length = undoVerdicts.length = 0;
    const stack: (RowsAt & { d: number; rules: number; cells: number; verdicts: number })[] = [];
    // Per kind of list (`axes`), the lists a frame changed that may change verdicts, once each.
    const touchedAt = spans.map((n) => new Int32Array(n).fill(-1));
    const touched = this.touched;
    for (const t of touched) t.length = 0;
    const decidedAt = new Int32Array(cellCount).fill(-1);
    /** The index of the CIDR being visited (`decidedAt`'s stamp). */
    let visiting = -1;
    /** Decides cell (u, g, pk) again, once per visit, recording a changed verdict for undo. */
    const update = (u: number, g: number, pk: number) => {
      const c = (u * G + g) * portCells + pk;
      if (decidedAt[c] === visiting) return;
      decidedAt[c] = visiting;
      const v = decideAt(c, pk, u * portCells + pk, g * portCells + pk);
      if (v !== verdicts[c]) {
        undoVerdicts.push(c, verdicts[c]!);
        verdicts[c] = v;
      }
    };
    const entries = classes.map((): [number, number][] => []);
    named.forEach((d, visit) => {
      let up = dst.parent[d]!;
      while (up !== 0 && !naming.has(up)) up = dst.parent[up]!;
      while (stack.length > 0 && stack[stack.length - 1]!.d !== up) {
        const f = stack.pop()!;
        while (undoVerdicts.length > f.verdicts) {
          const before = undoVerdicts.pop();
          verdicts[undoVerdicts.pop()] = before;
        }
        while (undoCells.length > f.cells) {
          const c = undoCells.pop();
          arrays[c & 7]![c >>> 3] = undoLists[undoCells.length]!;
        }
        while (undoRules.length > f.rules) current[undoRules.pop()!] = undoBits.pop()!;
      }
      const parent = stack.length > 0 ? stack[stack.length - 1]! : base;
      const frame = { d, uRow: -1, rows: new Int32Array(M), rules: undoRules.length, cells: undoCells.length, verdicts: undoVerdicts.length };
      const destination = dst.classCidrs[d]!;
      for (const i of naming.get(d)!) {
        const size = ownCells(i);
        if (scratch.length < size) scratch = new Uint8Array(2 * size);
        const bits = evaluate(i, destination, scratch.subarray(0, size));
        const before = current[i]!;
        const kind = kinds[i]!;
        const axes = kind >> 1;
        const permit = (kind & 1) === 1;
        const cells = arrays[kind]!;
        const forbids = arrays[kind - 1]!;
        const stamps = touchedAt[axes]!;
        const marked = touched[axes]!;
        let differs = false;
        for (let o = 0; o < bits.length; o++) {
          if (bits[o] === before[o]) continue;
          differs = true;
          const present = bits[o] === 1;
          const n = cellsOf(i, o);
          // Neighbouring cells often hold the same list: the last edit is reused.
          let lastBefore: ListNode | undefined;
          let lastAfter = lists.empty;
          for (let k = 0; k < n; k++) {
            const c = cellBuffer[k]!;
            const was = cells[c]!;
            undoLists[undoCells.length] = was;
            undoCells.push(c * 8 + kind);
            if (was !== lastBefore) {
              lastBefore = was;
              lastAfter = lists.edit(was, i, present);
            }
            cells[c] = lastAfter;
            // A permit cannot change the verdict of cells with a forbid (an edit of their forbids marks them).
            if (permit && (flatF[c % portCells]!.length !== 0 || (axes !== 0 && forbids[c]!.length !== 0))) continue;
            if (stamps[c] !== visit) {
              stamps[c] = visit;
              marked.push(c);
            }
          }
        }
        if (differs) {
          undoRules.push(i);
          undoBits.push(before);
          current[i] = bits.slice();
        }
      }
      visiting = visit;
      touched.forEach((marked, axes) => {
        for (let t = 0; t < marked.length; t++) cellsOfList(axes, marked.at(t), update);
      });
      for (const t of touched) t.length = 0;
      // Unchanged verdicts: the union's row is its parent's.
      if (undoVerdicts.length === frame.verdicts) frame.uRow = parent.uRow;
      const namers = naming.get(d)!;
      for (let m = 0; m < M; m++) {
        // A CIDR only a class's missing rules name leaves its state as its parent's.
        const lacks = absent[m]!;
        if (!namers.some((i) => lacks[i] === 0)) {
          frame.rows[m] = parent.rows[m]!;
          continue;
        }
        const row = memberRow(m, frame);
        frame.rows[m] = row;
        if (row !== parent.rows[m]) entries[m]!.push([d, row]);
      }
      stack.push(frame);
    });
    return classes.map((_c, m) => ({ defaultRow: base.rows[m]!, entries: entries[m]! }));
  }
}

/**
 * A rule's own grid (the uid, gid and port intervals its constants cut) inside a class's
 * grid, which refines it: own interval j covers the class's intervals `from[j]` up to
 * `from[j + 1]`. `axes`: 1 if the rule reads uid, + 2 if it reads gid.
 */
function ownGrid(r: NormalRule, uids: readonly number[], gids: readonly number[], ports: readonly number[]) {
  const own = (axis: Axis, classStarts: readonly number[]) => {
    const starts = ruleStarts(r, axis);
    const from = new Int32Array(starts.length + 1);
    let j = 0;
    starts.forEach((s, k) => {
      while (classStarts[j] !== s) j++;
      from[k] = j;
    });
    from[starts.length] = classStarts.length;
    return { starts, from };
  };
  const u = own("uid", uids);
  const g = own("gid", gids);
  const p = own("port", ports);
  return { axes: (r.cuts.uid.size > 0 ? 1 : 0) + (r.cuts.gid.size > 0 ? 2 : 0), uids: u.starts, uidFrom: u.from, gids: g.starts, gidFrom: g.from, ports: p.starts, portFrom: p.from };
}

/** A rule's own interval starts per axis, computed once per rule (a rule is in many classes). */
const ownStarts = new WeakMap<NormalRule, Partial<Record<Axis, number[]>>>();
export function ruleStarts(r: NormalRule, axis: Axis): number[] {
  let byAxis = ownStarts.get(r);
  if (byAxis === undefined) ownStarts.set(r, (byAxis = {}));
  return (byAxis[axis] ??= axisStarts([r], axis));
}
