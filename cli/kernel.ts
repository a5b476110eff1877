// Owns the kernel commands: `portcullis kernel load|status|events|unload` and
// `portcullis exec --as <workload> -- <cmd…>`. Thin: the kernel work is in
// kernel-bridge/loader.ts; this file turns flags into calls, resolves indices to ids through
// the bundle manifest, and prints. Kernel errors are one diagnostic line on stderr.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { accessSync, constants, existsSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { readBundle, type Bundle, type BundleManifest } from "../compiler/bundle.js";
import { LoweringError } from "../compiler/tables.js";
import { diag, formatDiagnostic } from "../dsl/diagnostics.js";
import { formatIp } from "../dsl/ip.js";
import { bundleGeneration, cgroupRelative } from "../kernel-bridge/generation.js";
import { cgroupAtOrBelow, execPlacement } from "../kernel-bridge/lower.js";
import { MAP_NAMES, type MapName } from "../kernel-bridge/layout.js";
import {
  artifacts,
  checkName,
  cgroup2Mount,
  instanceStatus,
  KernelError,
  loadPolicy,
  MAX_RULES,
  preflight,
  readEvents,
  readState,
  resolveCgroup,
  unloadPolicy,
  type RawEvent,
} from "../kernel-bridge/loader.js";
import { ExitCode } from "./exit-codes.js";
import { CommandFailed, loadBundleFile } from "./policy-commands.js";

type Out = (s: string) => void;

export { DEFAULT_INSTANCE } from "./kernel-instance.js";

/** Runs a kernel action; a KernelError or a kernel lowering refusal becomes one line and exit 1. */
function guarded<T>(err: Out, action: () => T): T {
  try {
    return action();
  } catch (e) {
    if (e instanceof KernelError) {
      err(formatDiagnostic(e.diagnostic, undefined));
      throw new CommandFailed(ExitCode.Failure);
    }
    if (e instanceof LoweringError) {
      err(formatDiagnostic(diag("LoweringLimit", undefined, e.message), undefined));
      throw new CommandFailed(ExitCode.Failure);
    }
    throw e;
  }
}

function badOption(err: Out, message: string): never {
  err(formatDiagnostic(diag("KernelBadOption", undefined, message), undefined));
  throw new CommandFailed(ExitCode.Usage);
}

/** `--capacity ident=1000,port_lpm=2000000` */
function parseCapacity(text: string | undefined, err: Out): Partial<Record<MapName, number>> {
  if (text === undefined) return {};
  const out: Partial<Record<MapName, number>> = {};
  for (const part of text.split(",")) {
    const [map, value] = part.split("=");
    if (!(MAP_NAMES as string[]).includes(map ?? "") || !/^[1-9][0-9]{0,9}$/.test(value ?? "")) {
      badOption(err, `\`--capacity ${part}\` must be MAP=N with MAP one of ${MAP_NAMES.join(", ")}`);
    }
    out[map as MapName] = Number(value);
  }
  return out;
}

export interface LoadOptions {
  readonly cgroup: string;
  readonly audit: boolean;
  readonly name: string;
  readonly capacity?: string;
}

export function runKernelLoad(bundleFile: string, opts: LoadOptions, out: Out, err: Out): number {
  const name = guarded(err, () => checkName(opts.name));
  const capacity = parseCapacity(opts.capacity, err);
  const bundle = loadBundleFile(bundleFile, err);
  const result = guarded(err, () => {
    preflight();
    const cgroup = resolveCgroup(opts.cgroup);
    const generation = bundleGeneration(bundle, cgroup);
    return { cgroup, ...loadPolicy({ name, cgroup, image: generation.image, bundleBytes: readFileSync(bundleFile), audit: opts.audit, capacity, createdCgroups: generation.createdCgroups }) };
  });
  // A `cgroup` selector outside the attach point names processes the programs never see.
  const attach = cgroupRelative(result.cgroup);
  for (const w of bundle.manifest.workloads) {
    for (const b of w.match) {
      if (b.cgroup !== undefined && !cgroupAtOrBelow(b.cgroup, attach)) {
        err(`warning: workload \`${w.name}\` matches cgroup \`${b.cgroup}\`, outside the attach point \`${attach}\`: the kernel does not govern processes there`);
      }
    }
  }
  const total = Object.values(result.counts).reduce((a, b) => a + b, 0);
  const verb = result.created ? `loaded and attached to ${result.cgroup}` : "swapped in";
  out(`policy \`${name}\` ${verb}: generation ${result.generation}, ${total} map entries${opts.audit ? ", audit mode (denies are logged, not enforced)" : ""}`);
  return ExitCode.Ok;
}

