// Bundles: deterministic bytes, and every kind of damage refused with one diagnostic —
// including table corruption behind a valid checksum, which the table validation catches
// or which at worst changes decisions without ever crashing the evaluator.
import { createHash } from "node:crypto";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readBundle, writeBundle } from "../../compiler/bundle.js";
import { loadPolicySet } from "../../compiler/program.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import { TableEvaluator } from "../../compiler/table-eval.js";
import { runPolicyTests } from "../../compiler/tests.js";
import { repoRoot } from "../support/baselines.js";
import { runCli, tempPolicies } from "../support/cli.js";

const spec = path.join(repoRoot, "test", "fixtures", "spec-example.policy");
const shop = path.join(repoRoot, "policies", "shop");

function policyOf(...paths: string[]) {
  const r = loadPolicySet(paths);
  if (r.policySet === undefined) throw new Error(r.diagnostics.map((d) => d.message).join("\n"));
  return r.policySet;
}

/** Re-signs a damaged bundle so that only the deeper checks can catch the damage. */
function resign(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  createHash("sha256").update(out.subarray(0, 24)).update(out.subarray(56)).digest().copy(out, 24);
  return out;
}

describe("bundles", () => {
  it("are byte-identical for the same sources, whatever the argument order", () => {
    const files = ["network.policy", "rules.policy", "shop.test.policy", "workloads.policy"].map((f) => path.join(shop, f));
    const a = writeBundle(policyOf(shop), "test");
    const b = writeBundle(policyOf(...files.reverse()), "test");
    expect(b.equals(a)).toBe(true);
  });

  it("carry tables that pass the set's own tests, and a manifest with every rule and test", () => {
    const policy = policyOf(shop);
    const read = readBundle(writeBundle(policy, "test"), "shop.bundle");
    if (!read.ok) throw new Error(read.diagnostic.message);
    const { manifest } = read.bundle;
    expect(manifest.rules.map((r) => r.id)).toEqual(policy.rules.map((r) => r.id));
    expect(manifest.tests.length).toBe(runPolicyTests(policy, new ReferenceEvaluator(policy)).length);
    const results = runPolicyTests(policy, new TableEvaluator(read.bundle));
    expect(results.filter((r) => !r.passed)).toEqual([]);
  });

  it("refuses truncated, foreign, wrong-version and wrong-checksum files with one diagnostic each", () => {
    const good = writeBundle(policyOf(spec), "test");
    const cases: [string, Buffer, string][] = [
      ["empty", Buffer.alloc(0), "PC4001"],
      ["truncated header", good.subarray(0, 30), "PC4001"],
      ["truncated tables", good.subarray(0, good.length - 4), "PC4001"],
      ["trailing bytes", Buffer.concat([good, Buffer.alloc(4)]), "PC4001"],
      ["foreign file", Buffer.from("{\"hello\": \"world\"} and some more text to pass the header"), "PC4002"],
      ["wrong version", (() => { const b = Buffer.from(good); b.writeUInt32LE(99, 8); return b; })(), "PC4003"],
      ["flipped bit", (() => { const b = Buffer.from(good); b[good.length - 9]! ^= 1; return b; })(), "PC4004"],
      ["bad manifest", resign((() => { const b = Buffer.from(good); b.write("!", 56); return b; })()), "PC4005"],
    ];
    for (const [name, bytes, code] of cases) {
      const r = readBundle(bytes, "x.bundle");
      expect(r.ok, name).toBe(false);
      if (!r.ok) {
        expect(r.diagnostic.code, name).toBe(code);
        expect(r.diagnostic.message, name).not.toContain("\n");
      }
    }
  });

  it("survives table corruption behind a valid checksum: refused, or decided without a crash", () => {
    const policy = policyOf(spec);
    const good = writeBundle(policy, "test");
    const manifestLength = good.readUInt32LE(16);
    const tablesStart = 56 + manifestLength + ((4 - (manifestLength % 4)) % 4);
    const words = (good.length - tablesStart) / 4;
    const requests = runPolicyTests(policy, new ReferenceEvaluator(policy)).map((r) => r.request);
    let seed = 12345;
    const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
    let refused = 0;
    for (let i = 0; i < 2000; i++) {
      const bad = Buffer.from(good);
      const at = tablesStart + (next() % words) * 4;
      const values = [0, 1, 0xffffffff, next(), bad.readUInt32LE(at) + 1, bad.readUInt32LE(at) ^ (1 << (next() % 32))];
      bad.writeUInt32LE(values[next() % values.length]! >>> 0, at);
      const r = readBundle(resign(bad), "x.bundle");
      if (!r.ok) {
        expect(r.diagnostic.code).toBe("PC4006");
        refused++;
        continue;
      }
      const evaluator = new TableEvaluator(r.bundle);
      for (const q of requests) {
        const d = evaluator.decide(q);
        expect(["allow", "deny"]).toContain(d.decision);
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

describe("portcullis compile / inspect / test / eval", () => {
  it("prints exactly `10 passed, 0 failed` for the spec example, on every engine", async () => {
    for (const engine of ["reference", "tables"]) {
      const r = await runCli("test", "--engine", engine, spec);
      expect(r.code).toBe(0);
      expect(r.stdout.split("\n").pop()).toBe("10 passed, 0 failed");
    }
  });

  it("prints each failing assertion with its location, expectation and actual decision", async () => {
    const dir = tempPolicies({
      "a.policy": `@id("web")\npermit (principal, action, resource in 10.0.0.0/8);\n\ntest "t" {\n  deny connect from unidentified to 10.0.0.1:80/tcp;\n  allow connect from unidentified to 10.0.0.1:80/tcp because "web";\n}\n`,
    });
    const r = await runCli("test", dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/a\.policy\(5,3\): test "t" failed: expected deny, got allow \(reasons: `web`\)/);
    expect(r.stdout.split("\n").pop()).toBe("1 passed, 1 failed");
  });

  it("compiles a bundle that eval and inspect read, and refuses a corrupt one in one line", async () => {
    const dir = tempPolicies({});
    const bundle = path.join(dir, "spec.bundle");
    expect((await runCli("compile", spec, "-o", bundle)).code).toBe(0);
    const inspect = await runCli("inspect", bundle);
    expect(inspect.stdout).toContain("rules       5 (1 forbid)");
    const r = await runCli("eval", "--bundle", bundle, "--from", "workload:frontend", "--to", "10.0.1.10:8443/tcp");
    expect(r.stdout).toBe('{"decision":"allow","reasons":["web-to-api"],"default":false}');
    const corrupt = await runCli("eval", "--bundle", spec, "--from", "unidentified", "--to", "1.2.3.4:1/tcp");
    expect(corrupt.code).toBe(1);
    expect(corrupt.stdout).toMatch(/^error PC4002: `.*spec-example\.policy` is not a Portcullis bundle \(bad magic\)$/);
  });
});
