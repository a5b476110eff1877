// Owns building the decision tables (docs/bundle-format.md) from a normalised policy:
// the identity DFA and classes, destination classes, the (identity class, destination
// class) → row map, rows over uid/gid/protocol/port, verdicts and reason sets, and their
// encoding as 32-bit words. The tables engine, the WASM evaluator and the kernel lowering
// read exactly these words.
//
// INVARIANT: deterministic. Every map is filled and emitted in a fixed order, so the same
// policy gives the same words.
import type { Cidr, PolicySet, Protocol } from "./model.js";
import { normalisePolicy, type Cell, type NormalPolicy, type NormalRule } from "./normalise.js";

export const SECTION = {
  META: 1,
  COMPONENTS: 2,
  DFA_DATA: 3,
  TERM_INDEX: 4,
  DST_V4: 5,
  DST_V6: 6,
  PAIRS: 7,
  DEFAULT_ROW: 8,
  ROW_INDEX: 9,
  ROW_DATA: 10,
  VERDICTS: 11,
  REASON_INDEX: 12,
  REASON_DATA: 13,
  EXACT_IDS: 14,
  EXACT_BYTES: 15,
  PATTERN_INDEX: 16,
  PATTERN_DATA: 17,
  PATTERN_BYTES: 18,
  TERM_DATA: 19,
  CLASS_LISTS: 20,
  DST_PARENT: 21,
} as const;

/** At most this many classes in one class list (the kernel loops over a process's list). */
export const MAX_LIST_CLASSES = 8;

export const EMPTY_SLOT = 0xffffffff;
export const VERDICT_ALLOW = 1;
export const VERDICT_DEFAULT = 2;

/** Limits past which a policy is refused rather than lowered (PC3002). */
export const MAX_DFA_STATES = 100_000;

export class LoweringError extends Error {}

export interface TableStats {
  readonly identityClasses: number;
  readonly destinationClasses: number;
  readonly dfaStates: number;
  readonly pairs: number;
  readonly rows: number;
  readonly verdicts: number;
  readonly reasonSets: number;
  readonly words: number;
}

export interface DecisionTables {
  /** The encoded tables (what the bundle stores). */
  readonly words: Uint32Array;
  readonly ruleIds: readonly string[];
  readonly stats: TableStats;
  /** Each declared workload's class list (a word offset in CLASS_LISTS), by workload name. */
  readonly workloadLists: ReadonlyMap<string, number>;
  /** The classes of a class list, by its word offset. */
  listClasses(at: number): readonly number[];
}

// ---------------------------------------------------------------- identities

/**
 * How an identity string finds its identity classes (docs/bundle-format.md, step 1):
 * - an exact ID of the policy (every workload's, every `principal == "…"`) has one class,
 *   whose rows hold every rule, evaluated with exactly the atoms it matches;
 * - any other ID has one class per *part*, and its verdict is the union of theirs
 *   (forbids first). The parts are: the empty term; every term (normalise.ts) all of whose
 *   patterns it matches; and, per component of the patterns that non-monotone rules use,
 *   the final state of that component's DFA. A monotone rule may be evaluated in any part
 *   (a part holds only atoms the ID matches, and some part holds a whole term of the rule);
 *   a non-monotone rule only in its own component's part, which knows all its atoms.
 */
interface Component {
  readonly byteClass: Uint32Array;
  readonly inputClasses: number;
  /** states × inputClasses; state 0 is the start. */
  readonly transitions: Uint32Array;
  /** DFA state → its class list (a word offset in CLASS_LISTS). */
  readonly stateList: Uint32Array;
}

interface IdentityClasses {
  readonly components: readonly Component[];
  /** The patterns that terms use (pieces), tested one by one. */
  readonly termPatterns: readonly (readonly string[])[];
  /** Terms as (indices into termPatterns, class), grouped by their first pattern. */
  readonly termsByFirst: readonly (readonly { patterns: readonly number[]; list: number }[])[];
  readonly emptyTermList: number;
  readonly unidentifiedList: number;
  /** Exact IDs of the policy → their class list. */
  readonly exact: ReadonlyMap<string, number>;
  /** Class → the atoms it matches (class 0, unidentified, matches none). */
  readonly classAtoms: readonly ReadonlySet<number>[];
  /** Class → the component whose non-monotone rules its rows hold: ALL_RULES, NO_COMPONENT or an index. */
  readonly classComponent: readonly number[];
  /** Rule index → its component (non-monotone rules), or NO_COMPONENT. */
  readonly ruleComponent: readonly number[];
}

/** Class lists (CLASS_LISTS): each list `count, class…`, interned, named by its word offset. */
export class ClassLists {
  readonly words: number[] = [];
  private readonly index = new Map<string, number>();

