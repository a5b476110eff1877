// Owns `--engine`: the evaluators a command can decide with, and what each needs (policy
// sources or a bundle). One source of truth for the engine names.
import { manifestWorkloads, type Bundle } from "../compiler/bundle.js";
import type { PolicySet } from "../compiler/model.js";
import { ReferenceEvaluator } from "../compiler/reference.js";
import { TableEvaluator } from "../compiler/table-eval.js";
import { buildDecisionTables } from "../compiler/tables.js";
import type { Evaluator } from "../compiler/tests.js";
import { UsageError } from "./report.js";

export const ENGINES = ["reference", "tables", "cedar", "wasm", "kernel-sim", "kernel"] as const;
export type EngineName = (typeof ENGINES)[number];

export function parseEngine(value: string): EngineName {
  if (!(ENGINES as readonly string[]).includes(value)) throw new UsageError(`unknown engine \`${value}\`; expected one of ${ENGINES.join(", ")}`);
  return value as EngineName;
}

export interface EngineInput {
  readonly policy: PolicySet | undefined;
  readonly bundle: Bundle | undefined;
}

export async function makeEvaluator(name: EngineName, input: EngineInput): Promise<Evaluator> {
  if (name === "tables") {
    if (input.bundle !== undefined) return new TableEvaluator(input.bundle);
    return new TableEvaluator(buildDecisionTables(input.policy!));
  }
  if (name === "wasm") {
    const { loadEvaluator, EvaluatorLoadError } = await import("../runtime/evaluator.js");
    try {
      return loadEvaluator(input.bundle ?? buildDecisionTables(input.policy!));
    } catch (e) {
      if (e instanceof EvaluatorLoadError) throw new UsageError(e.message);
      throw e;
    }
  }
  if (name === "kernel-sim") {
    const { KernelSimEvaluator } = await import("../kernel-bridge/sim.js");
    if (input.bundle !== undefined) return new KernelSimEvaluator({ ...input.bundle, workloads: input.bundle.manifest.workloads });
    const tables = buildDecisionTables(input.policy!);
    return new KernelSimEvaluator({ ...tables, workloads: manifestWorkloads(input.policy!, tables) });
  }
  if (name === "kernel") {
    const { KernelEngineEvaluator } = await import("./kernel-engine.js");
    if (input.bundle !== undefined) return new KernelEngineEvaluator(input.bundle);
    const { readBundle, writeBundle } = await import("../compiler/bundle.js");
    const read = readBundle(writeBundle(input.policy!, "eval"), "eval");
    if (!read.ok) throw new Error(read.diagnostic.message);
    return new KernelEngineEvaluator(read.bundle);
  }
  if (input.policy === undefined) throw new UsageError(`the \`${name}\` engine needs policy sources, not a bundle; use \`--engine tables\` with \`--bundle\``);
  if (name === "reference") return new ReferenceEvaluator(input.policy);
  const { CedarEvaluator } = await import("../compiler/cedar.js");
  return new CedarEvaluator(input.policy);
}
