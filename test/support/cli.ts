// Test helpers for the command line: run `portcullis` in-process with captured output, or
// as a real child process (through bin/, on the built dist/) where exit codes and the
// absence of stack traces must be seen as a user sees them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { main } from "../../cli/main.js";
import type { PolicySet } from "../../compiler/model.js";
import type { Request } from "../../compiler/request.js";
import { formatIp } from "../../dsl/ip.js";
import { repoRoot } from "./baselines.js";

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(...args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, stdout: out.join("\n"), stderr: err.join("\n") };
}

export function spawnCli(args: readonly string[], cwd = repoRoot): CliRun {
  const r = spawnSync(process.execPath, [path.join(repoRoot, "bin", "portcullis.js"), ...args], { cwd, encoding: "utf8" });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A fresh temporary directory holding `files` (name → text). */
export function tempPolicies(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), "portcullis-test-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

/**
 * A request as a line of `eval --requests` would give it: a workload's SPIFFE ID as
 * `workload:NAME`, any other ID as itself, unidentified as null.
 */
export function requestLineFor(policy: PolicySet): (r: Request) => Record<string, unknown> {
  const byId = new Map(policy.workloads.map((w) => [w.id, w.name]));
  return (q) => ({
    principal: q.principal === null ? null : byId.has(q.principal) ? `workload:${byId.get(q.principal)}` : q.principal,
    uid: q.uid,
    gid: q.gid,
    ip: formatIp(q.family, q.ip),
    port: q.port,
    protocol: q.protocol,
  });
}
