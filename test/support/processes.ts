// Owns the tests' model of a local process and of its identity (spec §3), written for
// clarity as the oracle of the kernel identity map: a process has a cgroup path, a uid,
// a gid and — only when `portcullis exec` attested it — an executable and its digest.
// Its workload is the first in policy-set order one of whose `match` blocks matches.
import type { MatchSpec } from "../../compiler/model.js";
import { DEFAULT_UID } from "../../compiler/request.js";
import { managedCgroupPath, needsAttestation } from "../../kernel-bridge/lower.js";

/** (uid_t)-1 / (gid_t)-1: Linux never gives a process this uid or gid. */
export const INVALID_ID = 0xffffffff;

export interface ProcessFacts {
  /** Cgroup v2 path below the mount, `/a/b`. */
  readonly cgroup: string;
  readonly uid: number;
  readonly gid: number;
  /** Known only for a process `portcullis exec` attested (and placed in its managed cgroup). */
  readonly exe?: string;
  readonly sha256?: string;
}

/** `path` is `prefix` or below it, on whole segments (spec §3, `cgroup` selector), spelled out. */
function cgroupAtOrBelow(path: string, prefix: string): boolean {
  if (prefix === "/") return true;
  const p = path.split("/");
  const q = prefix.split("/");
  return q.length <= p.length && q.every((segment, i) => segment === p[i]);
}

export function blockMatches(block: MatchSpec, p: ProcessFacts): boolean {
  return (
    (block.cgroup === undefined || cgroupAtOrBelow(p.cgroup, block.cgroup)) &&
    (block.uid === undefined || block.uid === p.uid) &&
    (block.gid === undefined || block.gid === p.gid) &&
    (block.exe === undefined || block.exe === p.exe) &&
    (block.sha256 === undefined || block.sha256 === p.sha256)
  );
}

/** Index (policy-set order) of the process's workload, or undefined when unidentified. */
export function firstWorkload(workloads: readonly { readonly match: readonly MatchSpec[] }[], p: ProcessFacts): number | undefined {
  const index = workloads.findIndex((w) => w.match.some((b) => blockMatches(b, p)));
  return index < 0 ? undefined : index;
}

/** A process placed for one match block of one workload. */
export interface PlacedProcess {
  /** Index of the workload it was placed for. */
  readonly workload: number;
  readonly facts: ProcessFacts;
  /** Started by `portcullis exec`: exec refuses it unless its first matching workload is `workload`. */
  readonly attested: boolean;
}

/**
 * One process per match block of every workload, placed as `portcullis exec --as` would:
 * in the block's managed cgroup when it needs attestation (with its exe and digest), else
 * in its `cgroup` path or, without one, in a cgroup of its own under `managedRoot`; with
 * the block's uid/gid, else the default 1000. Left out: blocks whose uid or gid is
 * 4294967295 ((uid_t)-1, which no process can have) and attested processes that exec
 * would refuse.
 */
export function blockProcesses(workloads: readonly { readonly name: string; readonly match: readonly MatchSpec[] }[], managedRoot: string): PlacedProcess[] {
  const placed = workloads.flatMap((w, workload) =>
    w.match.map((b): PlacedProcess => {
      const ids = { uid: b.uid ?? DEFAULT_UID, gid: b.gid ?? DEFAULT_UID };
      if (!needsAttestation(b)) return { workload, facts: { cgroup: b.cgroup ?? `${managedRoot}/own.${w.name}`, ...ids }, attested: false };
      const attestedFacts = { ...(b.exe === undefined ? {} : { exe: b.exe }), ...(b.sha256 === undefined ? {} : { sha256: b.sha256 }) };
      return { workload, facts: { cgroup: managedCgroupPath(managedRoot, w.name, b), ...ids, ...attestedFacts }, attested: true };
    }),
  );
  return placed.filter((p) => p.facts.uid !== INVALID_ID && p.facts.gid !== INVALID_ID && (!p.attested || firstWorkload(workloads, p.facts) === p.workload));
}
