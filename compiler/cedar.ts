// Owns the Cedar export (spec §7): the Cedar schema, one Cedar policy per rule, the Cedar
// form of a request, and `CedarEvaluator`, which decides requests with
// `@cedar-policy/cedar-wasm` so the export is tested against the reference evaluator.
//
// Mapping: principal `Workload::"<spiffe id>"` (attribute `id`, the same string) or
// `Unidentified::"process"`; action `Action::"connect"`; resource `Destination::"<ip>"`;
// context `{ ip, port, protocol, uid, gid }`. Scope forms Cedar cannot state (groups,
// patterns, nets, services) become `when` clauses placed before the rule's own conditions.
//
// INVARIANT: no exported expression can error in Cedar for any request of the schema. A
// Cedar policy whose condition errors is skipped, which would silently change decisions, so
// every `principal.id` is reached only after `principal is Workload` (in the scope or in
// the same `&&`), and every identity test is false for `Unidentified`, as in spec §5; a
// negation of it is then true, as in the reference.
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { setFlagsFromString } from "node:v8";
import type * as CedarWasm from "@cedar-policy/cedar-wasm/nodejs";
import type * as A from "../dsl/ast.js";
import { formatIp, isV4Mapped } from "../dsl/ip.js";
import type { Cidr, Endpoint, IdentityMember, PolicySet, PortRange, Protocol, RuleInfo } from "./model.js";
import { endpointOf } from "./model.js";
import type { Decision, Request } from "./request.js";
import { checkedSpiffeId, normalisePattern, type IdentityPattern } from "./spiffe.js";
import type { Evaluator } from "./tests.js";

const require = createRequire(import.meta.url);
const cedar = require("@cedar-policy/cedar-wasm/nodejs") as typeof CedarWasm;

// WORKAROUND: V8 11.3 (Node 20.20) aborts the whole process ("Fatal error: unreachable code"
// in `Deoptimizer::DoComputeBuiltinContinuation`) when optimized code into which TurboFan
// inlined a JS-to-Wasm call is lazily deoptimized during that call. cedar-wasm's exports are
// such calls; the Cedar differential test hit it after some 10,000 requests. Not inlining
// them costs nothing measurable (a Cedar call spends its time in serde, not the call).
setFlagsFromString("--no-turbo-inline-js-wasm-calls");

/** The Cedar schema every export shares; it does not depend on the policy set. */
export const CEDAR_SCHEMA = `// Portcullis: may a principal connect to a destination (ip, port, protocol)?
entity Workload {
  // The SPIFFE ID, equal to the entity id; \`like\` patterns match it.
  id: String,
};

// A process with no workload identity.
entity Unidentified enum ["process"];

// The entity id is the destination address; conditions read \`context.ip\`.
entity Destination;

action connect appliesTo {
  principal: [Workload, Unidentified],
  resource: Destination,
  context: {
    ip: ipaddr,
    port: Long,
    protocol: String,
    uid: Long,
    gid: Long,
  },
};
`;

/** The id of the synthetic `default unidentified allow` policy; never a reason. */
export const DEFAULT_UNIDENTIFIED_POLICY_ID = "portcullis::default-unidentified";

export interface CedarExport {
  /** Cedar schema, human-readable format. */
  readonly schema: string;
  /** The same schema in Cedar's JSON format. */
  readonly schemaJson: CedarWasm.SchemaJson<string>;
  /** One Cedar policy per rule, keyed by rule id, in policy-set order. */
  readonly policies: Readonly<Record<string, string>>;
  /** Synthetic policies (the unidentified default), keyed by ids no rule has. */
  readonly extraPolicies: Readonly<Record<string, string>>;
}