  of(classes: readonly number[]): number {
    if (classes.length === 0 || classes.length > MAX_LIST_CLASSES) throw new Error(`a class list of ${classes.length} classes`);
    const key = classes.join(",");
    let at = this.index.get(key);
    if (at === undefined) {
      at = this.words.length;
      this.words.push(classes.length, ...classes);
      this.index.set(key, at);
    }
    return at;
  }
}

export const ALL_RULES = -2;
export const NO_COMPONENT = -1;

/** FNV-1a over UTF-8 bytes: the hash of the exact-ID table. */
export function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h >>> 0;
}

/** Cedar `like` over bytes: the first piece a prefix, the last a suffix, the middle in order. */
export function globMatches(pieces: readonly Uint8Array[], id: Uint8Array): boolean {
  const indexOf = (needle: Uint8Array, from: number, limit: number): number => {
    outer: for (let i = from; i + needle.length <= limit; i++) {
      for (let k = 0; k < needle.length; k++) if (id[i + k] !== needle[k]) continue outer;
      return i;
    }
    return -1;
  };
  const first = pieces[0]!;
  if (pieces.length === 1) return first.length === id.length && indexOf(first, 0, id.length) === 0;
  const last = pieces[pieces.length - 1]!;
  if (id.length < first.length + last.length || indexOf(first, 0, first.length) !== 0 || indexOf(last, id.length - last.length, id.length) < 0) return false;
  let at = first.length;
  const limit = id.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const found = indexOf(pieces[i]!, at, limit);
    if (found < 0) return false;
    at = found + pieces[i]!.length;
  }
  return true;
}

/**
 * Subset construction over the glob automata of one component's patterns. An NFA state
 * is (pattern, position in its byte sequence), encoded pattern * 2^20 + position; `*` is
 * byte -1. Returns the DFA and, per state, the atoms it accepts.
 */
function buildComponentDfa(atoms: readonly number[], policy: NormalPolicy): { dfa: Omit<Component, "stateList">; accepted: number[][] } {
  const encoder = new TextEncoder();
  const sequences = atoms.map((atom) => {
    const seq: number[] = [];
    policy.identityAtoms[atom]!.pattern.pieces.forEach((piece, i) => {
      if (i > 0) seq.push(-1);
      seq.push(...encoder.encode(piece));
    });
    return seq;
  });
  const byteClass = new Uint32Array(256);
  const used = [...new Set(sequences.flat().filter((b) => b >= 0))].sort((a, b) => a - b);
  used.forEach((b, i) => (byteClass[b] = i + 1));
  const inputClasses = used.length + 1;
  const representative = [-1, ...used];
  const SHIFT = 2 ** 20;
  const closure = (positions: number[]): number[] => {
    const out = new Set<number>();
    const stack = [...positions];
    while (stack.length > 0) {
      const p = stack.pop()!;
      if (out.has(p)) continue;
      out.add(p);
      if (sequences[Math.floor(p / SHIFT)]![p % SHIFT] === -1) stack.push(p + 1);
    }
    return [...out].sort((a, b) => a - b);
  };
  const start = closure(sequences.map((_s, i) => i * SHIFT));
  const states: number[][] = [start];
  const index = new Map<string, number>([[start.join(","), 0]]);
  const transitions: number[] = [];
  for (let s = 0; s < states.length; s++) {
    for (let c = 0; c < inputClasses; c++) {
      const byte = representative[c]!;
      const next: number[] = [];
      for (const p of states[s]!) {
        const sym = sequences[Math.floor(p / SHIFT)]![p % SHIFT];
        if (sym === -1) next.push(p);
        else if (sym !== undefined && sym === byte) next.push(p + 1);
      }
      const target = closure(next);
      const key = target.join(",");
      let t = index.get(key);
      if (t === undefined) {
        t = states.length;
        if (t >= MAX_DFA_STATES) {
          const shown = atoms.slice(0, 3).map((a) => `\`${policy.identityAtoms[a]!.pattern.text}\``);
          throw new LoweringError(`${atoms.length} identity patterns used under a negation (${shown.join(", ")}, …) need more than ${MAX_DFA_STATES} automaton states`);
        }
        states.push(target);
        index.set(key, t);
      }
      transitions.push(t);
    }
  }
  const accepted = states.map((set) => set.filter((p) => sequences[Math.floor(p / SHIFT)]!.length === p % SHIFT).map((p) => atoms[Math.floor(p / SHIFT)]!));
  return { dfa: { byteClass, inputClasses, transitions: Uint32Array.from(transitions) }, accepted };
}

