// Owns rule normalisation: every rule of a checked policy set becomes a predicate over a
// table *cell* (identity atoms matched, CIDRs containing the destination, uid, gid,
// protocol, port), with its atoms interned into numbered lists: identity atoms (exact IDs
// and patterns), CIDRs, and the constants that cut the port/uid/gid axes. The decision
// tables are built from this form; it is deliberately independent of the reference
// interpreter, so that the differential tests compare two implementations.
//
// INVARIANT: only called on a policy set without errors (every name resolves, every
// expression is well typed, no attribute is compared with another: PC3001).
import type * as A from "../dsl/ast.js";
import type { Cidr, Endpoint, IdentityMember, PolicySet, PortRange, Protocol } from "./model.js";
import { endpointOf } from "./model.js";
import { checkedSpiffeId, normalisePattern, type IdentityPattern } from "./spiffe.js";
import { packedMap } from "./packed.js";

/** What a predicate sees: one point of the request space, with atoms pre-resolved. */
export interface Cell {
  /** Identity atoms the principal matches (empty for unidentified). */
  readonly identity: ReadonlySet<number>;
  readonly unidentified: boolean;
  /** CIDR atoms that contain the destination. */
  readonly destination: ReadonlySet<number>;
  readonly uid: number;
  readonly gid: number;
  readonly port: number;
  readonly protocol: Protocol;
}

export type Predicate = (cell: Cell) => boolean;

/** The values of one numeric axis at which a rule's truth may change. */
export interface Cuts {
  readonly port: Set<number>;
  readonly uid: Set<number>;
  readonly gid: Set<number>;
}

export interface NormalRule {
  readonly index: number;
  readonly id: string;
  readonly effect: "permit" | "forbid";
  /** Identity atoms of the principal scope; undefined = any principal (unidentified too). */
  readonly principalAtoms: readonly number[] | undefined;
  /** CIDR atoms of the resource scope; undefined = any destination. */
  readonly resourceCidrs: readonly number[] | undefined;
  /** Every CIDR atom the rule names (scope and conditions): where it can tell destinations apart. */
  readonly mentionedCidrs: readonly number[];
  /** Scope (beyond the atoms above) and conditions, on one cell. */
  readonly matches: Predicate;
  readonly cuts: Cuts;
  /**
   * For an identity that is no exact ID of the policy: the sets of pattern atoms that let
   * the rule match (each with its own pattern-free guard) (`[[]]`: no pattern needed; `[]`: it never matches such an
   * identity). Undefined when the rule uses a pattern under a negation (not monotone).
   */
  readonly terms: readonly Term[] | undefined;
  /** Every pattern atom the rule names. */
  readonly patterns: readonly number[];
  /** Every identity atom the rule names (scope and conditions): what it can tell identities apart by. */
  readonly identityAtoms: readonly number[];
  /**
   * Identity atoms the rule reads under a negation (`!`, `!=`, `unless`): those it may not
   * be monotone in. Every other atom it reads can only turn it from false to true.
   */
  readonly negatedAtoms: readonly number[];
}

/** A set of pattern atoms, sorted. */
export type Term = readonly number[];

/** Past this many terms a rule is handled as non-monotone (by a DFA). */
const MAX_TERMS = 64;

export interface IdentityAtom {
  readonly pattern: IdentityPattern;
}

export interface NormalPolicy {
  readonly rules: readonly NormalRule[];
  readonly identityAtoms: readonly IdentityAtom[];
  readonly cidrs: readonly Cidr[];
  readonly defaultUnidentified: "allow" | "deny";
}

const ALWAYS: Predicate = () => true;

/** The operator with its operands swapped (`80 < port` is `port > 80`). */
const FLIPPED: Readonly<Record<A.CompareOp, A.CompareOp>> = { "==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<=" };

/**
 * The distinct numbers of `list`, increasing, in a new array. Most lists a rule has are a
 * few atoms long: they are sorted by insertion, with no set and no sort (each of which
 * allocates); longer ones the usual way.
 */