export function exportCedar(policy: PolicySet): CedarExport {
  const emitter = new RuleEmitter(policy);
  const policies: Record<string, string> = {};
  for (const rule of policy.rules) policies[rule.id] = emitter.emit(rule);
  const extraPolicies: Record<string, string> = {};
  if (policy.defaultUnidentified === "allow") {
    let id = DEFAULT_UNIDENTIFIED_POLICY_ID;
    for (let n = 2; Object.hasOwn(policies, id); n++) id = `${DEFAULT_UNIDENTIFIED_POLICY_ID}-${n}`;
    extraPolicies[id] = `@id(${cedarString(id)})\n@description("default unidentified allow")\npermit (principal is Unidentified, action == Action::"connect", resource);`;
  }
  return { schema: CEDAR_SCHEMA, schemaJson: cedarSchemaJson(), policies, extraPolicies };
}

let schemaJsonCache: CedarWasm.SchemaJson<string> | undefined;

function cedarSchemaJson(): CedarWasm.SchemaJson<string> {
  if (schemaJsonCache === undefined) {
    const answer = cedar.schemaToJson(CEDAR_SCHEMA);
    if (answer.type === "failure") throw new Error(`cedar rejected the Portcullis schema: ${cedarErrors(answer.errors)}`);
    schemaJsonCache = answer.json;
  }
  return schemaJsonCache;
}

// ---------------------------------------------------------------- Cedar text

/** Operator precedence of emitted Cedar, loosest first (Cedar grammar: Or, And, Relation, Unary, Member). */
const OR = 0;
const AND = 1;
const REL = 2;
const UNARY = 3;
const PRIMARY = 4;

/** A Cedar expression and the precedence of its outermost operator. */
interface Cx {
  readonly text: string;
  readonly prec: number;
}

const TRUE: Cx = { text: "true", prec: PRIMARY };
const FALSE: Cx = { text: "false", prec: PRIMARY };
const PRINCIPAL: Cx = { text: "principal", prec: PRIMARY };
const IS_WORKLOAD: Cx = { text: "principal is Workload", prec: REL };

function at(e: Cx, prec: number): string {
  return e.prec >= prec ? e.text : `(${e.text})`;
}

function or(items: readonly Cx[]): Cx {
  if (items.length === 0) return FALSE;
  if (items.length === 1) return items[0]!;
  // `&&` inside `||` is parenthesised for the reader, though Cedar would not need it.
  return { text: items.map((i) => (i.prec === AND ? `(${i.text})` : at(i, OR))).join(" || "), prec: OR };
}

function and(items: readonly Cx[]): Cx {
  if (items.length === 0) return TRUE;
  if (items.length === 1) return items[0]!;
  return { text: items.map((i) => at(i, AND)).join(" && "), prec: AND };
}

function not(e: Cx): Cx {
  return { text: `!${at(e, PRIMARY)}`, prec: UNARY };
}

function rel(left: Cx, op: string, right: Cx): Cx {
  return { text: `${at(left, UNARY)} ${op} ${at(right, UNARY)}`, prec: REL };
}

function primary(text: string): Cx {
  return { text, prec: PRIMARY };
}

/** A Cedar string literal. */
function cedarString(value: string): string {
  return `"${escapeChars(value, false)}"`;
}

function escapeChars(value: string, inPattern: boolean): string {
  let out = "";
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\" || ch === '"') out += `\\${ch}`;
    else if (ch === "*" && inPattern) out += "\\*";
    else if (code < 0x20 || code === 0x7f) out += `\\u{${code.toString(16)}}`;
    else out += ch;
  }
  return out;
}

/** A Cedar `like` pattern: the literal pieces escaped, a `*` between each two. */
function cedarPattern(pattern: IdentityPattern): string {
  return `"${pattern.pieces.map((p) => escapeChars(p, true)).join("*")}"`;
}

function workloadEntity(id: string): Cx {
  return primary(`Workload::${cedarString(id)}`);
}

