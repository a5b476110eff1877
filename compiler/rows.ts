// Owns the rows of the decision tables: for one identity class (a set of rules evaluated
// with a fixed set of identity atoms true), its default row and one row per CIDR its rules
// name, each a fully resolved verdict per (uid, gid, protocol, port) interval; and the
// interning of rows, verdicts and reason sets shared by every class (docs/bundle-format.md).
//
// INVARIANT: deterministic, and exact: a row's verdict in a cell is forbid > permit >
// default over exactly the class's rules that match in that cell (spec §5).
import type { Protocol } from "./model.js";
import type { Cell, NormalPolicy, NormalRule } from "./normalise.js";
import { packedMap } from "./packed.js";

/** A policy past a lowering limit: refused, never approximated (PC3002). */
export class LoweringError extends Error {}

/**
 * The most cells (uid × gid × protocol × port intervals) of one rule's own grid, and of the
 * grid a row is made on: the cuts of a class's rules that match at one destination (in the
 * generated 100,000-rule set at most 27,840; the grid of all of a class's rules, at most 446,600).
 */
export const MAX_GRID_CELLS = 2 ** 23;
/** The most words that grid's verdicts and masks (a word per cell, and one per 32 rules that read uid or gid) may take: 256 MiB. */
export const MAX_GRID_WORDS = 2 ** 26;

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

