// The Cedar export (spec §7). The exported schema and policies parse and validate with
// `@cedar-policy/cedar-wasm`, and Cedar decides exactly as the reference evaluator
// (decision, reasons, default) on every example policy set, on a set that uses every
// construct of the language, and on generated sets, for requests placed at every boundary
// the policies draw: each workload and SPIFFE IDs that do and do not match each pattern,
// unidentified, each CIDR's first and last address and their neighbours, each port and
// uid/gid constant and its neighbours, both protocols, both address families.
//
// Reproduce a failure with the seed it prints: PORTCULLIS_CEDAR_SEED=<seed> npx vitest run test/compiler/cedar.test.ts
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import type * as CedarWasm from "@cedar-policy/cedar-wasm/nodejs";
import { describe, expect, it } from "vitest";
import { runExportCedar } from "../../cli/export.js";
import { CedarEvaluator, cedarPolicySetText, cedarRequest, cedarRequestJson, DEFAULT_UNIDENTIFIED_POLICY_ID, exportCedar, writeCedarExport } from "../../compiler/cedar.js";
import type { Cidr, PolicySet, RuleInfo } from "../../compiler/model.js";
import { checkSources, loadPolicySet } from "../../compiler/program.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import { DEFAULT_UID, workloadPrincipal, type Decision, type Request } from "../../compiler/request.js";
import { checkSpiffeId } from "../../compiler/spiffe.js";
import { runPolicyTests } from "../../compiler/tests.js";
import { hasErrors } from "../../dsl/diagnostics.js";
import { repoRoot } from "../support/baselines.js";
import { generatePolicySet } from "../support/generate.js";
import { Random } from "../support/random.js";

const cedar = createRequire(import.meta.url)("@cedar-policy/cedar-wasm/nodejs") as typeof CedarWasm;
const SEED = Number(process.env["PORTCULLIS_CEDAR_SEED"] ?? 20261122);

// ---------------------------------------------------------------- policy sets

/** Every construct of the language, each in a rule of its own. */
const CONSTRUCTS = String.raw`
workload a {
  id = "spiffe://Corp.Example/ns/a/sa/one";
  match { uid = 5000 }
}

workload b {
  id = "spiffe://corp.example/ns/b/sa/two";
  match { uid = 5001, gid = 6001 }
}

workload peer {
  id = "spiffe://partner.example/x";
}

group admins = ["spiffe://CORP.example/ns/*/sa/admin-*", workload peer];
group g = [workload a, "spiffe://corp.example/ns/b/*", group admins];
group nobody = [];

net n = [10.1.0.0/16, 10.2.3.4, ::ffff:10.3.0.0/112, fd00:1::/32];
net n2 = [net n, 192.168.1.128/25, 0.0.0.0/32];
net wide6 = [::/0];

ports q = [65535, 0];
ports p = [22, 1000..1999, ports q];

service s {
  endpoints = [10.1.2.3:443/tcp, 10.1.2.3:53/udp, [fd00:1::5]:443/tcp, [::ffff:10.1.2.4]:443/tcp];
}

default unidentified allow;

@id("not-equal")
permit (principal, action, resource in net n2)
when { principal != workload a };

@id("not-paren")
forbid (principal, action, resource == 10.2.3.4)
when { !(principal == workload b) && !(principal in group g) };

@id("unless-like")
@description("quote \" and backslash \\ survive")
@see-also("a hyphenated annotation")
permit (principal, action, resource)
unless { principal like "spiffe://corp.example/*" }
when { port in ports p && protocol == udp };

@id("uid-gid")
permit (
  principal in [workload a, "spiffe://corp.example/ns/*/sa/two"],
  action in [connect],
  resource in [10.0.0.0/8, fd00::/8, 10.9.9.9]
)
when { principal.uid >= 1000 && principal.uid <= 5000 || principal.gid > 6000 && principal.gid < 6002 };

@id("endpoint")
permit (principal like "spiffe://CORP.example/ns/b/*", action, resource == 10.1.2.3:443/tcp);

@id("endpoint6")
permit (principal == "spiffe://CORP.example/ns/b/sa/two", action, resource == [fd00:1::5]:443/tcp);

@id("service")
permit (principal in group g, action == connect, resource == service s)
unless { principal.uid == 0 };

@id("empty-scope")
forbid (principal in group nobody, action, resource in []);

@id("empty-sets")
forbid (principal, action, resource)
when { port in [] || ip in [] || principal in [] };

@id("constants")
permit (principal, action, resource)
when { workload a in group g && workload b like "spiffe://corp.example/*" && workload a != workload b && true == (port == 22) && ip in 10.7.7.7 };

@id("ip-equality")
forbid (principal, action, resource)
when { ip == fd00:1::9 || ip == ::ffff:10.9.0.1 || ip in net wide6 && port == 9 };

@id("booleans")
permit (principal, action == connect, resource in net n)
when { false || !true || protocol != tcp && port < 1024 }
unless { (principal.gid == 0) };

@id("literal-star")
permit (principal like "spiffe://corp.example/ns/\*", action, resource);

@id("v6-any")
permit (principal in ["spiffe://partner.example/*", workload b], action, resource in net wide6)
when { port >= 443 && port <= 443 };

@id("portcullis::default-unidentified")
forbid (principal, action, resource)
when { principal.uid == 4294967295 && ip in [127.0.0.0/8, ::1] };

permit (principal == workload peer, action, resource in 10.2.3.4)
when { port > 0 };

test "constructs" {
  allow connect from unidentified to 10.1.0.1:80/tcp because "not-equal";
  deny  connect from unidentified to 10.2.3.4:80/tcp because "not-paren";
  allow connect from "spiffe://corp.example/ns/b/sa/two" to [::ffff:10.1.2.4]:443/tcp because "service";
  deny  connect from unidentified uid 4294967295 to 127.0.0.1:80/tcp because "portcullis::default-unidentified";
  allow connect from unidentified to 127.0.0.1:80/tcp;
  allow connect from workload peer to 10.2.3.4:1/tcp because "constructs.policy:97";
}
`;

