// Owns the reference semantics (spec §5): a checked policy set and one request in, the
// decision out, evaluated straight from the AST. Written for clarity, never for speed: it
// is the oracle every other evaluator (tables, Cedar, WASM, kernel) is tested against.
//
// INVARIANT: only called on a policy set without errors, so every name resolves and every
// expression has the type the checker gave it; no expression can fail at run time.
import type * as A from "../dsl/ast.js";
import { maskBytes } from "../dsl/ip.js";
import type { Cidr, Endpoint, IdentityMember, PolicySet, PortRange, RuleInfo } from "./model.js";
import { endpointOf } from "./model.js";
import type { Decision, Request } from "./request.js";
import { checkedSpiffeId, matchesPattern, normalisePattern } from "./spiffe.js";

/** A runtime value of the language. Sets are kept as the lists they were written as. */
type Value =
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "ip"; readonly family: 4 | 6; readonly bytes: readonly number[] }
  | { readonly kind: "protocol"; readonly value: string }
  | { readonly kind: "identity"; readonly id: string | null }
  | { readonly kind: "bool"; readonly value: boolean }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "ports"; readonly ranges: readonly PortRange[] }
  | { readonly kind: "cidrs"; readonly cidrs: readonly Cidr[] }
  | { readonly kind: "identities"; readonly members: readonly IdentityMember[] }
  | { readonly kind: "endpoints"; readonly endpoints: readonly Endpoint[] };

export interface RuleTrace {
  readonly rule: RuleInfo;
  readonly matched: boolean;
  /** Why it did not match: the scope part or condition that failed. */
  readonly failed: { readonly part: "principal" | "action" | "resource" | "when" | "unless"; readonly span: A.Span } | undefined;
}

export function cidrContains(c: Cidr, family: 4 | 6, bytes: readonly number[]): boolean {
  if (c.family !== family) return false;
  const masked = maskBytes(bytes, c.prefix);
  return masked.every((b, i) => b === c.bytes[i]);
}

function memberMatches(m: IdentityMember, id: string): boolean {
  return m.kind === "exact" ? m.id === id : matchesPattern(m.pattern, id);
}

export class ReferenceEvaluator {
  constructor(private readonly policy: PolicySet) {}

  decide(request: Request): Decision {
    return this.explain(request).decision;
  }

  /** The decision with a per-rule account of what matched and what failed. */
  explain(request: Request): { decision: Decision; traces: RuleTrace[] } {
    const traces = this.policy.rules.map((rule) => this.traceRule(rule, request));
    const matching = (effect: "permit" | "forbid") =>
      traces
        .filter((t) => t.matched && t.rule.effect === effect)
        .map((t) => t.rule.id)
        .sort();
    const forbids = matching("forbid");
    if (forbids.length > 0) return { decision: { decision: "deny", reasons: forbids, default: false }, traces };
    const permits = matching("permit");
    if (permits.length > 0) return { decision: { decision: "allow", reasons: permits, default: false }, traces };
    const fallback = request.principal === null ? this.policy.defaultUnidentified : "deny";
    return { decision: { decision: fallback, reasons: [], default: true }, traces };
  }

  private traceRule(rule: RuleInfo, request: Request): RuleTrace {
    const { ast } = rule;
    const fail = (part: "principal" | "action" | "resource" | "when" | "unless", span: A.Span): RuleTrace => ({ rule, matched: false, failed: { part, span } });
    if (!this.scopeMatches(ast.principal, request)) return fail("principal", ast.principal.span);
    if (!this.scopeMatches(ast.action, request)) return fail("action", ast.action.span);
    if (!this.scopeMatches(ast.resource, request)) return fail("resource", ast.resource.span);
    for (const c of ast.conditions) {
      const value = this.bool(c.expr, request);
      if (c.polarity === "when" && !value) return fail("when", c.span);
      if (c.polarity === "unless" && value) return fail("unless", c.span);
    }
    return { rule, matched: true, failed: undefined };
  }