/** `formatIp` writes IPv6 in hex groups only: Cedar rejects IPv4 embedded in IPv6 (`::ffff:1.2.3.4`). */
function ipLiteral(family: 4 | 6, bytes: readonly number[], prefix?: number): Cx {
  return primary(`ip("${formatIp(family, bytes)}${prefix === undefined ? "" : `/${prefix}`}")`);
}

const CONTEXT_IP = primary("context.ip");
const CONTEXT_PORT = primary("context.port");
const CONTEXT_PROTOCOL = primary("context.protocol");

/** `x in [ranges]`: an equality per single port, a pair of bounds per range. */
function inPorts(x: Cx, ranges: readonly PortRange[]): Cx {
  return or(ranges.map((r) => (r.low === r.high ? rel(x, "==", primary(String(r.low))) : and([rel(x, ">=", primary(String(r.low))), rel(x, "<=", primary(String(r.high)))]))));
}

/** `x in [cidrs]`: an equality per single address, `isInRange` per wider CIDR. */
function inCidrs(x: Cx, cidrs: readonly Cidr[]): Cx {
  return or(
    cidrs.map((c) => (c.prefix === (c.family === 4 ? 32 : 128) ? rel(x, "==", ipLiteral(c.family, c.bytes)) : primary(`${at(x, PRIMARY)}.isInRange(${ipLiteral(c.family, c.bytes, c.prefix).text})`))),
  );
}

/** The request equals one of the endpoints; endpoints sharing a port and protocol share a test. */
function atEndpoints(endpoints: readonly Endpoint[]): Cx {
  const byPort = new Map<string, { port: number; protocol: Protocol; ips: Endpoint[] }>();
  for (const e of endpoints) {
    const key = `${e.port}/${e.protocol}`;
    if (!byPort.has(key)) byPort.set(key, { port: e.port, protocol: e.protocol, ips: [] });
    byPort.get(key)!.ips.push(e);
  }
  return or(
    [...byPort.values()].map((g) =>
      and([rel(CONTEXT_PORT, "==", primary(String(g.port))), rel(CONTEXT_PROTOCOL, "==", primary(cedarString(g.protocol))), or(g.ips.map((e) => rel(CONTEXT_IP, "==", ipLiteral(e.family, e.bytes))))]),
    ),
  );
}

/** Whose identity is tested: the request's principal, or a constant (`workload x in group g`). */
type Subject = { readonly kind: "principal" } | { readonly kind: "id"; readonly id: string };

/**
 * `subject in members`. For the principal, false for `Unidentified`; `guarded` adds the
 * `principal is Workload` that `principal.id` needs (omitted when the scope already says it).
 */
function identityIn(subject: Subject, members: readonly IdentityMember[], guarded: boolean): Cx {
  const exact = members.flatMap((m) => (m.kind === "exact" ? [m.id] : []));
  const patterns = members.flatMap((m) => (m.kind === "pattern" ? [m.pattern] : []));
  const subjectEntity = subject.kind === "principal" ? PRINCIPAL : workloadEntity(subject.id);
  const tests = exact.map((id) => rel(subjectEntity, "==", workloadEntity(id)));
  if (patterns.length > 0) {
    const subjectId = subject.kind === "principal" ? primary("principal.id") : primary(cedarString(subject.id));
    const likes = or(patterns.map((p) => rel(subjectId, "like", primary(cedarPattern(p)))));
    tests.push(subject.kind === "principal" && guarded ? and([IS_WORKLOAD, likes]) : likes);
  }
  return or(tests);
}

/** A checked value of the language, as far as Cedar needs it. */
type Operand =
  /** An int, ip, protocol or boolean: a Cedar expression. */
  | { readonly kind: "scalar"; readonly cx: Cx }
  /** A string literal: an exact SPIFFE ID where it meets an identity. */
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "identity"; readonly subject: Subject }
  | { readonly kind: "ports"; readonly ranges: readonly PortRange[] }
  | { readonly kind: "cidrs"; readonly cidrs: readonly Cidr[] }
  | { readonly kind: "identities"; readonly members: readonly IdentityMember[] }
  | { readonly kind: "endpoints"; readonly endpoints: readonly Endpoint[] };

