// Owns the boundary points of a policy set: every value of every request field at which
// some rule, declaration or default can change its mind (DESIGN.md, invariant 1), and a
// deterministic set of requests that hits each of them. Differential tests run every
// evaluator on these requests and compare it with the reference.
//
// Per field:
// - principal: every declared workload, service and exact ID of the set; for each one,
//   near misses (one character more or less, a child, the parent, another trust domain);
//   for each `*` pattern, IDs that match it and near misses; IDs in a trust domain the set
//   never names; and `unidentified`;
// - uid / gid: each constant compared with `principal.uid` / `principal.gid` (and each end
//   of a range or set tested with `in`) ± 1, each `uid`/`gid` selector, 0 and 4294967295;
// - ip: each CIDR's first and last address ± 1 (with carry, clamped to the address space),
//   every address and endpoint, a few unrelated addresses, in both families; an IPv6
//   result in `::ffff:0:0/96` is given as IPv4, as every request is (request.ts);
// - port: each end of every range and each constant ± 1 (clamped to 0..65535), every
//   endpoint's port, 0 and 65535;
// - protocol: both.
//
// INVARIANT: the result depends only on the policy set (no randomness), and every point of
// every field appears in at least one request whatever the `limit`.
import type * as A from "../../dsl/ast.js";
import { isV4Mapped, maskBytes, parseIp } from "../../dsl/ip.js";
import type { Cidr, IdentityMember, PolicySet, PortRange, Protocol } from "../../compiler/model.js";
import { DEFAULT_UID, workloadPrincipal, type Request } from "../../compiler/request.js";
import { checkSpiffeId, matchesPattern, normalisePattern, type IdentityPattern } from "../../compiler/spiffe.js";

export const U32_MAX = 0xffffffff;
export const PORT_MAX = 65535;
export const PROTOCOLS: readonly Protocol[] = ["tcp", "udp"];

export interface Address {
  readonly family: 4 | 6;
  readonly ip: readonly number[];
}

export interface EndpointPoint extends Address {
  readonly port: number;
  readonly protocol: Protocol;
}

/** The boundary values of each request field, each list without duplicates. */
export interface BoundaryPoints {
  /** Normalised SPIFFE IDs; null is `unidentified`. */
  readonly principals: readonly (string | null)[];
  readonly uids: readonly number[];
  readonly gids: readonly number[];
  readonly addresses: readonly Address[];
  readonly ports: readonly number[];
  /** Every endpoint of every service and endpoint literal. */
  readonly endpoints: readonly EndpointPoint[];
  /** Every CIDR of the set (nets, literals, lists), for drawing addresses inside them. */
  readonly cidrs: readonly Cidr[];
  /** A principal's uid/gid when a request names none (spec §6). */
  defaults(principal: string | null): { readonly uid: number; readonly gid: number };
}

export interface BoundaryOptions {
  /**
   * At most this many requests (default 20,000). The first requests always cover every
   * point of every field and every endpoint, so the result is never shorter than the
   * longest field list plus the number of endpoints.
   */
  readonly limit?: number;
}

/** Addresses no policy is likely to name, in both families. */
const UNRELATED_ADDRESSES = ["0.0.0.0", "1.2.3.4", "8.8.8.8", "127.0.0.1", "203.0.113.7", "255.255.255.255", "::", "::1", "2001:db8::dead:beef", "fe80::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"];
/** Identities in trust domains no policy is likely to name. */
const UNRELATED_IDS = ["spiffe://unrelated.test", "spiffe://unrelated.test/ns/x/sa/y"];
const ELSEWHERE = "spiffe://elsewhere.test";

// ---------------------------------------------------------------- ordered sets

/** An insertion-ordered set of values with a string key. */
class PointSet<T> {
  private readonly byKey = new Map<string, T>();
  constructor(private readonly key: (value: T) => string) {}

  add(value: T): void {
    const k = this.key(value);
    if (!this.byKey.has(k)) this.byKey.set(k, value);
  }

  values(): T[] {
    return [...this.byKey.values()];
  }
}

