// Owns what the real-kernel tests share: whether they can run here (and failing instead of
// skipping under PORTCULLIS_REQUIRE_KERNEL=1), unique names for pins and cgroups, probe
// processes placed in a cgroup with a uid/gid that make real connect()/sendto() calls,
// loopback listeners, and the spec's workload matching for a placed process (which
// workload a process in cgroup C with uid U and gid G is).
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:net";
import { createSocket, type Socket } from "node:dgram";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { expect, it } from "vitest";
import type { BundleManifest } from "../../compiler/bundle.js";
import { formatIp } from "../../dsl/ip.js";
import { managedCgroupPath, needsAttestation } from "../../kernel-bridge/lower.js";
import { repoRoot } from "./baselines.js";
import { artifacts, cgroup2Mount, kernelUnavailable, PIN_ROOT, STATE_ROOT } from "../../kernel-bridge/loader.js";

export const REQUIRED = process.env["PORTCULLIS_REQUIRE_KERNEL"] === "1";

/**
 * Why the real-kernel tests cannot run here, or undefined. When they cannot, the caller
 * skips its suite and this registers one test that prints the reason, or, with
 * PORTCULLIS_REQUIRE_KERNEL=1, fails with it.
 */
export function kernelGate(suite: string): string | undefined {
  const reason = kernelUnavailable();
  if (reason === undefined) return undefined;
  if (REQUIRED) {
    it(`${suite}: the kernel path is available (PORTCULLIS_REQUIRE_KERNEL=1)`, () => {
      expect.fail(reason);
    });
  } else {
    process.stderr.write(`skipping ${suite}: ${reason}\n`);
    it.skip(`${suite} (skipped: ${reason})`, () => undefined);
  }
  return reason;
}

/** A name no other run uses: `pct-<tag>-<pid>-<n>` (valid as a pin name and a cgroup). */
let counter = 0;
export function uniqueName(tag: string): string {
  return `pct-${tag}-${process.pid}-${counter++}`;
}

/**
 * Pins, state and cgroups this test process named (uniqueName) that are still present:
 * empty after a clean run. Other test files run in parallel processes with their own pid.
 */
export function leftovers(): string[] {
  const ours = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((d) => d.startsWith("pct-") && d.includes(`-${process.pid}-`)).map((d) => path.join(dir, d)) : []);
  return [...ours(PIN_ROOT), ...ours(STATE_ROOT), ...ours(cgroup2Mount())];
}

/** The demo set's text with its cgroup root `/portcullis-demo` moved to `root`, so runs never share cgroups. */
export function demoPolicyAt(root: string): string {
  return readFileSync(path.join(repoRoot, "policies/demo/demo.policy"), "utf8").replaceAll('"/portcullis-demo/', `"${root}/`);
}

/** A process placement: a cgroup (below the mount, `/a/b`) and its credentials. */
export interface Placement {
  readonly cgroup: string;
  readonly uid: number;
  readonly gid: number;
}

export type Mode = "connect" | "sendto";

export interface Attempt {
  readonly protocol: "tcp" | "udp";
  readonly mode: Mode;
  /** As the socket is given it: IPv4 text uses AF_INET, anything else AF_INET6. */
  readonly address: string;
  readonly port: number;
}

/** Runs `attempts` from a process placed at `p`; resolves to each attempt's errno (0 = success). */
export function probe(p: Placement, attempts: readonly Attempt[]): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(artifacts.runner(), ["probe", path.join(cgroup2Mount(), p.cgroup), String(p.uid), String(p.gid)], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      const lines = stdout.split("\n").filter((l) => l !== "");
      if (code !== 0 || lines.length !== attempts.length) reject(new Error(`probe exited ${code} after ${lines.length}/${attempts.length} answers: ${stderr.trim()}`));
      else resolve(lines.map(Number));
    });
    child.stdin.end(attempts.map((a) => `${a.protocol} ${a.mode} ${a.address} ${a.port}\n`).join(""));
  });
}

export const EPERM = 1;

/** TCP and UDP listeners on `::` (dual stack: every loopback address of both families). */
export class Listeners {
  private readonly servers: Server[] = [];
  private readonly sockets: Socket[] = [];
  /** Ports where we hold a listener; attempts go only there (never to someone else's service). */
  readonly tcp = new Set<number>();
  readonly udp = new Set<number>();

  async open(ports: readonly number[]): Promise<void> {
    for (const port of new Set(ports)) {
      if (port === 0) continue;
      const server = createServer((c) => c.destroy());
      if (await new Promise<boolean>((r) => server.once("error", () => r(false)).listen({ port, host: "::", ipv6Only: false, backlog: 4096 }, () => r(true)))) {
        this.servers.push(server);
        this.tcp.add(port);
      }
      const socket = createSocket({ type: "udp6", ipv6Only: false });
      socket.on("message", () => undefined);
      if (await new Promise<boolean>((r) => socket.once("error", () => r(false)).bind({ port, address: "::" }, () => r(true)))) {
        this.sockets.push(socket);
        this.udp.add(port);
      } else socket.close();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    for (const s of this.sockets) s.close();
  }
}

export function isLoopback(family: 4 | 6, ip: readonly number[]): boolean {
  return family === 4 ? ip[0] === 127 : ip.every((b, i) => b === (i === 15 ? 1 : 0));
}

/** The text addresses a loopback destination is reached by: IPv4 ones also v4-mapped. */
export function addressTexts(family: 4 | 6, ip: readonly number[]): string[] {
  return family === 4 ? [formatIp(4, ip), `::ffff:${formatIp(4, ip)}`] : [formatIp(6, ip)];
}

/**
 * The workload a process placed at `p` is (spec: the first workload in policy-set order
 * with a match block all of whose selectors hold), or null. A block with `exe`/`sha256`
 * holds only in its managed cgroup (where `portcullis exec` puts attested processes).
 * `cgroup` holds in that cgroup and below it.
 */
export function workloadOf(manifest: BundleManifest, managedRoot: string, p: Placement): string | null {
  const within = (dir: string, root: string) => dir === root || root === "/" || dir.startsWith(`${root}/`);
  for (const w of manifest.workloads) {
    for (const block of w.match) {
      const cgroupOk = needsAttestation(block) ? within(p.cgroup, managedCgroupPath(managedRoot, w.name, block)) : block.cgroup === undefined || within(p.cgroup, block.cgroup);
      if (cgroupOk && (block.uid === undefined || block.uid === p.uid) && (block.gid === undefined || block.gid === p.gid)) return w.id;
    }
  }
  return null;
}
