// The kernel commands as a user runs them (a child process on the built CLI): load,
// exec --as (selectors checked, uid/gid set, placed in the managed cgroup, a real denied
// connect), status, events with ids resolved, unload leaving nothing; and the one-line
// errors (not root, not loaded, exe mismatch).
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../support/baselines.js";
import { spawnCli } from "../support/cli.js";
import { kernelGate, leftovers, uniqueName } from "../support/kernel.js";

const unavailable = kernelGate("real-kernel CLI");

const POLICY = `workload shell {
  id = "spiffe://cli.test/shell";
  match { exe = "/bin/bash", uid = 4321, gid = 4322 }
}
default unidentified allow;
service blocked { endpoints = [127.0.0.1:47010/udp]; }
service open { endpoints = [127.0.0.1:47011/udp]; }
@id("no-blocked")
forbid (principal == workload shell, action == connect, resource == service blocked);
@id("open")
permit (principal == workload shell, action == connect, resource == service open);
`;

describe.skipIf(unavailable !== undefined)("portcullis kernel … and exec", () => {
  afterAll(() => {
    expect(leftovers(), "pins, state or cgroups of ours left behind").toEqual([]);
  });

  it("load, exec, status, events, unload", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "portcullis-cli-"));
    const name = uniqueName("cli");
    // A workload whose cgroup lies outside the attach point: loading says so (the programs
    // attached at /<name> never see processes in /<name>-outside).
    const outsider = `workload outsider {\n  id = "spiffe://cli.test/outsider";\n  match { cgroup = "/${name}-outside" }\n}\n`;
    writeFileSync(path.join(dir, "p.policy"), POLICY + outsider);
    const bundle = path.join(dir, "p.pcb");
    expect(spawnCli(["compile", dir, "-o", bundle]).code).toBe(0);
    // A corrupt bundle is refused before anything reaches the kernel.
    const corrupt = path.join(dir, "corrupt.pcb");
    const bytes = readFileSync(bundle);
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(corrupt, bytes);
    const refused = spawnCli(["kernel", "load", corrupt, "--cgroup", `/${name}`, "--name", name]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim()).toMatch(/^error PC4004: .* is corrupt/);
    expect(leftovers()).toEqual([]);
    const load = spawnCli(["kernel", "load", bundle, "--cgroup", `/${name}`, "--name", name]);
    try {
      expect(load.stderr.trim()).toBe(`warning: workload \`outsider\` matches cgroup \`/${name}-outside\`, outside the attach point \`/${name}\`: the kernel does not govern processes there`);
      expect(load.stdout).toContain(`loaded and attached to`);

      const script = "grep ^0:: /proc/self/cgroup; id -u; id -g; (echo x > /dev/udp/127.0.0.1/47011) && echo sent-open; (echo x > /dev/udp/127.0.0.1/47010) 2>/dev/null || echo refused-blocked";
      const run = spawnCli(["exec", "--as", "shell", "--name", name, "--", "/bin/bash", "--norc", "-c", script]);
      expect(run.stderr).toBe("");
      expect(run.stdout.trim().split("\n")).toEqual([`0::/${name}/portcullis.shell`, "4321", "4322", "sent-open", "refused-blocked"]);

      const mismatch = spawnCli(["exec", "--as", "shell", "--name", name, "--", "/usr/bin/true"]);
      expect(mismatch.code).toBe(1);
      expect(mismatch.stderr.trim().split("\n")).toHaveLength(1);
      expect(mismatch.stderr).toMatch(/^error PC9512: `\/usr\/bin\/true` cannot run as workload `shell`: no `match` block of workload `shell` accepts `\/usr\/bin\/true`/);

      const status = spawnCli(["kernel", "status", "--json", "--name", name]);
      const s = JSON.parse(status.stdout) as { programs: { attached: boolean }[]; generation: number; counters: { rule: string | null; allowed: number; denied: number }[] };
      expect(s.programs.map((p) => p.attached)).toEqual([true, true, true, true]);
      expect(s.counters).toContainEqual({ rule: "no-blocked", allowed: 0, denied: 1 });
      expect(s.counters).toContainEqual({ rule: "open", allowed: 1, denied: 0 });

      const events = spawnCli(["kernel", "events", "--name", name]);
      const lines = events.stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toContainEqual(expect.objectContaining({ principal: "spiffe://cli.test/shell", workload: "shell", ip: "127.0.0.1", port: 47010, protocol: "udp", decision: "deny", enforced: true, rule: "no-blocked", uid: 4321, gid: 4322, comm: "bash" }));
    } finally {
      const unload = spawnCli(["kernel", "unload", "--name", name]);
      expect(unload.stdout).toContain("unloaded");
    }
    const again = spawnCli(["kernel", "status", "--name", name]);
    expect(again.code).toBe(1);
    expect(again.stderr.trim()).toBe(`error PC9508: no policy named \`${name}\` is loaded in the kernel; run \`portcullis kernel load\` first`);
  }, 60_000);

  it("says in one line that the kernel path needs root", () => {
    const r = spawnSync(process.execPath, [path.join(repoRoot, "bin", "portcullis.js"), "kernel", "status"], { cwd: "/", encoding: "utf8", uid: 65534, gid: 65534 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^error PC9501: the kernel path needs root/);
  });
});