function buildIdentityClasses(policy: NormalPolicy, lists: ClassLists): IdentityClasses {
  const encoder = new TextEncoder();
  const isPattern = (atom: number) => policy.identityAtoms[atom]!.pattern.pieces.length > 1;

  // Components: each non-monotone rule needs one part that knows every pattern it reads,
  // so rules are grouped by their pattern sets (a set inside a larger one joins that one's
  // component). Rules that share some patterns need not share a component: a pattern may
  // be in several, and keeping components small keeps their DFAs small.
  const nonMonotone = policy.rules.filter((r) => r.terms === undefined && r.patterns.length > 0);
  const patternSets = [...new Map(nonMonotone.map((r) => {
    const set = [...new Set(r.patterns)].sort((a, b) => a - b);
    return [set.join(","), set] as const;
  })).values()].sort((a, b) => b.length - a.length || a.join(",").localeCompare(b.join(",")));
  const componentAtoms: number[][] = [];
  const componentOfSet = new Map<string, number>();
  for (const set of patternSets) {
    let c = componentAtoms.findIndex((atoms) => set.every((a) => atoms.includes(a)));
    if (c < 0) c = componentAtoms.push(set) - 1;
    componentOfSet.set(set.join(","), c);
  }
  const ruleComponent = policy.rules.map((r) =>
    r.terms === undefined && r.patterns.length > 0 ? componentOfSet.get([...new Set(r.patterns)].sort((a, b) => a - b).join(","))! : NO_COMPONENT,
  );

  const classAtoms: Set<number>[] = [new Set()];
  const classComponent: number[] = [ALL_RULES];
  const newClass = (atoms: Iterable<number>, component: number): number => {
    classAtoms.push(new Set(atoms));
    classComponent.push(component);
    return classAtoms.length - 1;
  };

  const built = componentAtoms.map((atoms) => buildComponentDfa(atoms, policy));
  const components: Component[] = built.map(({ dfa, accepted }, c) => {
    const byAccepted = new Map<string, number>();
    const stateList = Uint32Array.from(
      accepted.map((atoms) => {
        const key = atoms.join(",");
        let cls = byAccepted.get(key);
        if (cls === undefined) {
          cls = newClass(atoms, c);
          byAccepted.set(key, cls);
        }
        return lists.of([cls]);
      }),
    );
    return { ...dfa, stateList };
  });

  // Terms of the monotone rules, each a class; their patterns are tested one by one.
  const termKeys = new Map<string, readonly number[]>();
  for (const r of policy.rules) for (const t of r.terms ?? []) if (t.length > 0) termKeys.set(t.join(","), t);
  const terms = [...termKeys.values()].sort((a, b) => a.length - b.length || a.join(",").localeCompare(b.join(",")));
  const termAtoms = [...new Set(terms.flat())].sort((a, b) => a - b);
  const patternIndex = new Map(termAtoms.map((a, i) => [a, i]));
  const termPatterns = termAtoms.map((a) => policy.identityAtoms[a]!.pattern.pieces);
  const emptyTermList = lists.of([newClass([], NO_COMPONENT)]);
  const termsByFirst: { patterns: number[]; list: number }[][] = termAtoms.map(() => []);
  for (const t of terms) {
    const patterns = t.map((a) => patternIndex.get(a)!);
    termsByFirst[patterns[0]!]!.push({ patterns, list: lists.of([newClass(t, NO_COMPONENT)]) });
  }

  // An exact ID's class holds every pattern it matches: its rows evaluate every rule directly.
  const patternAtoms = policy.identityAtoms.map((_a, i) => i).filter(isPattern);
  const patternBytes = patternAtoms.map((a) => policy.identityAtoms[a]!.pattern.pieces.map((p) => encoder.encode(p)));
  const exact = new Map<string, number>();
  policy.identityAtoms.forEach((a, atom) => {
    if (isPattern(atom)) return;
    const id = a.pattern.pieces[0]!;
    const utf8 = encoder.encode(id);
    exact.set(id, lists.of([newClass([atom, ...patternAtoms.filter((_p, i) => globMatches(patternBytes[i]!, utf8))], ALL_RULES)]));
  });
  const unidentifiedList = lists.of([0]);
  return { components, termPatterns, termsByFirst, emptyTermList, unidentifiedList, exact, classAtoms, classComponent, ruleComponent };
}

// ---------------------------------------------------------------- destinations

interface DestinationClasses {
  /** Class → the CIDR atoms containing its addresses (class 0, no CIDR, contains none). */
  readonly classCidrs: readonly ReadonlySet<number>[];
  /** CIDR atom → its class (the class of the addresses whose longest match it is). */
  readonly cidrClass: readonly number[];
  /** CIDR atom → the classes inside it (itself and every more specific CIDR's class). */
  readonly inside: readonly (readonly number[])[];
  /** Class → the class of the longest CIDR strictly containing its CIDR (0: none); always smaller. */
  readonly parent: readonly number[];
}

function compareCidr(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i]! - b.bytes[i]!;
  return a.prefix - b.prefix;
}

function masked(c: Cidr, prefix: number): string {
  const out = c.bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  return `${c.family}/${out.join(".")}/${prefix}`;
}

