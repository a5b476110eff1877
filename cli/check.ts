// Owns `portcullis check <paths…>`: parse and check a policy set, print every diagnostic.
import { hasErrors } from "../dsl/diagnostics.js";
import { loadPolicySet } from "../compiler/program.js";
import { ExitCode } from "./exit-codes.js";
import { jsonDiagnostics, renderDiagnostics, summary, type OutputFormat } from "./report.js";

export interface CheckOptions {
  readonly format: OutputFormat;
}

export function runCheck(paths: readonly string[], options: CheckOptions, out: (s: string) => void): ExitCode {
  const result = loadPolicySet(paths);
  const ioError = result.diagnostics.some((d) => d.code.startsWith("PC9"));
  if (options.format === "json") {
    const text = jsonDiagnostics(result.diagnostics);
    if (text !== "") out(text);
  } else {
    if (result.diagnostics.length > 0) out(renderDiagnostics(result.diagnostics, result.sources));
    out(summary(result.diagnostics, result.sources.length));
  }
  if (ioError) return ExitCode.Usage;
  return hasErrors(result.diagnostics) ? ExitCode.Failure : ExitCode.Ok;
}
