// `--engine kernel-sim` as users run it: `eval` from sources and from a bundle prints what
// the tables engine prints, `test` passes the example sets' tests, and a policy the kernel
// maps cannot hold is one PC3002 line.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadPolicySet } from "../../compiler/program.js";
import { repoRoot } from "../support/baselines.js";
import { boundaryRequests } from "../support/boundary.js";
import { requestLineFor, runCli, tempPolicies } from "../support/cli.js";

const shop = path.join(repoRoot, "policies", "shop");
const demo = path.join(repoRoot, "policies", "demo");

describe("portcullis --engine kernel-sim", () => {
  it("evaluates requests from sources and from a bundle exactly as the tables engine", async () => {
    const policy = loadPolicySet([shop]).policySet!;
    const requests = boundaryRequests(policy, { limit: 1500 }).map(requestLineFor(policy));
    const dir = tempPolicies({});
    const file = path.join(dir, "requests.jsonl");
    writeFileSync(file, requests.map((q) => JSON.stringify(q)).join("\n"));
    const bundle = path.join(dir, "shop.bundle");
    expect((await runCli("compile", shop, "-o", bundle)).code).toBe(0);
    const tables = await runCli("eval", shop, "--engine", "tables", "--requests", file);
    const fromSources = await runCli("eval", shop, "--engine", "kernel-sim", "--requests", file);
    const fromBundle = await runCli("eval", "--bundle", bundle, "--engine", "kernel-sim", "--requests", file);
    expect(tables.stdout.split("\n")).toHaveLength(requests.length);
    for (const r of [fromSources, fromBundle]) {
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(tables.stdout);
    }
  });

  it("passes the example sets' tests, from sources and from their bundles", async () => {
    const dir = tempPolicies({});
    for (const [set, summary] of [[shop, "71 passed, 0 failed"], [demo, "23 passed, 0 failed"]] as const) {
      expect((await runCli("test", set, "--engine", "kernel-sim")).stdout.split("\n").pop()).toBe(summary);
      const bundle = path.join(dir, `${path.basename(set)}.bundle`);
      expect((await runCli("compile", set, "-o", bundle)).code).toBe(0);
      const r = await runCli("test", "--bundle", bundle, "--engine", "kernel-sim");
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(summary);
    }
  });

  it("reports a failing test compiled into a bundle at its source location, as from sources", async () => {
    const dir = tempPolicies({
      "a.policy": [
        'workload w { id = "spiffe://t.test/w"; match { uid = 7 } }',
        '@id("web") permit (principal == workload w, action, resource) when { port == 443 };',
        'test "t" {',
        "  allow connect from workload w to 10.0.0.1:443/tcp;",
        "  allow connect from workload w to 10.0.0.1:80/tcp;",
        '  deny connect from workload w to 10.0.0.1:443/tcp because "web";',
        "}",
      ].join("\n"),
    });
    const bundle = path.join(dir, "a.bundle");
    expect((await runCli("compile", dir, "-o", bundle)).code).toBe(0);
    const expected = [
      'a.policy(5,3): test "t" failed: expected allow, got deny (reasons: the default)',
      'a.policy(6,3): test "t" failed: expected deny, got allow (reasons: `web`)',
      "1 passed, 2 failed",
    ];
    for (const engine of ["tables", "kernel-sim"]) {
      const fromBundle = await runCli("test", "--bundle", bundle, "--engine", engine);
      expect(fromBundle.code).toBe(1);
      expect(fromBundle.stdout.split("\n")).toEqual(expected);
      const fromSources = await runCli("test", dir, "--engine", engine);
      expect(fromSources.stdout.split("\n").map((l) => l.replace(`${dir}${path.sep}`, ""))).toEqual(expected);
    }
  });

  it("refuses a policy whose cgroups lie at too many levels with one PC3002 line", async () => {
    const workloads = Array.from({ length: 17 }, (_, i) => `workload w${i} { id = "spiffe://t.test/w${i}"; match { cgroup = "${"/l".repeat(i + 1)}" } }`).join("\n");
    const dir = tempPolicies({ "deep.policy": workloads });
    const r = await runCli("eval", dir, "--engine", "kernel-sim", "--from", "unidentified", "--to", "10.0.0.1:80/tcp");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("error PC3002: the policy set cannot be lowered: the workloads' cgroups lie at 17 different levels; the kernel probes at most 16");
  });
});