function sortedUnique(list: readonly number[]): number[] {
  if (list.length > 16) return [...new Set(list)].sort((a, b) => a - b);
  const out: number[] = [];
  for (const x of list) {
    let i = out.length;
    while (i > 0 && out[i - 1]! > x) i--;
    if (i > 0 && out[i - 1] === x) continue;
    out.push(x);
    for (let j = out.length - 1; j > i; j--) out[j] = out[j - 1]!;
    out[i] = x;
  }
  return out;
}

function cidrKey(c: Cidr): string {
  return `${c.family}/${c.bytes.join(".")}/${c.prefix}`;
}

/** A constant set or value met while lowering an expression. */
type Const =
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "ints"; readonly ranges: readonly PortRange[] }
  | { readonly kind: "ip"; readonly cidr: Cidr }
  | { readonly kind: "cidrs"; readonly cidrs: readonly Cidr[] }
  | { readonly kind: "identity"; readonly members: readonly IdentityMember[] }
  | { readonly kind: "endpoints"; readonly endpoints: readonly { cidr: Cidr; port: number; protocol: Protocol }[] }
  | { readonly kind: "protocol"; readonly value: Protocol }
  | { readonly kind: "bool"; readonly value: boolean }
  | { readonly kind: "empty" };

/** `[]`: empty whichever kind of set the context expects. */
const EMPTY_SET: Const = { kind: "empty" };

type Attribute = "port" | "ip" | "protocol" | "principal" | "principal.uid" | "principal.gid";

class Normaliser {
  readonly identityAtoms: IdentityAtom[] = [];
  private readonly identityIndex = new Map<string, number>();
  readonly cidrs: Cidr[] = [];
  private readonly cidrIndex = new Map<string, number>();
  private cuts: Cuts = { port: new Set(), uid: new Set(), gid: new Set() };
  /** The CIDR atoms the rule being normalised names (repeats allowed). */
  private mentioned: number[] = [];

  constructor(private readonly policy: PolicySet) {}

  /** Atoms by member (the checked policy set shares a group's member objects between rules; a map, not a weak map: the normaliser lives as long as the policy set). */
  private readonly memberAtom = new Map<IdentityMember, number>();

  identityAtom(member: IdentityMember): number {
    const known = this.memberAtom.get(member);
    if (known !== undefined) return known;
    const pattern = member.kind === "exact" ? { text: member.id, pieces: [member.id] } : member.pattern;
    let key = "";
    for (const piece of pattern.pieces) key += `${piece.length}:${piece}`;
    let index = this.identityIndex.get(key);
    if (index === undefined) {
      index = this.identityAtoms.length;
      this.identityAtoms.push({ pattern });
      this.identityIndex.set(key, index);
    }
    this.memberAtom.set(member, index);
    return index;
  }

  /** Atoms by CIDR object (a net's CIDRs are shared by the rules naming it). */
  private readonly cidrObjectAtom = new Map<Cidr, number>();

  cidrAtom(c: Cidr): number {
    let index = this.cidrObjectAtom.get(c);
    if (index === undefined) {
      const key = cidrKey(c);
      index = this.cidrIndex.get(key);
      if (index === undefined) {
        index = this.cidrs.length;
        this.cidrs.push(c);
        this.cidrIndex.set(key, index);
      }
      this.cidrObjectAtom.set(c, index);
    }
    this.mentioned.push(index);
    return index;
  }

