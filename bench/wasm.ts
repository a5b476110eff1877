// Owns the WASM evaluator benchmark (issue 4): for generated policy sets of 100 / 1,000 /
// 10,000 rules, on the same requests, the evaluator one call at a time and in batches,
// the tables engine, cedar-wasm `statefulIsAuthorized` on the Cedar export, and the OPA SDK
// path; with the ratios and the evaluator's memory against its table size. Each size runs
// in a fresh child process, the evaluator before Cedar is loaded (cedar.ts changes a V8
// flag that slows every JS→WASM call made after it).
//
//   node dist/bench/wasm.js --measure N   (the child's entry point)
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readBundle, writeBundle, type Bundle } from "../compiler/bundle.js";
import type { PolicySet } from "../compiler/model.js";
import { checkSources } from "../compiler/program.js";
import type { Request } from "../compiler/request.js";
import { TableEvaluator } from "../compiler/table-eval.js";
import { buildDecisionTables, LoweringError } from "../compiler/tables.js";
import { loadEvaluator, REQUEST_WORDS } from "../runtime/evaluator.js";
import { generatePolicySet } from "../test/support/generate.js";
import { randomRequests } from "../test/support/random-policy.js";
import { measureOpaSdk } from "./opa.js";
import type { BenchSection } from "./run.js";
import { median } from "./stats.js";
import { measureInChild } from "./child.js";

const SIZES = [100, 1_000, 10_000];
const SEED = 1;
const REQUESTS = 10_000;
const PASSES = 31;
const CEDAR_SECONDS = 3;
const CEDAR_MAX_REQUESTS = 300;
/** Per size, building the tables included (a built bundle is cached for the next run). */
const LIMIT_SECONDS = 300;
/** dist/ (this file is dist/bench/wasm.js) and the repository root. */
const distRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repoRoot = path.resolve(distRoot, "..");

const TARGET_SINGLE_NS = 300;
const TARGET_BATCH_PER_SECOND = 5_000_000;
const TARGET_CEDAR_RATIO = 100;
const TARGET_MEMORY_RATIO = 4;

/** What every measured path gets: the set, its bundle, and the same requests. */
export interface BenchInput {
  readonly policy: PolicySet;
  readonly bundle: Bundle;
  readonly requests: readonly Request[];
}

interface WasmMeasurement {
  readonly rules: number;
  /** How the set was generated: standard, or without patterns in conditions (PC3002). */
  readonly variant: string;
  /** Building the tables, or undefined when the bundle came from the cache. */
  readonly tablesMs: number | undefined;
  readonly tableBytes: number;
  /** Linear memory right after loading, and after classifying every request's identity. */
  readonly loadedMemoryBytes: number;
  readonly memoryBytes: number;
  readonly identities: number;
  readonly loadMs: number;
  readonly singleNs: number;
  /** Single calls split by the kind of identity: count, ns, and the mean identity classes of those requests (before the evaluator merges equivalent ones). */
  readonly byKind: readonly { kind: string; count: number; ns: number; meanClasses: number }[];
  /** How the requests are decided: allowed by a permit, denied by a forbid, by the default. */
  readonly outcomes: { readonly permit: number; readonly forbid: number; readonly default: number };
  readonly requestApiNs: number;
  readonly batchPerSecond: number;
  readonly tablesEngineNs: number;
  readonly cedarUs: number;
  readonly cedarRequests: number;
  /** The OPA SDK path (bench/opa.ts): median µs per `evaluate`. */
  readonly opaSdkUs: number;
}

/** CPU time (user + system) of this process in ns: unlike wall time, not inflated when other work preempts it. */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** Median over `passes` of the mean CPU time per item of one pass (ns); one warm-up pass first. */
function perItemNs(passes: number, items: number, pass: () => void): number {
  pass();
  const means: number[] = [];
  for (let p = 0; p < passes; p++) {
    const t = cpuNs();
    pass();
    means.push((cpuNs() - t) / items);
  }
  return median(means);
}

/**
 * Bundles of generated sets are cached in node_modules/.cache/portcullis-bench/, keyed by
 * the source text and the compiler's built code: building the tables of 10,000 generated
 * rules takes many minutes, and the bench measures the evaluator, not the compiler.
 */
const CACHE_DIR = path.join(repoRoot, "node_modules", ".cache", "portcullis-bench");

function compilerHash(): string {
  const hash = createHash("sha256");
  for (const dir of ["compiler", "dsl"]) {
    const full = path.join(distRoot, dir);
    for (const file of readdirSync(full).filter((f) => f.endsWith(".js")).sort()) hash.update(file).update(readFileSync(path.join(full, file)));
  }
  return hash.digest("hex").slice(0, 16);
}