function stateBundle(file: string | undefined): Bundle | undefined {
  if (file === undefined || !existsSync(file)) return undefined;
  const read = readBundle(readFileSync(file), file);
  return read.ok ? read.bundle : undefined;
}

export function runKernelStatus(name: string, json: boolean, out: Out, err: Out): number {
  const state = guarded(err, () => {
    preflight();
    const s = readState(checkName(name));
    if (s === undefined) throw new KernelError(diag("KernelNotLoaded", undefined, name));
    return s;
  });
  const bundles = state.generations.map((g) => stateBundle(g?.bundle));
  const ruleCountOf = (b: Bundle | undefined) => b?.manifest.rules.length ?? 0;
  const status = guarded(err, () => instanceStatus(name, Math.max(...bundles.map(ruleCountOf))));
  const manifest = bundles[status.generation]?.manifest;
  const counters = [...status.counters].map(([slot, c]) => ({
    rule: slot === MAX_RULES ? null : (manifest?.rules[slot]?.id ?? `#${slot}`),
    allowed: Number(c.allowed),
    denied: Number(c.denied),
  }));
  const active = state.generations[status.generation];
  if (json) {
    out(JSON.stringify({ name, cgroup: state.cgroup, generation: status.generation, swaps: status.swaps, audit: active?.audit ?? false, loadedAt: active?.loadedAt, programs: status.programs, entries: status.entries, capacity: state.capacity, counters }));
    return ExitCode.Ok;
  }
  out(`policy \`${name}\` attached at ${state.cgroup}`);
  out(`generation ${status.generation} (${status.swaps} swaps), ${active?.audit ? "audit mode" : "enforcing"}, loaded ${active?.loadedAt ?? "?"}`);
  out(`programs: ${status.programs.map((p) => `${p.name.replace(/^pc_/, "")} #${p.id} ${p.attached ? "attached" : "NOT attached"}`).join(", ")}`);
  out(`maps (entries / capacity): ${MAP_NAMES.map((m) => `${m} ${status.entries[m]}/${state.capacity[m]}`).join(", ")}`);
  out(counters.length === 0 ? "counters: no decisions yet" : "counters (allowed / denied):");
  for (const c of counters) out(`  ${c.rule ?? "(default)"}: ${c.allowed} / ${c.denied}`);
  return ExitCode.Ok;
}

/** One event as `kernel events` prints it: SPIFFE ID, workload and rule id resolved. */
export function eventJson(e: RawEvent, manifest: BundleManifest | undefined): Record<string, unknown> {
  const workload = e.workload === undefined ? undefined : manifest?.workloads[e.workload];
  return {
    time_ns: e.timeNs.toString(),
    pid: e.pid,
    comm: e.comm,
    cgroup_id: e.cgroupId.toString(),
    uid: e.uid,
    gid: e.gid,
    identity_class: e.identityClass,
    principal: workload?.id ?? null,
    workload: workload?.name ?? null,
    ip: formatIp(e.family, e.addr),
    port: e.port,
    protocol: e.protocol === 6 ? "tcp" : e.protocol === 17 ? "udp" : e.protocol,
    hook: e.hook,
    decision: e.allowed ? "allow" : "deny",
    enforced: !e.returned,
    rule: e.rule === 0xffffffff ? null : (manifest?.rules[e.rule]?.id ?? null),
    generation: e.generation,
  };
}

export interface EventsOptions {
  readonly name: string;
  readonly follow: boolean;
  /** How long to wait for the first events, in ms. */
  readonly wait: number;
}

export async function runKernelEvents(opts: EventsOptions, out: Out, err: Out): Promise<number> {
  const state = guarded(err, () => {
    preflight();
    const s = readState(checkName(opts.name));
    if (s === undefined) throw new KernelError(diag("KernelNotLoaded", undefined, opts.name));
    return s;
  });
  const manifests = state.generations.map((g) => stateBundle(g?.bundle)?.manifest);
  let stop = false;
  const onSignal = () => {
    stop = true;
  };
  process.once("SIGINT", onSignal);
  try {
    do {
      for (const e of guarded(err, () => readEvents(opts.name, opts.wait))) out(JSON.stringify(eventJson(e, manifests[e.generation])));
      await new Promise((r) => setImmediate(r));
    } while (opts.follow && !stop);
  } finally {
    process.off("SIGINT", onSignal);
  }
  return ExitCode.Ok;
}

export function runKernelUnload(name: string, out: Out, err: Out): number {
  const result = guarded(err, () => unloadPolicy(checkName(name)));
  out(`policy \`${name}\` unloaded: programs detached, pins and state removed`);
  for (const c of result.busyCgroups) err(`warning: cgroup ${c} still holds processes and was left in place`);
  return ExitCode.Ok;
}

export interface ExecOptions {
  readonly as: string;
  readonly bundle?: string;
  readonly name: string;
}

function resolveCommand(cmd: string): string | undefined {
  if (cmd.includes("/")) return existsSync(cmd) ? path.resolve(cmd) : undefined;
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    const candidate = path.join(dir || ".", cmd);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      continue;
    }
  }
  return undefined;
}

