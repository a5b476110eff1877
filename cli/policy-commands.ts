// Owns the commands that evaluate a policy set: `compile`, `inspect`, `test`, `eval` and
// `explain`. Policy input is either sources (paths) or a compiled bundle (`--bundle`).
import { readFileSync, writeFileSync } from "node:fs";
import { diag, formatDiagnostic, hasErrors } from "../dsl/diagnostics.js";
import { formatIp } from "../dsl/ip.js";
import { readBundle, writeBundle, type Bundle } from "../compiler/bundle.js";
import type { PolicySet } from "../compiler/model.js";
import { loadPolicySet } from "../compiler/program.js";
import { ReferenceEvaluator } from "../compiler/reference.js";
import { decisionJson, parseEndpointText, parseRequestObject, RequestError, resolvePrincipal, type Request } from "../compiler/request.js";
import { buildDecisionTables, LoweringError } from "../compiler/tables.js";
import { describeBundleFailure, describeFailure, runBundleTests, runPolicyTests, testSummary } from "../compiler/tests.js";
import { makeEvaluator, type EngineName } from "./engines.js";
import { ExitCode } from "./exit-codes.js";
import { writeOpaOutput, type CompileTarget } from "./opa.js";
import { renderDiagnostics, UsageError } from "./report.js";

type Out = (s: string) => void;

/** Thrown to end a command with an exit code after its output is printed. */
export class CommandFailed extends Error {
  constructor(readonly code: ExitCode) {
    super(`exit ${code}`);
  }
}

/** Loads and checks sources; prints diagnostics; stops on errors (1) or I/O problems (2). */
function loadChecked(paths: readonly string[], out: Out, quietWarnings = false): PolicySet {
  const result = loadPolicySet(paths);
  const shown = quietWarnings ? result.diagnostics.filter((d) => d.severity === "error") : result.diagnostics;
  if (shown.length > 0) out(renderDiagnostics(shown, result.sources));
  if (result.diagnostics.some((d) => d.code.startsWith("PC9"))) throw new CommandFailed(ExitCode.Usage);
  if (hasErrors(result.diagnostics) || result.policySet === undefined) throw new CommandFailed(ExitCode.Failure);
  return result.policySet;
}

export function loadBundleFile(file: string, out: Out): Bundle {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    out(formatDiagnostic(diag("FileNotFound", undefined, file, (e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message), undefined));
    throw new CommandFailed(ExitCode.Usage);
  }
  const result = readBundle(bytes, file);
  if (!result.ok) {
    out(formatDiagnostic(result.diagnostic, undefined));
    throw new CommandFailed(ExitCode.Failure);
  }
  return result.bundle;
}

function lower<T>(f: () => T, out: Out): T {
  try {
    return f();
  } catch (e) {
    return refuseLowering(e, out);
  }
}

/** Ends the command with PC3002 for a policy that cannot be lowered (tables or kernel maps); rethrows anything else. */
function refuseLowering(e: unknown, out: Out): never {
  if (e instanceof LoweringError) {
    out(formatDiagnostic(diag("LoweringLimit", undefined, e.message), undefined));
    throw new CommandFailed(ExitCode.Failure);
  }
  throw e;
}

// ---------------------------------------------------------------- compile, inspect

export async function runCompile(paths: readonly string[], output: string, version: string, out: Out, target: CompileTarget = "bundle"): Promise<ExitCode> {
  const policy = loadChecked(paths, out);
  const tables = lower(() => buildDecisionTables(policy), out);
  if (target === "opa-wasm") return writeOpaOutput(policy, tables, output, out);
  const bytes = writeBundle(policy, version, tables);
  try {
    writeFileSync(output, bytes);
  } catch (e) {
    out(formatDiagnostic(diag("FileNotFound", undefined, output, (e as Error).message), undefined));
    return ExitCode.Usage;
  }
  const { rows, pairs } = tables.stats;
  out(`compiled ${policy.rules.length} rules from ${policy.sources.length} files into ${output} (${bytes.length} bytes, ${rows} rows, ${pairs} pairs)`);
  return ExitCode.Ok;
}