/** The bundle of a checked set: from the cache, or compiled (and cached). Undefined when the set cannot be lowered (PC3002). */
function bundleOf(policy: PolicySet, text: string): { bundle: Bundle; tablesMs: number | undefined } | undefined {
  const file = path.join(CACHE_DIR, `${createHash("sha256").update(text).digest("hex").slice(0, 16)}-${compilerHash()}.bundle`);
  if (existsSync(file)) {
    const read = readBundle(readFileSync(file), file);
    if (read.ok) return { bundle: read.bundle, tablesMs: undefined };
  }
  const t = performance.now();
  let tables;
  try {
    tables = buildDecisionTables(policy);
  } catch (e) {
    if (e instanceof LoweringError) return undefined;
    throw e;
  }
  const tablesMs = performance.now() - t;
  const bytes = writeBundle(policy, "bench", tables);
  mkdirSync(CACHE_DIR, { recursive: true });
  writeFileSync(file, bytes);
  const read = readBundle(bytes, "generated.bundle");
  if (!read.ok) throw new Error(read.diagnostic.message);
  return { bundle: read.bundle, tablesMs };
}

/** The generated set of `rules` rules and its bundle; without patterns in conditions when the standard set is refused. */
function compileSet(rules: number): { policy: PolicySet; bundle: Bundle; variant: string; tablesMs: number | undefined } {
  for (const noPatternsInConditions of [false, true]) {
    const text = generatePolicySet({ rules, seed: SEED, noPatternsInConditions });
    const checked = checkSources([{ path: "generated.policy", relPath: "generated.policy", text }]);
    if (checked.policySet === undefined) throw new Error(`the generated set of ${rules} rules does not check`);
    const compiled = bundleOf(checked.policySet, text);
    if (compiled !== undefined) {
      return { policy: checked.policySet, ...compiled, variant: noPatternsInConditions ? "no patterns in conditions (standard set: PC3002)" : "standard" };
    }
  }
  throw new Error(`the generated set of ${rules} rules cannot be lowered, even without patterns in conditions`);
}

