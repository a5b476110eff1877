// Owns the checked policy set: the AST of every file plus everything the checker
// resolved (declarations by name with references flattened, normalised SPIFFE IDs,
// rule ids, the unidentified default), and the one conversion every stage shares: an
// endpoint literal to an `Endpoint`. The reference interpreter and the decision-table
// builder read this; nothing here is evaluated.
import type * as A from "../dsl/ast.js";
import type { IdentityPattern } from "./spiffe.js";

export interface PolicySource {
  /** The path as shown in diagnostics (as the user named it, or relative to the cwd). */
  readonly path: string;
  /** The path relative to the policy root: what rule names and bundle hashes use. */
  readonly relPath: string;
  readonly text: string;
}

export interface Cidr {
  readonly family: 4 | 6;
  /** 4 or 16 bytes, host bits zero. */
  readonly bytes: readonly number[];
  readonly prefix: number;
}

export interface PortRange {
  readonly low: number;
  readonly high: number;
}

export type Protocol = "tcp" | "udp";

export interface Endpoint {
  readonly family: 4 | 6;
  readonly bytes: readonly number[];
  readonly port: number;
  readonly protocol: Protocol;
}

export function endpointOf(lit: A.EndpointLit): Endpoint {
  return { family: lit.ip.family, bytes: lit.ip.bytes, port: lit.port.value, protocol: lit.protocol.name === "udp" ? "udp" : "tcp" };
}

/** One `match { … }` block: every present key must hold (AND). */
export interface MatchSpec {
  readonly cgroup?: string;
  readonly uid?: number;
  readonly gid?: number;
  readonly exe?: string;
  /** Lower-case hex. */
  readonly sha256?: string;
}

export interface WorkloadInfo {
  readonly name: string;
  /** Normalised SPIFFE ID. */
  readonly id: string;
  /** Any block may match (OR). */
  readonly matches: readonly MatchSpec[];
  readonly decl: A.WorkloadDecl;
}

/** A member of an identity set: an exact SPIFFE ID, or a `like` pattern. */
export type IdentityMember = { readonly kind: "exact"; readonly id: string } | { readonly kind: "pattern"; readonly pattern: IdentityPattern };

export interface ServiceInfo {
  readonly name: string;
  readonly id: string | undefined;
  readonly endpoints: readonly Endpoint[];
  readonly decl: A.ServiceDecl;
}

export interface RuleInfo {
  /** `@id` value, or `FILE:LINE` with FILE relative to the policy root. */
  readonly id: string;
  readonly effect: "permit" | "forbid";
  /** Every annotation, `id` included, in source order. */
  readonly annotations: readonly { readonly name: string; readonly value: string }[];
  readonly ast: A.Rule;
}

export interface TestInfo {
  readonly name: string;
  readonly ast: A.TestBlock;
}

export interface PolicySet {
  readonly sources: readonly PolicySource[];
  readonly files: readonly A.PolicyFile[];
  /** In policy-set order: files sorted by path, then declaration order (first match wins). */
  readonly workloads: readonly WorkloadInfo[];
  readonly workloadsByName: ReadonlyMap<string, WorkloadInfo>;
  /** Groups flattened through nested `group` members. */
  readonly groups: ReadonlyMap<string, readonly IdentityMember[]>;
  /** Nets flattened through nested `net` items. */
  readonly nets: ReadonlyMap<string, readonly Cidr[]>;
  readonly ports: ReadonlyMap<string, readonly PortRange[]>;
  readonly services: ReadonlyMap<string, ServiceInfo>;
  readonly defaultUnidentified: "allow" | "deny";
  readonly rules: readonly RuleInfo[];
  readonly tests: readonly TestInfo[];
}
