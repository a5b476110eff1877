// `portcullis compile --target opa-wasm` as users run it: the module it writes is loaded by
// the OPA SDK and answers `eval`'s decision; `-o *.tar.gz` writes an OPA bundle whose
// `.manifest` names the entrypoint and whose `/policy.wasm` is that same module; a bad
// `--target` is one usage line.
import { readFileSync } from "node:fs";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/baselines.js";
import { runCli, spawnCli, tempPolicies } from "../support/cli.js";

const shop = path.join(repoRoot, "policies", "shop");

/** The files of an uncompressed tar archive (name → bytes). */
function untar(archive: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let at = 0; at + 512 <= archive.length; ) {
    const header = archive.subarray(at, at + 512);
    if (header.every((b) => b === 0)) break;
    const name = header.subarray(0, 100).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(header.subarray(124, 136).toString("ascii").replace(/\0.*$/s, "").trim(), 8);
    files.set(name, archive.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

describe("portcullis compile --target opa-wasm", () => {
  it("writes a module the OPA SDK runs, deciding as `eval` does", async () => {
    const dir = tempPolicies({});
    const wasm = path.join(dir, "policy.wasm");
    const run = await runCli("compile", shop, "--target", "opa-wasm", "-o", wasm);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^compiled 23 rules from \d+ files into .*policy\.wasm \(OPA wasm module, \d+ bytes, entrypoint portcullis\/decision\)$/);
    const opa = await loadPolicy(readFileSync(wasm));
    for (const [from, to] of [
      ["workload:frontend", "169.254.169.254:80/tcp"],
      ["workload:frontend", "10.0.1.11:443/tcp"],
      ["unidentified", "10.0.1.11:443/tcp"],
    ] as const) {
      const evaluated = await runCli("eval", shop, "--from", from, "--to", to);
      const [, ip, port, protocol] = /^(.*):(\d+)\/(tcp|udp)$/.exec(to)!;
      const result = opa.evaluate({ principal: from === "unidentified" ? null : from, ip, port: Number(port), protocol }, "portcullis/decision");
      expect(result).toEqual([{ result: JSON.parse(evaluated.stdout) }]);
    }
  });

  it("writes an OPA bundle for an output ending in .tar.gz", async () => {
    const dir = tempPolicies({});
    const wasm = path.join(dir, "policy.wasm");
    const bundle = path.join(dir, "bundle.tar.gz");
    expect((await runCli("compile", shop, "--target", "opa-wasm", "-o", wasm)).code).toBe(0);
    const run = await runCli("compile", shop, "--target", "opa-wasm", "-o", bundle);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("(OPA bundle,");
    const files = untar(gunzipSync(readFileSync(bundle)));
    expect([...files.keys()]).toEqual([".manifest", "policy.wasm"]);
    const manifest = JSON.parse(files.get(".manifest")!.toString("utf8")) as { revision: string; wasm: { entrypoint: string; module: string }[] };
    expect(manifest.wasm).toEqual([{ entrypoint: "portcullis/decision", module: "/policy.wasm" }]);
    expect(manifest.revision).toMatch(/^[0-9a-f]{16}$/);
    // The same sources give the same module, inside the bundle or not.
    expect(Buffer.compare(files.get("policy.wasm")!, readFileSync(wasm))).toBe(0);
  });

  it("refuses an unknown target with one usage line and exit code 2", () => {
    const dir = tempPolicies({});
    const run = spawnCli(["compile", shop, "--target", "opa", "-o", path.join(dir, "x.wasm")]);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe("");
    expect(run.stderr.trim().split("\n")).toEqual(["error: unknown target `opa`; expected one of bundle, opa-wasm"]);
  });
});