const addressKey = (a: Address): string => `${a.family}/${a.ip.join(".")}`;

// ---------------------------------------------------------------- addresses

/** An address as a request holds it: a v4-mapped IPv6 address is IPv4 (request.ts). */
function canonicalAddress(family: 4 | 6, bytes: readonly number[]): Address {
  return family === 6 && isV4Mapped(bytes) ? { family: 4, ip: bytes.slice(12) } : { family, ip: [...bytes] };
}

/** `bytes` + `delta` (±1) with carry, or undefined when it leaves the address space. */
function step(bytes: readonly number[], delta: 1 | -1): number[] | undefined {
  const out = [...bytes];
  for (let i = out.length - 1; i >= 0; i--) {
    const v = out[i]! + delta;
    if (v >= 0 && v <= 255) {
      out[i] = v;
      return out;
    }
    out[i] = delta === 1 ? 0 : 255;
  }
  return undefined;
}

function lastAddress(c: Cidr): number[] {
  const mask = maskBytes(new Array<number>(c.bytes.length).fill(0xff), c.prefix);
  return c.bytes.map((b, i) => b | (~mask[i]! & 0xff));
}

/** An address and its neighbours ± 1 (those that exist). */
function withNeighbours(family: 4 | 6, bytes: readonly number[]): Address[] {
  const out = [canonicalAddress(family, bytes)];
  for (const delta of [-1, 1] as const) {
    const next = step(bytes, delta);
    if (next !== undefined) out.push(canonicalAddress(family, next));
  }
  return out;
}

// ---------------------------------------------------------------- integers

function addAround(set: PointSet<number>, value: number, max: number): void {
  for (const v of [value - 1, value, value + 1]) if (v >= 0 && v <= max) set.add(v);
}

function addRange(set: PointSet<number>, r: PortRange, max: number): void {
  addAround(set, r.low, max);
  addAround(set, r.high, max);
}

// ---------------------------------------------------------------- identities

/** Near misses of an exact ID: valid IDs that differ from it by one step. */
function idNearMisses(id: string): string[] {
  const rest = id.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const path = slash < 0 ? "" : rest.slice(slash);
  const last = id[id.length - 1]!;
  const candidates = [`${id}x`, `${id}/x`, id.slice(0, -1) + (last === "x" ? "y" : "x"), id.slice(0, id.lastIndexOf("/")), `${ELSEWHERE}${path}`];
  return candidates.flatMap((c) => validId(c));
}

/** IDs that match a pattern (each `*` filled in a few ways), then near misses of the first. */
function patternPoints(pattern: IdentityPattern): string[] {
  const { pieces } = pattern;
  const out: string[] = [];
  let baseFill: string | undefined;
  for (const fill of ["x", "", "a/b", "x-1.y"]) {
    for (const id of validId(pieces.join(fill))) {
      if (!matchesPattern(pattern, id) || out.includes(id)) continue;
      out.push(id);
      baseFill ??= fill;
    }
  }
  if (baseFill === undefined) return out;
  const base = pieces.join(baseFill);
  const misses = [base.slice(0, -1), `${base}x`, `${base}/x`, base.slice(0, base.lastIndexOf("/"))];
  // The last character of each literal piece changed.
  pieces.forEach((piece, k) => {
    if (piece === "" || piece === "spiffe://") return;
    const last = piece[piece.length - 1]!;
    const changed = [...pieces];
    changed[k] = piece.slice(0, -1) + (last === "x" ? "y" : last === "/" ? "x/" : "x");
    misses.push(changed.join(baseFill));
  });
  for (const m of misses) out.push(...validId(m));
  return out;
}

function validId(text: string): string[] {
  const checked = checkSpiffeId(text);
  return checked.ok ? [checked.id] : [];
}

// ---------------------------------------------------------------- walking the rules

interface RuleConstants {
  readonly identityStrings: string[];
  readonly addresses: { family: 4 | 6; bytes: readonly number[] }[];
  readonly cidrs: Cidr[];
  readonly endpoints: EndpointPoint[];
  readonly ints: Record<"port" | "uid" | "gid", PortRange[]>;
}

