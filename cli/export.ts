// Owns `portcullis export --cedar <paths…> -o <dir>`: check a policy set and write its Cedar
// schema and policies (spec §7) into a directory.
import { hasErrors } from "../dsl/diagnostics.js";
import { writeCedarExport } from "../compiler/cedar.js";
import { loadPolicySet } from "../compiler/program.js";
import { ExitCode } from "./exit-codes.js";
import { renderDiagnostics, summary } from "./report.js";

export function runExportCedar(paths: readonly string[], outDir: string, out: (s: string) => void): ExitCode {
  const result = loadPolicySet(paths);
  if (result.diagnostics.length > 0) out(renderDiagnostics(result.diagnostics, result.sources));
  if (result.diagnostics.some((d) => d.code.startsWith("PC9"))) return ExitCode.Usage;
  if (hasErrors(result.diagnostics) || result.policySet === undefined) {
    out(summary(result.diagnostics, result.sources.length));
    return ExitCode.Failure;
  }
  let written;
  try {
    written = writeCedarExport(result.policySet, outDir);
  } catch (e) {
    // Only file-system errors are the user's; anything else is a bug, reported by main.
    if ((e as NodeJS.ErrnoException).code === undefined) throw e;
    out(`error: cannot write the Cedar export to \`${outDir}\`: ${(e as Error).message}`);
    return ExitCode.Usage;
  }
  out(`wrote ${written.files.join(" and ")} (${written.policies} Cedar ${written.policies === 1 ? "policy" : "policies"})`);
  return ExitCode.Ok;
}
