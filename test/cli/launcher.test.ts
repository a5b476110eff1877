// The `portcullis` command as npm installs it: bin/portcullis, reached through a relative
// link in a `.bin` directory, runs the same CLI as `node bin/portcullis.js` (same output and
// exit codes) with Node's helper-thread pool sized to the cores (`nproc` less one, 1 to 4),
// unless NODE_OPTIONS already sizes it.
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/baselines.js";
import { spawnCli, tempPolicies } from "../support/cli.js";

const root = mkdtempSync(path.join(tmpdir(), "portcullis-launcher-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// node_modules/.bin/portcullis → ../portcullis/bin/portcullis, as npm links a package's bin.
const pkg = path.join(root, "node_modules", "portcullis");
mkdirSync(path.join(root, "node_modules", ".bin"), { recursive: true });
symlinkSync(repoRoot, pkg);
const linked = path.join(root, "node_modules", ".bin", "portcullis");
symlinkSync(path.join("..", "portcullis", "bin", "portcullis"), linked);

/** A PATH whose `nproc` reports `cores` (the rest of PATH finds node). */
function pathWithCores(cores: number): string {
  const dir = path.join(root, `cores-${cores}`);
  mkdirSync(dir, { recursive: true });
  const nproc = path.join(dir, "nproc");
  writeFileSync(nproc, `#!/bin/sh\necho ${cores}\n`);
  chmodSync(nproc, 0o755);
  return `${dir}:${process.env["PATH"] ?? ""}`;
}

/** Prints the Node options the CLI's process was started with, on stderr. */
const ARGV_PROBE = `--import=data:text/javascript,${encodeURIComponent("process.stderr.write(`execArgv=${JSON.stringify(process.execArgv)}\\n`);")}`;

function runLinked(args: readonly string[], env: Record<string, string>) {
  const r = spawnSync(linked, args, { cwd: root, encoding: "utf8", env: { ...process.env, ...env } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function poolSizeOf(stderr: string): string[] {
  const m = /execArgv=(.*)/.exec(stderr);
  expect(m, stderr).not.toBeNull();
  return (JSON.parse(m![1]!) as string[]).filter((a) => a.startsWith("--v8-pool-size"));
}

describe("bin/portcullis", () => {
  it("runs the CLI as node bin/portcullis.js does: same output and exit codes, through npm's link", () => {
    const shop = path.join(repoRoot, "policies", "shop");
    const bad = tempPolicies({ "bad.policy": "permit (principal, action, resource) when { port == tcp };\n" });
    try {
      for (const args of [["test", shop], ["check", bad], ["eval", shop, "--from", "workload:frontend", "--to", "169.254.169.254:80/tcp"], ["no-such-command"]]) {
        const viaCommand = runLinked(args, {});
        const viaNode = spawnCli(args, root);
        expect({ args, ...viaCommand }).toEqual({ args, ...viaNode });
      }
      expect(runLinked(["check", bad], {}).code).toBe(1);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });

  it("sizes Node's helper-thread pool to leave a core to the main thread (1 to 4 threads)", () => {
    for (const [cores, pool] of [
      [1, 1],
      [2, 1],
      [3, 2],
      [5, 4],
      [64, 4],
    ] as const) {
      const r = runLinked(["--version"], { PATH: pathWithCores(cores), NODE_OPTIONS: ARGV_PROBE });
      expect(r.code, r.stderr).toBe(0);
      expect(poolSizeOf(r.stderr), `${cores} cores`).toEqual([`--v8-pool-size=${pool}`]);
    }
  });

  it("leaves the pool to NODE_OPTIONS when it sizes it", () => {
    const r = runLinked(["--version"], { PATH: pathWithCores(2), NODE_OPTIONS: `--v8-pool-size=3 ${ARGV_PROBE}` });
    expect(r.code, r.stderr).toBe(0);
    expect(poolSizeOf(r.stderr)).toEqual([]);
  });
});
