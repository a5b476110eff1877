// Owns building the decision tables (docs/bundle-format.md) from a normalised policy:
// the identity DFA and classes, destination classes, the (identity class, destination
// class) → row map, rows over uid/gid/protocol/port, verdicts and reason sets, and their
// encoding as 32-bit words. The tables engine, the WASM evaluator and the kernel lowering
// read exactly these words.
//
// INVARIANT: deterministic. Every map is filled and emitted in a fixed order, so the same
// policy gives the same words.
import type { Cidr, PolicySet } from "./model.js";
import { normalisePolicy, type NormalPolicy, type NormalRule } from "./normalise.js";
import { axisStarts, groupClasses, LoweringError, ruleStarts, TableBuilder, type IdentityClass } from "./rows.js";

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
export { VERDICT_ALLOW, VERDICT_DEFAULT, LoweringError, MAX_GRID_CELLS, MAX_GRID_WORDS } from "./rows.js";

/** Limits past which a policy is refused rather than lowered (PC3002). */
export const MAX_DFA_STATES = 100_000;

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
 * How an identity finds its classes (docs/bundle-format.md, step 1). A class is a set of
 * rules evaluated with a fixed set of identity atoms true; an identity has several classes,
 * and its matching rules are the union of theirs (step 6). That union is exact when every
 * class evaluates its rules with atoms the identity really matches and each rule is
 * *sound* there (true there ⇒ true for the identity) and some class is *complete* for it.
 *
 * - A peer (no exact ID of the policy; every exact atom false) has the classes of the
 *   empty term, of every term (normalise.ts) all of whose patterns it matches, and of the
 *   final state of each component's DFA. A monotone rule is in the class of each of its
 *   terms; a non-monotone rule only in its component's classes, which know all its atoms.
 * - An exact ID X has: its own classes, holding the rules that read X's atom (evaluated
 *   with every atom X matches); the empty term's classes; the classes of the terms made of
 *   patterns X matches; one part holding the non-monotone rules at X's patterns; and one
 *   part of the rules that read some exact ID under a negation, at X's patterns, less
 *   those that negate X. A rule that does not read X is evaluated there exactly as for X;
 *   one that reads X only positively is sound anywhere (X false can only make it false)
 *   and complete in X's own classes. The empty term's and the terms' parts keep the
 *   negating rules in a class of their own, so that exact IDs share the rest and leave
 *   them out (their own negating part holds those that apply).
 * - `unidentified` has the classes of the rules of any principal.
 *
 * Each part is split into up to three classes by the axes its rules read (neither uid nor
 * gid, uid only, gid) when that makes the rows smaller: a union over parts does not care how
 * rules are grouped, and the rows of a class are a grid over the intervals its own rules cut.
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
  readonly classes: readonly IdentityClass[];
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

  /** The classes of the list at word offset `at`. */
  classesAt(at: number): number[] {
    return this.words.slice(at + 1, at + 1 + this.words[at]!);
  }
}

/**
 * A part's rules grouped into classes: none without rules; else one group, or, when the
 * part's grid has more than four uid × gid cells, one per axis the rules read (`split` 3:
 * neither uid nor gid, uid only, gid; `split` 2: neither, either), since each group's rows
 * are a grid over its own intervals.
 */
function partGroups(rules: Iterable<NormalRule>, split: Split = 3): NormalRule[][] {
  const all = [...new Set(rules)];
  if (all.length === 0) return [];
  const groups: NormalRule[][] = [[], [], []];
  for (const r of all) groups[r.cuts.gid.size > 0 ? split - 1 : r.cuts.uid.size > 0 ? 1 : 0]!.push(r);
  const nonEmpty = groups.filter((g) => g.length > 0);
  if (split === 1 || nonEmpty.length === 1) return [all];
  const uids = axisStarts(all, "uid").length;
  const gids = axisStarts(all, "gid").length;
  return uids * gids <= 4 ? [all] : nonEmpty;
}

/** How far a part is split by the axes its rules read: 3 (neither, uid only, gid), 2 (neither, either), 1 (not). */
type Split = 1 | 2 | 3;

/** Some rules evaluated with these identity atoms true, and their groups at each split (memoised). */
class Part {
  private readonly bySplit: (NormalRule[][] | undefined)[] = [];
  private readonly classesBySplit: (number[] | undefined)[] = [];

  constructor(
    readonly rules: readonly NormalRule[],
    readonly atoms: ReadonlySet<number>,
  ) {}

