// `--engine kernel-sim` as users run it: `eval` from sources and from a bundle prints what
// the tables engine prints, `test` passes the example sets' tests, and a policy the kernel
// maps cannot hold is one PC3002 line.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadPolicySet } from "../../compiler/program.js";
import { formatIp } from "../../dsl/ip.js";
import { repoRoot } from "../support/baselines.js";
import { boundaryRequests } from "../support/boundary.js";
import { runCli, tempPolicies } from "../support/cli.js";

const shop = path.join(repoRoot, "policies", "shop");
const demo = path.join(repoRoot, "policies", "demo");

describe("portcullis --engine kernel-sim", () => {
  it("evaluates requests from sources and from a bundle exactly as the tables engine", async () => {
    const policy = loadPolicySet([shop]).policySet!;
    const byId = new Map(policy.workloads.map((w) => [w.id, w.name]));
    const requests = boundaryRequests(policy, { limit: 1500 }).map((q) => ({
      principal: q.principal === null ? null : byId.has(q.principal) ? `workload:${byId.get(q.principal)}` : q.principal,
      uid: q.uid,
      gid: q.gid,
      ip: formatIp(q.family, q.ip),
      port: q.port,
      protocol: q.protocol,
    }));
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

  it("passes the example sets' tests", async () => {
    expect((await runCli("test", shop, "--engine", "kernel-sim")).stdout.split("\n").pop()).toBe("71 passed, 0 failed");
    expect((await runCli("test", demo, "--engine", "kernel-sim")).stdout.split("\n").pop()).toBe("23 passed, 0 failed");
  });

  it("refuses a policy whose cgroups lie at too many levels with one PC3002 line", async () => {
    const workloads = Array.from({ length: 17 }, (_, i) => `workload w${i} { id = "spiffe://t.test/w${i}"; match { cgroup = "${"/l".repeat(i + 1)}" } }`).join("\n");
    const dir = tempPolicies({ "deep.policy": workloads });
    const r = await runCli("eval", dir, "--engine", "kernel-sim", "--from", "unidentified", "--to", "10.0.0.1:80/tcp");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("error PC3002: the policy set cannot be lowered: the workloads' cgroups lie at 17 different levels; the kernel probes at most 16");
  });
});