/** Translates one rule; mirrors `ReferenceEvaluator` construct by construct. */
class RuleEmitter {
  constructor(private readonly policy: PolicySet) {}

  emit(rule: RuleInfo): string {
    const { ast } = rule;
    const clauses: string[] = [];
    const principal = this.principalScope(ast.principal);
    if (principal.condition !== undefined) clauses.push(`when { ${principal.condition.text} }`);
    const resource = this.resourceScope(ast.resource);
    if (resource !== undefined) clauses.push(`when { ${resource.text} }`);
    for (const c of ast.conditions) clauses.push(`${c.polarity} { ${this.bool(c.expr).text} }`);
    const action = ast.action.op === undefined ? "action" : 'action == Action::"connect"';
    const head = `${rule.effect} (\n  ${principal.scope},\n  ${action},\n  resource\n)`;
    return `${annotations(rule).join("\n")}\n${[head, ...clauses].join("\n")};`;
  }

  private principalScope(scope: A.ScopePart): { scope: string; condition: Cx | undefined } {
    if (scope.op === undefined || scope.value === undefined) return { scope: "principal", condition: undefined };
    const v = scope.value;
    let members: readonly IdentityMember[];
    if (scope.op === "like") members = [{ kind: "pattern", pattern: normalisePattern((v as A.StringLit).value) }];
    else if (scope.op === "==") members = [{ kind: "exact", id: this.identityOf(v) }];
    else members = this.identities(v);
    if (members.length === 1 && members[0]!.kind === "exact") return { scope: `principal == ${workloadEntity(members[0]!.id).text}`, condition: undefined };
    if (members.length === 0) return { scope: "principal", condition: FALSE };
    return { scope: "principal is Workload", condition: identityIn({ kind: "principal" }, members, false) };
  }

  private resourceScope(scope: A.ScopePart): Cx | undefined {
    if (scope.op === undefined || scope.value === undefined) return undefined;
    const value = this.operand(scope.value);
    if (scope.op === "in") return this.contains(value, { kind: "scalar", cx: CONTEXT_IP });
    if (value.kind === "endpoints") return atEndpoints(value.endpoints);
    if (value.kind === "scalar") return rel(CONTEXT_IP, "==", value.cx);
    throw new Error(`unexpected resource value ${value.kind}`);
  }

  private identityOf(e: A.Expr): string {
    if (e.kind === "ref") return this.policy.workloadsByName.get(e.name.name)!.id;
    return checkedSpiffeId((e as A.StringLit).value);
  }

  /** The members of a group reference or an identity list. */
  private identities(e: A.Expr): readonly IdentityMember[] {
    return e.kind === "list" ? e.items.flatMap((item) => this.identitiesOf(item)) : this.identitiesOf(e);
  }

  // ---------------------------------------------------------------- expressions

  private bool(e: A.Expr): Cx {
    switch (e.kind) {
      case "bool":
        return e.value ? TRUE : FALSE;
      case "paren":
        return primary(`(${this.bool(e.inner).text})`);
      case "not":
        return not(this.bool(e.operand));
      case "logical": {
        const sides = [this.bool(e.left), this.bool(e.right)];
        return e.op === "&&" ? and(sides) : or(sides);
      }
      case "compare":
        return this.compare(e.op, this.operand(e.left), this.operand(e.right));
      case "in":
        return this.contains(this.operand(e.right), this.operand(e.left));
      case "like": {
        const subject = this.operand(e.left);
        if (subject.kind !== "identity") throw new Error(`\`like\` on ${subject.kind}`);
        return identityIn(subject.subject, [{ kind: "pattern", pattern: normalisePattern((e.pattern as A.StringLit).value) }], true);
      }
      default:
        throw new Error(`condition of kind ${e.kind} is not a boolean`);
    }
  }