  rule(index: number, r: PolicySet["rules"][number]): NormalRule {
    this.cuts = { port: new Set(), uid: new Set(), gid: new Set() };
    this.mentioned = [];
    const { ast } = r;
    const checks: Predicate[] = [];

    let principalAtoms: number[] | undefined;
    if (ast.principal.value !== undefined) {
      const c = this.principalScope(ast.principal);
      principalAtoms = [...new Set(c.map((m) => this.identityAtom(m)))];
    }

    let resourceCidrs: number[] | undefined;
    if (ast.resource.value !== undefined) {
      const value = this.constant(ast.resource.value);
      if (value.kind === "endpoints") {
        const eps = packedMap(value.endpoints, (e) => ({ atom: this.cidrAtom(e.cidr), port: e.port, protocol: e.protocol }));
        for (const e of eps) this.cutPoint("port", e.port);
        resourceCidrs = [...new Set(eps.map((e) => e.atom))];
        checks.push((cell) => {
          // The port and protocol first: most cells fail them, and they cost no set lookup.
          for (const e of eps) if (cell.port === e.port && cell.protocol === e.protocol && cell.destination.has(e.atom)) return true;
          return false;
        });
      } else {
        resourceCidrs = [...new Set(cidrsOf(value).map((c) => this.cidrAtom(c)))];
      }
    }

    for (const condition of ast.conditions) {
      const p = this.bool(condition.expr);
      checks.push(condition.polarity === "when" ? p : (cell) => !p(cell));
    }
    const terms = this.ruleTerms(ast, principalAtoms);
    const named = [...(principalAtoms ?? []), ...ast.conditions.flatMap((c) => this.atomsIn(c.expr))];
    const matches: Predicate =
      checks.length === 0
        ? ALWAYS
        : (cell) => {
            for (const p of checks) if (!p(cell)) return false;
            return true;
          };
    return {
      index,
      id: r.id,
      effect: r.effect,
      principalAtoms,
      resourceCidrs,
      mentionedCidrs: sortedUnique(this.mentioned),
      matches,
      cuts: this.cuts,
      terms,
      patterns: sortedUnique(named.filter((a) => this.isPattern(a))),
      identityAtoms: sortedUnique(named),
      negatedAtoms: sortedUnique(ast.conditions.flatMap((c) => this.negatedAtomsIn(c.expr, c.polarity === "unless"))),
    };
  }

  /** The identity atoms an expression reads at negative polarity (`negated`: under an odd number of negations). */
  private negatedAtomsIn(e: A.Expr, negated: boolean): number[] {
    switch (e.kind) {
      case "paren":
        return this.negatedAtomsIn(e.inner, negated);
      case "not":
        return this.negatedAtomsIn(e.operand, !negated);
      case "logical":
        return [...this.negatedAtomsIn(e.left, negated), ...this.negatedAtomsIn(e.right, negated)];
      case "compare":
        return negated !== (e.op === "!=") ? this.atomsIn(e) : [];
      default:
        return negated ? this.atomsIn(e) : [];
    }
  }

  /** Whether identity atom `a` is a pattern (not an exact ID). */
  private isPattern(a: number): boolean {
    return this.identityAtoms[a]!.pattern.pieces.length > 1;
  }

  /** Pattern atoms among `atoms` (exact IDs never combine: an ID is one exact atom or none). */
  private patternAtoms(atoms: Iterable<number>): Set<number> {
    return new Set([...atoms].filter((a) => this.isPattern(a)));
  }

  /**
   * `e` as a union of *terms* over pattern atoms, for an identity that is no exact ID of
   * the policy (so every exact atom is false): `e` can be true exactly when every atom of
   * some term is matched (and its pattern-free parts hold). Undefined when `e` uses a
   * pattern under a negation: then it is not monotone in patterns.
   */
  private terms(e: A.Expr): Term[] | undefined {
    const free: Term[] = [[]];
    switch (e.kind) {
      case "paren":
        return this.terms(e.inner);
      case "not":
        return this.patternAtoms(this.atomsIn(e.operand)).size === 0 ? free : undefined;
      case "logical": {
        const l = this.terms(e.left);
        const r = this.terms(e.right);
        if (l === undefined || r === undefined) return undefined;
        return distinctTerms(e.op === "||" ? [...l, ...r] : l.flatMap((a) => r.map((b) => [...new Set([...a, ...b])].sort((x, y) => x - y))));
      }
      case "like":
        return [[this.identityAtom({ kind: "pattern", pattern: normalisePattern((e.pattern as A.StringLit).value) })]];
      case "in":
      case "compare": {
        if (this.attribute(e.left) !== "principal" && this.attribute(e.right) !== "principal") return free;
        if (e.kind === "compare" && e.op === "!=") return free;
        const set = this.constant(e.kind === "in" ? e.right : this.attribute(e.left) === "principal" ? e.right : e.left);
        return [...this.patternAtoms(membersOf(set).map((m) => this.identityAtom(m)))].map((a) => [a]);
      }
      default:
        return free;
    }
  }

