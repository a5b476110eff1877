// Owns running one benchmark size in a fresh Node process: `node [flags] <script> --measure
// N`, whose last stdout line is the measurement as JSON, with a time limit; a run that does
// not finish or fails is reported as one line for the table instead.
import { spawnSync } from "node:child_process";

const MB = 1024 * 1024;

export function measureInChild<T>(script: string, rules: number, limitSeconds: number, flags: readonly string[] = ["--max-old-space-size=8192"]): T | string {
  const child = spawnSync(process.execPath, [...flags, script, "--measure", String(rules)], {
    encoding: "utf8",
    maxBuffer: 16 * MB,
    timeout: limitSeconds * 1000,
  });
  if (child.error !== undefined || child.signal !== null) return `not finished within ${limitSeconds} s`;
  if (child.status !== 0) return `failed (exit ${child.status}): ${child.stderr.trim().split("\n").pop() ?? ""}`;
  return JSON.parse(child.stdout.trim().split("\n").pop()!) as T;
}