function checked(result: ReturnType<typeof checkSources>): PolicySet {
  if (hasErrors(result.diagnostics) || result.policySet === undefined) throw new Error(result.diagnostics.map((d) => d.message).join("\n"));
  return result.policySet;
}

function fromText(name: string, text: string): PolicySet {
  return checked(checkSources([{ path: name, relPath: name, text }]));
}

function fromPaths(...paths: string[]): PolicySet {
  return checked(loadPolicySet(paths.map((p) => path.join(repoRoot, p))));
}

interface Case {
  readonly name: string;
  readonly policy: () => PolicySet;
  /**
   * The rules that can never decide; every other one must be among the reasons of some
   * generated request (a check on the generator). Undefined: not checked.
   */
  readonly neverDecide: readonly string[] | undefined;
  /** The set's own tests all pass (generated sets assert at random). */
  readonly testsPass: boolean;
}

const cases: readonly Case[] = [
  { name: "spec example", policy: () => fromPaths("test/fixtures/spec-example.policy"), neverDecide: [], testsPass: true },
  { name: "policies/shop", policy: () => fromPaths("policies/shop"), neverDecide: [], testsPass: true },
  { name: "policies/demo", policy: () => fromPaths("policies/demo"), neverDecide: [], testsPass: true },
  { name: "every construct", policy: () => fromText("constructs.policy", CONSTRUCTS), neverDecide: ["empty-scope", "empty-sets", "literal-star"], testsPass: true },
  { name: "generated, 40 rules", policy: () => fromText("generated.policy", generatePolicySet({ rules: 40, seed: SEED })), neverDecide: undefined, testsPass: false },
  { name: "generated, 12 rules", policy: () => fromText("generated.policy", generatePolicySet({ rules: 12, seed: SEED + 1 })), neverDecide: undefined, testsPass: false },
];

// ---------------------------------------------------------------- boundary requests

