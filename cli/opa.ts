// Owns `portcullis compile --target opa-wasm`: a policy set compiled into a WebAssembly
// module that any OPA SDK loads (docs/opa-wasm.md), written as `policy.wasm` or, for an
// output ending in `.tar.gz`, as an OPA bundle (`/.manifest` + `/policy.wasm`).
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { diag, formatDiagnostic } from "../dsl/diagnostics.js";
import type { Bundle } from "../compiler/bundle.js";
import type { PolicySet } from "../compiler/model.js";
import { workloadPrincipal } from "../compiler/request.js";
import type { DecisionTables } from "../compiler/tables.js";
import { ruleRanks } from "../runtime/evaluator.js";
import { buildOpaPayload, emitOpaModule, OPA_ENTRYPOINT, OPA_TEMPLATE_PATH, opaBundle, readOpaTemplate, type OpaPolicyInput, type OpaWorkload } from "../runtime/opa-module.js";
import { ExitCode } from "./exit-codes.js";
import { packageRoot } from "./paths.js";
import { UsageError } from "./report.js";

export const COMPILE_TARGETS = ["bundle", "opa-wasm"] as const;
export type CompileTarget = (typeof COMPILE_TARGETS)[number];

export function parseCompileTarget(value: string): CompileTarget {
  if (!(COMPILE_TARGETS as readonly string[]).includes(value)) throw new UsageError(`unknown target \`${value}\`; expected one of ${COMPILE_TARGETS.join(", ")}`);
  return value as CompileTarget;
}

/** A workload as the OPA module knows it: `workload:NAME` resolves to its ID and default uid/gid. */
function opaWorkload(name: string, id: string, matches: readonly { uid?: number; gid?: number }[]): OpaWorkload {
  const p = workloadPrincipal({ id, matches });
  return { name, id, defaultUid: p.defaultUid, defaultGid: p.defaultGid };
}

/** What the OPA module embeds from a checked policy set and its tables. */
export function opaPolicyInput(policy: PolicySet, tables: DecisionTables): OpaPolicyInput {
  const ruleIds = policy.rules.map((r) => r.id);
  return {
    words: tables.words,
    ruleIds,
    ruleRanks: ruleRanks(ruleIds),
    workloads: policy.workloads.map((w) => opaWorkload(w.name, w.id, w.matches)),
  };
}

/** What the OPA module embeds from a bundle already read (its tables and manifest). */
export function opaPolicyInputFromBundle(bundle: Bundle): OpaPolicyInput {
  return {
    words: bundle.words,
    ruleIds: bundle.ruleIds,
    ruleRanks: ruleRanks(bundle.ruleIds),
    workloads: bundle.manifest.workloads.map((w) => opaWorkload(w.name, w.id, w.match)),
  };
}

/** The OPA module's bytes (a module, or an OPA bundle when `output` ends in `.tar.gz`). */
export async function buildOpaOutput(input: OpaPolicyInput, output: string): Promise<Uint8Array> {
  let template: Uint8Array;
  try {
    template = readOpaTemplate(packageRoot);
  } catch {
    throw new UsageError(`the OPA template module is not built (${OPA_TEMPLATE_PATH} is missing); run \`npm run build\``);
  }
  const wasm = await emitOpaModule(template, buildOpaPayload(input));
  if (!output.endsWith(".tar.gz")) return wasm;
  // The revision names the module's content, so an unchanged policy keeps its revision.
  return opaBundle(wasm, createHash("sha256").update(wasm).digest("hex").slice(0, 16));
}

export async function writeOpaOutput(policy: PolicySet, tables: DecisionTables, output: string, out: (s: string) => void): Promise<ExitCode> {
  const bytes = await buildOpaOutput(opaPolicyInput(policy, tables), output);
  try {
    writeFileSync(output, bytes);
  } catch (e) {
    out(formatDiagnostic(diag("FileNotFound", undefined, output, (e as Error).message), undefined));
    return ExitCode.Usage;
  }
  const kind = output.endsWith(".tar.gz") ? "OPA bundle" : "OPA wasm module";
  out(`compiled ${policy.rules.length} rules from ${policy.sources.length} files into ${output} (${kind}, ${bytes.length} bytes, entrypoint ${OPA_ENTRYPOINT})`);
  return ExitCode.Ok;
}
