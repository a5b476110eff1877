// The diagnostic corpus: every case's output equals its reviewed baseline, and together the
// baselines show every diagnostic code of the catalog that a policy file can trigger.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Catalog } from "../../dsl/diagnostics.js";
import { baselinePath, baselinesDir, diagnosticsDocPath, listCases, renderCase, renderDiagnosticsDoc } from "../support/baselines.js";

const cases = listCases();

describe("diagnostic baselines", () => {
  it.each(cases.map((c) => [c.name, c] as const))("%s matches its baseline", (_name, c) => {
    const file = baselinePath(c.name);
    expect(existsSync(file), `missing baseline ${file}; run \`npm run baselines\``).toBe(true);
    expect(renderCase(c)).toBe(readFileSync(file, "utf8"));
  });

  it("has no baseline without a case", () => {
    const names = new Set(cases.map((c) => `${c.name}.diagnostics.txt`));
    expect(readdirSync(baselinesDir).filter((f) => !names.has(f))).toEqual([]);
  });

  it("covers every diagnostic code a policy file can trigger", () => {
    const all = readdirSync(baselinesDir)
      .map((f) => readFileSync(`${baselinesDir}/${f}`, "utf8"))
      .join("\n");
    // PC3002 (size limits), PC4xxx (bundles) and PC9xxx (command line, files on disk)
    // are not about one policy file; test/compiler and test/cli cover them.
    const codes = Object.values(Catalog)
      .map((e) => e.code)
      .filter((code) => !code.startsWith("PC9") && !code.startsWith("PC4") && code !== "PC3002");
    const missing = codes.filter((code) => !all.includes(` ${code}: `));
    expect(missing).toEqual([]);
  });

  it("documents every code in docs/diagnostics.md", () => {
    expect(readFileSync(diagnosticsDocPath, "utf8")).toBe(renderDiagnosticsDoc(Catalog));
  });
});
