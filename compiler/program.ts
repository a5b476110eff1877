// Owns the front end's driver: finding the `.policy` files of a policy set on disk, the
// policy root, parsing every file and checking the set as a whole. The CLI and every
// later stage (compile, test, eval) start here.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { PolicyFile } from "../dsl/ast.js";
import { diag, hasErrors, sortDiagnostics, type Diagnostic } from "../dsl/diagnostics.js";
import { parsePolicy } from "../dsl/parse.js";
import { checkPolicySet } from "./check.js";
import type { PolicySet, PolicySource } from "./model.js";

export interface LoadResult {
  readonly sources: readonly PolicySource[];
  /** I/O problems (PC9xxx): unreadable paths, no policy files. */
  readonly diagnostics: readonly Diagnostic[];
}

function walk(dir: string, out: string[]): void {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== "node_modules" && !entry.name.startsWith(".")) walk(full, out);
    } else if (entry.name.endsWith(".policy")) out.push(full);
  }
}

/** The deepest directory containing every input (a file input counts as its directory). */
function policyRoot(inputs: readonly { abs: string; isDir: boolean }[]): string {
  const dirs = inputs.map((i) => (i.isDir ? i.abs : path.dirname(i.abs)));
  let root = dirs[0] ?? process.cwd();
  for (const d of dirs.slice(1)) {
    while (d !== root && !d.startsWith(root.endsWith(path.sep) ? root : root + path.sep)) root = path.dirname(root);
  }
  return root;
}

/** How a path is shown in diagnostics: relative to the cwd when under it, else absolute. */
function displayPath(abs: string): string {
  const rel = path.relative(process.cwd(), abs);
  return rel !== "" && !rel.startsWith("..") && !path.isAbsolute(rel) ? rel.split(path.sep).join("/") : abs;
}

/** Reads the policy files named by `paths` (files, or directories searched recursively). */
export function loadPolicySources(paths: readonly string[]): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const inputs: { abs: string; isDir: boolean }[] = [];
  const files = new Set<string>();
  for (const p of paths) {
    const abs = path.resolve(p);
    let isDir: boolean;
    try {
      isDir = statSync(abs).isDirectory();
    } catch (e) {
      diagnostics.push(diag("FileNotFound", undefined, p, (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message));
      continue;
    }
    inputs.push({ abs, isDir });
    if (isDir) {
      const found: string[] = [];
      walk(abs, found);
      if (found.length === 0) diagnostics.push(diag("NoPolicyFiles", undefined, `\`${p}\``));
      found.forEach((f) => files.add(f));
    } else {
      files.add(abs);
    }
  }
  const root = policyRoot(inputs);
  const sources: PolicySource[] = [];
  for (const abs of files) {
    try {
      const text = readFileSync(abs, "utf8");
      sources.push({ path: displayPath(abs), relPath: path.relative(root, abs).split(path.sep).join("/") || path.basename(abs), text });
    } catch (e) {
      diagnostics.push(diag("FileNotFound", undefined, displayPath(abs), (e as Error).message));
    }
  }
  // Policy-set order (spec §3): files sorted by path relative to the root.
  sources.sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  return { sources, diagnostics };
}

export interface CompileFrontResult {
  readonly sources: readonly PolicySource[];
  /** Sorted: by file, then position. */
  readonly diagnostics: readonly Diagnostic[];
  /** Undefined when any file has errors. */
  readonly policySet: PolicySet | undefined;
}

/**
 * Parses and checks sources as one policy set. The set is checked only when every file
 * parsed (names are global, so a file that did not parse would make its names unknown).
 */
export function checkSources(sources: readonly PolicySource[]): CompileFrontResult {
  const diagnostics: Diagnostic[] = [];
  const parsed: PolicyFile[] = [];
  for (const source of sources) {
    const result = parsePolicy(source.text, source.path);
    diagnostics.push(...result.diagnostics);
    if (result.ast !== undefined) parsed.push(result.ast);
  }
  if (parsed.length < sources.length) return { sources, diagnostics: sortDiagnostics(diagnostics), policySet: undefined };
  const checked = checkPolicySet(sources, parsed);
  diagnostics.push(...checked.diagnostics);
  const policySet = hasErrors(diagnostics) ? undefined : checked.policySet;
  return { sources, diagnostics: sortDiagnostics(diagnostics), policySet };
}

/** Loads, parses and checks the policy set at `paths`. */
export function loadPolicySet(paths: readonly string[]): CompileFrontResult {
  const loaded = loadPolicySources(paths);
  const checked = checkSources(loaded.sources);
  return { sources: loaded.sources, diagnostics: [...loaded.diagnostics, ...checked.diagnostics], policySet: hasErrors(loaded.diagnostics) ? undefined : checked.policySet };
}
