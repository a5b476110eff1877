// Owns how diagnostics reach the terminal: human text (TypeScript's layout, STYLE.md) or
// JSON lines for tools, and the one-line summary.
import { formatDiagnostic, toJsonDiagnostic, type Diagnostic } from "../dsl/diagnostics.js";
import type { PolicySource } from "../compiler/model.js";

export type OutputFormat = "human" | "json";

export function parseFormat(value: string): OutputFormat {
  if (value !== "human" && value !== "json") throw new UsageError(`unknown format \`${value}\`; expected \`human\` or \`json\``);
  return value;
}

/** An error in how the command was called: printed as one line, exit code 2. */
export class UsageError extends Error {}

export function renderDiagnostics(diagnostics: readonly Diagnostic[], sources: readonly PolicySource[]): string {
  const texts = new Map(sources.map((s) => [s.path, s.text]));
  return diagnostics.map((d) => formatDiagnostic(d, d.span === undefined ? undefined : texts.get(d.span.file))).join("\n");
}

export function summary(diagnostics: readonly Diagnostic[], files: number): string {
  const errors = diagnostics.filter((d) => d.severity === "error").length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `${plural(errors, "error")}, ${plural(warnings, "warning")} in ${plural(files, "file")}`;
}

export function jsonDiagnostics(diagnostics: readonly Diagnostic[]): string {
  return diagnostics.map((d) => JSON.stringify(toJsonDiagnostic(d))).join("\n");
}