  private compare(op: A.CompareOp, left: Operand, right: Operand): Cx {
    const side = (o: Operand): Cx => {
      if (o.kind === "identity") return o.subject.kind === "principal" ? PRINCIPAL : workloadEntity(o.subject.id);
      if (o.kind === "string") return workloadEntity(checkedSpiffeId(o.value));
      if (o.kind === "scalar") return o.cx;
      throw new Error(`cannot compare ${o.kind}`);
    };
    // On identities, `==` is false for Unidentified (no Workload equals it) and `!=` true, as in the reference.
    return rel(side(left), op, side(right));
  }

  /** `x in set`. */
  private contains(set: Operand, x: Operand): Cx {
    switch (set.kind) {
      case "ports":
        return x.kind === "scalar" ? inPorts(x.cx, set.ranges) : FALSE;
      case "cidrs":
        return x.kind === "scalar" ? inCidrs(x.cx, set.cidrs) : FALSE;
      case "identities":
        return x.kind === "identity" ? identityIn(x.subject, set.members, true) : FALSE;
      case "scalar":
        if (x.kind !== "scalar") throw new Error(`cannot test ${x.kind} against a single address`);
        return rel(x.cx, "==", set.cx);
      default:
        throw new Error(`cannot test membership in ${set.kind}`);
    }
  }

  private operand(e: A.Expr): Operand {
    switch (e.kind) {
      case "int":
        return { kind: "scalar", cx: primary(String(e.value)) };
      case "ip":
        return { kind: "scalar", cx: ipLiteral(e.family, e.bytes) };
      case "string":
        return { kind: "string", value: e.value };
      case "paren":
        return this.operand(e.inner);
      case "bool":
      case "not":
      case "logical":
      case "compare":
      case "in":
      case "like":
        return { kind: "scalar", cx: this.bool(e) };
      case "name":
        return this.name(e);
      case "ref":
        if (e.refKind === "workload") return { kind: "identity", subject: { kind: "id", id: this.policy.workloadsByName.get(e.name.name)!.id } };
        return this.set([e]);
      case "range":
      case "cidr":
      case "endpoint":
        return this.set([e]);
      case "list":
        return this.set(e.items);
    }
  }

  private name(e: A.NameExpr): Operand {
    const full = e.member === undefined ? e.name.name : `${e.name.name}.${e.member.name}`;
    switch (full) {
      case "port":
        return { kind: "scalar", cx: CONTEXT_PORT };
      case "ip":
        return { kind: "scalar", cx: CONTEXT_IP };
      case "protocol":
        return { kind: "scalar", cx: CONTEXT_PROTOCOL };
      case "principal":
        return { kind: "identity", subject: { kind: "principal" } };
      case "principal.uid":
        return { kind: "scalar", cx: primary("context.uid") };
      case "principal.gid":
        return { kind: "scalar", cx: primary("context.gid") };
      case "tcp":
      case "udp":
        return { kind: "scalar", cx: primary(cedarString(full)) };
      default:
        throw new Error(`unknown name ${full}`);
    }
  }

  /**
   * The set that list items (or one set-valued expression) form, told apart by the kind of
   * the first item as the checker does; an empty list is an empty set.
   */
  private set(items: readonly A.Expr[]): Operand {
    const first = items[0];
    if (first === undefined) return { kind: "ports", ranges: [] };
    if (first.kind === "int" || first.kind === "range" || (first.kind === "ref" && first.refKind === "ports")) {
      return { kind: "ports", ranges: items.flatMap((item) => this.portsOf(item)) };
    }
    if (first.kind === "ip" || first.kind === "cidr" || (first.kind === "ref" && first.refKind === "net")) {
      return { kind: "cidrs", cidrs: items.flatMap((item) => this.cidrsOf(item)) };
    }
    if (first.kind === "endpoint" || (first.kind === "ref" && first.refKind === "service")) {
      return { kind: "endpoints", endpoints: items.flatMap((item) => this.endpointsOf(item)) };
    }
    return { kind: "identities", members: items.flatMap((item) => this.identitiesOf(item)) };
  }