function buildDestinationClasses(cidrs: readonly Cidr[]): DestinationClasses {
  // Classes in CIDR order (family, address, prefix) so that ids do not depend on rule order.
  const order = cidrs.map((_c, i) => i).sort((a, b) => compareCidr(cidrs[a]!, cidrs[b]!));
  const cidrClass: number[] = new Array<number>(cidrs.length);
  order.forEach((atom, i) => (cidrClass[atom] = i + 1));
  const byKey = new Map<string, number>();
  cidrs.forEach((c, i) => byKey.set(masked(c, c.prefix), i));
  const prefixes = new Map<number, number[]>();
  for (const c of cidrs) prefixes.set(c.family, [...new Set([...(prefixes.get(c.family) ?? []), c.prefix])]);
  const classCidrs: Set<number>[] = [new Set()];
  const inside: number[][] = cidrs.map(() => []);
  const parent: number[] = [0];
  for (const atom of order) {
    const c = cidrs[atom]!;
    const containing = new Set<number>();
    for (const p of prefixes.get(c.family)!) {
      if (p > c.prefix) continue;
      const a = byKey.get(masked(c, p));
      if (a !== undefined) containing.add(a);
    }
    classCidrs.push(containing);
    for (const a of containing) inside[a]!.push(cidrClass[atom]!);
    let longest = -1;
    for (const a of containing) if (a !== atom && (longest < 0 || cidrs[a]!.prefix > cidrs[longest]!.prefix)) longest = a;
    parent.push(longest < 0 ? 0 : cidrClass[longest]!);
  }
  return { classCidrs, cidrClass, inside, parent };
}

// ---------------------------------------------------------------- rows

/** Merges two increasing lists of rule indices. */
function mergeSorted(a: readonly number[], b: readonly number[]): readonly number[] {
  if (b.length === 0) return a;
  if (a.length === 0) return b;
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) out.push(j >= b.length || (i < a.length && a[i]! < b[j]!) ? a[i++]! : b[j++]!);
  return out;
}

