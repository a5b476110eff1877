// The OPA-ABI module (docs/opa-wasm.md) run by the real OPA SDK (@open-policy-agent/opa-wasm
// `loadPolicy` + `evaluate`) against the reference (DESIGN.md, invariant 1): for every input
// object, the module's result is exactly what the reference gives on the same JSON — the
// decision `{decision, reasons, default}` when `parseRequestObject` (compiler/request.ts)
// accepts it, else `{error, field}` with the reference's message and field. Inputs are
// written in the many ways a caller may: principal as a SPIFFE ID (trust domain in any
// case), `workload:NAME`, `unidentified`, null or absent; uid/gid absent (defaults); ip as
// IPv4, IPv6 (compressed or not, any case) or v4-mapped.
//
// Requests per run through the SDK:
//   fixtures:    boundaryRequests (2,777 + 16,191 + 565) + 300 random each  = 20,433
//   random sets: 12 sets × (250 boundary + 250 random)                      =  6,000
//   bad inputs:  crafted cases + 3,000 seeded mutations of valid inputs
// Reproduce a failure with the seed it prints:
//   PORTCULLIS_OPA_SEED=<seed> npx vitest run test/runtime/opa.test.ts
import { loadPolicy, type LoadedPolicy } from "@open-policy-agent/opa-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import type { PolicySet } from "../../compiler/model.js";
import { checkSources } from "../../compiler/program.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import { parseRequestObject, RequestError, workloadPrincipal, type Request } from "../../compiler/request.js";
import { DecisionTableReader, TableError } from "../../compiler/table-eval.js";
import { buildDecisionTables } from "../../compiler/tables.js";
import { formatIp } from "../../dsl/ip.js";
import { buildOpaOutput, opaPolicyInput } from "../../cli/opa.js";
import { buildOpaPayload, emitOpaModule, OPA_ENTRYPOINT, readOpaTemplate } from "../../runtime/opa-module.js";
import { repoRoot } from "../support/baselines.js";
import { boundaryRequests } from "../support/boundary.js";
import { Random } from "../support/random.js";
import { randomRequests } from "../support/random-policy.js";
import { fixturePolicy, randomSet as randomSetOf, requestJson } from "../support/policy-sets.js";

const SEED = Number(process.env["PORTCULLIS_OPA_SEED"] ?? 20261123);
const RANDOM_SETS = 12;
const BOUNDARY_PER_SET = 250;
const RANDOM_PER_SET = 250;
const RANDOM_PER_FIXTURE = 300;
const MUTATIONS = 3_000;
const REPORTED_MISMATCHES = 5;

type Input = Record<string, unknown>;


const randomSet = (index: number) => randomSetOf(SEED, index, "PORTCULLIS_OPA_SEED");

async function opaModule(policy: PolicySet): Promise<LoadedPolicy> {
  const wasm = await buildOpaOutput(opaPolicyInput(policy, buildDecisionTables(policy)), "policy.wasm");
  return loadPolicy(wasm);
}

/** What the module must answer for `json` (the input's JSON text): the reference's result. */
function expectedResult(json: string, policy: PolicySet, reference: ReferenceEvaluator): unknown {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { error: "the input is not valid JSON", field: "request" };
  }
  try {
    const d = reference.decide(parseRequestObject(value, policy));
    return { decision: d.decision, reasons: d.reasons, default: d.default };
  } catch (e) {
    if (e instanceof RequestError) return { error: e.message, field: e.field };
    throw e;
  }
}

/** The module's result for a JSON input text, through the SDK's ABI 1.2 fast path. */
function opaResult(opa: LoadedPolicy, json: string): unknown {
  const bytes = new TextEncoder().encode(json);
  const set = opa.evaluate(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), OPA_ENTRYPOINT) as { result: unknown }[];
  if (!Array.isArray(set) || set.length !== 1) throw new Error(`not one result: ${JSON.stringify(set)}`);
  return set[0]!.result;
}