  /** Every identity atom an expression names. */
  private atomsIn(e: A.Expr): number[] {
    switch (e.kind) {
      case "paren":
        return this.atomsIn(e.inner);
      case "not":
        return this.atomsIn(e.operand);
      case "logical":
        return [...this.atomsIn(e.left), ...this.atomsIn(e.right)];
      case "like":
        return [this.identityAtom({ kind: "pattern", pattern: normalisePattern((e.pattern as A.StringLit).value) })];
      case "in":
      case "compare":
        if (this.attribute(e.left) !== "principal" && this.attribute(e.right) !== "principal") return [];
        return membersOf(this.constant(e.kind === "in" ? e.right : this.attribute(e.left) === "principal" ? e.right : e.left)).map((m) => this.identityAtom(m));
      default:
        return [];
    }
  }

  /** The rule's terms, or undefined when it is not monotone in patterns (or has too many). */
  private ruleTerms(ast: A.Rule, principalAtoms: readonly number[] | undefined): Term[] | undefined {
    let terms: Term[] = principalAtoms === undefined ? [[]] : [...this.patternAtoms(principalAtoms)].map((a) => [a]);
    for (const c of ast.conditions) {
      const t = c.polarity === "when" ? this.terms(c.expr) : this.patternAtoms(this.atomsIn(c.expr)).size === 0 ? [[]] : undefined;
      if (t === undefined) return undefined;
      terms = terms.flatMap((a) => t.map((b) => [...new Set([...a, ...b])].sort((x, y) => x - y)));
      if (terms.length > MAX_TERMS) return undefined;
    }
    // Deduplicated, not minimised: each term stands for its own pattern-free guard, so a
    // larger term is not implied by a smaller one (`(p && port == 80) || uid == 0`).
    const keys = new Set<string>();
    return terms.filter((t) => !keys.has(t.join(",")) && keys.add(t.join(",")));
  }

  private principalScope(scope: A.ScopePart): readonly IdentityMember[] {
    const v = scope.value!;
    if (scope.op === "like") return [{ kind: "pattern", pattern: normalisePattern((v as A.StringLit).value) }];
    if (scope.op === "==") return this.identityConst(v).members;
    return this.identityConst(v).members;
  }

  private identityConst(e: A.Expr): { kind: "identity"; members: readonly IdentityMember[] } {
    return { kind: "identity", members: membersOf(this.constant(e)) };
  }

  private cutPoint(axis: keyof Cuts, value: number): void {
    this.cuts[axis].add(value);
    this.cuts[axis].add(value + 1);
  }

  private cutRanges(axis: keyof Cuts, ranges: readonly PortRange[]): void {
    for (const r of ranges) {
      this.cuts[axis].add(r.low);
      this.cuts[axis].add(r.high + 1);
    }
  }

  // ---------------------------------------------------------------- constants

  /** A workload's ID as a member, one object per workload (see `exactId`). */
  private workloadMember(name: string): IdentityMember {
    const id = this.policy.workloadsByName.get(name)!.id;
    let member = this.exactMembers.get(id);
    if (member === undefined) this.exactMembers.set(id, (member = { kind: "exact", id }));
    return member;
  }

  /** Exact members by their text: one object per ID, so that `identityAtom` finds it by object. */
  private readonly exactMembers = new Map<string, IdentityMember>();

