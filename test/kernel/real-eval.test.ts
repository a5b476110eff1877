// `portcullis eval --engine kernel` (real processes, real connects) prints what the tables
// engine prints on the demo set's loopback boundary and random requests, and refuses, one line per
// request, exactly the requests no local process can make (non-loopback destinations,
// SPIFFE IDs of no workload, uid/gid a workload's match blocks exclude, uid/gid 4294967295).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadPolicySet } from "../../compiler/program.js";
import type { Request } from "../../compiler/request.js";
import { formatIp } from "../../dsl/ip.js";
import { boundaryRequests, U32_MAX } from "../support/boundary.js";
import { spawnCli } from "../support/cli.js";
import { demoPolicyAt, isLoopback, kernelGate, leftovers, uniqueName } from "../support/kernel.js";
import { randomRequests } from "../support/random-policy.js";

const unavailable = kernelGate("eval --engine kernel");

describe.skipIf(unavailable !== undefined)("eval --engine kernel", () => {
  afterAll(() => {
    expect(leftovers(), "cgroups of ours left behind").toEqual([]);
  });

  it("decides the demo set's boundary requests as the tables engine", () => {
    // The demo set with its cgroups moved under a root of this run's own.
    const dir = mkdtempSync(path.join(tmpdir(), "portcullis-keval-"));
    writeFileSync(path.join(dir, "demo.policy"), demoPolicyAt(`/${uniqueName("eval")}`));
    const policy = loadPolicySet([dir]).policySet!;
    const workloads = new Map(policy.workloads.map((w) => [w.id, w]));
    const placeable = (r: Request) => {
      const w = r.principal === null ? undefined : workloads.get(r.principal);
      return isLoopback(r.family, r.ip) && r.uid !== U32_MAX && r.gid !== U32_MAX && (r.principal === null || (w !== undefined && w.matches.some((b) => (b.uid ?? r.uid) === r.uid && (b.gid ?? r.gid) === r.gid)));
    };
    // The boundary and random requests a local process can make (at most 300), and 30 it cannot.
    const all = [...boundaryRequests(policy, { limit: 20_000 }), ...randomRequests(policy, 5, 20_000)];
    const requests = [...all.filter(placeable).slice(0, 300), ...all.filter((r) => !placeable(r)).slice(0, 30)];
    const lines = requests.map((r) => JSON.stringify({ principal: r.principal, uid: r.uid, gid: r.gid, ip: formatIp(r.family, r.ip), port: r.port, protocol: r.protocol }));
    const file = path.join(dir, "requests.jsonl");
    writeFileSync(file, `${lines.join("\n")}\n`);
    const tables = spawnCli(["eval", dir, "--requests", file, "--engine", "tables"]).stdout.trim().split("\n");
    const kernel = spawnCli(["eval", dir, "--requests", file, "--engine", "kernel"]).stdout.trim().split("\n");
    expect(kernel).toHaveLength(requests.length);
    let compared = 0;
    requests.forEach((r, i) => {
      if (placeable(r)) {
        compared++;
        expect(kernel[i], `request ${lines[i]}`).toBe(tables[i]);
      } else {
        expect(kernel[i], `request ${lines[i]}`).toMatch(/^\{"error":/);
      }
    });
    expect(compared).toBeGreaterThan(100);
  }, 120_000);
});
