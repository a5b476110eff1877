// Owns the baseline corpus (TypeScript-style): each `test/cases/NAME.policy` file, or
// `test/cases/NAME/` directory of files forming one policy set, is checked and its
// diagnostics rendered to `test/baselines/NAME.diagnostics.txt`. Reviewers read baseline
// changes as diffs; `npm run baselines` rewrites them.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import type { PolicySource } from "../../compiler/model.js";
import { checkSources } from "../../compiler/program.js";
import { packageRoot } from "../../cli/paths.js";
import { renderDiagnostics, summary } from "../../cli/report.js";

/** The repository root. */
export const repoRoot = packageRoot;

export const casesDir = path.join(repoRoot, "test", "cases");
export const baselinesDir = path.join(repoRoot, "test", "baselines");

export interface BaselineCase {
  readonly name: string;
  readonly sources: PolicySource[];
}

/** Files of a directory case: shown as `case/sub/file.policy`, named relative to the case (its policy root). */
function collect(dir: string, caseName: string, prefix: string, out: PolicySource[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const full = path.join(dir, entry.name);
    const rel = `${prefix}${entry.name}`;
    if (entry.isDirectory()) collect(full, caseName, `${rel}/`, out);
    else if (entry.name.endsWith(".policy")) out.push({ path: `${caseName}/${rel}`, relPath: rel, text: readFileSync(full, "utf8") });
  }
}

export function listCases(): BaselineCase[] {
  return readdirSync(casesDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() || e.name.endsWith(".policy"))
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((e) => {
      const sources: PolicySource[] = [];
      if (e.isDirectory()) collect(path.join(casesDir, e.name), e.name, "", sources);
      else sources.push({ path: e.name, relPath: e.name, text: readFileSync(path.join(casesDir, e.name), "utf8") });
      return { name: e.name.replace(/\.policy$/, ""), sources };
    });
}

/** The baseline text of one case: every diagnostic in human form, then the summary line. */
export function renderCase(c: BaselineCase): string {
  const result = checkSources(c.sources);
  const body = renderDiagnostics(result.diagnostics, c.sources);
  return `${body === "" ? "" : `${body}\n`}${summary(result.diagnostics, c.sources.length)}\n`;
}

export function baselinePath(name: string): string {
  return path.join(baselinesDir, `${name}.diagnostics.txt`);
}

export const diagnosticsDocPath = path.join(repoRoot, "docs", "diagnostics.md");

/** `docs/diagnostics.md`, generated from the catalog: every code, its severity and message. */
export function renderDiagnosticsDoc(catalog: Record<string, { code: string; severity: string; message: string }>): string {
  const rows = Object.entries(catalog)
    .sort(([, a], [, b]) => (a.code < b.code ? -1 : 1))
    .map(([name, e]) => `| ${e.code} | ${e.severity} | ${name} | ${e.message.replace(/\|/g, "\\|").replace(/\{(\d)\}/g, "‹$1›")} |`);
  return [
    "# Diagnostics",
    "",
    "Generated from `dsl/diagnostics.ts` by `npm run baselines`; do not edit by hand.",
    "Codes are stable: PC1xxx syntax, PC2xxx names and types (PC21xx warnings), PC3xxx",
    "lowering, PC9xxx command line and files. `‹n›` marks a part filled in per message.",
    "Each code is shown in context in `test/baselines/`.",
    "",
    "| code | severity | name | message |",
    "|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