// ---------------------------------------------------------------- writing a request as input

function expandedV6(ip: readonly number[], upper: boolean): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip[i]! << 8) | ip[i + 1]!).toString(16).padStart(4, "0"));
  const text = groups.join(":");
  return upper ? text.toUpperCase() : text;
}

/** The request as one of the inputs that mean it (chosen by `rng`). */
function inputFor(r: Request, policy: PolicySet, rng: Random): Input {
  const input: Input = {};
  let defaults = { uid: 1000, gid: 1000 };
  if (r.principal === null) {
    const form = rng.int(3);
    if (form === 0) input["principal"] = null;
    else if (form === 1) input["principal"] = "unidentified";
  } else {
    const workload = policy.workloads.find((w) => w.id === r.principal);
    if (workload !== undefined && rng.chance(0.5)) {
      input["principal"] = `workload:${workload.name}`;
      const p = workloadPrincipal(workload);
      defaults = { uid: p.defaultUid, gid: p.defaultGid };
    } else if (rng.chance(0.2)) {
      // The trust domain in upper case: normalised to lower case before classifying.
      const rest = r.principal.slice("spiffe://".length);
      const slash = rest.indexOf("/");
      input["principal"] = `spiffe://${(slash < 0 ? rest : rest.slice(0, slash)).toUpperCase()}${slash < 0 ? "" : rest.slice(slash)}`;
    } else input["principal"] = r.principal;
  }
  if (r.uid !== defaults.uid || rng.chance(0.5)) input["uid"] = r.uid;
  if (r.gid !== defaults.gid || rng.chance(0.5)) input["gid"] = r.gid;
  if (r.family === 4) {
    const dotted = formatIp(4, r.ip);
    input["ip"] = rng.weighted<string>([
      [6, dotted],
      [1, `::ffff:${dotted}`],
      [1, `::FFFF:${dotted}`],
      [1, `0:0:0:0:0:ffff:${dotted}`],
    ]);
  } else {
    input["ip"] = rng.weighted<string>([
      [6, formatIp(6, r.ip)],
      [1, expandedV6(r.ip, false)],
      [1, expandedV6(r.ip, true)],
    ]);
  }
  input["port"] = r.port;
  input["protocol"] = r.protocol;
  // Field order does not matter.
  return rng.chance(0.3) ? Object.fromEntries(Object.entries(input).reverse()) : input;
}


/**
 * Runs every request through the SDK and the reference; returns the disagreements (a few).
 * Also checks that each written input means its request, so the forms do not drift.
 */
function compareRequests(opa: LoadedPolicy, policy: PolicySet, requests: readonly Request[], rng: Random, origin: string): string[] {
  const reference = new ReferenceEvaluator(policy);
  const messages: string[] = [];
  for (const r of requests) {
    const json = JSON.stringify(inputFor(r, policy, rng));
    const meant = parseRequestObject(JSON.parse(json), policy);
    if (requestJson(meant) !== requestJson(r)) throw new Error(`the input ${json} does not mean ${requestJson(r)}`);
    const expected = JSON.stringify(expectedResult(json, policy, reference));
    const actual = JSON.stringify(opaResult(opa, json));
    if (actual !== expected && messages.length < REPORTED_MISMATCHES) {
      messages.push(`OPA module disagrees with the reference (PORTCULLIS_OPA_SEED=${SEED})\n  input:     ${json}\n  reference: ${expected}\n  opa:       ${actual}\n  policy: ${origin}`);
    }
  }
  return messages;
}

// ---------------------------------------------------------------- the ABI