/** Every AST node (an object with a `kind`) below `node`. */
function* nodes(node: unknown): Generator<Record<string, unknown> & { kind: string }> {
  if (Array.isArray(node)) for (const item of node) yield* nodes(item);
  else if (node !== null && typeof node === "object") {
    const o = node as Record<string, unknown>;
    if (typeof o["kind"] === "string") yield o as Record<string, unknown> & { kind: string };
    for (const [key, value] of Object.entries(o)) if (key !== "span") yield* nodes(value);
  }
}

function toBig(bytes: readonly number[]): bigint {
  return bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
}

function fromBig(value: bigint, length: number): number[] {
  const out: number[] = [];
  for (let i = length - 1; i >= 0; i--) out.push(Number((value >> BigInt(8 * i)) & 0xffn));
  return out;
}

/** First and last address of a CIDR and their neighbours outside it, within the family. */
function cidrBoundaries(c: Cidr): { family: 4 | 6; ip: number[] }[] {
  const bits = c.family === 4 ? 32 : 128;
  const first = toBig(c.bytes);
  const last = first | ((1n << BigInt(bits - c.prefix)) - 1n);
  const max = (1n << BigInt(bits)) - 1n;
  return [first - 1n, first, last, last + 1n].filter((v) => v >= 0n && v <= max).map((v) => ({ family: c.family, ip: fromBig(v, c.bytes.length) }));
}

function neighbours(values: Iterable<number>, max: number): number[] {
  const out = new Set<number>();
  for (const v of values) for (const x of [v - 1, v, v + 1]) if (x >= 0 && x <= max) out.add(x);
  return [...out].sort((a, b) => a - b);
}

/** SPIFFE IDs a pattern matches (its `*` replaced) and near misses, kept when valid. */
function patternInstances(pieces: readonly string[]): string[] {
  const fills = ["x", "a/b", ""];
  const out = fills.map((f) => pieces.join(f));
  const head = pieces[0]!;
  out.push(`${head.slice(0, -1)}q${pieces.slice(1).join("x")}`, `${head}x`, pieces.slice(0, -1).join("x"));
  return out;
}

type Destination = { readonly family: 4 | 6; readonly ip: readonly number[]; readonly port: number; readonly protocol: "tcp" | "udp" };

/** The values of each request field at which some rule may change its mind. */
interface Candidates {
  readonly principals: readonly (string | null)[];
  readonly uids: readonly number[];
  readonly ips: readonly { readonly family: 4 | 6; readonly ip: readonly number[] }[];
  readonly ports: readonly number[];
  readonly endpoints: readonly Destination[];
}

/** The int constants of some AST (ports sets and services it names included). */
function intsOf(policy: PolicySet, root: unknown): number[] {
  const ints: number[] = [];
  for (const n of nodes(root)) {
    if (n.kind === "int") ints.push(n["value"] as number);
    if (n.kind === "ref" && n["refKind"] === "ports") for (const r of policy.ports.get((n["name"] as { name: string }).name)!) ints.push(r.low, r.high);
    if (n.kind === "ref" && n["refKind"] === "service") for (const e of policy.services.get((n["name"] as { name: string }).name)!.endpoints) ints.push(e.port);
  }
  return ints;
}

/** The addresses of some AST (nets and services it names included), as CIDRs. */
function cidrsOf(policy: PolicySet, root: unknown): Cidr[] {
  const cidrs: Cidr[] = [];
  for (const n of nodes(root)) {
    if (n.kind === "cidr") cidrs.push(n as unknown as Cidr);
    if (n.kind === "ip") {
      const family = n["family"] as 4 | 6;
      cidrs.push({ family, bytes: n["bytes"] as number[], prefix: family === 4 ? 32 : 128 });
    }
    if (n.kind === "ref" && n["refKind"] === "net") cidrs.push(...policy.nets.get((n["name"] as { name: string }).name)!);
    if (n.kind === "ref" && n["refKind"] === "service") {
      for (const e of policy.services.get((n["name"] as { name: string }).name)!.endpoints) cidrs.push({ family: e.family, bytes: e.bytes, prefix: e.family === 4 ? 32 : 128 });
    }
  }
  return cidrs;
}