  private portsOf(item: A.Expr): readonly PortRange[] {
    if (item.kind === "int") return [{ low: item.value, high: item.value }];
    if (item.kind === "range") return [{ low: item.low.value, high: item.high.value }];
    if (item.kind === "ref" && item.refKind === "ports") return this.policy.ports.get(item.name.name)!;
    throw new Error(`unexpected port list item ${item.kind}`);
  }

  private cidrsOf(item: A.Expr): readonly Cidr[] {
    if (item.kind === "ip") return [{ family: item.family, bytes: item.bytes, prefix: item.family === 4 ? 32 : 128 }];
    if (item.kind === "cidr") return [{ family: item.family, bytes: item.bytes, prefix: item.prefix }];
    if (item.kind === "ref" && item.refKind === "net") return this.policy.nets.get(item.name.name)!;
    throw new Error(`unexpected address list item ${item.kind}`);
  }

  private endpointsOf(item: A.Expr): readonly Endpoint[] {
    if (item.kind === "endpoint") return [endpointOf(item)];
    if (item.kind === "ref" && item.refKind === "service") return this.policy.services.get(item.name.name)!.endpoints;
    throw new Error(`unexpected endpoint list item ${item.kind}`);
  }

  /** A string is a pattern when it has a `*`, else an exact ID (as in the reference). */
  private identitiesOf(item: A.Expr): readonly IdentityMember[] {
    if (item.kind === "ref" && item.refKind === "workload") return [{ kind: "exact", id: this.policy.workloadsByName.get(item.name.name)!.id }];
    if (item.kind === "ref" && item.refKind === "group") return this.policy.groups.get(item.name.name)!;
    if (item.kind === "string") {
      const pattern = normalisePattern(item.value);
      return pattern.pieces.length > 1 ? [{ kind: "pattern", pattern }] : [{ kind: "exact", id: checkedSpiffeId(item.value) }];
    }
    throw new Error(`unexpected identity list item ${item.kind}`);
  }
}

/**
 * The rule's annotations as Cedar annotations, `@id` first when the rule had none. Cedar
 * annotation names are identifiers without `-`, so `-` becomes `_` (suffixed if taken).
 */
function annotations(rule: RuleInfo): string[] {
  const out: string[] = [];
  const used = new Set<string>();
  const add = (name: string, value: string) => {
    let key = name.replace(/-/g, "_");
    while (used.has(key)) key += "_";
    used.add(key);
    out.push(`@${key}(${cedarString(value)})`);
  };
  if (!rule.annotations.some((a) => a.name === "id")) add("id", rule.id);
  for (const a of rule.annotations) add(a.name, a.value);
  return out;
}

// ---------------------------------------------------------------- requests

/** One request in Cedar's terms: what `isAuthorized` takes besides the policies. */
export interface CedarRequest {
  readonly principal: CedarWasm.TypeAndId;
  readonly action: CedarWasm.TypeAndId;
  readonly resource: CedarWasm.TypeAndId;
  readonly context: CedarWasm.Context;
  readonly entities: CedarWasm.EntityJson[];
}

const UNIDENTIFIED_PRINCIPAL: CedarWasm.TypeAndId = { type: "Unidentified", id: "process" };
const CONNECT_ACTION: CedarWasm.TypeAndId = { type: "Action", id: "connect" };

