// Owns the request and decision shapes every evaluator shares (spec §1, §5), and turning
// user input (`--from`, `--to`, a JSONL request line) into a request, with one clear error
// per bad field. Identity strings are normalised here, once.
import { parseIp } from "../dsl/ip.js";
import type { PolicySet, Protocol } from "./model.js";
import { checkSpiffeId } from "./spiffe.js";

export interface Request {
  /** Normalised SPIFFE ID of the caller's workload; null = unidentified. */
  readonly principal: string | null;
  readonly uid: number;
  readonly gid: number;
  readonly family: 4 | 6;
  /** 4 or 16 bytes; a v4-mapped address is given as IPv4. */
  readonly ip: readonly number[];
  readonly port: number;
  readonly protocol: Protocol;
}

export interface Decision {
  readonly decision: "allow" | "deny";
  /** Sorted rule ids of the deciding rules (the matching forbids, else the matching permits). */
  readonly reasons: readonly string[];
  /** True when no rule matched and the default decided. */
  readonly default: boolean;
}

/** Default uid/gid for a request (spec §6): the workload's first selector value, else 1000. */
export const DEFAULT_UID = 1000;

/** An input error in one request field; the message is one line. */
export class RequestError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

const U32_MAX = 0xffffffff;

function u32(field: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > U32_MAX) {
    throw new RequestError(field, `\`${field}\` must be an integer in 0..${U32_MAX}, not ${JSON.stringify(value)}`);
  }
  return value;
}

export function parsePort(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new RequestError("port", `\`port\` must be an integer in 0..65535, not ${JSON.stringify(value)}`);
  }
  return value;
}

export function parseProtocol(value: unknown): Protocol {
  if (value !== "tcp" && value !== "udp") throw new RequestError("protocol", `\`protocol\` must be "tcp" or "udp", not ${JSON.stringify(value)}`);
  return value;
}

export function parseAddress(value: unknown): { family: 4 | 6; ip: number[] } {
  const parsed = typeof value === "string" ? parseIp(value) : undefined;
  if (parsed === undefined) throw new RequestError("ip", `\`ip\` must be an IPv4 or IPv6 address, not ${JSON.stringify(value)}`);
  return { family: parsed.family, ip: parsed.bytes };
}

export interface ResolvedPrincipal {
  readonly principal: string | null;
  /** The uid/gid a request gets when it names none (spec §6). */
  readonly defaultUid: number;
  readonly defaultGid: number;
}

/**
 * `"spiffe://…"`, `"workload:NAME"`, `"unidentified"` or null. A workload's default uid/gid
 * are its first `uid`/`gid` selector values, else 1000.
 */
export function resolvePrincipal(value: unknown, policy: Pick<PolicySet, "workloadsByName">): ResolvedPrincipal {
  if (value === null || value === "unidentified") return { principal: null, defaultUid: DEFAULT_UID, defaultGid: DEFAULT_UID };
  if (typeof value !== "string") throw new RequestError("principal", `\`principal\` must be a SPIFFE ID, "workload:NAME" or null, not ${JSON.stringify(value)}`);
  if (value.startsWith("workload:")) {
    const name = value.slice("workload:".length);
    const w = policy.workloadsByName.get(name);
    if (w === undefined) throw new RequestError("principal", `unknown workload \`${name}\``);
    return workloadPrincipal(w);
  }
  const checked = checkSpiffeId(value);
  if (!checked.ok) throw new RequestError("principal", `invalid SPIFFE ID \`${value}\`: ${checked.reason}`);
  return { principal: checked.id, defaultUid: DEFAULT_UID, defaultGid: DEFAULT_UID };
}

export function workloadPrincipal(w: { id: string; matches: readonly { uid?: number; gid?: number }[] }): ResolvedPrincipal {
  const uid = w.matches.find((m) => m.uid !== undefined)?.uid ?? DEFAULT_UID;
  const gid = w.matches.find((m) => m.gid !== undefined)?.gid ?? DEFAULT_UID;
  return { principal: w.id, defaultUid: uid, defaultGid: gid };
}

/** One JSONL request line: `{"principal", "uid", "gid", "ip", "port", "protocol"}`. */
export function parseRequestObject(value: unknown, policy: Pick<PolicySet, "workloadsByName">): Request {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new RequestError("request", "a request must be a JSON object");
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!["principal", "uid", "gid", "ip", "port", "protocol"].includes(key)) throw new RequestError(key, `unknown field \`${key}\``);
  }
  const p = resolvePrincipal(o["principal"] ?? null, policy);
  const { family, ip } = parseAddress(o["ip"]);
  return {
    principal: p.principal,
    uid: o["uid"] === undefined ? p.defaultUid : u32("uid", o["uid"]),
    gid: o["gid"] === undefined ? p.defaultGid : u32("gid", o["gid"]),
    family,
    ip,
    port: parsePort(o["port"]),
    protocol: parseProtocol(o["protocol"]),
  };
}

/** `10.0.0.1:443/tcp` or `[fd00::1]:443/udp`. */
export function parseEndpointText(text: string): { family: 4 | 6; ip: number[]; port: number; protocol: Protocol } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]+)\/([a-z]+)$/.exec(text);
  if (m === null) throw new RequestError("to", `\`${text}\` is not an endpoint like 10.0.0.1:443/tcp or [fd00::1]:443/udp`);
  const { family, ip } = parseAddress(m[1] ?? m[2]);
  return { family, ip, port: parsePort(Number(m[3])), protocol: parseProtocol(m[4]) };
}

export function decisionJson(d: Decision): string {
  return JSON.stringify({ decision: d.decision, reasons: d.reasons, default: d.default });
}