function candidates(policy: PolicySet): Candidates {
  const ruleNodes = [...nodes(policy.rules.map((r) => r.ast))];
  const principals = new Set<string | null>([null, "spiffe://other.example/ns/web/sa/frontend", "spiffe://example.org/a"]);
  const strings: string[] = [];
  for (const w of policy.workloads) principals.add(w.id);
  for (const members of policy.groups.values()) for (const m of members) strings.push(...(m.kind === "exact" ? [m.id] : patternInstances(m.pattern.pieces)));
  for (const n of ruleNodes) if (n.kind === "string") strings.push(...patternInstances(String(n["value"]).split("*")));
  for (const s of strings) {
    const id = checkSpiffeId(s);
    if (id.ok) principals.add(id.id);
  }

  const ints = [0, 1000, 4294967295, ...intsOf(policy, policy.rules.map((r) => r.ast))];
  for (const ranges of policy.ports.values()) for (const r of ranges) ints.push(r.low, r.high);
  for (const w of policy.workloads) for (const m of w.matches) ints.push(...[m.uid, m.gid].filter((x): x is number => x !== undefined));

  const endpoints: Destination[] = [];
  for (const s of policy.services.values()) endpoints.push(...s.endpoints.map((e) => ({ family: e.family, ip: e.bytes, port: e.port, protocol: e.protocol })));
  const cidrs: Cidr[] = [...[...policy.nets.values()].flat(), ...cidrsOf(policy, policy.rules.map((r) => r.ast))];
  for (const n of ruleNodes) {
    if (n.kind === "endpoint") {
      const ip = n["ip"] as { family: 4 | 6; bytes: number[] };
      endpoints.push({ family: ip.family, ip: ip.bytes, port: (n["port"] as { value: number }).value, protocol: (n["protocol"] as { name: string }).name === "udp" ? "udp" : "tcp" });
    }
  }
  for (const e of endpoints) {
    cidrs.push({ family: e.family, bytes: e.ip, prefix: e.family === 4 ? 32 : 128 });
    ints.push(e.port);
  }
  const fixed: Cidr[] = [
    { family: 4, bytes: [8, 8, 8, 8], prefix: 32 },
    { family: 4, bytes: [0, 0, 0, 0], prefix: 0 },
    { family: 6, bytes: [0x20, 0x01, 0x0d, 0xb8, ...Array<number>(12).fill(0)], prefix: 32 },
    { family: 6, bytes: Array<number>(16).fill(0), prefix: 0 },
  ];
  const ips = new Map<string, { family: 4 | 6; ip: number[] }>();
  for (const c of [...cidrs, ...fixed]) for (const b of cidrBoundaries(c)) ips.set(`${b.family}:${b.ip.join(".")}`, b);
  return { principals: [...principals], uids: neighbours(ints, 0xffffffff), ips: [...ips.values()], ports: neighbours(ints, 65535), endpoints };
}

const REQUESTS_PER_RULE = 150;

/**
 * Requests at every boundary, in three parts. Each candidate value of each field, three times,
 * the other fields drawn at random. Each endpoint for each principal (with the uid and gid
 * a policy test would give it), and each endpoint's neighbours (port ±1, the other
 * protocol). For each rule, requests that pass its scope (principal and destination found
 * by asking the reference which part of the rule fails), with ports, uids and gids drawn
 * mostly from the rule's own constants and their neighbours (addresses too, half the time), so
 * that its conditions flip.
 */