async function measure(rules: number): Promise<WasmMeasurement> {
  const { policy, bundle, variant, tablesMs } = compileSet(rules);
  const requests = randomRequests(policy, SEED, REQUESTS);
  const input: BenchInput = { policy, bundle, requests };

  let t = performance.now();
  const wasm = loadEvaluator(bundle);
  const loadMs = performance.now() - t;
  const loadedMemoryBytes = wasm.memoryBytes;
  // Every request's identity classified once (as an agent does at attestation), then memory measured.
  const encoded = new Uint32Array(requests.length * REQUEST_WORDS);
  requests.forEach((r, i) => encoded.set(wasm.encode(r), i * REQUEST_WORDS));
  const memoryBytes = wasm.memoryBytes;

  let sink = 0;
  const singleCalls = (words: Uint32Array) => () => {
    for (let i = 0; i < words.length; i += REQUEST_WORDS) {
      sink ^= wasm.decideEncoded(words[i]!, words[i + 1]!, words[i + 2]!, words[i + 3]!, words[i + 4]!, words[i + 5]!, words[i + 6]!, words[i + 7]!, words[i + 8]!, words[i + 9]!);
    }
  };
  const singleNs = perItemNs(PASSES, requests.length, singleCalls(encoded));
  // The same calls split by the kind of identity: a workload's ID, another exact or peer ID,
  // unidentified; each has a list of identity classes to combine (step 6).
  const workloadIds = new Set(input.policy.workloads.map((w) => w.id));
  const kindOf = (r: Request) => (r.principal === null ? "unidentified" : workloadIds.has(r.principal) ? "workload ID" : "other ID (peer)");
  const classes = requests.map((r) => bundle.reader.identityClasses(r.principal).length);
  const byKind = ["workload ID", "other ID (peer)", "unidentified"].map((kind) => {
    const picked = requests.flatMap((r, i) => (kindOf(r) === kind ? [i] : []));
    const words = new Uint32Array(picked.length * REQUEST_WORDS);
    picked.forEach((i, k) => words.set(encoded.subarray(i * REQUEST_WORDS, (i + 1) * REQUEST_WORDS), k * REQUEST_WORDS));
    const meanClasses = picked.reduce((n, i) => n + classes[i]!, 0) / Math.max(1, picked.length);
    return { kind, count: picked.length, ns: picked.length === 0 ? 0 : perItemNs(PASSES, picked.length, singleCalls(words)), meanClasses };
  });
  const requestApiNs = perItemNs(PASSES, requests.length, () => {
    for (const r of requests) sink ^= wasm.decide(r).reasons.length;
  });
  const batch = wasm.createBatch(requests.length);
  batch.requests.set(encoded);
  const batchNs = perItemNs(PASSES, requests.length, () => batch.run(requests.length));
  sink ^= batch.result(0);
  batch.release();

  const tables = new TableEvaluator(bundle);
  const outcomes = { permit: 0, forbid: 0, default: 0 };
  for (const r of requests) {
    const d = tables.decide(r);
    outcomes[d.default ? "default" : d.decision === "allow" ? "permit" : "forbid"]++;
  }
  const tablesEngineNs = perItemNs(5, requests.length, () => {
    for (const r of requests) sink ^= tables.decide(r).reasons.length;
  });

  const opaSdkUs = await measureOpaSdk(input);

  // Cedar last: importing it turns off inlining of JS→WASM calls for the whole process.
  const { CedarEvaluator } = await import("../compiler/cedar.js");
  const cedar = new CedarEvaluator(policy);
  const cedarTimes: number[] = [];
  const cedarStart = performance.now();
  for (const r of requests) {
    if (cedarTimes.length >= CEDAR_MAX_REQUESTS || (cedarTimes.length >= 5 && performance.now() - cedarStart > CEDAR_SECONDS * 1000)) break;
    const start = cpuNs();
    const d = cedar.decide(r);
    cedarTimes.push((cpuNs() - start) / 1000);
    // Same requests, same answers: a benchmark of a wrong evaluator is worthless.
    const w = wasm.decide(r);
    if (d.decision !== w.decision || d.reasons.join() !== w.reasons.join()) throw new Error(`cedar and wasm disagree on ${JSON.stringify(r)}`);
  }
  if (sink === 0.5) process.stderr.write("unreachable\n");
  return {
    rules,
    variant,
    tablesMs,
    tableBytes: bundle.words.byteLength,
    loadedMemoryBytes,
    memoryBytes,
    identities: new Set(requests.map((r) => r.principal)).size,
    loadMs,
    singleNs,
    byKind,
    outcomes,
    requestApiNs,
    batchPerSecond: 1e9 / batchNs,
    tablesEngineNs,
    cedarUs: median(cedarTimes),
    cedarRequests: cedarTimes.length,
    opaSdkUs,
  };
}


const count = (x: number) => Math.round(x).toLocaleString("en-US");
const met = (ok: boolean) => (ok ? "met" : "missed");

