// Owns the rows of the decision tables: for one identity class (a set of rules evaluated
// with a fixed set of identity atoms true), its default row and one row per CIDR its rules
// name, each a fully resolved verdict per (uid, gid, protocol, port) interval; and the
// interning of rows, verdicts and reason sets shared by every class (docs/bundle-format.md).
//
// INVARIANT: deterministic, and exact: a row's verdict in a cell is forbid > permit >
// default over exactly the class's rules that match in that cell (spec §5).
import type { Protocol } from "./model.js";
import type { NormalPolicy, NormalRule } from "./normalise.js";

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

/** Sorted interval starts covering [0, max]: 0 plus every cut within range. */
export function intervalStarts(cuts: Iterable<number>, max: number): number[] {
  const starts = new Set<number>([0]);
  for (const c of cuts) if (c > 0 && c <= max) starts.add(c);
  return [...starts].sort((a, b) => a - b);
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

/**
 * Interned increasing lists of numbers (rule indices or positions): a node per list, reached
 * by its elements in order; `verdict` memoises what a list of matching rules resolves to.
 */
class ListTrie {
  private readonly next = new Map<number, ListTrie>();
  private materialised: readonly number[] | undefined;
  verdict: number | undefined;

  constructor(
    private readonly parent?: ListTrie,
    private readonly step = -1,
  ) {}

  /** The list this node stands for, built on first use (one array per node). */
  get list(): readonly number[] {
    if (this.materialised === undefined) {
      const out: number[] = [];
      for (let n: ListTrie | undefined = this; n?.parent !== undefined; n = n.parent) out.push(n.step);
      this.materialised = out.reverse();
    }
    return this.materialised;
  }

  child(step: number): ListTrie {
    let node = this.next.get(step);
    if (node === undefined) this.next.set(step, (node = new ListTrie(this, step)));
    return node;
  }

  at(path: readonly number[]): ListTrie {
    let node: ListTrie = this;
    for (const step of path) node = node.child(step);
    return node;
  }
}

export class TableBuilder {
  readonly verdicts: { flags: number; reasonSet: number }[] = [];
  readonly reasonSets: number[][] = [];
  readonly rows: Uint32Array[] = [];
  private readonly verdictIndex = new Map<string, number>();
  private readonly reasonIndex = new Map<string, number>();
  /** Rows by a hash of their words (rows can be large: no string keys). */
  private readonly rowsByHash = new Map<number, number[]>();
  /** Rule index → its rank in rule-id order (reasons are "sorted rule ids"). */
  private readonly rank: number[];
  /**
   * Verdicts by the cell's outcome, a trie over the matched rule indices (one for forbids,
   * one for permits), so that sorting and interning happen once per outcome.
   */
  private readonly forbidOutcomes = new ListTrie();
  private readonly permitOutcomes = new ListTrie();
  private readonly defaultOutcomes: [number | undefined, number | undefined] = [undefined, undefined];

  constructor(private readonly policy: NormalPolicy) {
    const ids = policy.rules.map((r) => r.id);
    const order = ids.map((_id, i) => i).sort((a, b) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0));
    this.rank = new Array<number>(ids.length);
    order.forEach((ruleIndex, position) => (this.rank[ruleIndex] = position));
  }

  private verdict(flags: number, reasons: readonly number[]): number {
    const reasonKey = reasons.join(",");
    let reasonSet = this.reasonIndex.get(reasonKey);
    if (reasonSet === undefined) {
      reasonSet = this.reasonSets.length;
      this.reasonSets.push([...reasons]);
      this.reasonIndex.set(reasonKey, reasonSet);
    }
    const key = `${flags}:${reasonSet}`;
    let index = this.verdictIndex.get(key);
    if (index === undefined) {
      index = this.verdicts.length;
      this.verdicts.push({ flags, reasonSet });
      this.verdictIndex.set(key, index);
    }
    return index;
  }

  /** One cell's verdict: forbid > permit > default (spec §5), from its matching rules in increasing index order. */
  decide(matched: readonly NormalRule[], unidentified: boolean): number {
    const forbids: number[] = [];
    const permits: number[] = [];
    for (const r of matched) (r.effect === "forbid" ? forbids : permits).push(r.index);
    const byId = (xs: readonly number[]) => [...xs].sort((a, b) => this.rank[a]! - this.rank[b]!);
    if (forbids.length > 0) return (this.forbidOutcomes.at(forbids).verdict ??= this.verdict(0, byId(forbids)));
    if (permits.length > 0) return (this.permitOutcomes.at(permits).verdict ??= this.verdict(VERDICT_ALLOW, byId(permits)));
    const kind = unidentified ? 1 : 0;
    const allow = unidentified && this.policy.defaultUnidentified === "allow";
    return (this.defaultOutcomes[kind] ??= this.verdict(VERDICT_DEFAULT | (allow ? VERDICT_ALLOW : 0), []));
  }

  /**
   * Interns a row given its verdict per cell (`verdictAt(ui, gi, pi, k)` over the uid, gid,
   * protocol and port starts). Adjacent intervals with equal contents are merged at every
   * level. Block offsets are relative to the row's start (made absolute when rows are joined).
   */
  row(uids: readonly number[], gids: readonly number[], ports: readonly number[], verdictAt: (ui: number, gi: number, pi: number, k: number) => number): number {
    // Per uid interval: per gid interval: [tcp list, udp list], each `start, verdict…` with runs merged.
    const uidBlocks: { start: number; gids: { start: number; lists: number[][] }[]; key: string }[] = [];
    uids.forEach((uid, ui) => {
      const gidBlocks: { start: number; lists: number[][]; key: string }[] = [];
      gids.forEach((gid, gi) => {
        const lists = PROTOCOLS.map((_p, pi) => {
          const list: number[] = [];
          let previous = -1;
          ports.forEach((port, k) => {
            const v = verdictAt(ui, gi, pi, k);
            if (v !== previous) list.push(port, v);
            previous = v;
          });
          return list;
        });
        const key = `${lists[0]!.join(",")}/${lists[1]!.join(",")}`;
        if (gidBlocks.length === 0 || gidBlocks[gidBlocks.length - 1]!.key !== key) gidBlocks.push({ start: gid, lists, key });
      });
      const key = gidBlocks.map((g) => `${g.start}:${g.key}`).join(";");
      if (uidBlocks.length === 0 || uidBlocks[uidBlocks.length - 1]!.key !== key) uidBlocks.push({ start: uid, gids: gidBlocks, key });
    });
    const words: number[] = [uidBlocks.length];
    const uidSlots = words.length;
    for (const u of uidBlocks) words.push(u.start, 0);
    uidBlocks.forEach((u, ui) => {
      words[uidSlots + ui * 2 + 1] = words.length;
      words.push(u.gids.length);
      const gidSlots = words.length;
      for (const g of u.gids) words.push(g.start, 0);
      u.gids.forEach((g, gi) => {
        words[gidSlots + gi * 2 + 1] = words.length;
        const protoSlots = words.length;
        words.push(0, 0);
        g.lists.forEach((list, pi) => {
          words[protoSlots + pi] = words.length;
          words.push(list.length / 2, ...list);
        });
      });
    });
    const packed = Uint32Array.from(words);
    let hash = 0x811c9dc5;
    for (const w of packed) hash = Math.imul(hash ^ w, 0x01000193);
    const bucket = this.rowsByHash.get(hash);
    const same = (row: Uint32Array) => row.length === packed.length && row.every((w, i) => w === packed[i]);
    const found = bucket?.find((index) => same(this.rows[index]!));
    if (found !== undefined) return found;
    const index = this.rows.length;
    this.rows.push(packed);
    if (bucket === undefined) this.rowsByHash.set(hash, [index]);
    else bucket.push(index);
    return index;
  }

  /**
   * The rows of one class: its default row (a destination inside none of the CIDRs its rules
   * name) and, per CIDR its rules name, the row of that CIDR's destination class, unless it
   * equals the row its nearest named enclosing CIDR (or the default) already gives (the
   * lookup walks a destination's enclosing CIDRs: docs/bundle-format.md, step 3).
   *
   * Evaluated on the class's grid (the uid, gid and port intervals its rules' constants cut,
   * both protocols). The matches at the default destination are computed once; a CIDR's row
   * re-evaluates only the rules that name a CIDR holding it.
   */
  classRows(cls: IdentityClass, dst: DestinationView): { defaultRow: number; entries: [number, number][] } {
    const rules = cls.rules;
    const uids = intervalStarts(rules.flatMap((r) => [...r.cuts.uid]), 0xffffffff);
    const gids = intervalStarts(rules.flatMap((r) => [...r.cuts.gid]), 0xffffffff);
    const ports = intervalStarts(rules.flatMap((r) => [...r.cuts.port]), 65535);
    // A cell is (uid interval, gid interval) × (protocol, port interval): `ug * portCells + pk`.
    const portCells = 2 * ports.length;
    const ugCount = uids.length * gids.length;
    const cellCount = ugCount * portCells;
    const isFlat = rules.map((r) => r.cuts.uid.size === 0 && r.cuts.gid.size === 0);

    /** For each of the class's interval starts, the index of the rule's own interval holding it. */
    const project = (classStarts: readonly number[], own: readonly number[]): Int32Array => {
      const out = new Int32Array(classStarts.length);
      let j = 0;
      classStarts.forEach((v, i) => {
        while (j + 1 < own.length && own[j + 1]! <= v) j++;
        out[i] = j;
      });
      return out;
    };

    /**
     * Whether rule r matches, at `destination`: per port cell for a rule that reads neither
     * uid nor gid, else per cell. The rule is evaluated once per cell of its own grid (the
     * intervals its own constants cut), which the class's grid refines.
     */
    const evaluate = (i: number, destination: ReadonlySet<number>): Uint8Array => {
      const r = rules[i]!;
      const out = new Uint8Array(isFlat[i] ? portCells : cellCount);
      // `matches` leaves the principal scope's atoms and the resource scope's CIDRs to the caller.
      if (r.principalAtoms !== undefined && (cls.unidentified || !r.principalAtoms.some((a) => cls.atoms.has(a)))) return out;
      if (r.resourceCidrs !== undefined && !r.resourceCidrs.some((c) => destination.has(c))) return out;
      const ownUids = intervalStarts(r.cuts.uid, 0xffffffff);
      const ownGids = intervalStarts(r.cuts.gid, 0xffffffff);
      const ownPorts = intervalStarts(r.cuts.port, 65535);
      // One cell object, moved over the grid (predicates do not keep it).
      const cell = { identity: cls.atoms, unidentified: cls.unidentified, destination, uid: 0, gid: 0, port: 0, protocol: "tcp" as Protocol };
      const own = new Uint8Array(ownUids.length * ownGids.length * 2 * ownPorts.length);
      let at = 0;
      for (const uid of ownUids) {
        cell.uid = uid;
        for (const gid of ownGids) {
          cell.gid = gid;
          for (const protocol of PROTOCOLS) {
            cell.protocol = protocol;
            for (const port of ownPorts) {
              cell.port = port;
              own[at++] = r.matches(cell) ? 1 : 0;
            }
          }
        }
      }
      const pu = project(uids, ownUids);
      const pg = project(gids, ownGids);
      const pp = project(ports, ownPorts);
      const ownPortCells = 2 * ownPorts.length;
      let o = 0;
      for (let ui = 0; ui < (isFlat[i] ? 1 : uids.length); ui++) {
        for (let gi = 0; gi < (isFlat[i] ? 1 : gids.length); gi++) {
          const base = (pu[ui]! * ownGids.length + pg[gi]!) * ownPortCells;
          for (let pi = 0; pi < 2; pi++) for (let k = 0; k < ports.length; k++) out[o++] = own[base + pi * ownPorts.length + pp[k]!]!;
        }
      }
      return out;
    };

    const flatPositions = rules.map((_r, i) => i).filter((i) => isFlat[i]);
    const deepPositions = rules.map((_r, i) => i).filter((i) => !isFlat[i]);
    const noDestination = new Set<number>();
    const atDefault = rules.map((_r, i) => evaluate(i, noDestination));
    // The positions of the matching rules, increasing: per port cell (rules reading neither
    // uid nor gid), per cell (the others). Lists are interned (equal lists are one array), so
    // that a cell's verdict is decided once per distinct pair of lists.
    const lists = new ListTrie();
    const listsOf = (positions: readonly number[], size: number): (readonly number[])[] => {
      const nodes: ListTrie[] = new Array<ListTrie>(size).fill(lists);
      for (const i of positions) {
        const b = atDefault[i]!;
        for (let c = 0; c < size; c++) if (b[c]) nodes[c] = nodes[c]!.child(i);
      }
      return nodes.map((n) => n.list);
    };
    const matched: NormalRule[] = [];
    const decided = new Map<readonly number[], Map<readonly number[], number>>();
    const decideLists = (flat: readonly number[], deep: readonly number[]): number => {
      let byDeep = decided.get(flat);
      if (byDeep === undefined) decided.set(flat, (byDeep = new Map()));
      const known = byDeep.get(deep);
      if (known !== undefined) return known;
      matched.length = 0;
      let j = 0;
      for (const i of flat) {
        while (j < deep.length && deep[j]! < i) matched.push(rules[deep[j++]!]!);
        matched.push(rules[i]!);
      }
      while (j < deep.length) matched.push(rules[deep[j++]!]!);
      const v = this.decide(matched, cls.unidentified);
      byDeep.set(deep, v);
      return v;
    };
    /** Verdicts per cell, given the matching rules per port cell and per cell. */
    const verdictsOf = (flat: readonly (readonly number[])[], deep: readonly (readonly number[])[]): Uint32Array => {
      const out = new Uint32Array(cellCount);
      for (let cell = 0; cell < cellCount; cell++) out[cell] = decideLists(flat[cell % portCells]!, deep[cell]!);
      return out;
    };
    const defaultFlat = listsOf(flatPositions, portCells);
    const defaultDeep = listsOf(deepPositions, cellCount);
    const defaultVerdicts = verdictsOf(defaultFlat, defaultDeep);
    const rowOf = (verdicts: Uint32Array) => this.row(uids, gids, ports, (ui, gi, pi, k) => verdicts[(ui * gids.length + gi) * portCells + pi * ports.length + k]!);
    const defaultRow = rowOf(defaultVerdicts);

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
    // Enclosing CIDRs come first (a parent's class number is smaller). A CIDR's destination
    // differs from its nearest named enclosing CIDR's, for these rules, only in itself: only
    // the rules naming it are evaluated again; the others keep that CIDR's evaluation
    // (`overrides`: position → matches, for every rule whose matches differ from the default's).
    const named = [...naming.keys()].sort((a, b) => a - b);
    // An override: a rule's matches here and the cells (port cells for a flat rule) where they differ from the default's.
    type Override = { readonly bits: Uint8Array; readonly differs: readonly number[] };
    const state = new Map<number, { row: number; overrides: Map<number, Override> }>();
    const entries: [number, number][] = [];
    for (const d of named) {
      let up = dst.parent[d]!;
      while (up !== 0 && !naming.has(up)) up = dst.parent[up]!;
      const enclosing = up === 0 ? undefined : state.get(up)!;
      const overrides = new Map(enclosing?.overrides);
      const destination = dst.classCidrs[d]!;
      for (const i of naming.get(d)!) {
        const bits = evaluate(i, destination);
        const before = atDefault[i]!;
        const differs: number[] = [];
        for (let c = 0; c < bits.length; c++) if (bits[c] !== before[c]) differs.push(c);
        if (differs.length === 0) overrides.delete(i);
        else overrides.set(i, { bits, differs });
      }
      let row = defaultRow;
      if (overrides.size > 0) {
        // The cells where some overridden rule differs from the default: recomputed with the
        // default matches of the other rules and the overridden rules' matches here.
        const overridden = [...overrides.keys()].sort((a, b) => a - b);
        const flatOverridden = overridden.filter((i) => isFlat[i]);
        const deepOverridden = overridden.filter((i) => !isFlat[i]);
        // A list with the overridden rules' matches at one cell instead of the default's,
        // memoised per (default list, which overridden rules match there).
        const replaced = new Map<readonly number[], Map<string, readonly number[]>>();
        const replace = (list: readonly number[], at: number, positions: readonly number[]) => {
          // Flat and deep lists are memoised apart (their positions differ; an empty list is both).
          let matchesHere = positions === flatOverridden ? "f" : "d";
          for (const i of positions) matchesHere += overrides.get(i)!.bits[at] ? "1" : "0";
          let byMatches = replaced.get(list);
          if (byMatches === undefined) replaced.set(list, (byMatches = new Map()));
          let out = byMatches.get(matchesHere);
          if (out === undefined) {
            const kept = list.filter((i) => !overrides.has(i));
            positions.forEach((i, k) => matchesHere[k + 1] === "1" && kept.push(i));
            out = lists.at(kept.sort((a, b) => a - b)).list;
            byMatches.set(matchesHere, out);
          }
          return out;
        };
        const flat = new Map<number, readonly number[]>();
        const deep = new Map<number, readonly number[]>();
        for (const i of flatOverridden) for (const pk of overrides.get(i)!.differs) if (!flat.has(pk)) flat.set(pk, replace(defaultFlat[pk]!, pk, flatOverridden));
        for (const i of deepOverridden) for (const c of overrides.get(i)!.differs) if (!deep.has(c)) deep.set(c, replace(defaultDeep[c]!, c, deepOverridden));
        const verdicts = new Uint32Array(defaultVerdicts);
        let changed = false;
        const set = (c: number, v: number) => {
          verdicts[c] = v;
          changed ||= v !== defaultVerdicts[c];
        };
        // A changed port cell: every (uid, gid) cell of it, deciding once per run of equal deep lists.
        for (const [pk, flatList] of flat) {
          let lastDeep: readonly number[] | undefined;
          let last = 0;
          for (let ug = 0; ug < ugCount; ug++) {
            const c = ug * portCells + pk;
            const deepList = deep.size === 0 ? defaultDeep[c]! : (deep.get(c) ?? defaultDeep[c]!);
            if (deepList !== lastDeep) {
              last = decideLists(flatList, deepList);
              lastDeep = deepList;
            }
            set(c, last);
          }
        }
        for (const [c, deepList] of deep) if (!flat.has(c % portCells)) set(c, decideLists(defaultFlat[c % portCells]!, deepList));
        if (changed) row = rowOf(verdicts);
      }
      state.set(d, { row, overrides });
      if (row !== (enclosing?.row ?? defaultRow)) entries.push([d, row]);
    }
    return { defaultRow, entries };
  }
}