  private exactId(text: string): IdentityMember {
    let member = this.exactMembers.get(text);
    if (member === undefined) this.exactMembers.set(text, (member = { kind: "exact", id: checkedSpiffeId(text) }));
    return member;
  }

  /** A service's endpoints as host CIDRs, made once per service (its CIDR objects then map to their atoms by object). */
  private readonly serviceEndpoints = new Map<string, Const>();

  private constant(e: A.Expr): Const {
    switch (e.kind) {
      case "int":
        return { kind: "int", value: e.value };
      case "range":
        return { kind: "ints", ranges: [{ low: e.low.value, high: e.high.value }] };
      case "ip":
        return { kind: "ip", cidr: { family: e.family, bytes: e.bytes, prefix: e.family === 4 ? 32 : 128 } };
      case "cidr":
        return { kind: "cidrs", cidrs: [{ family: e.family, bytes: e.bytes, prefix: e.prefix }] };
      case "endpoint":
        return { kind: "endpoints", endpoints: [hostEndpoint(endpointOf(e))] };
      case "string":
        return { kind: "identity", members: [this.exactId(e.value)] };
      case "bool":
        return { kind: "bool", value: e.value };
      case "paren":
        return this.constant(e.inner);
      case "name":
        return { kind: "protocol", value: e.name.name === "udp" ? "udp" : "tcp" };
      case "ref":
        return this.ref(e);
      case "list":
        return this.list(e);
      default:
        throw new Error(`not a constant: ${e.kind}`);
    }
  }

  private ref(e: A.RefExpr): Const {
    const name = e.name.name;
    switch (e.refKind) {
      case "workload":
        return { kind: "identity", members: [this.workloadMember(name)] };
      case "group":
        return { kind: "identity", members: this.policy.groups.get(name)! };
      case "net":
        return { kind: "cidrs", cidrs: this.policy.nets.get(name)! };
      case "ports":
        return { kind: "ints", ranges: this.policy.ports.get(name)! };
      case "service": {
        let endpoints = this.serviceEndpoints.get(name);
        if (endpoints === undefined) this.serviceEndpoints.set(name, (endpoints = { kind: "endpoints", endpoints: this.policy.services.get(name)!.endpoints.map(hostEndpoint) }));
        return endpoints;
      }
    }
  }

  private list(e: A.ListExpr): Const {
    const items = e.items.map((item) => (item.kind === "string" ? this.identityString(item) : this.constant(item)));
    const first = items[0];
    if (first === undefined) return EMPTY_SET;
    if (first.kind === "int" || first.kind === "ints") {
      return { kind: "ints", ranges: items.flatMap((c) => (c.kind === "int" ? [{ low: c.value, high: c.value }] : c.kind === "ints" ? c.ranges : [])) };
    }
    if (first.kind === "ip" || first.kind === "cidrs") {
      return { kind: "cidrs", cidrs: items.flatMap((c) => (c.kind === "ip" ? [c.cidr] : c.kind === "cidrs" ? c.cidrs : [])) };
    }
    if (first.kind === "endpoints") return { kind: "endpoints", endpoints: items.flatMap((c) => (c.kind === "endpoints" ? c.endpoints : [])) };
    return { kind: "identity", members: items.flatMap((c) => (c.kind === "identity" ? c.members : [])) };
  }

  private identityString(lit: A.StringLit): Const {
    const pattern = normalisePattern(lit.value);
    return { kind: "identity", members: [pattern.pieces.length > 1 ? { kind: "pattern", pattern } : this.exactId(lit.value)] };
  }

  // ---------------------------------------------------------------- predicates

  private attribute(e: A.Expr): Attribute | undefined {
    let x = e;
    while (x.kind === "paren") x = x.inner;
    if (x.kind !== "name") return undefined;
    const name = x.name.name;
    if (x.member === undefined) return name === "port" || name === "ip" || name === "protocol" || name === "principal" ? name : undefined;
    if (name !== "principal") return undefined;
    const member = x.member.name;
    return member === "uid" ? "principal.uid" : member === "gid" ? "principal.gid" : undefined;
  }