function boundaryRequests(policy: PolicySet, rng: Random): Request[] {
  const c = candidates(policy);
  const out = new Map<string, Request>();
  const protocols = ["tcp", "udp"] as const;
  const add = (r: Request) => out.set(JSON.stringify(r), r);
  const random = (): Request => {
    const ip = rng.pick(c.ips);
    return { principal: rng.pick(c.principals), uid: rng.pick(c.uids), gid: rng.pick(c.uids), family: ip.family, ip: ip.ip, port: rng.pick(c.ports), protocol: rng.pick(protocols) };
  };

  for (let i = 0; i < 3; i++) {
    for (const principal of c.principals) add({ ...random(), principal });
    for (const uid of c.uids) add({ ...random(), uid });
    for (const gid of c.uids) add({ ...random(), gid });
    for (const ip of c.ips) add({ ...random(), family: ip.family, ip: ip.ip });
    for (const port of c.ports) add({ ...random(), port });
    for (const protocol of protocols) add({ ...random(), protocol });
  }

  const defaults = new Map(policy.workloads.map((w) => [w.id, workloadPrincipal(w)]));
  for (const e of c.endpoints) {
    for (const principal of c.principals) {
      const d = principal === null ? undefined : defaults.get(principal);
      add({ principal, uid: d?.defaultUid ?? DEFAULT_UID, gid: d?.defaultGid ?? DEFAULT_UID, ...e });
    }
    if (e.port > 0) add({ ...random(), ...e, port: e.port - 1 });
    if (e.port < 65535) add({ ...random(), ...e, port: e.port + 1 });
    add({ ...random(), ...e, protocol: e.protocol === "tcp" ? "udp" : "tcp" });
  }

  const reference = new ReferenceEvaluator(policy);
  const failedPart = (rule: RuleInfo, request: Request) => reference.explain(request).traces.find((t) => t.rule === rule)!.failed?.part;
  const destinations: Destination[] = [...c.endpoints, ...c.ips.map((ip) => ({ ...ip, port: rng.pick(c.ports), protocol: rng.pick(protocols) }))];
  for (const rule of policy.rules) {
    const principals = c.principals.filter((principal) => failedPart(rule, { ...random(), principal }) !== "principal");
    if (principals.length === 0) continue;
    const reaching = destinations.filter((d) => !["principal", "action", "resource"].includes(failedPart(rule, { ...random(), principal: principals[0]!, ...d }) ?? ""));
    const ints = neighbours(intsOf(policy, rule.ast), 0xffffffff);
    const own = cidrsOf(policy, rule.ast).flatMap(cidrBoundaries);
    const ownReaching = reaching.filter((d) => own.some((o) => o.family === d.family && o.ip.every((b, i) => b === d.ip[i])));
    const pickInt = (all: readonly number[], max: number) => (ints.length > 0 && rng.chance(0.7) ? Math.min(rng.pick(ints), max) : rng.pick(all));
    for (let i = 0; i < REQUESTS_PER_RULE && reaching.length > 0; i++) {
      const d = ownReaching.length > 0 && rng.chance(0.5) ? rng.pick(ownReaching) : rng.pick(reaching);
      const keepEndpoint = rng.chance(0.5);
      add({
        principal: rng.pick(principals),
        uid: pickInt(c.uids, 0xffffffff),
        gid: pickInt(c.uids, 0xffffffff),
        family: d.family,
        ip: d.ip,
        port: keepEndpoint ? d.port : pickInt(c.ports, 65535),
        protocol: keepEndpoint ? d.protocol : rng.pick(protocols),
      });
    }
  }
  return [...out.values()];
}

// ---------------------------------------------------------------- tests

function validation(policy: PolicySet): CedarWasm.ValidationAnswer {
  const exported = exportCedar(policy);
  return cedar.validate({ schema: exported.schema, policies: { staticPolicies: { ...exported.policies, ...exported.extraPolicies } } });
}

