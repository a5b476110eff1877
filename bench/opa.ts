// Owns the OPA-SDK column of the WASM bench (bench/wasm.ts): the module that
// `compile --target opa-wasm` writes for the bench's bundle, loaded by
// `@open-policy-agent/opa-wasm` and asked `evaluate(input, "portcullis/decision")` once per
// request — JSON in and out through the SDK, as an OPA host pays it. Checked against the
// tables engine on every request first: a benchmark of a wrong evaluator is worthless.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { TableEvaluator } from "../compiler/table-eval.js";
import type { Request } from "../compiler/request.js";
import { formatIp } from "../dsl/ip.js";
import { buildOpaOutput, opaPolicyInputFromBundle } from "../cli/opa.js";
import { OPA_ENTRYPOINT } from "../runtime/opa-module.js";
import type { BenchInput } from "./wasm.js";

/** Requests timed together: CPU time (µs resolution) is read once per group, not per request. */
const GROUP = 1_000;
const ROUNDS = 5;

function inputOf(r: Request): Record<string, unknown> {
  return { principal: r.principal, uid: r.uid, gid: r.gid, ip: formatIp(r.family, r.ip), port: r.port, protocol: r.protocol };
}

/** CPU time (user + system) of this process in µs, as the rest of the WASM bench measures. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Median CPU µs per `evaluate` over the bench's requests (several rounds, grouped timings). */
export async function measureOpaSdk(input: BenchInput): Promise<number> {
  const opa = await loadPolicy(await buildOpaOutput(opaPolicyInputFromBundle(input.bundle), "policy.wasm"));
  const tables = new TableEvaluator(input.bundle);
  const inputs = input.requests.map(inputOf);
  input.requests.forEach((r, i) => {
    const [{ result }] = opa.evaluate(inputs[i], OPA_ENTRYPOINT) as [{ result: unknown }];
    const d = tables.decide(r);
    if (JSON.stringify(result) !== JSON.stringify({ decision: d.decision, reasons: d.reasons, default: d.default })) {
      throw new Error(`the OPA module and the tables engine disagree on ${JSON.stringify(inputs[i])}: ${JSON.stringify(result)}`);
    }
  });
  const group = Math.max(1, Math.min(GROUP, inputs.length));
  const perRequest: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (let from = 0; from + group <= inputs.length; from += group) {
      const t = cpuUs();
      for (let i = from; i < from + group; i++) opa.evaluate(inputs[i], OPA_ENTRYPOINT);
      perRequest.push((cpuUs() - t) / group);
    }
  }
  perRequest.sort((a, b) => a - b);
  return perRequest[perRequest.length >> 1]!;
}