  private bool(e: A.Expr): Predicate {
    switch (e.kind) {
      case "bool": {
        const v = e.value;
        return () => v;
      }
      case "paren":
        return this.bool(e.inner);
      case "not": {
        const p = this.bool(e.operand);
        return (cell) => !p(cell);
      }
      case "logical": {
        const l = this.bool(e.left);
        const r = this.bool(e.right);
        return e.op === "&&" ? (cell) => l(cell) && r(cell) : (cell) => l(cell) || r(cell);
      }
      case "compare":
        return this.compare(e);
      case "in":
        return this.membership(e.left, e.right);
      case "like": {
        const atom = this.identityAtom({ kind: "pattern", pattern: normalisePattern((e.pattern as A.StringLit).value) });
        return (cell) => cell.identity.has(atom);
      }
      default:
        throw new Error(`not a boolean expression: ${e.kind}`);
    }
  }

  private compare(e: A.CompareExpr): Predicate {
    const leftAttr = this.attribute(e.left);
    const rightAttr = this.attribute(e.right);
    if (leftAttr === undefined && rightAttr === undefined) {
      const value = this.constantCompare(e.op, this.constant(e.left), this.constant(e.right));
      return () => value;
    }
    // Attribute on the left: flip `80 < port` into `port > 80`.
    const attr = (leftAttr ?? rightAttr)!;
    const op = leftAttr !== undefined ? e.op : FLIPPED[e.op];
    const other = this.constant(leftAttr !== undefined ? e.right : e.left);
    const eq = this.equality(attr, other);
    if (op === "==") return eq;
    if (op === "!=") return (cell) => !eq(cell);
    const axis = attr === "port" ? "port" : attr === "principal.uid" ? "uid" : "gid";
    const n = (other as { value: number }).value;
    this.cuts[axis].add(n);
    this.cuts[axis].add(n + 1);
    const read = this.intReader(attr);
    switch (op) {
      case "<":
        return (cell) => read(cell) < n;
      case "<=":
        return (cell) => read(cell) <= n;
      case ">":
        return (cell) => read(cell) > n;
      default:
        return (cell) => read(cell) >= n;
    }
  }

  private intReader(attr: Attribute): (cell: Cell) => number {
    if (attr === "port") return (cell) => cell.port;
    if (attr === "principal.uid") return (cell) => cell.uid;
    return (cell) => cell.gid;
  }

  private equality(attr: Attribute, other: Const): Predicate {
    switch (attr) {
      case "ip": {
        const atom = this.cidrAtom((other as { cidr: Cidr }).cidr);
        return (cell) => cell.destination.has(atom);
      }
      case "protocol": {
        const p = (other as { value: Protocol }).value;
        return (cell) => cell.protocol === p;
      }
      case "principal": {
        const atoms = membersOf(other).map((m) => this.identityAtom(m));
        return (cell) => atoms.some((a) => cell.identity.has(a));
      }
      default: {
        const n = (other as { value: number }).value;
        const axis = attr === "port" ? "port" : attr === "principal.uid" ? "uid" : "gid";
        this.cutPoint(axis, n);
        const read = this.intReader(attr);
        return (cell) => read(cell) === n;
      }
    }
  }

  private membership(left: A.Expr, right: A.Expr): Predicate {
    const attr = this.attribute(left);
    const set = this.constant(right);
    if (attr === undefined) {
      const value = this.constantIn(this.constant(left), set);
      return () => value;
    }
    if (attr === "ip") {
      const atoms = [...new Set(cidrsOf(set).map((c) => this.cidrAtom(c)))];
      return (cell) => atoms.some((a) => cell.destination.has(a));
    }
    if (attr === "principal") {
      const atoms = [...new Set(membersOf(set).map((m) => this.identityAtom(m)))];
      return (cell) => atoms.some((a) => cell.identity.has(a));
    }
    const ranges = set.kind === "ints" ? set.ranges : [];
    const axis = attr === "port" ? "port" : attr === "principal.uid" ? "uid" : "gid";
    this.cutRanges(axis, ranges);
    const read = this.intReader(attr);
    return (cell) => {
      const v = read(cell);
      return ranges.some((r) => r.low <= v && v <= r.high);
    };
  }