export const wasmSection: BenchSection = {
  id: "wasm",
  title: "WASM evaluator: single, batched, against Cedar and OPA",
  describe: `Generated sets (test/support/generate.ts, seed ${SEED}) compiled to bundles; ${count(REQUESTS)} random requests per set (test/support/random-policy.ts \`randomRequests\`, the same for every path), each size in a fresh process. *single*: \`decideEncoded\` (one JS→WASM call per decision, request already encoded, identity already classified); *Request API*: \`decide(request)\` (checks and encodes the request, returns the reference's \`Decision\`); *batch*: one \`decideBatch\` call over all requests in WASM memory. Times are CPU time of the process (user + system; the machine is shared, and wall time counts the time other work preempts the bench), the median of ${PASSES} passes over all requests of each pass's mean per decision (the tables engine: 5 passes). Cedar: \`CedarEvaluator.decide\` (\`statefulIsAuthorized\` on a preparsed policy set of the Cedar export), median CPU time per request over the first requests within ${CEDAR_SECONDS} s (at most ${CEDAR_MAX_REQUESTS}), each checked to agree with the WASM decision. OPA SDK: the module of \`compile --target opa-wasm\` loaded by \`@open-policy-agent/opa-wasm\` 1.10, \`evaluate(input, "portcullis/decision")\` per request (JSON in and out through the SDK, the principal classified afresh each time), every answer first checked against the tables engine; median CPU time over 5 passes of groups of 1,000 requests. Memory: the evaluator's whole linear memory (tables copy, lookup structures, identity cache) after every request's identity was classified, against the tables' size. Targets (issue 4, at 10,000 rules): single ≤ ${TARGET_SINGLE_NS} ns, batch ≥ ${TARGET_BATCH_PER_SECOND / 1e6} M decisions/s, ≥ ${TARGET_CEDAR_RATIO}× faster than cedar-wasm, memory ≤ ${TARGET_MEMORY_RATIO}× the table size.`,
  async run() {
    const lines = [
      "| rules | set | tables ms (compile) | table bytes | WASM memory after load (÷ tables) | after classifying the requests' identities (÷ tables) | load ms | single ns | Request API ns | batch decisions/s | tables engine ns | cedar-wasm µs | cedar ÷ single | OPA SDK µs | OPA ÷ single | cedar ÷ OPA |",
      "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ];
    const verdicts: string[] = [];
    let largest: { m: WasmMeasurement; cedarRatio: number; loadedRatio: number } | undefined;
    for (const rules of SIZES) {
      const m = measureInChild<WasmMeasurement>(fileURLToPath(import.meta.url), rules, LIMIT_SECONDS);
      if (typeof m === "string") {
        lines.push(`| ${count(rules)} | ${m} |  |  |  |  |  |  |  |  |  |  |  |  |  |  |`);
        continue;
      }
      const cedarRatio = (m.cedarUs * 1000) / m.singleNs;
      const loadedRatio = m.loadedMemoryBytes / m.tableBytes;
      const opa = [m.opaSdkUs.toFixed(1), `${count((m.opaSdkUs * 1000) / m.singleNs)}×`, `${(m.cedarUs / m.opaSdkUs).toFixed(1)}×`];
      lines.push(
        `| ${count(rules)} | ${m.variant} | ${m.tablesMs === undefined ? "cached" : count(m.tablesMs)} | ${count(m.tableBytes)} | ${count(m.loadedMemoryBytes)} (${loadedRatio.toFixed(2)}×) | ${count(m.memoryBytes)} (${(m.memoryBytes / m.tableBytes).toFixed(2)}×), ${count(m.identities)} identities | ${m.loadMs.toFixed(1)} | ${m.singleNs.toFixed(0)} | ${m.requestApiNs.toFixed(0)} | ${count(m.batchPerSecond)} | ${m.tablesEngineNs.toFixed(0)} | ${m.cedarUs.toFixed(0)} (${m.cedarRequests} requests) | ${count(cedarRatio)}× | ${opa[0]} | ${opa[1]} | ${opa[2]} |`,
      );
      largest = { m, cedarRatio, loadedRatio };
    }
    if (largest !== undefined) {
      const { m, cedarRatio, loadedRatio } = largest;
      const at = `${count(m.rules)} rules${m.rules < 10_000 ? " (the largest size measured; the targets are set at 10,000)" : ""}`;
      const kinds = m.byKind.filter((k) => k.count > 0).map((k) => `${count(k.count)} requests from a ${k.kind} ${k.ns.toFixed(0)} ns (${k.meanClasses.toFixed(1)} identity classes on average, before the evaluator merges equivalent ones)`);
      verdicts.push(
        `- Single decision at ${at}: ${m.singleNs.toFixed(0)} ns, target ≤ ${TARGET_SINGLE_NS} ns — ${met(m.singleNs <= TARGET_SINGLE_NS)}. By identity: ${kinds.join("; ")}.`,
        `- How the ${count(m.outcomes.permit + m.outcomes.forbid + m.outcomes.default)} requests at ${count(m.rules)} rules are decided: ${count(m.outcomes.permit)} allowed by a permit, ${count(m.outcomes.forbid)} denied by a forbid, ${count(m.outcomes.default)} by the default (a decision stops early once a forbid decides, so the mix matters).`,
        `- Batched at ${count(m.rules)} rules: ${(m.batchPerSecond / 1e6).toFixed(1)} M decisions/s on one core, target ≥ ${TARGET_BATCH_PER_SECOND / 1e6} M/s — ${met(m.batchPerSecond >= TARGET_BATCH_PER_SECOND)}.`,
        `- Against cedar-wasm at ${count(m.rules)} rules: ${count(cedarRatio)}× faster per decision, target ≥ ${TARGET_CEDAR_RATIO}× — ${met(cedarRatio >= TARGET_CEDAR_RATIO)}.`,
        `- Memory at ${count(m.rules)} rules: ${loadedRatio.toFixed(2)}× the table size once loaded, target ≤ ${TARGET_MEMORY_RATIO}× — ${met(loadedRatio <= TARGET_MEMORY_RATIO)}; classifying ${count(m.identities)} identities took it to ${(m.memoryBytes / m.tableBytes).toFixed(2)}× (the allocator grows memory by doubling it; at most 65,536 identities are cached).`,
      );
    }
    return [...lines, "", ...verdicts].join("\n");
  },
};

if (process.argv[2] === "--measure") {
  measure(Number(process.argv[3])).then(
    (m) => process.stdout.write(`${JSON.stringify(m)}\n`),
    (e: unknown) => {
      process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