/**
 * `portcullis exec --as W -- cmd…`: places the command as lower.ts `execPlacement` says (the
 * first match block of W whose `exe` (the command's path on PATH, or its real path) and
 * `sha256` accept it; refused when an earlier workload would claim the process), then runs
 * it through portcullis_run in that cgroup with that uid/gid. Resolves to its exit code.
 */
export function runExec(command: readonly string[], opts: ExecOptions, err: Out): number {
  const name = guarded(err, () => checkName(opts.name));
  const state = guarded(err, () => {
    preflight();
    return readState(name) ?? failNotLoaded(name);
  });
  const bundleFile =
    opts.bundle ??
    guarded(err, () => {
      const status = instanceStatus(name, 0);
      return status.state.generations[status.generation]?.bundle ?? failNotLoaded(name);
    });
  const bundle = loadBundleFile(bundleFile!, err);
  const workload = bundle.manifest.workloads.find((w) => w.name === opts.as);
  const shown = command.join(" ");
  const refuse = (why: string): never => {
    err(formatDiagnostic(diag("ExecMismatch", undefined, shown, opts.as, why), undefined));
    throw new CommandFailed(ExitCode.Failure);
  };
  if (workload === undefined) return refuse(`the bundle declares no workload \`${opts.as}\``);
  if (command.length === 0) badOption(err, "`exec` needs a command after `--`");
  const resolved = resolveCommand(command[0]!);
  if (resolved === undefined) return refuse(`\`${command[0]}\` is not an executable file`);
  const real = realpathSync(resolved);
  const sha256 = createHash("sha256").update(readFileSync(real)).digest("hex");
  const attach = state.cgroup;
  const managedRoot = cgroupRelative(attach);
  const facts = (exe: string) => ({ exe, sha256, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
  // The command as found on PATH, else its real path (an `exe` selector may name either).
  let placement = execPlacement(bundle.manifest.workloads, workload.name, facts(resolved), managedRoot);
  if (!placement.ok && real !== resolved) placement = execPlacement(bundle.manifest.workloads, workload.name, facts(real), managedRoot);
  if (!placement.ok) return refuse(placement.reason);
  const dir = path.join(cgroup2Mount(), placement.cgroup);
  if (!cgroupAtOrBelow(placement.cgroup, managedRoot)) return refuse(`its cgroup \`${placement.cgroup}\` is not under the attach point \`${managedRoot}\`, so no policy would apply`);
  if (!existsSync(dir)) return refuse(`its cgroup \`${placement.cgroup}\` does not exist (load the policy again to create it)`);
  const child = spawnSync(artifacts.runner(), ["exec", dir, String(placement.uid), String(placement.gid), "--", resolved, ...command.slice(1)], { stdio: "inherit" });
  if (child.error !== undefined) return refuse(child.error.message);
  return child.status ?? 128 + 9;
}

function failNotLoaded(name: string): never {
  throw new KernelError(diag("KernelNotLoaded", undefined, name));
}