describe("the OPA module", () => {
  let shop: PolicySet;
  let opa: LoadedPolicy;
  beforeAll(async () => {
    shop = fixturePolicy("policies/shop");
    opa = await opaModule(shop);
  });

  it("imports only what OPA SDKs provide and exports the ABI 1.2 surface", async () => {
    const wasm = await buildOpaOutput(opaPolicyInput(shop, buildDecisionTables(shop)), "policy.wasm");
    const module = new WebAssembly.Module(new Uint8Array(wasm));
    const provided = new Set(["env.memory", "env.opa_abort", "env.opa_println", ...[0, 1, 2, 3, 4].map((n) => `env.opa_builtin${n}`)]);
    for (const i of WebAssembly.Module.imports(module)) expect(provided, `import ${i.module}.${i.name}`).toContain(`${i.module}.${i.name}`);
    const exports = new Map(WebAssembly.Module.exports(module).map((e) => [e.name, e.kind]));
    for (const name of ["builtins", "entrypoints", "opa_malloc", "opa_json_parse", "opa_json_dump", "opa_heap_ptr_get", "opa_heap_ptr_set", "opa_eval", "opa_eval_ctx_new", "opa_eval_ctx_set_input", "opa_eval_ctx_set_data", "opa_eval_ctx_set_entrypoint", "opa_eval_ctx_get_result", "eval", "opa_free", "opa_value_parse", "opa_value_dump"]) {
      expect(exports.get(name), name).toBe("function");
    }
    expect(exports.get("opa_wasm_abi_version")).toBe("global");
    const instance = opa as unknown as { minorVersion: number; entrypoints: Record<string, number> };
    expect(instance.minorVersion).toBeGreaterThanOrEqual(2);
    expect(instance.entrypoints).toEqual({ [OPA_ENTRYPOINT]: 0 });
  });

  it("keeps the tables inside the module and loads in the SDK's default 5 pages", async () => {
    const { generatePolicySet } = await import("../support/generate.js");
    const checked = checkSources([{ path: "generated.policy", relPath: "generated.policy", text: generatePolicySet({ rules: 800, seed: 5 }) }]);
    const tables = buildDecisionTables(checked.policySet!);
    expect(tables.words.byteLength).toBeGreaterThan(5 * 65536);
    const big = await loadPolicy(await buildOpaOutput(opaPolicyInput(checked.policySet!, tables), "policy.wasm"));
    const reference = new ReferenceEvaluator(checked.policySet!);
    for (const r of boundaryRequests(checked.policySet!, { limit: 300 })) {
      const json = requestJson(r);
      expect(JSON.stringify(opaResult(big, json))).toBe(JSON.stringify(expectedResult(json, checked.policySet!, reference)));
    }
  });

  it("gives the same result through the evaluation-context path (ABI 1.0 hosts) as through opa_eval", () => {
    const e = (opa as unknown as { wasmInstance: { exports: Record<string, (...args: number[]) => number> }; mem: WebAssembly.Memory; dataHeapPtr: number; dataAddr: number }).wasmInstance.exports;
    const { mem, dataHeapPtr, dataAddr } = opa as unknown as { mem: WebAssembly.Memory; dataHeapPtr: number; dataAddr: number };
    const rng = new Random(SEED);
    for (const r of boundaryRequests(shop, { limit: 200 })) {
      const json = JSON.stringify(inputFor(r, shop, rng));
      e["opa_heap_ptr_set"]!(dataHeapPtr);
      const bytes = new TextEncoder().encode(json);
      const at = e["opa_malloc"]!(bytes.length);
      new Uint8Array(mem.buffer).set(bytes, at);
      const input = e["opa_json_parse"]!(at, bytes.length);
      expect(input).not.toBe(0);
      const context = e["opa_eval_ctx_new"]!();
      e["opa_eval_ctx_set_input"]!(context, input);
      e["opa_eval_ctx_set_data"]!(context, dataAddr);
      e["opa_eval_ctx_set_entrypoint"]!(context, 0);
      expect(e["eval"]!(context)).toBe(0);
      const text = e["opa_json_dump"]!(e["opa_eval_ctx_get_result"]!(context));
      const view = new Uint8Array(mem.buffer);
      let end = text;
      while (view[end] !== 0) end++;
      expect(new TextDecoder().decode(view.subarray(text, end))).toBe(JSON.stringify([{ result: opaResult(opa, json) }]));
    }
  });

  it("loads with damaged tables or payload and answers every input with an error result, never trapping", async () => {
    const tables = buildDecisionTables(shop);
    const input = opaPolicyInput(shop, tables);
    const template = readOpaTemplate(repoRoot);
    const damagedWords = Uint32Array.from(tables.words);
    damagedWords[2] = 0xffffff; // the first section's offset, far outside the tables
    expect(() => new DecisionTableReader(damagedWords, tables.ruleIds)).toThrow(TableError);
    const damagedPayload = buildOpaPayload(input);
    damagedPayload[0] ^= 0xff; // the magic
    const cases = [
      { payload: buildOpaPayload({ ...input, words: damagedWords }), error: /^the module's embedded decision tables are invalid/ },
      { payload: damagedPayload, error: /^the module's embedded policy is malformed$/ },
    ];
    for (const c of cases) {
      const damaged = await loadPolicy(await emitOpaModule(template, c.payload));
      for (const request of [{ ip: "10.0.1.11", port: 443, protocol: "tcp" }, { principal: 5 }]) {
        const [{ result }] = damaged.evaluate(request, OPA_ENTRYPOINT) as [{ result: { error: string; field: string } }];
        expect(result.field).toBe("policy");
        expect(result.error).toMatch(c.error);
      }
    }
  });

  it("answers an unknown entrypoint with an error result", () => {
    const set = opa.evaluate({ ip: "10.0.0.1", port: 1, protocol: "tcp" }, 1) as { result: { field: string } }[];
    expect(set[0]!.result.field).toBe("entrypoint");
  });

  it("reuses its heap: 20,000 evaluations leave the memory size unchanged", () => {
    const rng = new Random(SEED ^ 0x0a5);
    const inputs = randomRequests(shop, SEED, 500).map((r) => inputFor(r, shop, rng));
    for (const input of inputs) opa.evaluate(input, OPA_ENTRYPOINT);
    const before = opa.mem.buffer.byteLength;
    for (let i = 0; i < 20_000; i++) opa.evaluate(inputs[i % inputs.length], OPA_ENTRYPOINT);
    expect(opa.mem.buffer.byteLength).toBe(before);
  });
});

// ---------------------------------------------------------------- the differential tests

describe("the OPA module decides as the reference", () => {
  const fixtures = [["test/fixtures/spec-example.policy"], ["policies/shop"], ["policies/demo"]] as const;
  fixtures.forEach((paths, index) => {
    it(`on the boundary points of ${paths.join(" ")}`, async () => {
      const policy = fixturePolicy(...paths);
      const requests = [...boundaryRequests(policy), ...randomRequests(policy, SEED + index, RANDOM_PER_FIXTURE)];
      const messages = compareRequests(await opaModule(policy), policy, requests, Random.forItem(SEED, 1000 + index), paths.join(" "));
      expect(messages.join("\n\n")).toBe("");
    });
  });

  it(`on ${RANDOM_SETS} random policy sets, multi-part identities included`, async () => {
    const messages: string[] = [];
    let multiPart = 0;
    for (let index = 0; index < RANDOM_SETS; index++) {
      const { policy, seed, origin } = randomSet(index);
      const requests = [...boundaryRequests(policy, { limit: BOUNDARY_PER_SET }), ...randomRequests(policy, seed, RANDOM_PER_SET)];
      const tables = buildDecisionTables(policy);
      const reader = new DecisionTableReader(tables.words, tables.ruleIds);
      multiPart += requests.filter((r) => reader.identityClasses(r.principal).length > 1).length;
      messages.push(...compareRequests(await opaModule(policy), policy, requests, new Random(seed), origin));
    }
    expect(messages.slice(0, REPORTED_MISMATCHES).join("\n\n")).toBe("");
    // The combining path (an ID in several identity classes) must have been decided too.
    expect(multiPart).toBeGreaterThan(1_000);
  });
});

// ---------------------------------------------------------------- bad input

describe("the OPA module on bad input", () => {
  let shop: PolicySet;
  let opa: LoadedPolicy;
  let reference: ReferenceEvaluator;
  beforeAll(async () => {
    shop = fixturePolicy("policies/shop");
    opa = await opaModule(shop);
    reference = new ReferenceEvaluator(shop);
  });

  const ok = '"ip":"10.0.1.11","port":443,"protocol":"tcp"';
  /** Raw JSON texts: each must give the reference's error (or decision) exactly. */
  const crafted = [
    // not an object, not JSON
    "null", "[]", "[1]", '"text"', "42", "true", "{", '{"ip":}', '{"ip":"1.2.3.4",}', "{} x", '{"a":1 "b":2}', '{"ip":"\\x"}', '{"ip":"a\u0001b"}',
    // unknown and missing fields
    "{}", `{${ok},"extra":1}`, `{"extra":1,${ok}}`, `{${ok},"principal ":null}`, '{"port":443,"protocol":"tcp"}', '{"ip":"10.0.0.1","protocol":"tcp"}', '{"ip":"10.0.0.1","port":1}',
    // principal
    `{${ok},"principal":5}`, `{${ok},"principal":true}`, `{${ok},"principal":{}}`, `{${ok},"principal":[]}`, `{${ok},"principal":""}`,
    `{${ok},"principal":"workload:nope"}`, `{${ok},"principal":"workload:"}`, `{${ok},"principal":"Workload:frontend"}`, `{${ok},"principal":"UNIDENTIFIED"}`,
    `{${ok},"principal":"http://x"}`, `{${ok},"principal":"SPIFFE://shop.example/a"}`, `{${ok},"principal":"Spiffe://shop.example/a"}`, `{${ok},"principal":"spiffe://"}`,
    `{${ok},"principal":"spiffe:///a"}`, `{${ok},"principal":"spiffe://shop.example/"}`, `{${ok},"principal":"spiffe://shop.example//a"}`, `{${ok},"principal":"spiffe://shop.example/./a"}`,
    `{${ok},"principal":"spiffe://shop.example/a/.."}`, `{${ok},"principal":"spiffe://shop.example/a?x"}`, `{${ok},"principal":"spiffe://shop.example#x"}`, `{${ok},"principal":"spiffe://shop example/a"}`,
    `{${ok},"principal":"spiffe://shop.example/a b"}`, `{${ok},"principal":"spiffe://shop.example/a\\"b"}`, `{${ok},"principal":"spiffe://shop.example/a\\\\b"}`, `{${ok},"principal":"spiffe://shop.example/\\u00e9"}`,
    `{${ok},"principal":"spiffe://shop.example/\\ud83d\\ude00"}`, `{${ok},"principal":"spiffe://shop.example/\\ud83d"}`, `{${ok},"principal":"spiffe://\\u212Ahop.example/ns/web/sa/frontend"}`,
    `{${ok},"principal":"spiffe://Shop.EXAMPLE/ns/web/sa/frontend"}`, `{${ok},"principal":"spiffe://shop.example/ns/web/sa/frontend","principal":null}`,
    `{${ok},"principal":"spiffe://shop.example/${"a".repeat(2030)}"}`, `{${ok},"principal":"spiffe://shop.example/${"a".repeat(2040)}"}`,
    // uid, gid
    `{${ok},"uid":-1}`, `{${ok},"uid":4294967296}`, `{${ok},"uid":4294967295}`, `{${ok},"uid":1.5}`, `{${ok},"uid":1.0}`, `{${ok},"uid":1e3}`, `{${ok},"uid":1E+3}`, `{${ok},"uid":-0}`, `{${ok},"uid":0.0e5}`,
    `{${ok},"uid":12345678901234567890123}`, `{${ok},"uid":1e400}`, `{${ok},"uid":"1000"}`, `{${ok},"uid":null}`, `{${ok},"gid":-5}`, `{${ok},"gid":true}`, `{${ok},"gid":2.5e1}`,
    // ip
    '{"ip":"1.2.3","port":1,"protocol":"tcp"}', '{"ip":"1.2.3.4.5","port":1,"protocol":"tcp"}', '{"ip":"01.2.3.4","port":1,"protocol":"tcp"}', '{"ip":"256.1.1.1","port":1,"protocol":"tcp"}',
    '{"ip":"1.2.3.4 ","port":1,"protocol":"tcp"}', '{"ip":"","port":1,"protocol":"tcp"}', '{"ip":"::","port":1,"protocol":"tcp"}', '{"ip":":::","port":1,"protocol":"tcp"}',
    '{"ip":"1::2::3","port":1,"protocol":"tcp"}', '{"ip":"1:2:3:4:5:6:7:8","port":1,"protocol":"tcp"}', '{"ip":"1:2:3:4:5:6:7::8","port":1,"protocol":"tcp"}', '{"ip":"1:2:3:4:5:6:7:8:9","port":1,"protocol":"tcp"}',
    '{"ip":"12345::","port":1,"protocol":"tcp"}', '{"ip":"g::","port":1,"protocol":"tcp"}', '{"ip":"::1:","port":1,"protocol":"tcp"}', '{"ip":":1::","port":1,"protocol":"tcp"}',
    '{"ip":"::ffff:10.0.1.11","port":443,"protocol":"tcp"}', '{"ip":"::10.0.1.11","port":443,"protocol":"tcp"}', '{"ip":"1:2:3:4:5:6:1.2.3.4","port":1,"protocol":"tcp"}', '{"ip":"1:2:3:4:5::1.2.3.4","port":1,"protocol":"tcp"}',
    '{"ip":"::ffff:1.2.3","port":1,"protocol":"tcp"}', '{"ip":"::ffff:1.2.3.4:5","port":1,"protocol":"tcp"}', '{"ip":"1.2.3.4::","port":1,"protocol":"tcp"}', '{"ip":"FD00::10","port":443,"protocol":"tcp"}',
    '{"ip":10,"port":1,"protocol":"tcp"}', '{"ip":null,"port":1,"protocol":"tcp"}', '{"ip":["1.2.3.4"],"port":1,"protocol":"tcp"}',
    // port, protocol
    '{"ip":"1.2.3.4","port":65536,"protocol":"tcp"}', '{"ip":"1.2.3.4","port":-1,"protocol":"tcp"}', '{"ip":"1.2.3.4","port":80.5,"protocol":"tcp"}', '{"ip":"1.2.3.4","port":"80","protocol":"tcp"}',
    '{"ip":"1.2.3.4","port":65535,"protocol":"udp"}', '{"ip":"1.2.3.4","port":0,"protocol":"udp"}', '{"ip":"1.2.3.4","port":1,"protocol":"TCP"}', '{"ip":"1.2.3.4","port":1,"protocol":"sctp"}',
    '{"ip":"1.2.3.4","port":1,"protocol":""}', '{"ip":"1.2.3.4","port":1,"protocol":6}', '{"ip":"1.2.3.4","port":1,"protocol":"t\\u0063p"}',
    // escapes in keys, whitespace, nesting
    '{"\\u0069p":"1.2.3.4","port":1,"protocol":"tcp"}', ' \n\t{ "ip" : "1.2.3.4" , "port" : 1 , "protocol" : "tcp" } \r\n', `{${ok},"x":${"[".repeat(100)}${"]".repeat(100)}}`, `{${ok},"x":${"[".repeat(20)}${"]".repeat(20)}}`,
  ];

  const isCanonical = (json: string): boolean => {
    try {
      return JSON.stringify(JSON.parse(json)) === json;
    } catch {
      return true;
    }
  };
  const isError = (result: unknown): result is { error: string; field: string } => typeof (result as { error?: unknown }).error === "string";
  const withoutValue = (result: { error: string; field: string }) => ({ error: result.error.replace(/, not .*$/s, ""), field: result.field });

  it("answers every crafted input exactly as the reference does", () => {
    const mismatches: string[] = [];
    for (const json of crafted) {
      let expected = expectedResult(json, shop, reference);
      // Documented limit (docs/opa-wasm.md): nesting deeper than 64 is refused as not JSON.
      if (json.includes("[".repeat(100))) expected = { error: "the input is not valid JSON", field: "request" };
      let actual = opaResult(opa, json);
      // Documented: a refusal quotes the value as the input wrote it, the reference as
      // JSON.stringify writes it; they differ only for text JSON.stringify never writes
      // (12345678901234567890123, 1e400), so there only the field and the words are compared.
      if (!isCanonical(json) && isError(expected) && isError(actual)) [expected, actual] = [withoutValue(expected), withoutValue(actual)];
      if (JSON.stringify(actual) !== JSON.stringify(expected)) mismatches.push(`${json.slice(0, 200)}\n  reference: ${JSON.stringify(expected)}\n  opa:       ${JSON.stringify(actual)}`);
    }
    expect(mismatches.join("\n")).toBe("");
  });

  it("answers no input with the reference's error for a non-object", () => {
    for (const input of [undefined, null, 0, ""]) expect(opa.evaluate(input, OPA_ENTRYPOINT)).toEqual([{ result: { error: "a request must be a JSON object", field: "request" } }]);
  });

  it(`answers ${MUTATIONS} seeded mutations of valid inputs exactly as the reference does, never trapping`, () => {
    const rng = new Random(SEED ^ 0xbad);
    const valid = [...boundaryRequests(shop, { limit: 500 })].map((r) => inputFor(r, shop, rng));
    const values: unknown[] = [null, true, false, 0, -1, 1.5, 65535, 65536, 4294967295, 4294967296, 1e21, "", "tcp", "udp", "x", "1.2.3.4", "::1", "spiffe://shop.example", [], {}, [1], { a: 1 }];
    const fields = ["principal", "uid", "gid", "ip", "port", "protocol"];
    const printable = () => String.fromCharCode(rng.between(0x20, 0x7e));
    const mismatches: string[] = [];
    for (let i = 0; i < MUTATIONS; i++) {
      const input: Input = { ...rng.pick(valid) };
      const field = rng.pick(fields);
      rng.weighted<() => void>([
        [2, () => delete input[field]],
        [3, () => (input[field] = rng.pick(values))],
        [1, () => (input[`${field}${printable()}`] = 1)],
        [
          4,
          () => {
            // One character inserted, removed or replaced in a string field.
            const key = rng.pick(["principal", "ip", "protocol"]);
            const text = typeof input[key] === "string" ? (input[key] as string) : "spiffe://shop.example/ns/web/sa/frontend";
            const at = rng.int(text.length + 1);
            const op = rng.int(3);
            input[key] = op === 0 ? text.slice(0, at) + printable() + text.slice(at) : op === 1 ? text.slice(0, at) + text.slice(at + 1) : text.slice(0, at) + printable() + text.slice(at + 1);
          },
        ],
      ])();
      const json = JSON.stringify(input);
      const expected = JSON.stringify(expectedResult(json, shop, reference));
      const actual = JSON.stringify(opaResult(opa, json));
      if (actual !== expected && mismatches.length < REPORTED_MISMATCHES) mismatches.push(`${json}\n  reference: ${expected}\n  opa:       ${actual}`);
    }
    expect(mismatches.join("\n")).toBe("");
  });
});
