// Owns `--engine kernel`: deciding `eval` requests with the real kernel. The bundle is
// loaded (audit mode) at a private attach cgroup; each request becomes a process placed
// where the workload's match block puts it, with the request's uid/gid, making one real
// connect() (TCP) or UDP connect() to the loopback destination; the program's decision
// event gives every class's verdict index, combined into the decision and its reasons by
// the tables (step 6).
// Audit mode keeps the call itself flowing; the decision is still the kernel's lookup.
// The instance is unloaded when the process exits.
import { spawnSync } from "node:child_process";
import path from "node:path";
import type { Bundle } from "../compiler/bundle.js";
import { RequestError, type Decision, type Request } from "../compiler/request.js";
import type { Evaluator } from "../compiler/tests.js";
import { formatIp } from "../dsl/ip.js";
import { bundleGeneration, cgroupRelative } from "../kernel-bridge/generation.js";
import { cgroupAtOrBelow, managedCgroupPath, needsAttestation, placementCgroup } from "../kernel-bridge/lower.js";
import { artifacts, cgroup2Mount, KernelError, loadPolicy, preflight, readEvents, resolveCgroup, unloadPolicy } from "../kernel-bridge/loader.js";
import { UsageError } from "./report.js";

const NO_VERDICT = 0xffffffff;
const U32_MAX = 0xffffffff;

interface Placement {
  readonly cgroup: string;
  readonly uid: number;
  readonly gid: number;
}

/**
 * The attach point: the deepest cgroup that holds every `cgroup` selector path of the
 * bundle, when that is not the root (never govern the whole machine); else a private one.
 */
function attachPoint(bundle: Bundle): string {
  const paths = bundle.manifest.workloads.flatMap((w) => w.match.flatMap((b) => (b.cgroup === undefined ? [] : [b.cgroup])));
  const split = paths.map((p) => p.split("/").filter((s) => s !== ""));
  const common: string[] = [];
  for (let i = 0; split.length > 0 && split.every((s) => s.length > i && s[i] === split[0]![i]); i++) common.push(split[0]![i]!);
  // A selector path itself is where processes of that workload live: attach above it.
  if (split.some((s) => s.length === common.length)) common.pop();
  return common.length > 0 ? `/${common.join("/")}` : `/portcullis-eval-${process.pid}`;
}

export class KernelEngineEvaluator implements Evaluator {
  private readonly name = `eval-${process.pid}`;
  private readonly managedRoot: string;

  constructor(private readonly bundle: Bundle) {
    try {
      preflight();
      const attach = resolveCgroup(attachPoint(bundle));
      this.managedRoot = cgroupRelative(attach);
      const generation = bundleGeneration(bundle, attach);
      // No bundle copy is kept for this private instance: its events are read here, with `bundle`.
      loadPolicy({ name: this.name, cgroup: attach, image: generation.image, bundleBytes: new Uint8Array(0), audit: true, createdCgroups: generation.createdCgroups });
    } catch (e) {
      if (e instanceof KernelError) throw new UsageError(`${e.diagnostic.code}: ${e.diagnostic.message}`);
      throw e;
    }
    process.once("exit", () => {
      unloadPolicy(this.name);
    });
  }

  decide(r: Request): Decision {
    if (!(r.family === 4 ? r.ip[0] === 127 : r.ip.every((b, i) => b === (i === 15 ? 1 : 0)))) {
      throw new RequestError("ip", "`--engine kernel` connects for real: only loopback destinations (127.0.0.0/8, ::1)");
    }
    const p = this.place(r);
    const line = `${r.protocol} connect ${formatIp(r.family, r.ip)} ${r.port}\n`;
    const child = spawnSync(artifacts.runner(), ["probe", path.join(cgroup2Mount(), p.cgroup), String(p.uid), String(p.gid)], { input: line, encoding: "utf8" });
    if (child.status !== 0) throw new Error(`portcullis_run failed: ${child.stderr.trim()}`);
    const event = readEvents(this.name, 100).filter((e) => e.pid === child.pid).pop();
    if (event === undefined) throw new Error("the kernel logged no decision for the request");
    if (event.verdict === NO_VERDICT || event.verdicts.length === 0 || event.verdicts.includes(NO_VERDICT)) throw new Error("a kernel map lookup missed (a lowering bug)");
    const decision = this.bundle.reader.combine(event.verdicts);
    if ((decision.decision === "allow") !== event.allowed) throw new Error("the kernel's decision disagrees with its verdicts");
    return decision;
  }

  /** Where a process must run to be `r.principal` with `r.uid`/`r.gid`, or a RequestError. */
  private place(r: Request): Placement {
    if (r.uid === U32_MAX || r.gid === U32_MAX) throw new RequestError("uid", "no process has uid or gid 4294967295");
    const workloads = this.bundle.manifest.workloads;
    let cgroup = this.managedRoot;
    if (r.principal !== null) {
      const w = workloads.find((x) => x.id === r.principal);
      if (w === undefined) throw new RequestError("principal", `\`--engine kernel\` runs local processes: \`${r.principal}\` is no workload of the policy`);
      const block = w.match.find((b) => (b.uid === undefined || b.uid === r.uid) && (b.gid === undefined || b.gid === r.gid));
      if (block === undefined) throw new RequestError("uid", `no match block of workload \`${w.name}\` admits uid ${r.uid}, gid ${r.gid}`);
      cgroup = placementCgroup(this.managedRoot, w.name, block);
      if (!cgroupAtOrBelow(cgroup, this.managedRoot)) throw new RequestError("principal", `workload \`${w.name}\` lives in \`${cgroup}\`, outside the attach point \`${this.managedRoot}\` that the kernel engine can use`);
    }
    const placed = { cgroup, uid: r.uid, gid: r.gid };
    const actual = this.workloadOf(placed);
    if (actual !== r.principal) throw new RequestError("principal", `a process in \`${cgroup}\` with uid ${r.uid}, gid ${r.gid} is ${actual ?? "unidentified"}, not ${r.principal ?? "unidentified"}`);
    return placed;
  }

  /** The first workload in policy-set order with a match block that holds for `p`. */
  private workloadOf(p: Placement): string | null {
    for (const w of this.bundle.manifest.workloads) {
      for (const b of w.match) {
        const cgroupOk = needsAttestation(b) ? cgroupAtOrBelow(p.cgroup, managedCgroupPath(this.managedRoot, w.name, b)) : b.cgroup === undefined || cgroupAtOrBelow(p.cgroup, b.cgroup);
        if (cgroupOk && (b.uid === undefined || b.uid === p.uid) && (b.gid === undefined || b.gid === p.gid)) return w.id;
      }
    }
    return null;
  }
}