/** The Cedar request for `request`; a v4-mapped address is given as IPv4 (spec §1), as Cedar needs. */
export function cedarRequest(request: Request): CedarRequest {
  const mapped = request.family === 6 && isV4Mapped(request.ip);
  const ip = mapped ? formatIp(4, request.ip.slice(12)) : formatIp(request.family, request.ip);
  const principal = request.principal === null ? UNIDENTIFIED_PRINCIPAL : { type: "Workload", id: request.principal };
  return {
    principal,
    action: CONNECT_ACTION,
    resource: { type: "Destination", id: ip },
    context: { ip: { __extn: { fn: "ip", arg: ip } }, port: request.port, protocol: request.protocol, uid: request.uid, gid: request.gid },
    entities: request.principal === null ? [] : [{ uid: principal, attrs: { id: request.principal }, parents: [] }],
  };
}

/** The Cedar request as JSON, for reproducing a decision with any Cedar tool. */
export function cedarRequestJson(request: Request): string {
  return JSON.stringify(cedarRequest(request), null, 2);
}

// ---------------------------------------------------------------- evaluation

function cedarErrors(errors: readonly CedarWasm.DetailedError[]): string {
  return errors.map((e) => (e.help === null ? e.message : `${e.message} (${e.help})`)).join("; ");
}

let nextPolicySetId = 0;

/**
 * Decides requests with Cedar on the exported policies. Any Cedar error (a policy that does
 * not parse, a condition that errors) throws: an error would otherwise skip a policy and
 * silently change the decision.
 */
export class CedarEvaluator implements Evaluator {
  private readonly policySetId = `portcullis-${process.pid}-${nextPolicySetId++}`;
  private readonly extraIds: ReadonlySet<string>;

  constructor(policy: PolicySet) {
    const exported = exportCedar(policy);
    this.extraIds = new Set(Object.keys(exported.extraPolicies));
    const answer = cedar.preparsePolicySet(this.policySetId, { staticPolicies: { ...exported.policies, ...exported.extraPolicies } });
    if (answer.type === "failure") throw new Error(`cedar could not parse the exported policies: ${cedarErrors(answer.errors)}`);
  }

  decide(request: Request): Decision {
    const { entities, ...call } = cedarRequest(request);
    const answer = cedar.statefulIsAuthorized({ ...call, entities, preparsedPolicySetId: this.policySetId });
    if (answer.type === "failure") throw new Error(`cedar failed to authorize ${JSON.stringify(call)}: ${cedarErrors(answer.errors)}`);
    const { decision, diagnostics } = answer.response;
    if (diagnostics.errors.length > 0) {
      const detail = diagnostics.errors.map((e) => `policy \`${e.policyId}\`: ${e.error.message}`).join("; ");
      throw new Error(`cedar policies errored on ${JSON.stringify(call)}: ${detail}`);
    }
    const reasons = diagnostics.reason.filter((id) => !this.extraIds.has(id)).sort();
    return { decision, reasons, default: reasons.length === 0 };
  }
}

// ---------------------------------------------------------------- files

/** Every policy of the export as one Cedar file; each policy starts with its `@id`. */
export function cedarPolicySetText(exported: CedarExport): string {
  const texts = [...Object.values(exported.policies), ...Object.values(exported.extraPolicies)];
  return `// Generated by \`portcullis export --cedar\`. Each policy's Portcullis rule id is its \`@id\`.\n\n${texts.join("\n\n")}\n`;
}

export interface WrittenCedarExport {
  readonly files: readonly string[];
  readonly policies: number;
}

/** Writes `schema.cedarschema` and `policies.cedar` into `outDir` (created if missing). */
export function writeCedarExport(policy: PolicySet, outDir: string): WrittenCedarExport {
  const exported = exportCedar(policy);
  mkdirSync(outDir, { recursive: true });
  const schemaFile = path.join(outDir, "schema.cedarschema");
  const policiesFile = path.join(outDir, "policies.cedar");
  writeFileSync(schemaFile, exported.schema);
  writeFileSync(policiesFile, cedarPolicySetText(exported));
  return { files: [schemaFile, policiesFile], policies: Object.keys(exported.policies).length + Object.keys(exported.extraPolicies).length };
}