describe("the Cedar export parses and validates", () => {
  it("has a schema Cedar parses, in both formats", () => {
    const exported = exportCedar(cases[0]!.policy());
    expect(cedar.checkParseSchema(exported.schema)).toEqual({ type: "success" });
    expect(cedar.checkParseSchema(exported.schemaJson)).toEqual({ type: "success" });
    const actions = Object.values(exported.schemaJson)[0]!.actions;
    expect(Object.keys(actions)).toEqual(["connect"]);
  });

  for (const c of cases) {
    it(`${c.name}: every policy parses and validates against the schema`, () => {
      const policy = c.policy();
      const exported = exportCedar(policy);
      expect(Object.keys(exported.policies)).toEqual(policy.rules.map((r) => r.id));
      expect(cedar.checkParsePolicySet({ staticPolicies: { ...exported.policies, ...exported.extraPolicies } })).toEqual({ type: "success" });
      expect(cedar.checkParsePolicySet({ staticPolicies: cedarPolicySetText(exported) })).toEqual({ type: "success" });
      const answer = validation(policy);
      expect(answer.type).toBe("success");
      if (answer.type === "success") expect(answer.validationErrors).toEqual([]);
    });
  }

  it("keeps annotations, naming a rule without @id by FILE:LINE and renaming `-` in annotation names", () => {
    const exported = exportCedar(cases[3]!.policy());
    expect(exported.policies["unless-like"]).toMatch(/^@id\("unless-like"\)\n@description\("quote \\" and backslash \\\\ survive"\)\n@see_also\("a hyphenated annotation"\)\npermit \(/);
    expect(exported.policies["constructs.policy:97"]).toMatch(/^@id\("constructs\.policy:97"\)\npermit \(\n {2}principal == Workload::"spiffe:\/\/partner\.example\/x",/);
  });

  it("gives the unidentified default an id no rule has, and only when the default is allow", () => {
    const constructs = exportCedar(cases[3]!.policy());
    expect(Object.keys(constructs.extraPolicies)).toEqual([`${DEFAULT_UNIDENTIFIED_POLICY_ID}-2`]);
    expect(Object.keys(exportCedar(cases[0]!.policy()).extraPolicies)).toEqual([DEFAULT_UNIDENTIFIED_POLICY_ID]);
    expect(exportCedar(cases[1]!.policy()).extraPolicies).toEqual({});
  });

  it("guards every `principal.id` so that validation would catch a missing guard", () => {
    const policy = cases[1]!.policy();
    const exported = exportCedar(policy);
    const unguarded = exported.policies["no-debuggers"]!.replace("principal is Workload && ", "");
    const answer = cedar.validate({ schema: exported.schema, policies: { staticPolicies: { "no-debuggers": unguarded } } });
    expect(answer.type === "success" && answer.validationErrors.length).toBe(1);
  });
});

describe("Cedar decides exactly as the reference", () => {
  for (const [index, c] of cases.entries()) {
    it(`${c.name}: every boundary request`, () => {
      const policy = c.policy();
      const reference = new ReferenceEvaluator(policy);
      const cedarEvaluator = new CedarEvaluator(policy);
      const requests = boundaryRequests(policy, Random.forItem(SEED, index));
      const mismatches: { request: Request; reference: Decision; cedar: Decision }[] = [];
      const decidingRules = new Set<string>();
      const decisions = new Set<string>();
      for (const request of requests) {
        const expected = reference.decide(request);
        const actual = cedarEvaluator.decide(request);
        if (JSON.stringify(actual) !== JSON.stringify(expected)) mismatches.push({ request, reference: expected, cedar: actual });
        expected.reasons.forEach((id) => decidingRules.add(id));
        decisions.add(expected.decision);
      }
      expect(mismatches.slice(0, 5), `seed ${SEED}: ${mismatches.length} of ${requests.length} requests differ`).toEqual([]);
      expect(requests.length).toBeGreaterThan(20 * policy.rules.length);
      expect([...decisions].sort()).toEqual(["allow", "deny"]);
      const { neverDecide } = c;
      if (neverDecide !== undefined) expect([...decidingRules].sort()).toEqual(policy.rules.map((r) => r.id).filter((id) => !neverDecide.includes(id)).sort());
    });

    it(`${c.name}: policy tests give the same results on Cedar${c.testsPass ? ", all passing" : ""}`, () => {
      const policy = c.policy();
      const onCedar = runPolicyTests(policy, new CedarEvaluator(policy));
      const onReference = runPolicyTests(policy, new ReferenceEvaluator(policy));
      expect(onCedar.length).toBeGreaterThan(0);
      expect(onCedar.map((r) => r.actual)).toEqual(onReference.map((r) => r.actual));
      if (c.testsPass) expect(onCedar.filter((r) => !r.passed).map((r) => ({ test: r.test, line: r.assertion.span.line, actual: r.actual }))).toEqual([]);
    });
  }

  it("gives IPv4-mapped addresses to Cedar as IPv4", () => {
    const mapped: Request = { principal: null, uid: 0, gid: 0, family: 6, ip: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 2], port: 18081, protocol: "tcp" };
    expect(cedarRequest(mapped).context["ip"]).toEqual({ __extn: { fn: "ip", arg: "127.0.0.2" } });
    expect(new CedarEvaluator(fromPaths("policies/demo")).decide(mapped)).toEqual({ decision: "deny", reasons: ["admin-needs-root"], default: false });
  });

  it("throws on a Cedar error instead of deciding", () => {
    const evaluator = new CedarEvaluator(cases[0]!.policy());
    const broken: Request = { principal: null, uid: 0, gid: 0, family: 4, ip: [10, 0, 0, 1, 7], port: 53, protocol: "udp" };
    expect(() => evaluator.decide(broken)).toThrow(/cedar failed to authorize/);
  });
});

describe("export files and the request helper", () => {
  it("writes a schema and a policy file that reproduce decisions with plain isAuthorized", () => {
    const policy = cases[1]!.policy();
    const dir = mkdtempSync(path.join(tmpdir(), "portcullis-cedar-"));
    const written = writeCedarExport(policy, dir);
    expect(written.files.map((f) => path.basename(f))).toEqual(["schema.cedarschema", "policies.cedar"]);
    const schema = readFileSync(path.join(dir, "schema.cedarschema"), "utf8");
    const policiesText = readFileSync(path.join(dir, "policies.cedar"), "utf8");
    for (const rule of policy.rules) expect(policiesText).toContain(`@id(${JSON.stringify(rule.id)})`);
    const reference = new ReferenceEvaluator(policy);
    const requests = boundaryRequests(policy, new Random(SEED)).slice(0, 100);
    for (const request of requests) {
      const call = JSON.parse(cedarRequestJson(request)) as Omit<CedarWasm.AuthorizationCall, "policies" | "schema">;
      const answer = cedar.isAuthorized({ ...call, policies: { staticPolicies: policiesText }, schema, validateRequest: true });
      if (answer.type !== "success") throw new Error(JSON.stringify(answer.errors));
      expect(answer.response.diagnostics.errors).toEqual([]);
      expect(answer.response.decision).toBe(reference.decide(request).decision);
    }
  });

  it("`export --cedar` exits 0 and writes both files, 1 on policy errors, 2 on a missing path", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "portcullis-cedar-"));
    const lines: string[] = [];
    expect(runExportCedar([path.join(repoRoot, "policies/demo")], path.join(dir, "out"), (s) => lines.push(s))).toBe(0);
    expect(lines.join("\n")).toMatch(/wrote .*schema\.cedarschema and .*policies\.cedar \(7 Cedar policies\)/);
    expect(readFileSync(path.join(dir, "out", "policies.cedar"), "utf8")).toContain('@id("admin-needs-root")');

    const broken = path.join(dir, "broken.policy");
    writeFileSync(broken, "permit (principal == workload nobody, action, resource);\n");
    const errors: string[] = [];
    expect(runExportCedar([broken], path.join(dir, "never"), (s) => errors.push(s))).toBe(1);
    expect(errors.join("\n")).toContain("PC2004");

    expect(runExportCedar([path.join(dir, "missing")], path.join(dir, "never"), () => {})).toBe(2);
  });

  it("`export --cedar` exits 2 when the output directory cannot be written", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "portcullis-cedar-"));
    const file = path.join(dir, "a-file");
    writeFileSync(file, "");
    const lines: string[] = [];
    expect(runExportCedar([path.join(repoRoot, "policies/demo")], path.join(file, "out"), (s) => lines.push(s))).toBe(2);
    expect(lines.join("\n")).toMatch(/^error: cannot write the Cedar export to `.*a-file\/out`: /m);
  });
});