export function runInspect(file: string, json: boolean, out: Out): ExitCode {
  const { manifest } = loadBundleFile(file, out);
  if (json) {
    out(JSON.stringify(manifest, null, 2));
    return ExitCode.Ok;
  }
  const c = manifest.counts;
  out(`bundle      ${file}`);
  out(`format      ${manifest.format} (compiled by ${manifest.compiler.name} ${manifest.compiler.version})`);
  out(`sources     ${manifest.sources.map((s) => `${s.path} sha256:${s.sha256.slice(0, 12)}`).join("\n            ")}`);
  out(`rules       ${c.rules} (${manifest.rules.filter((r) => r.effect === "forbid").length} forbid)`);
  out(`workloads   ${manifest.workloads.map((w) => `${w.name} → ${w.identityClasses.length === 1 ? "class" : "classes"} ${w.identityClasses.join(",")}`).join(", ") || "none"}`);
  out(`tests       ${c.tests} assertions`);
  out(`default     unidentified ${manifest.defaultUnidentified}`);
  out(`tables      ${c.words * 4} bytes: ${c.identityClasses} identity classes (${c.dfaStates} DFA states), ${c.destinationClasses} destination classes, ${c.pairs} pairs, ${c.rows} rows, ${c.verdicts} verdicts, ${c.reasonSets} reason sets`);
  return ExitCode.Ok;
}

// ---------------------------------------------------------------- test

/** Runs the tests of policy sources, or with `bundleFile` the tests compiled into a bundle. */
export async function runTest(paths: readonly string[], engine: EngineName, out: Out, bundleFile?: string): Promise<ExitCode> {
  if ((paths.length > 0) === (bundleFile !== undefined)) throw new UsageError("give either policy paths or `--bundle <file>`");
  if (bundleFile !== undefined) {
    const bundle = loadBundleFile(bundleFile, out);
    const evaluator = await makeEvaluator(engine, { policy: undefined, bundle }).catch((e: unknown) => refuseLowering(e, out));
    const results = runBundleTests(bundle.manifest.tests, evaluator);
    for (const r of results) if (!r.passed) out(describeBundleFailure(r));
    out(testSummary(results));
    return results.every((r) => r.passed) ? ExitCode.Ok : ExitCode.Failure;
  }
  const policy = loadChecked(paths, out, true);
  const evaluator = await makeEvaluator(engine, { policy, bundle: undefined }).catch((e: unknown) => refuseLowering(e, out));
  const results = runPolicyTests(policy, evaluator);
  for (const r of results) if (!r.passed) out(describeFailure(r));
  out(testSummary(results));
  return results.every((r) => r.passed) ? ExitCode.Ok : ExitCode.Failure;
}

// ---------------------------------------------------------------- eval, explain

export interface RequestOptions {
  readonly from?: string;
  readonly uid?: string;
  readonly gid?: string;
  readonly to?: string;
}

function parseU32Option(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[0-9]+$/.test(value) || Number(value) > 0xffffffff) throw new UsageError(`--${name} must be an integer in 0..4294967295, not \`${value}\``);
  return Number(value);
}

/** The request named by `--from`, `--uid`, `--gid`, `--to`. */
function requestFromOptions(o: RequestOptions, workloads: PolicySet["workloadsByName"]): Request {
  if (o.from === undefined || o.to === undefined) throw new UsageError("give the request with `--from <spiffe-id | workload:NAME | unidentified> --to <ip:port/proto>`, or `--requests <file.jsonl>`");
  try {
    const p = resolvePrincipal(o.from, { workloadsByName: workloads });
    const to = parseEndpointText(o.to);
    return { principal: p.principal, uid: parseU32Option("uid", o.uid) ?? p.defaultUid, gid: parseU32Option("gid", o.gid) ?? p.defaultGid, ...to };
  } catch (e) {
    if (e instanceof RequestError) throw new UsageError(e.message);
    throw e;
  }
}

/** Workloads by name, from sources or from a bundle's manifest. */
function workloadsOf(policy: PolicySet | undefined, bundle: Bundle | undefined): PolicySet["workloadsByName"] {
  if (policy !== undefined) return policy.workloadsByName;
  return new Map(bundle!.manifest.workloads.map((w) => [w.name, { name: w.name, id: w.id, matches: w.match, decl: undefined as never }]));
}