/** A class's rows: its default row, and (destination class, row) entries, flat. */
export interface ClassRows {
  readonly defaultRow: number;
  readonly entries: number[];
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
  // Most rules read neither uid nor gid: then the axis is one interval, with no set to make.
  let k = 0;
  while (k < rules.length && rules[k]!.cuts[axis].size === 0) k++;
  if (k === rules.length) return [0];
  const starts = new Set<number>([0]);
  for (const r of rules) for (const c of r.cuts[axis]) if (c > 0 && c <= AXIS_MAX[axis]) starts.add(c);
  return [...starts].sort((a, b) => a - b);
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

/** An interned increasing list of numbers (a reason set: rule indices in rule-id order). */
interface ListNode {
  /** Numbers nodes in the order they were made. */
  readonly id: number;
  readonly length: number;
  /** Where its elements are in its table's arena. */
  readonly start: number;
  /** The next interned node with the same hash. */
  readonly next: ListNode | undefined;
  /** The verdict whose deciding rules are this list (their effect is the verdict's: `TableBuilder.decidedBy`). */
  verdict?: number;
}

/** A 32-bit mix of an integer (murmur3's finaliser), summed into a list's hash (exported for the tests that make two sums collide). */
export function mix(x: number): number {
  let h = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/**
 * Interns increasing lists by a hash of their elements: equal lists are one node. The
 * elements live in one growing arena (a typed array per list costs an allocation each).
 */
class ListTable {
  private readonly byHash = new Map<number, ListNode>();
  private count = 0;
  /** The elements of every list; `top` words are used. */
  private readonly arena = new Scratch(new Int32Array(256));
  private top = 0;
  readonly empty: ListNode = this.of(new Int32Array(0));

  /** The elements of every list (a node's from its `start`); replaced when the arena grows: read it after `of`. */
  get data(): Int32Array {
    return this.arena.get(0);
  }

  /** The interned node of the first `length` elements of `items` (copied when new). */
  of(items: Int32Array, length = items.length): ListNode {
    const data = this.arena.get(this.top + length);
    let hash = 0;
    for (let i = 0; i < length; i++) hash = (hash + mix(items[i]!)) | 0;
    const first = this.byHash.get(hash);
    for (let node = first; node !== undefined; node = node.next) {
      if (node.length !== length) continue;
      let i = 0;
      while (i < length && data[node.start + i] === items[i]) i++;
      if (i === length) return node;
    }
    data.set(items.subarray(0, length), this.top);
    const node: ListNode = { id: this.count++, length, start: this.top, next: first };
    this.top += length;
    this.byHash.set(hash, node);
    return node;
  }
}

/** The first index of the increasing `data` (its first `end` elements) whose element is not below `x`. */
function lowerBound(data: ArrayLike<number>, end: number, x: number): number {
  let lo = 0;
  let hi = end;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (data[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A rule's own grid: the uid, gid and port intervals its constants cut (`axes`: 1 if it reads uid, + 2 if gid). */
interface OwnGrid {
  readonly axes: number;
  readonly uids: readonly number[];
  readonly gids: readonly number[];
  readonly ports: readonly number[];
  /** Its cells: uids × gids × 2 protocols × ports. */
  readonly cells: number;
}

/** A rule's own grid; throws `LoweringError` past `MAX_GRID_CELLS`. */
function makeOwnGrid(r: NormalRule): OwnGrid {
  const uids = ruleStarts(r, "uid");
  const gids = ruleStarts(r, "gid");
  const ports = ruleStarts(r, "port");
  const cells = uids.length * gids.length * 2 * ports.length;
  if (cells > MAX_GRID_CELLS) throw new LoweringError(`rule ${r.id} cuts ${cells} uid × gid × protocol × port cells, more than ${MAX_GRID_CELLS}`);
  return { axes: (r.cuts.uid.size > 0 ? 1 : 0) + (r.cuts.gid.size > 0 ? 2 : 0), uids, gids, ports, cells };
}

/** Whether the `length` words of `a` from `aAt` equal those of `b` from `bAt`. */
function sameWords(a: Uint32Array, aAt: number, b: Uint32Array, bAt: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

/** The index of the lowest set bit of `x` (not 0). */
function lowestBit(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** Whether `flags` is `value` at every index of `list`. */
function everyIn(list: readonly number[], flags: Uint8Array, value: number): boolean {
  for (const i of list) if (flags[i] !== value) return false;
  return true;
}

/** A growing typed array, kept from row to row. */
class Scratch<T extends Uint8Array | Int32Array | Uint32Array | Float64Array> {
  constructor(private buffer: T) {}

  /** At least `n` elements (its contents kept when it grows). */
  get(n: number): T {
    if (this.buffer.length < n) {
      const grown = new (this.buffer.constructor as new (n: number) => T)(Math.max(n, 2 * this.buffer.length));
      grown.set(this.buffer);
      this.buffer = grown;
    }
    return this.buffer;
  }
}

/**
 * A group's grid: every cut of its rules, per axis (uid, gid, port), and each rule's own
 * starts as indices into it: rule i's on axis a are `own` from `ownAt[3 * i + a]` up to
 * `ownAt[3 * i + a + 1]`; what each rule reads (`OwnGrid.axes`).
 */
interface ClassGrid {
  readonly starts: readonly (readonly number[])[];
  readonly own: Int32Array;
  readonly ownAt: Int32Array;
  readonly axes: Uint8Array;
}

function classGrid(rules: readonly NormalRule[], grids: readonly OwnGrid[]): ClassGrid {
  const starts = packedMap(["uid", "gid", "port"] as const, (axis) => axisStarts(rules, axis));
  const ownAt = new Int32Array(3 * grids.length + 1);
  const axes = new Uint8Array(grids.length);
  let size = 0;
  for (let i = 0; i < grids.length; i++) {
    const g = grids[i]!;
    axes[i] = g.axes;
    ownAt[3 * i] = size;
    ownAt[3 * i + 1] = size += g.uids.length;
    ownAt[3 * i + 2] = size += g.gids.length;
    size += g.ports.length;
  }
  ownAt[3 * grids.length] = size;
  const own = new Int32Array(size);
  for (let i = 0; i < grids.length; i++) {
    const g = grids[i]!;
    for (let a = 0; a < 3; a++) {
      const list = a === 0 ? g.uids : a === 1 ? g.gids : g.ports;
      const axis = starts[a]!;
      const at = ownAt[3 * i + a]!;
      for (let j = 0; j < list.length; j++) own[at + j] = lowerBound(axis, axis.length, list[j]!);
    }
  }
  return { starts, own, ownAt, axes };
}

/**
 * Rule i's own intervals on axis `a` as intervals of a grid whose index of each of the
 * group's starts is `index` (`count` intervals): own interval j covers from[j] up to
 * from[j + 1]. Into `into`'s buffer.
 */
function ownFrom(grid: ClassGrid, i: number, a: number, index: Int32Array, count: number, into: Scratch<Int32Array>): Int32Array {
  const from0 = grid.ownAt[3 * i + a]!;
  const length = grid.ownAt[3 * i + a + 1]! - from0;
  const from = into.get(length + 1);
  for (let j = 0; j < length; j++) from[j] = index[grid.own[from0 + j]!]!;
  from[length] = count;
  return from;
}

/**
 * Flips `bit` of word `word` at the corners of the rectangle of rows `r0` up to `r1` and
 * columns `c0` up to `c1` of a difference array of `C` columns of `W` words: after a prefix
 * XOR over rows and columns, exactly the rectangle's cells have it flipped.
 */
function flip(diff: Int32Array, C: number, W: number, word: number, bit: number, r0: number, r1: number, c0: number, c1: number): void {
  diff[(r0 * C + c0) * W + word]! ^= bit;
  diff[(r0 * C + c1) * W + word]! ^= bit;
  diff[(r1 * C + c0) * W + word]! ^= bit;
  diff[(r1 * C + c1) * W + word]! ^= bit;
}

/** Buffers of `TableBuilder.rowOf` and `GroupWalk`, kept from row to row and group to group. */
function rowScratch() {
  return {
    /** Per axis: the starts of the grid of the rules matching somewhere, and each of the group's starts' index among them. */
    starts: [0, 1, 2].map(() => new Scratch(new Float64Array(64))),
    index: [0, 1, 2].map(() => new Scratch(new Int32Array(64))),
    /** Per axis: the index among the group's starts of each start of that grid. */
    classIndex: [0, 1, 2].map(() => new Scratch(new Int32Array(64))),
    /** Per axis: a rule's own intervals as intervals of that grid (`ownFrom`); its own port cells' first columns. */
    from: [0, 1, 2].map(() => new Scratch(new Int32Array(64))),
    cols: new Scratch(new Int32Array(64)),
    /** Per kind of rule (what it reads): the difference array of its masks. */
    diff: [0, 1, 2, 3].map(() => new Scratch(new Int32Array(256))),
    /** `diff`'s buffers as `rowOf` uses them (index 0 unused). */
    diffs: [new Int32Array(0), new Int32Array(0), new Int32Array(0), new Int32Array(0)],
    /** The deep rules' forbids, a cell's masks (all, then forbids), and the last deciding rules' mask. */
    words: [0, 1, 2].map(() => new Scratch(new Int32Array(16))),
    verdicts: new Scratch(new Uint32Array(256)),
    /** A row's words (`row`), and its uid and gid intervals that start blocks. */
    row: new Scratch(new Uint32Array(1024)),
    blocks: [0, 1].map(() => new Scratch(new Int32Array(64))),
    /** The rule indices of a cell's deciding rules. */
    deciding: new Scratch(new Int32Array(64)),
    /** A rule's matches just evaluated (`groupRows`), and the walk's stack of matches before its changes. */
    evaluated: new Scratch(new Uint8Array(256)),
    undo: new Scratch(new Uint8Array(4096)),
    /** A group's walk's state (`WalkState`). */
    walk: {
      flatMasks: new Scratch(new Int32Array(256)),
      flatVerdicts: new Scratch(new Int32Array(256)),
      flatCounts: new Scratch(new Int32Array(256)),
      flatHashes: new Scratch(new Int32Array(256)),
      bits: new Scratch(new Uint8Array(1024)),
      uses: [0, 1, 2].map(() => new Scratch(new Int32Array(64))),
    },
  };
}

type RowScratch = ReturnType<typeof rowScratch>;

export class TableBuilder {
  readonly verdicts: { flags: number; reasonSet: number }[] = [];
  /** The reason sets (rule indices in rule-id order), as nodes of `outcomes`. */
  private readonly reasonSetNodes: ListNode[] = [];
  /**
   * The rows' words, one after another in the order they were made (as ROW_DATA holds them,
   * block offsets still relative to the row): row i from `rowStarts[i]` up to the next
   * start (or `rowTop`). One arena, not a typed array per row (18,025 at 10,000 rules).
   */
  private readonly rowData = new Scratch(new Uint32Array(1 << 16));
  private rowTop = 0;
  readonly rowStarts: number[] = [];
  /** Verdicts by `reasonSet * 4 + flags`. */
  private readonly verdictIndex = new Map<number, number>();
  /** Rows by a hash of their words (rows can be large: no string keys): the last row made with each hash; per row, the one before it with its hash (-1: none). */
  private readonly rowsByHash = new Map<number, number>();
  private readonly sameHashBefore: number[] = [];
  /** Rule index → its rank in rule-id order (reasons are "sorted rule ids"). */
  private readonly rank: number[];
  /** The deciding rules of verdicts: interned lists of rule indices in rule-id order, each a reason set; by node id, its reason set. */
  private readonly outcomes = new ListTable();
  private readonly reasonSetOf: number[] = [];
  /** Buffers of `rowOf` and the walks, kept from row to row and group to group. */
  private readonly scratch = rowScratch();

  constructor(private readonly policy: NormalPolicy) {
    this.ownGrids = packedMap(policy.rules, (): OwnGrid | undefined => undefined);
    const ids = policy.rules.map((r) => r.id);
    const order = ids.map((_id, i) => i).sort((a, b) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0));
    this.rank = new Array<number>(ids.length);
    order.forEach((ruleIndex, position) => (this.rank[ruleIndex] = position));
  }

  /** Rule index → its own grid, made once (a rule is in many groups). */
  private readonly ownGrids: (OwnGrid | undefined)[];

  ownGrid(r: NormalRule): OwnGrid {
    return (this.ownGrids[r.index] ??= makeOwnGrid(r));
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

  /** The verdict of the first `n` rule indices of `deciding` (rule-id order, all forbids or all permits, at least one): their effect, with them as the reasons. */
  private decidedBy(deciding: Int32Array, n: number): number {
    const node = this.outcomes.of(deciding, n);
    return (node.verdict ??= this.verdict(this.policy.rules[deciding[0]!]!.effect === "forbid" ? 0 : VERDICT_ALLOW, node));
  }

  /** The verdict of a cell no rule matches. */
  defaultVerdict(unidentified: boolean): number {
    const allow = unidentified && this.policy.defaultUnidentified === "allow";
    return this.verdict(VERDICT_DEFAULT | (allow ? VERDICT_ALLOW : 0), this.outcomes.empty);
  }

  /**
   * Interns a row given its verdicts per cell, laid out `((ui * G + gi) * 2 + pi) * P + k` over
   * the uid, gid, protocol and port intervals starting at the first `U` of `uids`, `G` of
   * `gids` and `P` of `ports`.
   * Adjacent intervals with equal contents are merged at every level, so any grid that
   * refines the verdicts' gives the same row. Block offsets are relative to the row's start
   * (made absolute when rows are joined).
   */
  row(uids: ArrayLike<number>, U: number, gids: ArrayLike<number>, G: number, ports: ArrayLike<number>, P: number, verdicts: Uint32Array): number {
    const gidSpan = 2 * P;
    const uidSpan = G * gidSpan;
    // Written into a buffer kept from row to row (its most words: every interval a block), copied when new.
    const out = this.scratch.row.get(1 + U * (3 + G * (6 + 4 * P)));
    // A uid (gid) interval starts a block unless its verdicts equal the previous interval's.
    const uidStarts = this.scratch.blocks[0]!.get(U);
    let uidBlocks = 0;
    for (let ui = 0; ui < U; ui++) if (ui === 0 || !sameWords(verdicts, ui * uidSpan, verdicts, (ui - 1) * uidSpan, uidSpan)) uidStarts[uidBlocks++] = ui;
    let top = 0;
    out[top++] = uidBlocks;
    const uidSlots = top;
    top += 2 * uidBlocks;
    const gidStarts = this.scratch.blocks[1]!.get(G);
    for (let u = 0; u < uidBlocks; u++) {
      const ui = uidStarts[u]!;
      out[uidSlots + 2 * u] = uids[ui]!;
      out[uidSlots + 2 * u + 1] = top;
      const base = ui * uidSpan;
      let gidBlocks = 0;
      for (let gi = 0; gi < G; gi++) if (gi === 0 || !sameWords(verdicts, base + gi * gidSpan, verdicts, base + (gi - 1) * gidSpan, gidSpan)) gidStarts[gidBlocks++] = gi;
      out[top++] = gidBlocks;
      const gidSlots = top;
      top += 2 * gidBlocks;
      for (let g = 0; g < gidBlocks; g++) {
        const gi = gidStarts[g]!;
        out[gidSlots + 2 * g] = gids[gi]!;
        out[gidSlots + 2 * g + 1] = top;
        const protoSlots = top;
        top += 2;
        for (let pi = 0; pi < 2; pi++) {
          out[protoSlots + pi] = top;
          const countAt = top++;
          const at = base + gi * gidSpan + pi * P;
          let previous = -1;
          for (let k = 0; k < P; k++) {
            const v = verdicts[at + k]!;
            if (v !== previous) {
              out[top++] = ports[k]!;
              out[top++] = v;
            }
            previous = v;
          }
          out[countAt] = (top - countAt - 1) / 2;
        }
      }
    }
    let hash = 0x811c9dc5;
    for (let i = 0; i < top; i++) hash = Math.imul(hash ^ out[i]!, 0x01000193);
    const last = this.rowsByHash.get(hash);
    for (let index = last ?? -1; index >= 0; index = this.sameHashBefore[index]!) {
      const start = this.rowStarts[index]!;
      const end = index + 1 < this.rowStarts.length ? this.rowStarts[index + 1]! : this.rowTop;
      if (end - start === top && sameWords(this.rowData.get(0), start, out, 0, top)) return index;
    }
    const index = this.rowStarts.length;
    this.rowStarts.push(this.rowTop);
    this.rowData.get(this.rowTop + top).set(out.subarray(0, top), this.rowTop);
    this.rowTop += top;
    this.sameHashBefore.push(last ?? -1);
    this.rowsByHash.set(hash, index);
    return index;
  }

  /** How many rows there are. */
  get rowCount(): number {
    return this.rowStarts.length;
  }

  /** The words of every row (`rowStarts` says where each starts). */
  get rowWords(): Uint32Array {
    return this.rowData.get(0).subarray(0, this.rowTop);
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
   * Each rule of the group is evaluated on its own grid (the uid, gid and port intervals its
   * constants cut, both protocols). The named CIDRs are visited depth first (enclosing CIDRs
   * first); a CIDR's matches differ from its nearest named enclosing CIDR's only for the
   * rules naming it, and only those are evaluated again (and restored when the walk leaves
   * the CIDR). Where some rule's matches changed, a class's row is made from the rules that
   * match somewhere there (`rowOf`), which are few even in large classes.
   */
  groupRows(classes: readonly IdentityClass[], dst: DestinationView): ClassRows[] {
    const union = new Map<number, NormalRule>();
    for (const c of classes) for (const r of c.rules) union.set(r.index, r);
    // Positions in rule-id order, so that the matching rules of a cell are listed as reasons are.
    const rules = [...union.values()].sort((a, b) => this.rank[a.index]! - this.rank[b.index]!);
    return new GroupWalk(this, classes, rules, this.scratch).run(dst);
  }

  /**
   * Axis `a` (uid, gid, port) of the grid of the rules matching somewhere in the walk's
   * `state`: the group's starts some such rule has (and 0), into `scratch.starts[a]`; each
   * group start's index among them (`scratch.index[a]`) and theirs among the group's
   * (`scratch.classIndex[a]`). Returns how many.
   */
  private gridAxis(state: WalkState, a: number): number {
    const s = this.scratch;
    const classStarts = state.grid.starts[a]!;
    const uses = state.uses[a]!;
    const starts = s.starts[a]!.get(classStarts.length);
    const index = s.index[a]!.get(classStarts.length);
    const at = s.classIndex[a]!.get(classStarts.length);
    let count = 0;
    for (let x = 0; x < classStarts.length; x++) {
      if (uses[x] === 0 && x !== 0) continue;
      index[x] = count;
      at[count] = x;
      starts[count++] = classStarts[x]!;
    }
    return count;
  }

  /**
   * The row, in the walk's current `state`, of the rules that match somewhere there that
   * read neither uid nor gid, less those outside `keep` (a mask over `state.flat`), and those
   * at positions `deep` (increasing), which read uid or gid: their verdict (forbid > permit >
   * default, spec §5) per cell of the grid the cuts of the rules matching somewhere make.
   *
   * A cell's matching rules are two bit masks: over the flat rules, kept by the walk per port
   * cell of the group's grid (`WalkState.flipFlat`); and over `deep`, made here, ORed from
   * three arrays by what a rule reads: per uid interval and port cell for the rules that read
   * uid only, per gid interval and port cell for gid only, per cell for both. A rule's
   * matches are rectangles in its array (its own cells, merged along the port axis), each
   * written as four flips of a difference array that one prefix pass turns into the masks.
   */
  /** (Called by `GroupWalk`.) */
  rowOf(state: WalkState, deep: readonly number[], keep: Int32Array): number {
    const { grid, bits: matches, bitsAt } = state;
    const s = this.scratch;
    // The grid: the starts some rule matching somewhere has, per axis (0 always); each one's
    // index in it, and for each port interval its index in the group's.
    const U = this.gridAxis(state, 0);
    const G = this.gridAxis(state, 1);
    const P = this.gridAxis(state, 2);
    const portCells = 2 * P;
    const cellCount = U * G * portCells;
    if (cellCount > MAX_GRID_CELLS) throw new LoweringError(`the rules of one identity class that match at one destination cut ${cellCount} uid × gid × protocol × port cells, more than ${MAX_GRID_CELLS}`);
    const n = deep.length;
    const Wd = (n + 31) >>> 5;
    if (cellCount * (1 + Wd) > MAX_GRID_WORDS) throw new LoweringError(`the ${n} rules reading uid or gid of one identity class that match at one destination need ${cellCount * (1 + Wd)} words of masks over ${cellCount} cells, more than ${MAX_GRID_WORDS}`);
    const classPorts = grid.starts[2]!.length;
    const portAt = s.classIndex[2]!.get(0);
    const verdicts = s.verdicts.get(cellCount);
    if (n === 0 && keep === state.allFlat) {
      // Flat rules alone: each port cell's verdict is its group cell's, kept while its masks do
      // not change, in every uid × gid cell (more than one when rules the class lacks cut them).
      for (let pk = 0; pk < portCells; pk++) {
        const at = pk < P ? portAt[pk]! : classPorts + portAt[pk - P]!;
        let v = state.flatVerdicts[at]!;
        if (v < 0) v = state.flatVerdicts[at] = this.flatVerdict(state, at);
        verdicts[pk] = v;
      }
      for (let ug = 1; ug < U * G; ug++) verdicts.copyWithin(ug * portCells, 0, portCells);
      return this.row(s.starts[0]!.get(0), U, s.starts[1]!.get(0), G, s.starts[2]!.get(0), P, verdicts);
    }
    // Difference arrays by what their rules read (uid only, gid only, both: `a` 1, 2, 3): a row
    // per interval of what they read (and one more), a column per port cell (and one more), Wd words each.
    const C = portCells + 1;
    let kinds = 0;
    for (const i of deep) kinds |= 1 << grid.axes[i]!;
    const rowCount = (a: number) => (a === 1 ? U : a === 2 ? G : U * G);
    const diffs = s.diffs;
    for (let a = 1; a < 4; a++) {
      const size = (kinds & (1 << a)) === 0 ? 0 : (rowCount(a) + 1) * C * Wd;
      diffs[a] = s.diff[a]!.get(size).fill(0, 0, size);
    }
    const forbids = s.words[0]!.get(Wd).fill(0, 0, Wd);
    const uIndex = s.index[0]!.get(0);
    const gIndex = s.index[1]!.get(0);
    const pIndex = s.index[2]!.get(0);
    for (let k = 0; k < n; k++) {
      const i = deep[k]!;
      const word = k >>> 5;
      const bit = 1 << (k & 31);
      if (state.forbid[i]) forbids[word]! |= bit;
      const a = grid.axes[i]!;
      const diff = diffs[a]!;
      const b0 = bitsAt[i]!;
      // Own interval j of an axis covers this grid's intervals from[j] up to from[j + 1]; own
      // port cell q (the second protocol's follow the first's) covers columns cols[q] up to cols[q + 1].
      const uFrom = ownFrom(grid, i, 0, uIndex, U, s.from[0]!);
      const gFrom = ownFrom(grid, i, 1, gIndex, G, s.from[1]!);
      const pFrom = ownFrom(grid, i, 2, pIndex, P, s.from[2]!);
      const ul = grid.ownAt[3 * i + 1]! - grid.ownAt[3 * i]!;
      const gl = grid.ownAt[3 * i + 2]! - grid.ownAt[3 * i + 1]!;
      const pl = grid.ownAt[3 * i + 3]! - grid.ownAt[3 * i + 2]!;
      const cols = s.cols.get(2 * pl + 1);
      for (let q = 0; q < pl; q++) {
        cols[q] = pFrom[q]!;
        cols[pl + q] = P + pFrom[q]!;
      }
      cols[2 * pl] = portCells;
      let o = 0;
      for (let uj = 0; uj < ul; uj++) {
        for (let gj = 0; gj < gl; gj++, o += 2 * pl) {
          // The runs of matching own cells along the ports of both protocols, each a column range.
          for (let q = 0; q < 2 * pl; ) {
            if (matches[b0 + o + q] === 0) {
              q++;
              continue;
            }
            const c0 = cols[q]!;
            while (q < 2 * pl && matches[b0 + o + q] === 1) q++;
            const c1 = cols[q]!;
            // The rows of this own (uid, gid) cell in its rule's array.
            if (a === 3) {
              for (let ui = uFrom[uj]!; ui < uFrom[uj + 1]!; ui++) flip(diff, C, Wd, word, bit, ui * G + gFrom[gj]!, ui * G + gFrom[gj + 1]!, c0, c1);
            } else if (a === 2) flip(diff, C, Wd, word, bit, gFrom[gj]!, gFrom[gj + 1]!, c0, c1);
            else flip(diff, C, Wd, word, bit, uFrom[uj]!, uFrom[uj + 1]!, c0, c1);
          }
        }
      }
    }
    // Prefix XOR: each array's word at (row, column) becomes its rules' mask there.
    for (let a = 1; a < 4; a++) {
      if ((kinds & (1 << a)) === 0) continue;
      const diff = diffs[a]!;
      const rowWords = C * Wd;
      for (let r = 0; r < rowCount(a); r++) {
        const base = r * rowWords;
        for (let x = base + Wd; x < base + portCells * Wd; x++) diff[x]! ^= diff[x - Wd]!;
        if (r > 0) for (let x = base; x < base + portCells * Wd; x++) diff[x]! ^= diff[x - rowWords]!;
      }
    }

    // Each cell's verdict: its matching forbids decide, else its matching permits, else the
    // default. A cell's mask is the flat rules' `Wf` words, then the deep rules' `Wd`;
    // neighbouring cells often have the same deciding rules: the last is reused.
    const byUid = diffs[1]!;
    const byGid = diffs[2]!;
    const both = diffs[3]!;
    const hasUid = (kinds & 2) !== 0;
    const hasGid = (kinds & 4) !== 0;
    const hasBoth = (kinds & 8) !== 0;
    const Wf = state.flatWords;
    const W = Wf + Wd;
    const flatMasks = state.flatMasks;
    const flatForbids = state.flatForbids;
    const deciding = s.words[1]!.get(2 * W);
    const last = s.words[2]!.get(W);
    let lastVerdict = -1;
    let c = 0;
    for (let u = 0; u < U; u++) {
      for (let g = 0; g < G; g++) {
        for (let pk = 0; pk < portCells; pk++, c++) {
          let forbidden = 0;
          const fAt = (pk < P ? portAt[pk]! : classPorts + portAt[pk - P]!) * Wf;
          for (let w = 0; w < Wf; w++) {
            const m = flatMasks[fAt + w]! & keep[w]!;
            deciding[w] = m;
            deciding[W + w] = m & flatForbids[w]!;
            forbidden |= m & flatForbids[w]!;
          }
          const uAt = (u * C + pk) * Wd;
          const gAt = (g * C + pk) * Wd;
          const bAt = ((u * G + g) * C + pk) * Wd;
          for (let w = 0; w < Wd; w++) {
            let m = 0;
            if (hasUid) m |= byUid[uAt + w]!;
            if (hasGid) m |= byGid[gAt + w]!;
            if (hasBoth) m |= both[bAt + w]!;
            deciding[Wf + w] = m;
            deciding[W + Wf + w] = m & forbids[w]!;
            forbidden |= m & forbids[w]!;
          }
          const from = forbidden !== 0 ? W : 0;
          let same = lastVerdict >= 0;
          for (let w = 0; same && w < W; w++) same = deciding[from + w] === last[w];
          if (!same) {
            for (let w = 0; w < W; w++) last[w] = deciding[from + w]!;
            lastVerdict = this.verdictOfMask(state, deep, last);
          }
          verdicts[c] = lastVerdict;
        }
      }
    }
    return this.row(s.starts[0]!.get(0), U, s.starts[1]!.get(0), G, s.starts[2]!.get(0), P, verdicts);
  }

  /** The verdict of the flat rules matching in port cell `at` of a group's grid (`WalkState.flatCounts`). */
  private flatVerdict(state: WalkState, at: number): number {
    const effect = state.flatCounts[2 * at]! > 0 ? 0 : 1;
    const count = state.flatCounts[2 * at + effect]!;
    if (count === 0) return this.defaultVerdict(state.unidentified);
    const hash = state.flatHashes[2 * at + effect]!;
    const masks = state.flatMasks;
    const Wf = state.flatWords;
    const seen = state.flatDeciding.get(hash);
    // Exact: rules of the same effect, as many, each matching here.
    if (seen !== undefined) {
      for (const { forbid, bits, verdict } of seen) {
        if (forbid !== (effect === 0) || bits.length !== count) continue;
        let k = 0;
        while (k < count && (masks[at * Wf + (bits[k]! >>> 5)]! & (1 << (bits[k]! & 31))) !== 0) k++;
        if (k === count) return verdict;
      }
    }
    const bits = new Int32Array(count);
    const out = this.scratch.deciding.get(count);
    let n = 0;
    for (let w = 0; w < Wf; w++) {
      const m = masks[at * Wf + w]! & (effect === 0 ? state.flatForbids[w]! : ~state.flatForbids[w]!);
      for (let x = m; x !== 0; x &= x - 1) {
        const b = w * 32 + lowestBit(x);
        bits[n] = b;
        out[n++] = state.rules[state.flat[b]!]!.index;
      }
    }
    const verdict = this.decidedBy(out, count);
    const entry = { forbid: effect === 0, bits, verdict };
    if (seen === undefined) state.flatDeciding.set(hash, [entry]);
    else seen.push(entry);
    return verdict;
  }

  /** The verdict whose deciding rules are those at the bits of `mask`: `state.flatWords` words over `state.flat`, then words over `deep`; the default when none. */
  private verdictOfMask(state: WalkState, deep: readonly number[], mask: Int32Array): number {
    const Wf = state.flatWords;
    const W = Wf + ((deep.length + 31) >>> 5);
    const out = this.scratch.deciding.get(W * 32);
    // Positions from both masks, each increasing, merged.
    let n = 0;
    for (let w = 0; w < Wf; w++) for (let x = mask[w]!; x !== 0; x &= x - 1) out[n++] = state.flat[w * 32 + lowestBit(x)]!;
    const flatCount = n;
    for (let w = Wf; w < W; w++) for (let x = mask[w]!; x !== 0; x &= x - 1) out[n++] = deep[(w - Wf) * 32 + lowestBit(x)]!;
    if (n === 0) return this.defaultVerdict(state.unidentified);
    if (flatCount > 0 && flatCount < n) out.subarray(0, n).sort();
    for (let k = 0; k < n; k++) out[k] = state.rules[out[k]!]!.index;
    return this.decidedBy(out, n);
  }
}

/**
 * One group's walk (`TableBuilder.groupRows`). Each rule of the group is evaluated on its own
 * grid (the uid, gid and port intervals its constants cut, both protocols). The named CIDRs
 * are visited depth first (enclosing CIDRs first); a CIDR's matches differ from its nearest
 * named enclosing CIDR's only for the rules naming it, and only those are evaluated again
 * (and restored when the walk leaves the CIDR). Where some rule's matches changed, a class's
 * row is made from the rules that match somewhere there (`rowOf`), which are few even in
 * large classes.
 *
 * A class, not closures made per group: V8 optimises a call through a closure for the one
 * closure it has seen, so every new group's closures threw `groupRows`'s optimised code away
 * ("wrong call target"); methods are the same functions for every group.
 */
class GroupWalk {
  private readonly M: number;
  /** Per class, a flag per position of the group's rules it lacks, and those positions. */
  private readonly lacks: Uint8Array[];
  private readonly missing: number[][];
  private readonly grids: OwnGrid[];
  /** One cell object, moved over the grids (predicates do not keep it). */
  private readonly cell: Cell & { destination: ReadonlySet<number>; uid: number; gid: number; port: number; protocol: Protocol };
  /**
   * Per position: whether the rule's principal scope admits the group's atoms (`matches`
   * leaves the principal scope's atoms and the resource scope's CIDRs to the caller; the
   * group's classes share their atoms, so this is known once).
   */
  private readonly admitted: Uint8Array;
  private readonly state: WalkState;
  /** The rules that match somewhere: a flag per position, and the positions of those that read uid or gid. */
  private readonly isActive: Uint8Array;
  private readonly deep: number[] = [];
  /** Per class, the flat rules it has (a mask over `state.flat`). */
  private readonly keeps: Int32Array[];
  /** Each class's row per frame of the walk: M words per frame, the default rows' first. */
  private readonly frameRows: Scratch<Int32Array>;

  constructor(
    private readonly builder: TableBuilder,
    private readonly classes: readonly IdentityClass[],
    private readonly rules: readonly NormalRule[],
    private readonly scratch: RowScratch,
  ) {
    const cls = classes[0]!;
    const positionOf = new Map<number, number>();
    rules.forEach((r, i) => positionOf.set(r.index, i));
    this.lacks = packedMap(classes, (c) => {
      const has = new Uint8Array(rules.length).fill(1);
      for (const r of c.rules) has[positionOf.get(r.index)!] = 0;
      return has;
    });
    this.missing = packedMap(this.lacks, (flags) => {
      const out: number[] = [];
      for (let i = 0; i < flags.length; i++) if (flags[i] === 1) out.push(i);
      return out;
    });
    this.M = classes.length;
    this.grids = packedMap(rules, (r) => builder.ownGrid(r));
    this.cell = { identity: cls.atoms, unidentified: cls.unidentified, destination: new Set<number>(), uid: 0, gid: 0, port: 0, protocol: "tcp" };
    this.admitted = new Uint8Array(rules.length);
    for (let i = 0; i < rules.length; i++) {
      const atoms = rules[i]!.principalAtoms;
      this.admitted[i] = atoms === undefined || (!cls.unidentified && atoms.some((a) => cls.atoms.has(a))) ? 1 : 0;
    }
    this.state = new WalkState(rules, this.grids, cls.unidentified, scratch.walk);
    this.isActive = new Uint8Array(rules.length);
    const noDestination = new Set<number>();
    for (let i = 0; i < rules.length; i++) {
      const size = this.grids[i]!.cells;
      const out = scratch.evaluated.get(size);
      this.setBits(i, out, 0, this.evaluate(i, noDestination, out, size));
    }
    const { allFlat, flatBit } = this.state;
    this.keeps = packedMap(this.missing, (miss) => {
      if (!miss.some((i) => flatBit[i]! >= 0)) return allFlat;
      const keep = allFlat.slice();
      for (const i of miss) if (flatBit[i]! >= 0) keep[flatBit[i]! >>> 5]! &= ~(1 << (flatBit[i]! & 31));
      return keep;
    });
    this.frameRows = new Scratch(new Int32Array(4 * this.M));
  }

  /** Whether rule i matches, per cell of its own grid (`size` cells), at `destination`: into `out`; returns whether it matches in any. */
  private evaluate(i: number, destination: ReadonlySet<number>, out: Uint8Array, size: number): boolean {
    const r = this.rules[i]!;
    const grid = this.grids[i]!;
    out.fill(0, 0, size);
    if (this.admitted[i] === 0) return false;
    const resourceCidrs = r.resourceCidrs;
    if (resourceCidrs !== undefined) {
      let k = 0;
      while (k < resourceCidrs.length && !destination.has(resourceCidrs[k]!)) k++;
      if (k === resourceCidrs.length) return false;
    }
    const cell = this.cell;
    cell.destination = destination;
    let at = 0;
    let any = false;
    for (const uid of grid.uids) {
      cell.uid = uid;
      for (const gid of grid.gids) {
        cell.gid = gid;
        for (const protocol of PROTOCOLS) {
          cell.protocol = protocol;
          for (const port of grid.ports) {
            cell.port = port;
            if (r.matches(cell)) {
              out[at] = 1;
              any = true;
            }
            at++;
          }
        }
      }
    }
    return any;
  }

  private setActive(i: number, on: boolean): void {
    this.isActive[i] = on ? 1 : 0;
    this.state.use(i, on ? 1 : -1);
    if (this.state.grid.axes[i] === 0) return;
    const deep = this.deep;
    const at = lowerBound(deep, deep.length, i);
    if (on) deep.splice(at, 0, i);
    else deep.splice(at, 1);
  }

  /** Rule i's matches are now those of `from` at `at` (its flat masks are edited where they change); `on` if it matches somewhere. */
  private setBits(i: number, from: Uint8Array, at: number, on: boolean): void {
    const state = this.state;
    if (state.flatBit[i]! >= 0) state.flipFlat(i, from, at);
    const size = this.grids[i]!.cells;
    const to = state.bitsAt[i]!;
    const bits = state.bits;
    for (let o = 0; o < size; o++) bits[to + o] = from[at + o]!;
    if (on !== (this.isActive[i] === 1)) this.setActive(i, on);
  }

  /**
   * Each class's row in the current state, at `rows[at + m]`: its parent's (at `parent`)
   * unless one of its rules is among those whose matches `changed`; the union's when it
   * lacks none of the rules that match somewhere; else made from its own.
   */
  private rowsNow(changed: readonly number[] | undefined, parent: number, at: number): void {
    const rows = this.frameRows.get(0);
    let unionRow = -1;
    for (let m = 0; m < this.M; m++) {
      const lacked = this.lacks[m]!;
      if (changed !== undefined && everyIn(changed, lacked, 1)) rows[at + m] = rows[parent + m]!;
      else if (everyIn(this.missing[m]!, this.isActive, 0)) rows[at + m] = unionRow >= 0 ? unionRow : (unionRow = this.builder.rowOf(this.state, this.deep, this.state.allFlat));
      else rows[at + m] = this.builder.rowOf(this.state, this.deep.filter((i) => lacked[i] === 0), this.keeps[m]!);
    }
  }

  /** Each class's default row and (destination class, row) entries. */
  run(dst: DestinationView): ClassRows[] {
    this.rowsNow(undefined, 0, 0);
    const entries = packedMap(this.classes, (): number[] => []);
    this.walk(dst, entries);
    const rows = this.frameRows.get(0);
    return packedMap(this.classes, (_c, m) => ({ defaultRow: rows[m]!, entries: entries[m]! }));
  }

  /**
   * The walk over the named CIDRs, appending each class's (destination class, row) entries
   * to `entries`. A method of its own: V8 optimises its loop while it runs (on-stack
   * replacement) and keeps that code for later groups, whose first statement after the loop
   * had no type feedback then and deoptimised every call (356 times on 10,000 rules) when
   * the loop's method also built the result.
   */
  private walk(dst: DestinationView, entries: number[][]): void {
    const { rules, grids, M, scratch: s, state } = this;
    const { bits, bitsAt } = state;

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
    const named = new Int32Array(naming.size);
    let count = 0;
    for (const d of naming.keys()) named[count++] = d;
    named.sort();
    // The walk's changes, undone when it leaves a CIDR: rules whose matches changed, with
    // their matches before (`undoBytes`, up to `undoTop`). A frame per CIDR on the walk's
    // path: its CIDR's class, where its changes start, and its rows (frame k's at (k + 1) * M).
    const undoRules: number[] = [];
    let undoBytes = s.undo.get(0);
    let undoTop = 0;
    const frameD: number[] = [];
    const frameUndo: number[] = [];
    const changed: number[] = [];
    for (const d of named) {
      let up = dst.parent[d]!;
      while (up !== 0 && !naming.has(up)) up = dst.parent[up]!;
      while (frameD.length > 0 && frameD[frameD.length - 1] !== up) {
        frameD.pop();
        const undo = frameUndo.pop()!;
        while (undoRules.length > undo) {
          const i = undoRules.pop()!;
          const size = grids[i]!.cells;
          undoTop -= size;
          let on = false;
          for (let o = undoTop; o < undoTop + size && !on; o++) on = undoBytes[o] === 1;
          this.setBits(i, undoBytes, undoTop, on);
        }
      }
      const parent = frameD.length * M;
      const at = parent + M;
      const rows = this.frameRows.get(at + M);
      rows.copyWithin(at, parent, parent + M);
      frameD.push(d);
      frameUndo.push(undoRules.length);
      const destination = dst.classCidrs[d]!;
      changed.length = 0;
      for (const i of naming.get(d)!) {
        const size = grids[i]!.cells;
        const out = s.evaluated.get(size);
        const on = this.evaluate(i, destination, out, size);
        const from = bitsAt[i]!;
        let o = 0;
        while (o < size && out[o] === bits[from + o]) o++;
        if (o === size) continue;
        changed.push(i);
        undoRules.push(i);
        undoBytes = s.undo.get(undoTop + size);
        for (let o = 0; o < size; o++) undoBytes[undoTop + o] = bits[from + o]!;
        undoTop += size;
        this.setBits(i, out, 0, on);
      }
      if (changed.length > 0) {
        this.rowsNow(changed, parent, at);
        for (let m = 0; m < M; m++) if (rows[at + m] !== rows[parent + m]) entries[m]!.push(d, rows[at + m]!);
      }
    }
  }
}

/**
 * What `rowOf` reads of a group's walk, and the edits of its masks (a class, for the reason
 * `GroupWalk` is one).
 */
class WalkState {
  readonly grid: ClassGrid;
  /** Per position: whether its rule is a forbid. */
  readonly forbid: Uint8Array;
  /** The rules' matches per cell of their own grids now: rule i's from `bitsAt[i]` up to `bitsAt[i + 1]`. */
  readonly bits: Uint8Array;
  readonly bitsAt: Int32Array;
  /** Per axis, per start of `grid`: how many rules matching somewhere have it among their own starts. */
  readonly uses: readonly Int32Array[];
  /** The positions of the rules that read neither uid nor gid ("flat"); per position, its bit among them (-1: not flat). */
  readonly flat: readonly number[];
  readonly flatBit: Int32Array;
  /** Words per mask over `flat`; the flat rules matching per port cell of `grid` (protocols as in rows); the flat forbids. */
  readonly flatWords: number;
  readonly flatMasks: Int32Array;
  readonly flatForbids: Int32Array;
  /** A mask of every flat rule (`keep` of a class that lacks none). */
  readonly allFlat: Int32Array;
  /** Per port cell of `grid`: the verdict of its flat rules when no others match (-1: not known since its masks last changed). */
  readonly flatVerdicts: Int32Array;
  /**
   * Per port cell of `grid`, of its matching flat forbids (index `2 * cell`) and permits
   * (`2 * cell + 1`): how many, and the sum of their positions' mixes, kept by `flipFlat`,
   * so that a cell's deciding rules are found among those seen before by their hash.
   */
  readonly flatCounts: Int32Array;
  readonly flatHashes: Int32Array;
  /** Deciding flat rules seen (forbids or permits, their bits among `flat`) and their verdict, by the hash of `flatHashes`. */
  readonly flatDeciding = new Map<number, { forbid: boolean; bits: Int32Array; verdict: number }[]>();

  constructor(
    readonly rules: readonly NormalRule[],
    grids: readonly OwnGrid[],
    readonly unidentified: boolean,
    buffers: WalkBuffers,
  ) {
    const grid = (this.grid = classGrid(rules, grids));
    const flat: number[] = [];
    const flatBit = new Int32Array(rules.length).fill(-1);
    grid.axes.forEach((a, i) => {
      if (a === 0) flatBit[i] = flat.push(i) - 1;
    });
    this.flat = flat;
    this.flatBit = flatBit;
    const flatWords = (this.flatWords = (flat.length + 31) >>> 5);
    const classPorts = grid.starts[2]!.length;
    this.flatMasks = filled(buffers.flatMasks, 2 * classPorts * flatWords);
    const flatForbids = (this.flatForbids = new Int32Array(flatWords));
    const forbid = (this.forbid = new Uint8Array(rules.length));
    for (let i = 0; i < rules.length; i++) forbid[i] = rules[i]!.effect === "forbid" ? 1 : 0;
    flat.forEach((i, b) => forbid[i] && (flatForbids[b >>> 5]! |= 1 << (b & 31)));
    this.uses = packedMap(grid.starts, (list, a) => filled(buffers.uses[a]!, list.length));
    this.flatVerdicts = filled(buffers.flatVerdicts, 2 * classPorts, -1);
    const bitsAt = (this.bitsAt = new Int32Array(rules.length + 1));
    grids.forEach((g, i) => (bitsAt[i + 1] = bitsAt[i]! + g.cells));
    this.bits = filled(buffers.bits, bitsAt[rules.length]!);
    this.flatCounts = filled(buffers.flatCounts, 4 * classPorts);
    this.flatHashes = filled(buffers.flatHashes, 4 * classPorts);
    this.allFlat = new Int32Array(flatWords).fill(-1);
  }

  /** Counts rule i's own starts in `uses` (`delta` 1) or no longer (-1). */
  use(i: number, delta: number): void {
    const { grid, uses } = this;
    for (let a = 0; a < 3; a++) for (let k = grid.ownAt[3 * i + a]!; k < grid.ownAt[3 * i + a + 1]!; k++) uses[a]![grid.own[k]!]! += delta;
  }

  /** Flat rule i's matches (in `bits`) are about to become those of `after` from `at`: its bit flips where they differ. */
  flipFlat(i: number, after: Uint8Array, at: number): void {
    const { grid, bits, flatMasks, flatVerdicts, flatCounts, flatHashes, flatWords } = this;
    const classPorts = grid.starts[2]!.length;
    const ports = grid.own;
    const p0 = grid.ownAt[3 * i + 2]!;
    const pl = grid.ownAt[3 * i + 3]! - p0;
    const before = this.bitsAt[i]!;
    const word = this.flatBit[i]! >>> 5;
    const bit = 1 << (this.flatBit[i]! & 31);
    const effect = this.forbid[i] ? 0 : 1;
    const hash = mix(i);
    for (let q = 0; q < 2 * pl; q++) {
      if (bits[before + q] === after[at + q]) continue;
      const k = q % pl;
      const offset = q >= pl ? classPorts : 0;
      const to = offset + (k + 1 < pl ? ports[p0 + k + 1]! : classPorts);
      const sign = after[at + q] ? 1 : -1;
      for (let pk = offset + ports[p0 + k]!; pk < to; pk++) {
        flatMasks[pk * flatWords + word]! ^= bit;
        flatVerdicts[pk] = -1;
        flatCounts[2 * pk + effect]! += sign;
        flatHashes[2 * pk + effect] = (flatHashes[2 * pk + effect]! + sign * hash) | 0;
      }
    }
  }
}

/** Buffers of a group's walk (`WalkState`), kept from group to group. */
type WalkBuffers = RowScratch["walk"];

/** The first `n` elements of `scratch`'s buffer set to `value`. */
function filled<T extends Uint8Array | Int32Array>(scratch: Scratch<T>, n: number, value = 0): T {
  return scratch.get(n).fill(value, 0, n) as T;
}


/** A rule's own interval starts per axis, computed once per rule (a rule is in many classes). */
const ownStarts = new WeakMap<NormalRule, Partial<Record<Axis, number[]>>>();
export function ruleStarts(r: NormalRule, axis: Axis): number[] {
  let byAxis = ownStarts.get(r);
  if (byAxis === undefined) ownStarts.set(r, (byAxis = {}));
  return (byAxis[axis] ??= axisStarts([r], axis));
}