function attributeOf(e: A.Expr): "port" | "uid" | "gid" | undefined {
  while (e.kind === "paren") e = e.inner;
  if (e.kind !== "name") return undefined;
  const full = e.member === undefined ? e.name.name : `${e.name.name}.${e.member.name}`;
  return full === "port" ? "port" : full === "principal.uid" ? "uid" : full === "principal.gid" ? "gid" : undefined;
}

/** The integers a constant expression stands for (an int, a range, a list, a ports set). */
function intRanges(e: A.Expr, policy: PolicySet): PortRange[] {
  switch (e.kind) {
    case "paren":
      return intRanges(e.inner, policy);
    case "int":
      return [{ low: e.value, high: e.value }];
    case "range":
      return [{ low: e.low.value, high: e.high.value }];
    case "list":
      return e.items.flatMap((item) => intRanges(item, policy));
    case "ref":
      return e.refKind === "ports" ? [...(policy.ports.get(e.name.name) ?? [])] : [];
    default:
      return [];
  }
}

function collectRuleConstants(policy: PolicySet): RuleConstants {
  const out: RuleConstants = { identityStrings: [], addresses: [], cidrs: [], endpoints: [], ints: { port: [], uid: [], gid: [] } };
  const visit = (e: A.Expr | undefined): void => {
    if (e === undefined) return;
    switch (e.kind) {
      case "string":
        out.identityStrings.push(e.value);
        return;
      case "ip":
        out.addresses.push({ family: e.family, bytes: e.bytes });
        return;
      case "cidr":
        out.cidrs.push({ family: e.family, bytes: e.bytes, prefix: e.prefix });
        return;
      case "endpoint":
        out.endpoints.push({ family: e.ip.family, ip: e.ip.bytes, port: e.port.value, protocol: e.protocol.name === "udp" ? "udp" : "tcp" });
        out.ints.port.push({ low: e.port.value, high: e.port.value });
        return;
      case "list":
        e.items.forEach(visit);
        return;
      case "paren":
        visit(e.inner);
        return;
      case "not":
        visit(e.operand);
        return;
      case "logical":
        visit(e.left);
        visit(e.right);
        return;
      case "like":
        visit(e.left);
        visit(e.pattern);
        return;
      case "compare":
      case "in": {
        const left = attributeOf(e.left);
        const right = attributeOf(e.right);
        if (left !== undefined) out.ints[left].push(...intRanges(e.right, policy));
        if (right !== undefined && e.kind === "compare") out.ints[right].push(...intRanges(e.left, policy));
        visit(e.left);
        visit(e.right);
        return;
      }
      default:
        return;
    }
  };
  for (const rule of policy.rules) {
    for (const scope of [rule.ast.principal, rule.ast.action, rule.ast.resource]) visit(scope.value);
    for (const c of rule.ast.conditions) visit(c.expr);
  }
  return out;
}

// ---------------------------------------------------------------- points