  groups(split: Split): NormalRule[][] {
    return (this.bySplit[split] ??= partGroups(this.rules, split));
  }

  /** Its classes at a split, interned in `registry` on first use. */
  classes(split: Split, registry: ClassRegistry): number[] {
    return (this.classesBySplit[split] ??= registry.classesOf(this.groups(split), this.atoms, false));
  }
}

/**
 * How an exact ID's parts are split, the first that fits in one list. Rules that read uid or
 * gid make their class's rows a uid × gid grid, so those that read neither (most) are kept
 * apart first; the terms' parts are merged, and classes whose rules read uid or gid merged,
 * before a part's rules that read neither join those that do.
 */
const EXACT_LAYOUTS: readonly { own: Split; patterns: "separate" | "merged"; patternSplit: Split; empty: Split; negating: Split }[] = [
  { own: 3, patterns: "separate", patternSplit: 3, empty: 3, negating: 2 },
  { own: 2, patterns: "separate", patternSplit: 3, empty: 3, negating: 2 },
  { own: 2, patterns: "merged", patternSplit: 3, empty: 3, negating: 2 },
  { own: 2, patterns: "separate", patternSplit: 2, empty: 3, negating: 2 },
  { own: 2, patterns: "merged", patternSplit: 2, empty: 3, negating: 2 },
  { own: 2, patterns: "separate", patternSplit: 2, empty: 2, negating: 2 },
  // Four parts of at most two classes: always fits.
  { own: 2, patterns: "merged", patternSplit: 2, empty: 2, negating: 2 },
];

/** The classes of the tables, interned by their rules and the atoms those rules read. */
class ClassRegistry {
  readonly classes: IdentityClass[] = [];
  private readonly index = new Map<string, number>();

  constructor(private readonly lists: ClassLists) {}

  private classOf(rules: readonly NormalRule[], atoms: ReadonlySet<number>, unidentified: boolean): number {
    const sorted = [...rules].sort((a, b) => a.index - b.index);
    const read = new Set<number>();
    for (const r of sorted) for (const a of r.identityAtoms) if (atoms.has(a)) read.add(a);
    const seen = [...read].sort((a, b) => a - b);
    const key = `${unidentified ? "u" : "i"}|${sorted.map((r) => r.index).join(",")}|${seen.join(",")}`;
    let cls = this.index.get(key);
    if (cls === undefined) {
      cls = this.classes.length;
      this.classes.push({ atoms: new Set(seen), unidentified, rules: sorted });
      this.index.set(key, cls);
    }
    return cls;
  }

  /** A part's classes: none without rules; else one, or one per axis group when that shrinks the grid. */
  part(rules: Iterable<NormalRule>, atoms: ReadonlySet<number>, unidentified: boolean, split: Split = 3): number[] {
    return this.classesOf(partGroups(rules, split), atoms, unidentified);
  }

  /** The classes of these groups of rules, each evaluated with `atoms`. */
  classesOf(groups: readonly (readonly NormalRule[])[], atoms: ReadonlySet<number>, unidentified: boolean): number[] {
    return groups.map((g) => this.classOf(g, atoms, unidentified));
  }

  /**
   * A shared part for peers: the list of the classes of its rules that negate no exact ID
   * (`clean`, whose classes exact IDs share too) and of the class of those that do.
   */
  shared(clean: Part, negatingRules: readonly NormalRule[]): number {
    return this.list([...clean.classes(3, this), ...this.part(negatingRules, clean.atoms, false, 1)], false);
  }

  /** The list of these classes; a class without rules stands for an empty one. */
  list(classes: readonly number[], unidentified: boolean): number {
    const unique = [...new Set(classes)];
    return this.lists.of(unique.length > 0 ? unique : [this.classOf([], new Set(), unidentified)]);
  }
}

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
  const stateOf = (next: number[]): number => {
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
    return t;
  };
  for (let s = 0; s < states.length; s++) {
    // A `*` position stays on every byte; any other moves on its byte's class only. Classes
    // no position moves on all go where the `*` positions alone go.
    const stays: number[] = [];
    const moves = new Map<number, number[]>();
    for (const p of states[s]!) {
      const sym = sequences[Math.floor(p / SHIFT)]![p % SHIFT];
      if (sym === -1) stays.push(p);
      else if (sym !== undefined) {
        const c = byteClass[sym]!;
        const list = moves.get(c);
        if (list === undefined) moves.set(c, [p + 1]);
        else list.push(p + 1);
      }
    }
    let rest: number | undefined;
    for (let c = 0; c < inputClasses; c++) {
      const moved = moves.get(c);
      transitions.push(moved === undefined ? (rest ??= stateOf(stays)) : stateOf([...stays, ...moved]));
    }
  }
  const accepted = states.map((set) => set.filter((p) => sequences[Math.floor(p / SHIFT)]!.length === p % SHIFT).map((p) => atoms[Math.floor(p / SHIFT)]!));
  return { dfa: { byteClass, inputClasses, transitions: Uint32Array.from(transitions) }, accepted };
}

