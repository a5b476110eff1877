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

/** A node of a trie over increasing rule-index lists. */
class OutcomeTrie {
  private readonly next = new Map<number, OutcomeTrie>();
  verdict: number | undefined;

  at(path: readonly number[]): OutcomeTrie {
    let node: OutcomeTrie = this;
    for (const step of path) {
      let child = node.next.get(step);
      if (child === undefined) {
        child = new OutcomeTrie();
        node.next.set(step, child);
      }
      node = child;
    }
    return node;
  }
}

const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

export class TableBuilder {
  readonly verdicts: { flags: number; reasonSet: number }[] = [];
  readonly reasonSets: number[][] = [];
  readonly rows: number[][] = [];
  private readonly verdictIndex = new Map<string, number>();
  private readonly reasonIndex = new Map<string, number>();
  private readonly rowIndex = new Map<string, number>();
  /** Rule index → its rank in rule-id order (reasons are "sorted rule ids"). */
  private readonly rank: number[];
  /**
   * Verdicts by the cell's outcome, a trie over the matched rule indices (one for forbids,
   * one for permits), so that sorting and interning happen once per outcome.
   */
  private readonly forbidOutcomes = new OutcomeTrie();
  private readonly permitOutcomes = new OutcomeTrie();
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
    const key = words.join(",");
    let index = this.rowIndex.get(key);
    if (index === undefined) {
      index = this.rows.length;
      this.rows.push(words);
      this.rowIndex.set(key, index);
    }
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
    const nPorts = ports.length;
    const cellsPerGid = 2 * nPorts;
    const cellsPerUid = gids.length * cellsPerGid;
    const cellCount = uids.length * cellsPerUid;
    const cellIndex = (ui: number, gi: number, pi: number, k: number) => ui * cellsPerUid + gi * cellsPerGid + pi * nPorts + k;

    /** Whether rule r matches in each cell at `destination`, as a bitmap over cells (rules reading neither uid nor gid are evaluated per protocol and port only). */
    const evaluate = (r: NormalRule, destination: ReadonlySet<number>): Uint8Array => {
      const out = new Uint8Array(cellCount);
      // `matches` leaves the principal scope's atoms and the resource scope's CIDRs to the caller.
      if (r.principalAtoms !== undefined && (cls.unidentified || !r.principalAtoms.some((a) => cls.atoms.has(a)))) return out;
      if (r.resourceCidrs !== undefined && !r.resourceCidrs.some((c) => destination.has(c))) return out;
      const flat = r.cuts.uid.size === 0 && r.cuts.gid.size === 0;
      // One cell object, moved over the grid (predicates do not keep it).
      const cell = { identity: cls.atoms, unidentified: cls.unidentified, destination, uid: 0, gid: 0, port: 0, protocol: "tcp" as Protocol };
      if (flat) {
        const here = new Uint8Array(cellsPerGid);
        for (let pi = 0; pi < 2; pi++) {
          cell.protocol = PROTOCOLS[pi]!;
          for (let k = 0; k < nPorts; k++) {
            cell.port = ports[k]!;
            here[pi * nPorts + k] = r.matches(cell) ? 1 : 0;
          }
        }
        for (let at = 0; at < cellCount; at += cellsPerGid) out.set(here, at);
        return out;
      }
      let at = 0;
      for (const uid of uids) {
        cell.uid = uid;
        for (const gid of gids) {
          cell.gid = gid;
          for (let pi = 0; pi < 2; pi++) {
            cell.protocol = PROTOCOLS[pi]!;
            for (let k = 0; k < nPorts; k++) {
              cell.port = ports[k]!;
              out[at++] = r.matches(cell) ? 1 : 0;
            }
          }
        }
      }
      return out;
    };

    const noDestination = new Set<number>();
    const atDefault = rules.map((r) => evaluate(r, noDestination));
    const defaultVerdicts = new Uint32Array(cellCount);
    // Per cell, the positions of the rules matching at the default destination, increasing.
    const defaultMatched: number[][] = [];
    const matched: NormalRule[] = [];
    for (let cell = 0; cell < cellCount; cell++) {
      const positions: number[] = [];
      for (let i = 0; i < rules.length; i++) if (atDefault[i]![cell]) positions.push(i);
      defaultMatched.push(positions);
      defaultVerdicts[cell] = this.decide(positions.map((i) => rules[i]!), cls.unidentified);
    }
    const rowOf = (verdicts: Uint32Array) => this.row(uids, gids, ports, (ui, gi, pi, k) => verdicts[cellIndex(ui, gi, pi, k)]!);
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
    const state = new Map<number, { row: number; overrides: Map<number, Uint8Array> }>();
    const entries: [number, number][] = [];
    for (const d of named) {
      let up = dst.parent[d]!;
      while (up !== 0 && !naming.has(up)) up = dst.parent[up]!;
      const enclosing = up === 0 ? undefined : state.get(up)!;
      const overrides = new Map(enclosing?.overrides);
      const destination = dst.classCidrs[d]!;
      for (const i of naming.get(d)!) overrides.set(i, evaluate(rules[i]!, destination));
      const positions = [...overrides.keys()].sort((a, b) => a - b);
      const here = positions.map((i) => overrides.get(i)!);
      const verdicts = new Uint32Array(defaultVerdicts);
      for (let cell = 0; cell < cellCount; cell++) {
        let changed = false;
        for (let j = 0; j < positions.length && !changed; j++) changed = here[j]![cell] !== atDefault[positions[j]!]![cell];
        if (!changed) continue;
        // The default matches without the overridden rules, merged with the overridden rules that match here.
        matched.length = 0;
        let j = 0;
        for (const i of defaultMatched[cell]!) {
          while (j < positions.length && positions[j]! < i) {
            if (here[j]![cell]) matched.push(rules[positions[j]!]!);
            j++;
          }
          if (j < positions.length && positions[j] === i) continue;
          matched.push(rules[i]!);
        }
        for (; j < positions.length; j++) if (here[j]![cell]) matched.push(rules[positions[j]!]!);
        verdicts[cell] = this.decide(matched, cls.unidentified);
      }
      const row = rowOf(verdicts);
      for (const [i, bits] of overrides) if (bits.every((b, cell) => b === atDefault[i]![cell])) overrides.delete(i);
      state.set(d, { row, overrides });
      if (row !== (enclosing?.row ?? defaultRow)) entries.push([d, row]);
    }
    return { defaultRow, entries };
  }
}