  private scopeMatches(scope: A.ScopePart, request: Request): boolean {
    if (scope.op === undefined || scope.value === undefined) return true;
    switch (scope.head.name) {
      case "principal": {
        const subject = { kind: "identity", id: request.principal } as const;
        if (scope.op === "==") return this.equal(subject, this.value(scope.value, request));
        if (scope.op === "in") return this.contains(this.value(scope.value, request), subject);
        return this.like(subject, scope.value as A.StringLit);
      }
      case "action":
        return true;
      default: {
        const value = this.value(scope.value, request);
        if (scope.op === "in") return this.contains(value, { kind: "ip", family: request.family, bytes: request.ip });
        if (value.kind === "endpoints") return value.endpoints.some((e) => this.endpointEquals(e, request));
        if (value.kind === "ip") return this.equal(value, { kind: "ip", family: request.family, bytes: request.ip });
        const ep = value as unknown as { kind: "endpoint" };
        throw new Error(`unexpected resource value ${ep.kind}`);
      }
    }
  }

  private endpointEquals(e: Endpoint, r: Request): boolean {
    return e.family === r.family && e.port === r.port && e.protocol === r.protocol && e.bytes.every((b, i) => b === r.ip[i]);
  }

  // ---------------------------------------------------------------- expressions

  private bool(e: A.Expr, r: Request): boolean {
    const v = this.value(e, r);
    if (v.kind !== "bool") throw new Error(`condition evaluated to ${v.kind}`);
    return v.value;
  }

  private value(e: A.Expr, r: Request): Value {
    switch (e.kind) {
      case "int":
        return { kind: "int", value: e.value };
      case "range":
        return { kind: "ports", ranges: [{ low: e.low.value, high: e.high.value }] };
      case "ip":
        return { kind: "ip", family: e.family, bytes: e.bytes };
      case "cidr":
        return { kind: "cidrs", cidrs: [{ family: e.family, bytes: e.bytes, prefix: e.prefix }] };
      case "endpoint":
        return { kind: "endpoints", endpoints: [endpointOf(e)] };
      case "string":
        return { kind: "string", value: e.value };
      case "bool":
        return { kind: "bool", value: e.value };
      case "paren":
        return this.value(e.inner, r);
      case "not":
        return { kind: "bool", value: !this.bool(e.operand, r) };
      case "logical": {
        // Short-circuit, as in Cedar; no expression can error, so order does not change results.
        const left = this.bool(e.left, r);
        const value = e.op === "&&" ? left && this.bool(e.right, r) : left || this.bool(e.right, r);
        return { kind: "bool", value };
      }
      case "compare":
        return { kind: "bool", value: this.compare(e.op, this.value(e.left, r), this.value(e.right, r)) };
      case "in":
        return { kind: "bool", value: this.contains(this.value(e.right, r), this.value(e.left, r)) };
      case "like":
        return { kind: "bool", value: this.like(this.value(e.left, r), e.pattern as A.StringLit) };
      case "ref":
        return this.ref(e);
      case "list":
        return this.list(e, r);
      case "name":
        return this.name(e, r);
    }
  }

  private name(e: A.NameExpr, r: Request): Value {
    const full = e.member === undefined ? e.name.name : `${e.name.name}.${e.member.name}`;
    switch (full) {
      case "port":
        return { kind: "int", value: r.port };
      case "ip":
        return { kind: "ip", family: r.family, bytes: r.ip };
      case "protocol":
        return { kind: "protocol", value: r.protocol };
      case "principal":
        return { kind: "identity", id: r.principal };
      case "principal.uid":
        return { kind: "int", value: r.uid };
      case "principal.gid":
        return { kind: "int", value: r.gid };
      case "tcp":
      case "udp":
        return { kind: "protocol", value: full };
      default:
        throw new Error(`unknown name ${full}`);
    }
  }