function buildIdentityClasses(policy: NormalPolicy, lists: ClassLists, dst: DestinationClasses): IdentityClasses {
  const encoder = new TextEncoder();
  const registry = new ClassRegistry(lists);
  const isPattern = (atom: number) => policy.identityAtoms[atom]!.pattern.pieces.length > 1;
  const none = new Set<number>();

  // `unidentified` first, so that its first class is class 0: the rules of any principal
  // that can match without an identity atom.
  const anyPrincipal = policy.rules.filter((r) => r.principalAtoms === undefined && !(r.identityAtoms.length > 0 && needsIdentityAtom(r, dst)));
  const unidentifiedList = registry.list(registry.part(anyPrincipal, none, true), true);

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
  const componentRules: NormalRule[][] = componentAtoms.map(() => []);
  for (const r of nonMonotone) componentRules[componentOfSet.get([...new Set(r.patterns)].sort((a, b) => a - b).join(","))!]!.push(r);
  /** Whether a rule reads an exact ID under a negation (it may then not be monotone in it). */
  const negating = (r: NormalRule) => r.negatedAtoms.some((a) => !isPattern(a));
  /** Whether a rule's principal scope admits an identity whose true atoms are `atoms`. */
  const admits = (r: NormalRule, atoms: ReadonlySet<number>) => r.principalAtoms === undefined || r.principalAtoms.some((a) => atoms.has(a));

  const components: Component[] = componentAtoms.map((atoms, c) => {
    const { dfa, accepted } = buildComponentDfa(atoms, policy);
    const byAccepted = new Map<string, number>();
    const stateList = Uint32Array.from(
      accepted.map((stateAtoms) => {
        const key = stateAtoms.join(",");
        let list = byAccepted.get(key);
        if (list === undefined) {
          const atomSet = new Set(stateAtoms);
          // Only peers reach a state's list (exact IDs have the non-monotone rules at their
          // patterns in a part of their own), so its negating rules need no class apart.
          list = registry.list(registry.part(componentRules[c]!.filter((r) => admits(r, atomSet)), atomSet, false), false);
          byAccepted.set(key, list);
        }
        return list;
      }),
    );
    return { ...dfa, stateList };
  });

  // Monotone rules by term; each term's classes hold the rules it is a term of.
  const byTerm = new Map<string, { term: readonly number[]; rules: NormalRule[] }>();
  for (const r of policy.rules) {
    for (const t of r.terms ?? []) {
      const key = t.join(",");
      const entry = byTerm.get(key);
      if (entry === undefined) byTerm.set(key, { term: t, rules: [r] });
      else entry.rules.push(r);
    }
  }
  // Every shared part keeps the rules that read an exact ID under a negation apart (`negating`):
  // an exact ID has them in one class of its own instead (see above).
  const emptyTermRules = byTerm.get("")?.rules ?? [];
  const emptyPart = new Part(emptyTermRules.filter((r) => !negating(r)), none);
  const emptyTermList = registry.shared(emptyPart, emptyTermRules.filter(negating));
  const terms = [...byTerm.values()].filter((t) => t.term.length > 0).sort((a, b) => a.term.length - b.term.length || a.term.join(",").localeCompare(b.term.join(",")));
  const termAtoms = [...new Set(terms.flatMap((t) => t.term))].sort((a, b) => a - b);
  const patternIndex = new Map(termAtoms.map((a, i) => [a, i]));
  const termPatterns = termAtoms.map((a) => policy.identityAtoms[a]!.pattern.pieces);
  const termsByFirst: { patterns: number[]; list: number }[][] = termAtoms.map(() => []);
  const termPart = new Map(terms.map((t) => [t, new Part(t.rules.filter((r) => !negating(r)), new Set(t.term))]));
  for (const t of terms) {
    const patterns = t.term.map((a) => patternIndex.get(a)!);
    termsByFirst[patterns[0]!]!.push({ patterns, list: registry.shared(termPart.get(t)!, t.rules.filter(negating)) });
  }

  // Exact IDs: their own classes (the rules that read them), the shared parts without the
  // negating rules, and one part of the negating rules that can apply to them, evaluated
  // with their patterns, without those that negate them (which their own classes hold).
  // Parts are split by axes as far as one list allows (`EXACT_LAYOUTS`).
  const byAtom = new Map<number, NormalRule[]>();
  for (const r of policy.rules) {
    for (const a of r.identityAtoms) {
      const list = byAtom.get(a);
      if (list === undefined) byAtom.set(a, [r]);
      else list.push(r);
    }
  }
  const patternAtoms = policy.identityAtoms.map((_a, i) => i).filter(isPattern);
  const patternBytes = patternAtoms.map((a) => policy.identityAtoms[a]!.pattern.pieces.map((p) => encoder.encode(p)));
  const allNonMonotone = componentRules.flat();
  // What the shared parts are at a set of patterns, computed once per set (many exact IDs
  // match the same patterns).
  const atSignature = new Map<string, { negating: Part; negated: Set<number>; separate: Part[]; merged: Part[] }>();
  const sharedAt = (signature: ReadonlySet<number>) => {
    const key = [...signature].sort((x, y) => x - y).join(",");
    let shared = atSignature.get(key);
    if (shared === undefined) {
      const matchedTerms = terms.filter((t) => t.term.every((p) => signature.has(p)));
      const nonMonotone = allNonMonotone.filter((r) => admits(r, signature));
      const negatingHere = [...emptyTermRules, ...matchedTerms.flatMap((t) => t.rules), ...nonMonotone].filter(negating);
      const cleanNonMonotone = new Part(nonMonotone.filter((r) => !negating(r)), signature);
      shared = {
        negating: new Part(negatingHere, signature),
        negated: new Set(negatingHere.flatMap((r) => r.negatedAtoms)),
        // The terms' parts and the non-monotone rules' apart (shared with peers and every
        // exact ID matching the term), or merged into one part at this signature.
        separate: [...matchedTerms.map((t) => termPart.get(t)!), cleanNonMonotone],
        merged: [new Part([...matchedTerms.flatMap((t) => termPart.get(t)!.rules), ...cleanNonMonotone.rules], signature)],
      };
      atSignature.set(key, shared);
    }
    return shared;
  };
  const exact = new Map<string, number>();
  policy.identityAtoms.forEach((a, atom) => {
    if (isPattern(atom)) return;
    const id = a.pattern.pieces[0]!;
    const utf8 = encoder.encode(id);
    const signature = new Set(patternAtoms.filter((_p, i) => globMatches(patternBytes[i]!, utf8)));
    const own = new Part(byAtom.get(atom) ?? [], new Set([atom, ...signature]));
    const shared = sharedAt(signature);
    const negatingPart = shared.negated.has(atom) ? new Part(shared.negating.rules.filter((r) => !r.negatedAtoms.includes(atom)), signature) : shared.negating;
    const layouts = EXACT_LAYOUTS.map((l) => [
      { parts: [own], split: l.own },
      { parts: [emptyPart], split: l.empty },
      { parts: shared[l.patterns], split: l.patternSplit },
      { parts: [negatingPart], split: l.negating },
    ]);
    const layout = layouts.find((l) => l.reduce((n, { parts, split }) => n + parts.reduce((m, p) => m + p.groups(split).length, 0), 0) <= MAX_LIST_CLASSES)!;
    const classes = layout.flatMap(({ parts, split }) => parts.flatMap((p) => p.classes(split, registry)));
    exact.set(id, registry.list(classes, false));
  });
  return { components, termPatterns, termsByFirst, emptyTermList, unidentifiedList, exact, classes: registry.classes };
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

/** The key of the CIDR of `c`'s first `prefix` bits: a number for IPv4 (no string per lookup), a string for IPv6. */
function maskedKey(c: Cidr, prefix: number): number | string {
  if (c.family === 4) {
    const address = ((c.bytes[0]! << 24) | (c.bytes[1]! << 16) | (c.bytes[2]! << 8) | c.bytes[3]!) >>> 0;
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return ((address & mask) >>> 0) * 64 + prefix;
  }
  const out = c.bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  return `${out.join(".")}/${prefix}`;
}

function buildDestinationClasses(cidrs: readonly Cidr[]): DestinationClasses {
  // Classes in CIDR order (family, address, prefix) so that ids do not depend on rule order.
  const order = cidrs.map((_c, i) => i).sort((a, b) => compareCidr(cidrs[a]!, cidrs[b]!));
  const cidrClass: number[] = new Array<number>(cidrs.length);
  order.forEach((atom, i) => (cidrClass[atom] = i + 1));
  const byKey = new Map<number | string, number>();
  cidrs.forEach((c, i) => byKey.set(maskedKey(c, c.prefix), i));
  const prefixes = new Map<number, Set<number>>();
  for (const c of cidrs) {
    const set = prefixes.get(c.family);
    if (set === undefined) prefixes.set(c.family, new Set([c.prefix]));
    else set.add(c.prefix);
  }
  const classCidrs: Set<number>[] = [new Set()];
  const inside: number[][] = cidrs.map(() => []);
  const parent: number[] = [0];
  for (const atom of order) {
    const c = cidrs[atom]!;
    const containing = new Set<number>();
    for (const p of prefixes.get(c.family)!) {
      if (p > c.prefix) continue;
      const a = byKey.get(maskedKey(c, p));
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

/** Past this many cells, `needsIdentityAtom` answers "no" (the rule then applies to every class: slower, still exact). */
const MAX_RESIDUAL_CELLS = 4096;

/**
 * Whether an any-principal rule that reads identity atoms can only match a principal that
 * matches one of them: false in every cell of its own grid (its destination classes, its
 * uid/gid/port cuts, both protocols) with no identity atom true. The rule's predicate
 * reads nothing else, so the answer is exact.
 */
function needsIdentityAtom(r: NormalRule, dst: DestinationClasses): boolean {
  const uids = ruleStarts(r, "uid");
  const gids = ruleStarts(r, "gid");
  const ports = ruleStarts(r, "port");
  const cells = uids.length * gids.length * ports.length * 2;
  if (cells > MAX_RESIDUAL_CELLS) return false;
  // The distinct sets of the rule's CIDRs that contain some destination (none: outside them
  // all), keyed by which of them they hold (a bit per CIDR while they fit in a small
  // integer, else their positions written out); past the cap the answer is "no" at once.
  const mentioned = r.mentionedCidrs;
  const none: number | string = mentioned.length <= 30 ? 0 : "";
  const keys = new Set<number | string>([none]);
  const destinations: ReadonlySet<number>[] = [new Set()];
  for (const c of mentioned) {
    for (const d of dst.inside[c]!) {
      const holds = dst.classCidrs[d]!;
      let key = none;
      for (let k = 0; k < mentioned.length; k++) if (holds.has(mentioned[k]!)) key = typeof key === "number" ? key | (1 << k) : `${key}${k},`;
      if (keys.has(key)) continue;
      keys.add(key);
      destinations.push(new Set(mentioned.filter((m) => holds.has(m))));
      if (destinations.length * cells > MAX_RESIDUAL_CELLS) return false;
    }
  }
  // One cell object, moved over the grid (predicates do not keep it).
  const cell = { identity: new Set<number>() as ReadonlySet<number>, unidentified: false, destination: destinations[0]!, uid: 0, gid: 0, port: 0, protocol: "tcp" as "tcp" | "udp" };
  for (const destination of destinations) {
    cell.destination = destination;
    for (const uid of uids) {
      cell.uid = uid;
      for (const gid of gids) {
        cell.gid = gid;
        for (const port of ports) {
          cell.port = port;
          for (const protocol of ["tcp", "udp"] as const) {
            cell.protocol = protocol;
            if (r.matches(cell)) return false;
          }
        }
      }
    }
  }
  return true;
}

/** Builds the decision tables of a checked policy set. Throws `LoweringError` past the limits. */
export interface BuildOptions {
  /** Which classes share a walk (`TableBuilder.groupRows`); tests pass others to check that any grouping gives the same decisions. */
  readonly group?: (classes: readonly IdentityClass[]) => number[][];
}

export function buildDecisionTables(policySet: PolicySet, options: BuildOptions = {}): DecisionTables {
  const policy = normalisePolicy(policySet);
  const dst = buildDestinationClasses(policy.cidrs);
  const lists = new ClassLists();
  const ids = buildIdentityClasses(policy, lists, dst);
  const builder = new TableBuilder(policy);
  /** (class, destination class, row) triples, flat. */
  const pairs: number[] = [];
  const defaultRow: number[] = [];
  for (const group of (options.group ?? groupClasses)(ids.classes)) {
    builder.groupRows(group.map((s) => ids.classes[s]!), dst).forEach(({ defaultRow: row, entries }, k) => {
      const s = group[k]!;
      defaultRow[s] = row;
      for (let e = 0; e < entries.length; e += 2) pairs.push(s, entries[e]!, entries[e + 1]!);
    });
  }

  const words = encode(policy, ids, dst, builder, pairs, defaultRow, lists);
  const workloadLists = new Map(policySet.workloads.map((w) => [w.name, ids.exact.get(w.id)!]));
  return {
    words,
    ruleIds: policy.rules.map((r) => r.id),
    workloadLists,
    listClasses: (at) => lists.classesAt(at),
    stats: {
      identityClasses: ids.classes.length,
      destinationClasses: dst.classCidrs.length,
      dfaStates: ids.components.reduce((n, c) => n + c.stateList.length, 0),
      pairs: pairs.length / 3,
      rows: builder.rowCount,
      verdicts: builder.verdicts.length,
      reasonSets: builder.reasonSetCount,
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
function encodeComponents(components: readonly Component[], sections: Map<number, ArrayLike<number>>): void {
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
function encodeTerms(termsByFirst: readonly (readonly { patterns: readonly number[]; list: number }[])[], sections: Map<number, ArrayLike<number>>): void {
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
function encodePatterns(patterns: readonly (readonly string[])[], sections: Map<number, ArrayLike<number>>): void {
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
function encodeExactIds(exact: ReadonlyMap<string, number>, sections: Map<number, ArrayLike<number>>): void {
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

function encode(policy: NormalPolicy, ids: IdentityClasses, dst: DestinationClasses, b: TableBuilder, pairs: readonly number[], defaultRow: number[], lists: ClassLists): Uint32Array {
  const sections = new Map<number, ArrayLike<number>>();
  sections.set(SECTION.META, [
    ids.classes.length,
    dst.classCidrs.length,
    b.rowCount,
    b.verdicts.length,
    b.reasonSetCount,
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
  while (capacity < (pairs.length / 3) * 2) capacity *= 2;
  // The capacity, then its slots (class, destination, row).
  const slots = new Uint32Array(1 + capacity * 3);
  slots[0] = capacity;
  for (let i = 0; i < capacity; i++) slots[1 + i * 3] = EMPTY_SLOT;
  for (let k = 0; k < pairs.length; k += 3) {
    const s = pairs[k]!;
    const d = pairs[k + 1]!;
    const row = pairs[k + 2]!;
    let i = pairHash(s, d, capacity);
    while (slots[1 + i * 3] !== EMPTY_SLOT) i = (i + 1) & (capacity - 1);
    slots[1 + i * 3] = s;
    slots[2 + i * 3] = d;
    slots[3 + i * 3] = row;
  }
  sections.set(SECTION.PAIRS, slots);
  sections.set(SECTION.DEFAULT_ROW, defaultRow);

  // The rows as the builder keeps them, one after another; block offsets inside a row were
  // relative to the row: made absolute.
  const rows = b.rowWords;
  const rowIndex = b.rowStarts;
  const rowData = rows.slice();
  for (const base of rowIndex) {
    const nUid = rows[base]!;
    for (let ui = 0; ui < nUid; ui++) {
      const gidBlock = rows[base + 1 + ui * 2 + 1]!;
      rowData[base + 1 + ui * 2 + 1] = base + gidBlock;
      const nGid = rows[base + gidBlock]!;
      for (let gi = 0; gi < nGid; gi++) {
        const protoBlock = rows[base + gidBlock + 1 + gi * 2 + 1]!;
        rowData[base + gidBlock + 1 + gi * 2 + 1] = base + protoBlock;
        rowData[base + protoBlock] = base + rows[base + protoBlock]!;
        rowData[base + protoBlock + 1] = base + rows[base + protoBlock + 1]!;
      }
    }
  }
  sections.set(SECTION.ROW_INDEX, rowIndex);
  sections.set(SECTION.ROW_DATA, rowData);
  sections.set(SECTION.VERDICTS, b.verdicts.flatMap((v) => [v.flags, v.reasonSet]));
  const { index: reasonIndex, data: reasonData } = b.reasonSetSections();
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