/** Sorted interval starts covering [0, max]: 0 plus every cut within range. */
function intervalStarts(cuts: Iterable<number>, max: number): number[] {
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

interface Verdict {
  readonly flags: number;
  readonly reasons: readonly number[];
}

class TableBuilder {
  readonly verdictIndex = new Map<string, number>();
  readonly verdicts: { flags: number; reasonSet: number }[] = [];
  readonly reasonIndex = new Map<string, number>();
  readonly reasonSets: number[][] = [];
  readonly rowIndex = new Map<string, number>();
  readonly rows: number[][] = [];
  /** Rule index → its rank in rule-id order (reasons are "sorted rule ids"). */
  private readonly rank: number[];

  constructor(private readonly policy: NormalPolicy) {
    // Reasons are sorted by rule id (spec: "sorted rule ids").
    const ids = policy.rules.map((r) => r.id);
    const order = ids.map((_id, i) => i).sort((a, b) => (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0));
    this.rank = new Array<number>(ids.length);
    order.forEach((ruleIndex, position) => (this.rank[ruleIndex] = position));
  }

  private verdict(v: Verdict): number {
    const reasonKey = v.reasons.join(",");
    let reasonSet = this.reasonIndex.get(reasonKey);
    if (reasonSet === undefined) {
      reasonSet = this.reasonSets.length;
      this.reasonSets.push([...v.reasons]);
      this.reasonIndex.set(reasonKey, reasonSet);
    }
    const key = `${v.flags}:${reasonSet}`;
    let index = this.verdictIndex.get(key);
    if (index === undefined) {
      index = this.verdicts.length;
      this.verdicts.push({ flags: v.flags, reasonSet });
      this.verdictIndex.set(key, index);
    }
    return index;
  }

  /**
   * Verdicts by the cell's outcome, a trie over the matched rule indices (one for forbids,
   * one for permits), so that sorting and interning happen once per outcome and a cell
   * costs one map step per matched rule.
   */
  private readonly forbidOutcomes = new OutcomeTrie();
  private readonly permitOutcomes = new OutcomeTrie();
  private defaultOutcomes: [number | undefined, number | undefined] = [undefined, undefined];

  /**
   * Resolves one cell: forbid > permit > default (spec §5), from the indices of its
   * matching forbids and permits, each in increasing order (as rows list rules).
   */
  private decide(forbids: readonly number[], permits: readonly number[], unidentified: boolean): number {
    const byId = (xs: readonly number[]) => [...xs].sort((a, b) => this.rank[a]! - this.rank[b]!);
    if (forbids.length > 0) return (this.forbidOutcomes.at(forbids).verdict ??= this.verdict({ flags: 0, reasons: byId(forbids) }));
    if (permits.length > 0) return (this.permitOutcomes.at(permits).verdict ??= this.verdict({ flags: VERDICT_ALLOW, reasons: byId(permits) }));
    const kind = unidentified ? 1 : 0;
    const allow = unidentified && this.policy.defaultUnidentified === "allow";
    return (this.defaultOutcomes[kind] ??= this.verdict({ flags: VERDICT_DEFAULT | (allow ? VERDICT_ALLOW : 0), reasons: [] }));
  }

  /**
   * The row of the rules that can apply to one (identity class, destination class) pair,
   * evaluated on the grid their own constants cut. Encoded as in docs/bundle-format.md,
   * with block offsets relative to the row's start (made absolute when rows are joined).
   */
  row(rules: readonly NormalRule[], identity: ReadonlySet<number>, unidentified: boolean, destination: ReadonlySet<number>): number {
    const uids = intervalStarts(rules.flatMap((r) => [...r.cuts.uid]), 0xffffffff);
    const gids = intervalStarts(rules.flatMap((r) => [...r.cuts.gid]), 0xffffffff);
    const ports = intervalStarts(rules.flatMap((r) => [...r.cuts.port]), 65535);
    // Rules that cut neither the uid nor the gid axis never read them: they are evaluated
    // once per (protocol, port), not once per uid × gid cell.
    const deep = rules.filter((r) => r.cuts.uid.size > 0 || r.cuts.gid.size > 0);
    const flat = rules.filter((r) => r.cuts.uid.size === 0 && r.cuts.gid.size === 0);
    const flatMatches = (["tcp", "udp"] as Protocol[]).map((protocol) =>
      ports.map((port) => {
        const cell: Cell = { identity, unidentified, destination, uid: 0, gid: 0, port, protocol };
        const matching = flat.filter((r) => r.matches(cell));
        const forbids = matching.filter((r) => r.effect === "forbid").map((r) => r.index);
        const permits = matching.filter((r) => r.effect === "permit").map((r) => r.index);
        // `verdict`: the cell's verdict when no uid/gid-dependent rule matches, computed on first use.
        return { forbids, permits, verdict: undefined as number | undefined };
      }),
    );
    const words: number[] = [uids.length];
    const uidSlots = words.length;
    for (const uid of uids) words.push(uid, 0);
    uids.forEach((uid, ui) => {
      words[uidSlots + ui * 2 + 1] = words.length;
      words.push(gids.length);
      const gidSlots = words.length;
      for (const gid of gids) words.push(gid, 0);
      gids.forEach((gid, gi) => {
        words[gidSlots + gi * 2 + 1] = words.length;
        const protoSlots = words.length;
        words.push(0, 0);
        (["tcp", "udp"] as Protocol[]).forEach((protocol, pi) => {
          words[protoSlots + pi] = words.length;
          const list: number[] = [];
          let previous = -1;
          ports.forEach((port, k) => {
            const cell: Cell = { identity, unidentified, destination, uid, gid, port, protocol };
            const flatHere = flatMatches[pi]![k]!;
            const deepMatches = deep.filter((r) => r.matches(cell));
            let v: number;
            if (deepMatches.length === 0) v = flatHere.verdict ??= this.decide(flatHere.forbids, flatHere.permits, unidentified);
            else {
              const forbids = mergeSorted(flatHere.forbids, deepMatches.filter((r) => r.effect === "forbid").map((r) => r.index));
              const permits = forbids.length > 0 ? [] : mergeSorted(flatHere.permits, deepMatches.filter((r) => r.effect === "permit").map((r) => r.index));
              v = this.decide(forbids, permits, unidentified);
            }
            if (v !== previous) list.push(port, v);
            previous = v;
          });
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
}

/** Past this many cells, `needsIdentityAtom` answers "no" (the rule then applies to every class: slower, still exact). */
const MAX_RESIDUAL_CELLS = 4096;

/**
 * Whether an any-principal rule that reads identity atoms can only match a principal that
 * matches one of them: false in every cell of its own grid (its destination classes, its
 * uid/gid/port cuts, both protocols) with no identity atom true. The rule's predicate
 * reads nothing else, so the answer is exact.
 */
function needsIdentityAtom(r: NormalRule, dst: DestinationClasses): boolean {
  const destinations = new Map<string, ReadonlySet<number>>([["", new Set()]]);
  for (const c of r.mentionedCidrs) {
    for (const d of dst.inside[c]!) {
      const seen = r.mentionedCidrs.filter((m) => dst.classCidrs[d]!.has(m));
      destinations.set(seen.join(","), new Set(seen));
    }
  }
  const uids = intervalStarts(r.cuts.uid, 0xffffffff);
  const gids = intervalStarts(r.cuts.gid, 0xffffffff);
  const ports = intervalStarts(r.cuts.port, 65535);
  if (destinations.size * uids.length * gids.length * ports.length * 2 > MAX_RESIDUAL_CELLS) return false;
  const identity = new Set<number>();
  for (const destination of destinations.values()) {
    for (const uid of uids) {
      for (const gid of gids) {
        for (const port of ports) {
          for (const protocol of ["tcp", "udp"] as const) {
            if (r.matches({ identity, unidentified: false, destination, uid, gid, port, protocol })) return false;
          }
        }
      }
    }
  }
  return true;
}

/** Builds the decision tables of a checked policy set. Throws `LoweringError` past the limits. */
export function buildDecisionTables(policySet: PolicySet): DecisionTables {
  const policy = normalisePolicy(policySet);
  const lists = new ClassLists();
  const ids = buildIdentityClasses(policy, lists);
  const dst = buildDestinationClasses(policy.cidrs);
  const builder = new TableBuilder(policy);

  // Which rules a class's rows hold. A rule with a principal scope applies to the classes
  // of its scope's atoms; an any-principal rule that cannot match without one of its
  // identity atoms, to the classes of those atoms; any other rule, to every class.
  const byAtom = new Map<number, NormalRule[]>();
  const addByAtoms = (r: NormalRule, atoms: readonly number[]) => {
    for (const a of atoms) {
      const list = byAtom.get(a);
      if (list === undefined) byAtom.set(a, [r]);
      else list.push(r);
    }
  };
  const anyPrincipal: NormalRule[] = [];
  for (const r of policy.rules) {
    if (r.principalAtoms !== undefined) addByAtoms(r, r.principalAtoms);
    else if (r.identityAtoms.length > 0 && needsIdentityAtom(r, dst)) addByAtoms(r, r.identityAtoms);
    else anyPrincipal.push(r);
  }

  // A row depends only on the rules that apply, which of their CIDRs hold the destination,
  // which of their identity atoms the class matches, and whether it is unidentified:
  // pairs (of any class) that agree on these share one evaluation. A pair's rules are its
  // class's resource-any rules (`base`, the same for all its pairs, interned once per
  // class) and the rules whose resource CIDRs hold the destination (`extra`, few).
  const rowMemo = new Map<string, number>();
  const baseIds = new Map<string, number>();
  const sortedKey = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b).join(",");
  const pairs: [number, number, number][] = [];
  const defaultRow: number[] = [];
  const emptyDestination = new Set<number>();
  ids.classAtoms.forEach((atoms, cls) => {
    const unidentified = cls === 0;
    const applicable = new Set<NormalRule>(anyPrincipal);
    if (!unidentified) for (const a of atoms) for (const r of byAtom.get(a) ?? []) applicable.add(r);
    // A part's class holds only its own rules: a component's class its component's
    // non-monotone rules; a term's (or the empty term's) class the other rules, which are
    // monotone in patterns. Exact IDs and unidentified have one class holding every rule.
    const component = ids.classComponent[cls]!;
    const rules = [...applicable]
      .filter((r) => component === ALL_RULES || ids.ruleComponent[r.index] === component)
      .sort((a, b) => a.index - b.index);
    const base = rules.filter((r) => r.resourceCidrs === undefined);
    const baseMentioned = new Set(base.flatMap((r) => r.mentionedCidrs));
    const seenAtomsOf = (rs: readonly NormalRule[]) => sortedKey(new Set(rs.flatMap((r) => r.identityAtoms.filter((a) => atoms.has(a)))));
    const baseKey = `${unidentified ? "u" : "i"}|${base.map((r) => r.index).join(",")}|${seenAtomsOf(base)}`;
    let baseId = baseIds.get(baseKey);
    if (baseId === undefined) baseIds.set(baseKey, (baseId = baseIds.size));
    const memoRow = (extra: readonly NormalRule[], destination: ReadonlySet<number>): number => {
      const seenCidrs: number[] = [];
      for (const c of destination) if (baseMentioned.has(c) || extra.some((r) => r.mentionedCidrs.includes(c))) seenCidrs.push(c);
      const key = `${baseId}|${extra.map((r) => r.index).join(",")}|${seenAtomsOf(extra)}|${sortedKey(seenCidrs)}`;
      let row = rowMemo.get(key);
      if (row === undefined) {
        const here = [...base, ...extra].sort((a, b) => a.index - b.index);
        row = builder.row(here, atoms, unidentified, destination);
        rowMemo.set(key, row);
      }
      return row;
    };
    // Destinations no applicable rule names behave as "no CIDR": only resource-any rules can apply.
    defaultRow[cls] = memoRow([], emptyDestination);
    const byCidr = new Map<number, NormalRule[]>();
    for (const r of rules) for (const c of r.resourceCidrs ?? []) byCidr.set(c, [...(byCidr.get(c) ?? []), r]);
    const relevant = new Set<number>();
    for (const r of rules) for (const c of r.mentionedCidrs) for (const d of dst.inside[c]!) relevant.add(d);
    for (const d of [...relevant].sort((a, b) => a - b)) {
      const destination = dst.classCidrs[d]!;
      const extra = new Set<NormalRule>();
      for (const c of destination) for (const r of byCidr.get(c) ?? []) extra.add(r);
      pairs.push([cls, d, memoRow([...extra].sort((a, b) => a.index - b.index), destination)]);
    }
  });

  const words = encode(policy, ids, dst, builder, pairs, defaultRow, lists);
  const workloadLists = new Map(policySet.workloads.map((w) => [w.name, ids.exact.get(w.id)!]));
  return {
    words,
    ruleIds: policy.rules.map((r) => r.id),
    workloadLists,
    listClasses: (at) => lists.words.slice(at + 1, at + 1 + lists.words[at]!),
    stats: {
      identityClasses: ids.classAtoms.length,
      destinationClasses: dst.classCidrs.length,
      dfaStates: ids.components.reduce((n, c) => n + c.stateList.length, 0),
      pairs: pairs.length,
      rows: builder.rows.length,
      verdicts: builder.verdicts.length,
      reasonSets: builder.reasonSets.length,
      words: words.length,
    },
  };
}

// ---------------------------------------------------------------- encoding

/**
 * COMPONENTS: per component `(inputClasses, states, byteClassAt, transitionsAt,
 * stateListAt)`, word offsets into DFA_DATA, which holds each component's 256-word
 * byte-class map, its `states × inputClasses` transitions and its state → class map.
 */
function encodeComponents(components: readonly Component[], sections: Map<number, number[]>): void {
  const index: number[] = [];
  const data: number[] = [];
  for (const c of components) {
    const states = c.stateList.length;
    index.push(c.inputClasses, states, data.length, data.length + 256, data.length + 256 + states * c.inputClasses);
    for (const part of [c.byteClass, c.transitions, c.stateList]) for (const w of part) data.push(w);
  }
  sections.set(SECTION.COMPONENTS, index);
  sections.set(SECTION.DFA_DATA, data);
}

/**
 * Terms by their first pattern: TERM_INDEX holds, per pattern, a word offset into
 * TERM_DATA (plus a final offset); there, `size, pattern…, list` per term.
 */
function encodeTerms(termsByFirst: readonly (readonly { patterns: readonly number[]; list: number }[])[], sections: Map<number, number[]>): void {
  const index: number[] = [];
  const data: number[] = [];
  for (const group of termsByFirst) {
    index.push(data.length);
    for (const t of group) data.push(t.patterns.length, ...t.patterns, t.list);
  }
  index.push(data.length);
  sections.set(SECTION.TERM_INDEX, index);
  sections.set(SECTION.TERM_DATA, data);
}

/** Packs bytes 4 per word, little-endian. */
function packBytes(bytes: Uint8Array, into: number[]): void {
  for (let b = 0; b < bytes.length; b += 4) into.push((bytes[b]! | ((bytes[b + 1] ?? 0) << 8) | ((bytes[b + 2] ?? 0) << 16) | ((bytes[b + 3] ?? 0) << 24)) >>> 0);
}

/**
 * Term patterns: PATTERN_INDEX holds, per pattern, a word offset into PATTERN_DATA
 * (plus a final offset); PATTERN_DATA holds `nPieces, (byteOffset, byteLength)…` into
 * PATTERN_BYTES, where each piece starts on a word boundary.
 */
function encodePatterns(patterns: readonly (readonly string[])[], sections: Map<number, number[]>): void {
  const encoder = new TextEncoder();
  const index: number[] = [];
  const data: number[] = [];
  const bytes: number[] = [];
  for (const pieces of patterns) {
    index.push(data.length);
    data.push(pieces.length);
    for (const piece of pieces) {
      const utf8 = encoder.encode(piece);
      data.push(bytes.length * 4, utf8.length);
      packBytes(utf8, bytes);
    }
  }
  index.push(data.length);
  sections.set(SECTION.PATTERN_INDEX, index);
  sections.set(SECTION.PATTERN_DATA, data);
  sections.set(SECTION.PATTERN_BYTES, bytes);
}

/**
 * The exact-ID hash table: capacity (a power of two), then per slot (hash, byte offset,
 * byte length, class); an empty slot has length 0xffffffff. Bytes are packed 4 per word,
 * little-endian, in EXACT_BYTES; each ID starts on a word boundary.
 */
function encodeExactIds(exact: ReadonlyMap<string, number>, sections: Map<number, number[]>): void {
  const encoder = new TextEncoder();
  let capacity = 1;
  while (capacity < exact.size * 2) capacity *= 2;
  const slots = new Array<number>(capacity * 4).fill(0);
  for (let i = 0; i < capacity; i++) slots[i * 4 + 2] = EMPTY_SLOT;
  const bytes: number[] = [];
  for (const [id, cls] of [...exact.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const utf8 = encoder.encode(id);
    const hash = fnv1a(utf8);
    let i = hash & (capacity - 1);
    while (slots[i * 4 + 2] !== EMPTY_SLOT) i = (i + 1) & (capacity - 1);
    slots.splice(i * 4, 4, hash, bytes.length * 4, utf8.length, cls);
    packBytes(utf8, bytes);
  }
  sections.set(SECTION.EXACT_IDS, [capacity, ...slots]);
  sections.set(SECTION.EXACT_BYTES, bytes);
}

export function pairHash(s: number, d: number, capacity: number): number {
  return ((Math.imul(s, 0x9e3779b1) ^ Math.imul(d, 0x85ebca77)) >>> 0) & (capacity - 1);
}

function encode(policy: NormalPolicy, ids: IdentityClasses, dst: DestinationClasses, b: TableBuilder, pairs: [number, number, number][], defaultRow: number[], lists: ClassLists): Uint32Array {
  const sections = new Map<number, number[]>();
  sections.set(SECTION.META, [
    ids.classAtoms.length,
    dst.classCidrs.length,
    b.rows.length,
    b.verdicts.length,
    b.reasonSets.length,
    policy.rules.length,
    ids.components.length,
    ids.termPatterns.length,
    ids.emptyTermList,
    ids.unidentifiedList,
  ]);
  encodeComponents(ids.components, sections);
  encodePatterns(ids.termPatterns, sections);
  encodeTerms(ids.termsByFirst, sections);
  encodeExactIds(ids.exact, sections);
  sections.set(SECTION.CLASS_LISTS, lists.words);
  sections.set(SECTION.DST_PARENT, [...dst.parent]);

  const v4: number[][] = [];
  const v6: number[][] = [];
  policy.cidrs.forEach((c, atom) => {
    const cls = dst.cidrClass[atom]!;
    const addressWords: number[] = [];
    for (let i = 0; i < c.bytes.length; i += 4) addressWords.push(((c.bytes[i]! << 24) | (c.bytes[i + 1]! << 16) | (c.bytes[i + 2]! << 8) | c.bytes[i + 3]!) >>> 0);
    (c.family === 4 ? v4 : v6).push([...addressWords, c.prefix, cls]);
  });
  const byAddress = (x: number[], y: number[]) => {
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return 0;
  };
  sections.set(SECTION.DST_V4, v4.sort(byAddress).flat());
  sections.set(SECTION.DST_V6, v6.sort(byAddress).flat());

  let capacity = 1;
  while (capacity < pairs.length * 2) capacity *= 2;
  const slots = new Array<number>(capacity * 3).fill(0);
  for (let i = 0; i < capacity; i++) slots[i * 3] = EMPTY_SLOT;
  for (const [s, d, row] of pairs) {
    let i = pairHash(s, d, capacity);
    while (slots[i * 3] !== EMPTY_SLOT) i = (i + 1) & (capacity - 1);
    slots[i * 3] = s;
    slots[i * 3 + 1] = d;
    slots[i * 3 + 2] = row;
  }
  sections.set(SECTION.PAIRS, [capacity, ...slots]);
  sections.set(SECTION.DEFAULT_ROW, defaultRow);

  const rowIndex: number[] = [];
  const rowData: number[] = [];
  for (const row of b.rows) {
    const base = rowData.length;
    rowIndex.push(base);
    // Block offsets inside a row were relative to the row; make them absolute.
    const nUid = row[0]!;
    const absolute = [...row];
    for (let ui = 0; ui < nUid; ui++) {
      const gidBlock = row[1 + ui * 2 + 1]!;
      absolute[1 + ui * 2 + 1] = base + gidBlock;
      const nGid = row[gidBlock]!;
      for (let gi = 0; gi < nGid; gi++) {
        const protoBlock = row[gidBlock + 1 + gi * 2 + 1]!;
        absolute[gidBlock + 1 + gi * 2 + 1] = base + protoBlock;
        absolute[protoBlock] = base + row[protoBlock]!;
        absolute[protoBlock + 1] = base + row[protoBlock + 1]!;
      }
    }
    rowData.push(...absolute);
  }
  sections.set(SECTION.ROW_INDEX, rowIndex);
  sections.set(SECTION.ROW_DATA, rowData);
  sections.set(SECTION.VERDICTS, b.verdicts.flatMap((v) => [v.flags, v.reasonSet]));
  const reasonIndex: number[] = [];
  const reasonData: number[] = [];
  for (const set of b.reasonSets) {
    reasonIndex.push(reasonData.length);
    reasonData.push(...set);
  }
  reasonIndex.push(reasonData.length);
  sections.set(SECTION.REASON_INDEX, reasonIndex);
  sections.set(SECTION.REASON_DATA, reasonData);

  const ordered = [...sections.entries()].sort(([a], [b2]) => a - b2);
  const header = 1 + ordered.length * 3;
  let offset = header;
  const out: number[] = [ordered.length];
  for (const [id, data] of ordered) {
    out.push(id, offset, data.length);
    offset += data.length;
  }
  const words = new Uint32Array(offset);
  words.set(out, 0);
  let at = header;
  for (const [, data] of ordered) {
    words.set(data, at);
    at += data.length;
  }
  return words;
}
