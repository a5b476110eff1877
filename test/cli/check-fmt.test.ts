// `portcullis check` and `portcullis fmt` as a user runs them: exit codes (0 clean, 1
// errors, 2 usage or I/O), both output formats, and never a stack trace.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../support/baselines.js";
import { runCli, spawnCli, tempPolicies } from "../support/cli.js";

const spec = path.join(repoRoot, "test", "fixtures", "spec-example.policy");
const broken = `workload frontend {\n  id = "spiffe://shop.example/ns/web/sa/frontend";\n  match { uid = 1001 }\n}\n\npermit (principal == workload fronted, action, resource);\n`;

describe("portcullis check", () => {
  it("accepts the spec example with no errors", async () => {
    const r = await runCli("check", spec);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("0 errors, 0 warnings in 1 file");
  });

  it("reports a misspelt name at its line and column with a suggestion and an excerpt", async () => {
    const dir = tempPolicies({ "shop.policy": broken });
    const r = await runCli("check", dir);
    expect(r.code).toBe(1);
    const lines = r.stdout.split("\n");
    const head = lines.findIndex((l) => l.includes("PC2004"));
    expect(lines[head]).toMatch(/shop\.policy\(6,31\): error PC2004: unknown workload `fronted`; did you mean `frontend`\?$/);
    expect(lines[head + 1]).toBe("    permit (principal == workload fronted, action, resource);");
    expect(lines[head + 2]).toBe(`    ${" ".repeat(30)}~~~~~~~`);
  });

  it("prints JSON diagnostics with --format json", async () => {
    const dir = tempPolicies({ "shop.policy": broken });
    const r = await runCli("check", "--format", "json", dir);
    expect(r.code).toBe(1);
    const diagnostics = r.stdout.split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(diagnostics).toContainEqual(expect.objectContaining({ code: "PC2004", severity: "error", line: 6, column: 31, length: 7 }));
  });

  it("exits 2 for a missing path or a directory without policies", async () => {
    const missing = await runCli("check", "/nonexistent/policies");
    expect(missing.code).toBe(2);
    expect(missing.stdout).toContain("error PC9001: cannot read `/nonexistent/policies`: no such file or directory");
    const empty = await runCli("check", tempPolicies({}));
    expect(empty.code).toBe(2);
    expect(empty.stdout).toContain("PC9002");
  });

  it("exits 2 for usage errors", async () => {
    expect((await runCli("check")).code).toBe(2);
    expect((await runCli("frobnicate")).code).toBe(2);
    expect((await runCli("check", "--format", "xml", spec)).code).toBe(2);
  });
});

describe("portcullis fmt", () => {
  it("--check fails on an unformatted file, --write fixes it, and --check then passes", async () => {
    const dir = tempPolicies({ "a.policy": "permit(principal,action,resource)   when{port==80};\n" });
    const before = await runCli("fmt", "--check", dir);
    expect(before.code).toBe(1);
    expect(before.stdout).toContain("PC9003");
    expect((await runCli("fmt", "--write", dir)).code).toBe(0);
    expect((await runCli("fmt", "--check", dir)).code).toBe(0);
  });

  it("never rewrites a file with syntax errors", async () => {
    const text = "permit (principal, action resource);\n";
    const dir = tempPolicies({ "a.policy": text });
    const r = await runCli("fmt", "--write", dir);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("PC1005");
    expect(readFileSync(path.join(dir, "a.policy"), "utf8")).toBe(text);
  });

  it("refuses --write with --check", async () => {
    const r = await runCli("fmt", "--write", "--check", spec);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("cannot be used together");
  });
});

describe("the portcullis binary", () => {
  it("prints its version and help", () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")) as { version: string };
    expect(spawnCli(["--version"]).stdout.trim()).toBe(pkg.version);
    for (const command of ["check", "fmt", "demo"]) {
      const r = spawnCli([command, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: portcullis ${command}`);
    }
  });

  it("answers bad input with one clear line and no stack trace", () => {
    const dir = tempPolicies({ "bad.policy": "permit (principal, action, resource) when { port == tcp };\n\u0000\n" });
    for (const args of [["check", dir], ["check", "/nonexistent"], ["fmt", "--check", dir], ["nope"], ["check", "--format"]]) {
      const r = spawnCli(args);
      expect(r.code === 1 || r.code === 2, `${args.join(" ")} exited ${r.code}`).toBe(true);
      expect(`${r.stdout}${r.stderr}`).not.toMatch(/^\s+at .+\(.+:\d+:\d+\)$/m);
    }
  });
});