  private constantCompare(op: A.CompareOp, a: Const, b: Const): boolean {
    const key = (c: Const): string => {
      if (c.kind === "ip") return cidrKey(c.cidr);
      if (c.kind === "identity") return JSON.stringify(c.members);
      return String((c as { value: unknown }).value);
    };
    if (op === "==") return key(a) === key(b);
    if (op === "!=") return key(a) !== key(b);
    const x = (a as { value: number }).value;
    const y = (b as { value: number }).value;
    return op === "<" ? x < y : op === "<=" ? x <= y : op === ">" ? x > y : x >= y;
  }

  /** `constant in constant`, e.g. `80 in ports web` or `10.0.0.1 in net private`. */
  private constantIn(x: Const, set: Const): boolean {
    if (x.kind === "int" && set.kind === "ints") return set.ranges.some((r) => r.low <= x.value && x.value <= r.high);
    if (x.kind === "ip") {
      return cidrsOf(set).some((c) => c.family === x.cidr.family && c.prefix <= x.cidr.prefix && maskedEqual(c, x.cidr.bytes));
    }
    if (x.kind === "identity") {
      return x.members.some((m) => m.kind === "exact" && membersOf(set).some((s) => (s.kind === "exact" ? s.id === m.id : patternMatches(s.pattern, m.id))));
    }
    return false;
  }
}

/** An endpoint with its address as a one-host CIDR (/32, /128). */
function hostEndpoint(ep: Endpoint): { cidr: Cidr; port: number; protocol: Protocol } {
  return { cidr: { family: ep.family, bytes: ep.bytes, prefix: ep.family === 4 ? 32 : 128 }, port: ep.port, protocol: ep.protocol };
}

function cidrsOf(c: Const): readonly Cidr[] {
  return c.kind === "ip" ? [c.cidr] : c.kind === "cidrs" ? c.cidrs : [];
}

function membersOf(c: Const): readonly IdentityMember[] {
  return c.kind === "identity" ? c.members : [];
}

function maskedEqual(c: Cidr, bytes: readonly number[]): boolean {
  for (let bit = 0; bit < c.prefix; bit++) {
    const byte = bit >> 3;
    const mask = 0x80 >> (bit & 7);
    if ((c.bytes[byte]! & mask) !== (bytes[byte]! & mask)) return false;
  }
  return true;
}

function patternMatches(pattern: IdentityPattern, id: string): boolean {
  const re = new RegExp(`^${pattern.pieces.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[\\s\\S]*")}$`);
  return re.test(id);
}

export function normalisePolicy(policy: PolicySet): NormalPolicy {
  const n = new Normaliser(policy);
  // Every workload's ID is an exact atom, so each local process has exactly one class.
  for (const w of policy.workloads) n.identityAtom({ kind: "exact", id: w.id });
  const rules = policy.rules.map((r, i) => n.rule(i, r));
  return { rules, identityAtoms: n.identityAtoms, cidrs: n.cidrs, defaultUnidentified: policy.defaultUnidentified };
}

/**
 * `terms` without repeats: without this, a condition such as `(uid == 1 || …) && (gid == 1
 * || …)` multiplied its pattern-free alternatives into millions of equal empty terms. (Only
 * equal terms go: a term that holds a smaller one still decides which identity class a rule
 * is evaluated in, with which atoms true.)
 */
function distinctTerms(terms: Term[]): Term[] {
  const seen = new Set<string>();
  return terms.filter((t) => {
    const key = t.join(",");
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