  private ref(e: A.RefExpr): Value {
    const name = e.name.name;
    switch (e.refKind) {
      case "workload":
        return { kind: "identity", id: this.policy.workloadsByName.get(name)!.id };
      case "group":
        return { kind: "identities", members: this.policy.groups.get(name)! };
      case "net":
        return { kind: "cidrs", cidrs: this.policy.nets.get(name)! };
      case "ports":
        return { kind: "ports", ranges: this.policy.ports.get(name)! };
      case "service":
        return { kind: "endpoints", endpoints: this.policy.services.get(name)!.endpoints };
    }
  }

  /** A list literal: a set of whatever its items are. */
  private list(e: A.ListExpr, r: Request): Value {
    const items = e.items.map((item) => (item.kind === "string" ? this.identityString(item) : this.value(item, r)));
    const first = items[0];
    if (first === undefined) return { kind: "ports", ranges: [] };
    switch (first.kind) {
      case "int":
      case "ports":
        return { kind: "ports", ranges: items.flatMap((v) => (v.kind === "int" ? [{ low: v.value, high: v.value }] : v.kind === "ports" ? v.ranges : [])) };
      case "ip":
      case "cidrs":
        return { kind: "cidrs", cidrs: items.flatMap((v) => (v.kind === "ip" ? [{ family: v.family, bytes: v.bytes, prefix: v.family === 4 ? 32 : 128 }] : v.kind === "cidrs" ? v.cidrs : [])) };
      case "endpoints":
        return { kind: "endpoints", endpoints: items.flatMap((v) => (v.kind === "endpoints" ? v.endpoints : [])) };
      default:
        return {
          kind: "identities",
          members: items.flatMap((v): IdentityMember[] => (v.kind === "identity" && v.id !== null ? [{ kind: "exact", id: v.id }] : v.kind === "identities" ? [...v.members] : [])),
        };
    }
  }

  /** A string inside an identity list: a pattern when it has a `*`, else an exact ID. */
  private identityString(lit: A.StringLit): Value {
    const pattern = normalisePattern(lit.value);
    if (pattern.pieces.length > 1) return { kind: "identities", members: [{ kind: "pattern", pattern }] };
    return { kind: "identities", members: [{ kind: "exact", id: checkedSpiffeId(lit.value) }] };
  }

  // ---------------------------------------------------------------- operators

  private compare(op: A.CompareOp, left: Value, right: Value): boolean {
    if (op === "==") return this.equal(left, right);
    if (op === "!=") return !this.equal(left, right);
    const a = (left as { value: number }).value;
    const b = (right as { value: number }).value;
    return op === "<" ? a < b : op === "<=" ? a <= b : op === ">" ? a > b : a >= b;
  }

  /** `==`: identities compare as normalised SPIFFE IDs; unidentified equals nothing. */
  private equal(a: Value, b: Value): boolean {
    const identity = (v: Value): string | null | undefined => (v.kind === "identity" ? v.id : v.kind === "string" ? checkedSpiffeId(v.value) : undefined);
    const ia = identity(a);
    const ib = identity(b);
    if (ia !== undefined || ib !== undefined) return ia !== null && ib !== null && ia === ib;
    if (a.kind === "ip" && b.kind === "ip") return a.family === b.family && a.bytes.every((x, i) => x === b.bytes[i]);
    return (a as { value: unknown }).value === (b as { value: unknown }).value;
  }

  /** `x in set`. */
  private contains(set: Value, x: Value): boolean {
    switch (set.kind) {
      case "ports":
        return set.ranges.some((p) => x.kind === "int" && p.low <= x.value && x.value <= p.high);
      case "cidrs":
        return x.kind === "ip" && set.cidrs.some((c) => cidrContains(c, x.family, x.bytes));
      case "ip":
        return this.equal(set, x);
      case "identities":
        return x.kind === "identity" && x.id !== null && set.members.some((m) => memberMatches(m, x.id!));
      default:
        throw new Error(`cannot test membership in ${set.kind}`);
    }
  }

  private like(subject: Value, pattern: A.StringLit): boolean {
    return subject.kind === "identity" && subject.id !== null && matchesPattern(normalisePattern(pattern.value), subject.id);
  }
}