/** Every boundary value of every request field of `policy`. */
export function boundaryPoints(policy: PolicySet): BoundaryPoints {
  const constants = collectRuleConstants(policy);

  // Identities.
  const principals = new PointSet<string | null>((p) => p ?? "");
  const exact: string[] = [];
  const patterns: IdentityPattern[] = [];
  const addMember = (m: IdentityMember): void => {
    if (m.kind === "exact") exact.push(m.id);
    else patterns.push(m.pattern);
  };
  for (const w of policy.workloads) exact.push(w.id);
  for (const s of policy.services.values()) if (s.id !== undefined) exact.push(s.id);
  for (const members of policy.groups.values()) members.forEach(addMember);
  for (const text of constants.identityStrings) {
    const pattern = normalisePattern(text);
    if (pattern.pieces.length > 1) patterns.push(pattern);
    else exact.push(...validId(text));
  }
  principals.add(null);
  for (const id of exact) principals.add(id);
  for (const p of patterns) patternPoints(p).forEach((id) => principals.add(id));
  for (const id of exact) idNearMisses(id).forEach((m) => principals.add(m));
  UNRELATED_IDS.forEach((id) => principals.add(id));

  // uid and gid.
  const uids = new PointSet<number>(String);
  const gids = new PointSet<number>(String);
  for (const set of [uids, gids]) [0, DEFAULT_UID, U32_MAX].forEach((v) => set.add(v));
  for (const w of policy.workloads) {
    for (const m of w.matches) {
      if (m.uid !== undefined) addAround(uids, m.uid, U32_MAX);
      if (m.gid !== undefined) addAround(gids, m.gid, U32_MAX);
    }
  }
  constants.ints.uid.forEach((r) => addRange(uids, r, U32_MAX));
  constants.ints.gid.forEach((r) => addRange(gids, r, U32_MAX));

  // Addresses and endpoints.
  const cidrs = new PointSet<Cidr>((c) => `${c.family}/${c.bytes.join(".")}/${c.prefix}`);
  for (const net of policy.nets.values()) net.forEach((c) => cidrs.add(c));
  constants.cidrs.forEach((c) => cidrs.add(c));
  for (const a of constants.addresses) cidrs.add({ family: a.family, bytes: a.bytes, prefix: a.family === 4 ? 32 : 128 });
  const endpoints = new PointSet<EndpointPoint>((e) => `${addressKey(e)}:${e.port}/${e.protocol}`);
  for (const s of policy.services.values()) for (const e of s.endpoints) endpoints.add({ family: e.family, ip: e.bytes, port: e.port, protocol: e.protocol });
  constants.endpoints.forEach((e) => endpoints.add(e));

  const addresses = new PointSet<Address>(addressKey);
  for (const c of cidrs.values()) {
    withNeighbours(c.family, c.bytes).forEach((a) => addresses.add(a));
    withNeighbours(c.family, lastAddress(c)).forEach((a) => addresses.add(a));
  }
  for (const e of endpoints.values()) withNeighbours(e.family, e.ip).forEach((a) => addresses.add(a));
  for (const text of UNRELATED_ADDRESSES) {
    const parsed = parseIp(text)!;
    addresses.add({ family: parsed.family, ip: parsed.bytes });
  }

  // Ports.
  const ports = new PointSet<number>(String);
  [0, PORT_MAX].forEach((p) => ports.add(p));
  for (const set of policy.ports.values()) set.forEach((r) => addRange(ports, r, PORT_MAX));
  for (const e of endpoints.values()) addAround(ports, e.port, PORT_MAX);
  constants.ints.port.forEach((r) => addRange(ports, r, PORT_MAX));

  const workloadDefaults = new Map<string, { uid: number; gid: number }>();
  for (const w of policy.workloads) {
    if (workloadDefaults.has(w.id)) continue;
    const resolved = workloadPrincipal(w);
    workloadDefaults.set(w.id, { uid: resolved.defaultUid, gid: resolved.defaultGid });
  }
  const fallback = { uid: DEFAULT_UID, gid: DEFAULT_UID };

  return {
    principals: principals.values(),
    uids: uids.values(),
    gids: gids.values(),
    addresses: addresses.values(),
    ports: ports.values(),
    endpoints: endpoints.values(),
    cidrs: cidrs.values(),
    defaults: (principal) => (principal === null ? fallback : (workloadDefaults.get(principal) ?? fallback)),
  };
}

// ---------------------------------------------------------------- requests

interface Source {
  readonly principal: string | null;
  readonly uid: number;
  readonly gid: number;
}

interface Destination extends Address {
  readonly port: number;
  readonly protocol: Protocol;
}

/** A step coprime to `n` near `n` × the golden ratio: `(i × step) mod n` visits 0..n-1 spread out. */
function spreadStep(n: number): number {
  if (n <= 2) return 1;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let s = Math.max(1, Math.round(n * 0.6180339887));
  while (gcd(s, n) !== 1) s++;
  return s;
}