export interface EvalOptions extends RequestOptions {
  readonly bundle?: string;
  readonly requests?: string;
  readonly engine: EngineName;
}

export async function runEval(paths: readonly string[], o: EvalOptions, out: Out): Promise<ExitCode> {
  if ((paths.length > 0) === (o.bundle !== undefined)) throw new UsageError("give either policy paths or `--bundle <file>`");
  const policy = paths.length > 0 ? loadChecked(paths, out, true) : undefined;
  const bundle = o.bundle !== undefined ? loadBundleFile(o.bundle, out) : undefined;
  const workloads = workloadsOf(policy, bundle);
  const evaluator = await makeEvaluator(o.engine, { policy, bundle }).catch((e: unknown) => refuseLowering(e, out));
  if (o.requests === undefined) {
    out(decisionJson(evaluator.decide(requestFromOptions(o, workloads))));
    return ExitCode.Ok;
  }
  if (o.from !== undefined || o.to !== undefined) throw new UsageError("`--requests` cannot be combined with `--from`/`--to`");
  let text: string;
  try {
    text = readFileSync(o.requests, "utf8");
  } catch (e) {
    out(formatDiagnostic(diag("FileNotFound", undefined, o.requests, (e as Error).message), undefined));
    return ExitCode.Usage;
  }
  let failed = false;
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  const results: string[] = [];
  lines.forEach((line, i) => {
    try {
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        throw new RequestError("request", "not valid JSON");
      }
      results.push(decisionJson(evaluator.decide(parseRequestObject(value, { workloadsByName: workloads }))));
    } catch (e) {
      if (!(e instanceof RequestError)) throw e;
      failed = true;
      results.push(JSON.stringify({ error: e.message, line: i + 1 }));
    }
  });
  if (results.length > 0) out(results.join("\n"));
  return failed ? ExitCode.Failure : ExitCode.Ok;
}

function describeRequest(r: Request): string {
  const who = r.principal ?? "unidentified";
  const address = r.family === 6 ? `[${formatIp(6, r.ip)}]` : formatIp(4, r.ip);
  return `${who} (uid ${r.uid}, gid ${r.gid}) → ${address}:${r.port}/${r.protocol}`;
}

export function runExplain(paths: readonly string[], o: RequestOptions & { all: boolean }, out: Out): ExitCode {
  const policy = loadChecked(paths, out, true);
  const request = requestFromOptions(o, policy.workloadsByName);
  const { decision, traces } = new ReferenceEvaluator(policy).explain(request);
  const texts = new Map(policy.sources.map((s) => [s.path, s.text]));
  const excerpt = (d: { span: { file: string; offset: number; length: number } }) => {
    const text = texts.get(d.span.file) ?? "";
    return text.slice(d.span.offset, d.span.offset + d.span.length).replace(/\s+/g, " ");
  };
  out(`request   ${describeRequest(request)}`);
  const why = decision.default
    ? `no rule matched: the default for ${request.principal === null ? "unidentified principals" : "identified principals"}`
    : `${decision.decision === "deny" ? "forbidden" : "permitted"} by ${decision.reasons.map((id) => `\`${id}\``).join(", ")}`;
  out(`decision  ${decision.decision} (${why})`);
  out("");
  const scopeFailures = traces.filter((t) => t.failed !== undefined && ["principal", "action", "resource"].includes(t.failed.part));
  const shown = o.all || traces.length <= 50 ? traces : traces.filter((t) => !scopeFailures.includes(t));
  for (const t of shown) {
    const where = `${t.rule.ast.span.file}:${t.rule.ast.span.line}`;
    const head = `${t.rule.effect.padEnd(6)} ${t.rule.id}  (${where})`;
    if (t.matched) out(`✔ ${head}: matched`);
    else {
      const f = t.failed!;
      const reason =
        f.part === "unless" ? "excluded by its `unless`" : f.part === "when" ? "its `when` is false" : `its ${f.part} scope does not match`;
      out(`✘ ${head}: ${reason}: ${excerpt(f)}`);
    }
    for (const a of t.rule.annotations) if (a.name !== "id") out(`      @${a.name}: ${a.value}`);
  }
  if (shown.length < traces.length) out(`… and ${traces.length - shown.length} rules whose scope does not match (show them with --all)`);
  return ExitCode.Ok;
}

