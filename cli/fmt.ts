// Owns `portcullis fmt [--write | --check] <paths…>`: print, rewrite or verify the one
// canonical layout of `.policy` files. A file with syntax errors is never rewritten.
import { writeFileSync } from "node:fs";
import { diag, type Diagnostic } from "../dsl/diagnostics.js";
import { formatPolicy } from "../dsl/format.js";
import { parsePolicy } from "../dsl/parse.js";
import { loadPolicySources } from "../compiler/program.js";
import { ExitCode } from "./exit-codes.js";
import { jsonDiagnostics, renderDiagnostics, type OutputFormat } from "./report.js";

export interface FmtOptions {
  readonly write: boolean;
  readonly check: boolean;
  readonly format: OutputFormat;
}

export function runFmt(paths: readonly string[], options: FmtOptions, out: (s: string) => void): ExitCode {
  const loaded = loadPolicySources(paths);
  const diagnostics: Diagnostic[] = [...loaded.diagnostics];
  let changed = 0;
  for (const source of loaded.sources) {
    const parsed = parsePolicy(source.text, source.path);
    const errors = parsed.diagnostics.filter((d) => d.severity === "error");
    if (parsed.ast === undefined || errors.length > 0) {
      diagnostics.push(...errors);
      continue;
    }
    const formatted = formatPolicy(parsed.ast, source.text);
    if (formatted === source.text) continue;
    changed++;
    if (options.check) diagnostics.push(diag("NotFormatted", undefined, source.path));
    else if (options.write) writeFileSync(source.path, formatted);
    else out(formatted.replace(/\n$/, ""));
  }
  if (diagnostics.length > 0) out(options.format === "json" ? jsonDiagnostics(diagnostics) : renderDiagnostics(diagnostics, loaded.sources));
  if (options.write && options.format === "human") out(`formatted ${changed} of ${loaded.sources.length} files`);
  if (diagnostics.some((d) => d.code === "PC9001" || d.code === "PC9002")) return ExitCode.Usage;
  return diagnostics.length > 0 ? ExitCode.Failure : ExitCode.Ok;
}