/**
 * Requests that hit every boundary point of `policy`, at most `options.limit` of them
 * (never fewer than the longest field list plus the endpoints). In order:
 * 1. a zip of all fields, so each point of each field appears at least once, and each
 *    endpoint exactly;
 * then, taking one request from each in turn until the limit:
 * 2. every endpoint from every principal (with its default uid/gid);
 * 3. every destination (address × port × protocol), each from the next source in turn;
 * 4. every source (principal × each uid and gid point), each to the next destination.
 */
export function boundaryRequests(policy: PolicySet, options: BoundaryOptions = {}): Request[] {
  const points = boundaryPoints(policy);
  const { principals, uids, gids, addresses, ports, endpoints } = points;
  const limit = options.limit ?? 20_000;
  const out: Request[] = [];
  const seen = new Set<string>();
  const push = (s: Source, d: Destination): void => {
    const key = `${s.principal}|${s.uid}|${s.gid}|${addressKey(d)}|${d.port}|${d.protocol}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ principal: s.principal, uid: s.uid, gid: s.gid, family: d.family, ip: d.ip, port: d.port, protocol: d.protocol });
  };

  // 1. The zip: request k takes point k (mod its length) of every field.
  const zip = Math.max(principals.length, uids.length, gids.length, addresses.length, ports.length, PROTOCOLS.length);
  for (let k = 0; k < zip; k++) {
    const address = addresses[k % addresses.length]!;
    push(
      { principal: principals[k % principals.length]!, uid: uids[k % uids.length]!, gid: gids[(k + 1) % gids.length]! },
      { ...address, port: ports[k % ports.length]!, protocol: PROTOCOLS[(k ^ (k >> 1)) & 1]! },
    );
  }

  // Every endpoint exactly (ip, port and protocol), as `resource == service` needs.
  endpoints.forEach((e, k) => {
    const principal = principals[k % principals.length]!;
    push({ principal, ...points.defaults(principal) }, e);
  });

  // Sources, variant-major: every principal with its defaults first, then with each uid
  // point, then with each gid point.
  const variants = 1 + uids.length + gids.length;
  const sourceCount = principals.length * variants;
  const source = (i: number): Source => {
    const principal = principals[i % principals.length]!;
    const v = Math.floor(i / principals.length);
    const d = points.defaults(principal);
    if (v === 0) return { principal, ...d };
    if (v <= uids.length) return { principal, uid: uids[v - 1]!, gid: d.gid };
    return { principal, uid: d.uid, gid: gids[v - 1 - uids.length]! };
  };
  const destinationCount = addresses.length * ports.length * PROTOCOLS.length;
  const destination = (i: number): Destination => {
    const address = addresses[Math.floor(i / (ports.length * PROTOCOLS.length))]!;
    return { ...address, port: ports[Math.floor(i / PROTOCOLS.length) % ports.length]!, protocol: PROTOCOLS[i % PROTOCOLS.length]! };
  };
  const destinationStep = spreadStep(destinationCount);
  const spreadDestination = (i: number): Destination => destination((i * destinationStep) % destinationCount);

  const stages: { readonly length: number; readonly at: (i: number) => [Source, Destination] }[] = [
    {
      length: endpoints.length * principals.length,
      at: (i) => {
        const principal = principals[Math.floor(i / endpoints.length)]!;
        return [{ principal, ...points.defaults(principal) }, endpoints[i % endpoints.length]!];
      },
    },
    { length: destinationCount, at: (i) => [source(i % sourceCount), spreadDestination(i)] },
    { length: sourceCount, at: (i) => [source(i), spreadDestination(i + Math.floor(destinationCount / 2))] },
  ];
  const cursors = stages.map(() => 0);
  for (let active = true; active && out.length < limit; ) {
    active = false;
    stages.forEach((stage, s) => {
      if (cursors[s]! >= stage.length || out.length >= limit) return;
      active = true;
      const [src, dst] = stage.at(cursors[s]!);
      cursors[s]!++;
      push(src, dst);
    });
  }
  return out;
}
