// Rewrites every `test/baselines/*.diagnostics.txt` from `test/cases/`, and
// `docs/diagnostics.md` from the catalog (`npm run baselines`).
// Review the resulting `git diff` like any other change.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { Catalog } from "../dsl/diagnostics.js";
import { baselinePath, baselinesDir, diagnosticsDocPath, listCases, renderCase, renderDiagnosticsDoc } from "./support/baselines.js";

mkdirSync(baselinesDir, { recursive: true });
const cases = listCases();
const wanted = new Set(cases.map((c) => path.basename(baselinePath(c.name))));
for (const stale of readdirSync(baselinesDir).filter((f) => !wanted.has(f))) rmSync(path.join(baselinesDir, stale));
for (const c of cases) writeFileSync(baselinePath(c.name), renderCase(c));
console.log(`wrote ${cases.length} baselines to ${path.relative(process.cwd(), baselinesDir)}`);
writeFileSync(diagnosticsDocPath, renderDiagnosticsDoc(Catalog));
console.log(`wrote ${path.relative(process.cwd(), diagnosticsDocPath)}`);
