// Test helpers for the command line: run `portcullis` in-process with captured output, or
// as a real child process (through bin/, on the built dist/) where exit codes and the
// absence of stack traces must be seen as a user sees them.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { main } from "../../cli/main.js";
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
