// `--engine wasm` as users run it: `eval --requests` prints exactly what the reference
// prints (from sources and from a bundle, bad lines included), and `test` passes the
// example sets' own tests.
import { writeFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadPolicySet } from "../../compiler/program.js";
import { repoRoot } from "../support/baselines.js";
import { boundaryRequests } from "../support/boundary.js";
import { requestLineFor, runCli, tempPolicies } from "../support/cli.js";
import { randomRequests } from "../support/random-policy.js";

const shop = path.join(repoRoot, "policies", "shop");
const spec = path.join(repoRoot, "test", "fixtures", "spec-example.policy");

describe("portcullis --engine wasm", () => {
  it("eval --requests prints the reference's output, from sources and from a bundle", async () => {
    const policy = loadPolicySet([shop]).policySet!;
    const lines = [...boundaryRequests(policy, { limit: 2000 }), ...randomRequests(policy, 7, 1000)].map(requestLineFor(policy)).map((line) => JSON.stringify(line));
    // Bad lines are answered in place by every engine alike.
    lines.splice(10, 0, "not json", JSON.stringify({ principal: null, ip: "10.0.0.1", port: 70000, protocol: "tcp" }), JSON.stringify({ principal: null, ip: "10.0.0.1", port: 1, protocol: "icmp" }));
    const dir = tempPolicies({});
    const file = path.join(dir, "requests.jsonl");
    writeFileSync(file, lines.join("\n"));
    const bundle = path.join(dir, "shop.bundle");
    expect((await runCli("compile", shop, "-o", bundle)).code).toBe(0);

    const reference = await runCli("eval", shop, "--engine", "reference", "--requests", file);
    expect(reference.code).toBe(1);
    expect(reference.stdout.split("\n")).toHaveLength(lines.length);
    const fromSources = await runCli("eval", shop, "--engine", "wasm", "--requests", file);
    const fromBundle = await runCli("eval", "--bundle", bundle, "--engine", "wasm", "--requests", file);
    for (const run of [fromSources, fromBundle]) {
      expect(run.code).toBe(1);
      expect(run.stderr).toBe("");
      expect(run.stdout).toBe(reference.stdout);
    }
  });

  it("test passes every test block of both example sets", async () => {
    for (const [set, summary] of [
      [shop, "71 passed, 0 failed"],
      [spec, "10 passed, 0 failed"],
    ] as const) {
      const r = await runCli("test", "--engine", "wasm", set);
      expect(r.code).toBe(0);
      expect(r.stdout.split("\n").pop()).toBe(summary);
    }
  });
});
