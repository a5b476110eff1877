// Differential tests (DESIGN.md, invariants 1 and 2): every evaluator must return exactly
// the reference's decision — the same `decision`, the same sorted `reasons`, the same
// `default` flag — on every boundary point of the spec's example, `policies/shop` and
// `policies/demo`, and on many random policy sets with boundary and random requests.
// Then property tests of the reference on its own, which hold whatever other engines say.
//
// Requests per run (engines with stride 1, the reference included, decide all of them):
//   fixtures:    boundaryRequests (2,777 + 16,191 + 565) + 1,000 random each  =  22,533
//   random sets: 60 sets × (700 boundary + 700 random)                        =  84,000
//   a generated 300-rule set (workloads with 4–8 classes): 1,500 + 1,000      =   2,500
//   total 109,033; Cedar (stride 10, about 1 ms a request) decides 10,903 of them. Two
//   table engines decide all of them: the compiler's grouping of classes, and one walk per
//   identity atoms.
// Properties of the reference: 25 more random sets × 300 requests, each decided 2–3 times.
// The whole file takes about 30 s on this 2-core machine with a load average of 7 (Cedar
// about 12 s of it, building the decision tables about 9 s).
//
// Reproduce a failure with the seed it prints:
//   PORTCULLIS_DIFF_SEED=<seed> npx vitest run test/compiler/differential.test.ts
// More random sets: PORTCULLIS_DIFF_SETS=1000 (default 60). Only some engines:
// PORTCULLIS_DIFF_ENGINES=tables,cedar (the reference always runs).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CedarEvaluator } from "../../compiler/cedar.js";
import type { PolicySet } from "../../compiler/model.js";
import { checkSources, loadPolicySet } from "../../compiler/program.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import type { Decision, Request } from "../../compiler/request.js";
import { atomsKey, type IdentityClass } from "../../compiler/rows.js";
import { TableEvaluator } from "../../compiler/table-eval.js";
import { buildDecisionTables } from "../../compiler/tables.js";
import type { Evaluator } from "../../compiler/tests.js";
import { formatDiagnostic } from "../../dsl/diagnostics.js";
import { formatIp } from "../../dsl/ip.js";
import { boundaryPoints, boundaryRequests } from "../support/boundary.js";
import { generatePolicySet } from "../support/generate.js";
import { Random } from "../support/random.js";
import { randomPolicySet, randomRequests } from "../support/random-policy.js";

const SEED = Number(process.env["PORTCULLIS_DIFF_SEED"] ?? 20240917);
const RANDOM_SETS = Number(process.env["PORTCULLIS_DIFF_SETS"] ?? 60);
const SETS_PER_TEST = 10;
const BOUNDARY_PER_SET = 700;
const RANDOM_PER_SET = 700;
const RANDOM_PER_FIXTURE = 1_000;
const PROPERTY_SETS = 25;
const PROPERTY_REQUESTS = 300;
const REPORTED_MISMATCHES = 5;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

interface Engine {
  readonly name: string;
  readonly make: (policy: PolicySet) => Evaluator;
  /** Decides every `stride`-th request (the offset rotates per policy set): for slow engines. */
  readonly stride: number;
}

/** The first engine is the oracle; every other one is compared with it. */
const allEngines: readonly Engine[] = [
  { name: "reference", make: (policy) => new ReferenceEvaluator(policy), stride: 1 },
  { name: "tables", make: (policy) => new TableEvaluator(buildDecisionTables(policy)), stride: 1 },
  // Every class with the same identity atoms in one walk (the compiler groups only nearly
  // equal ones): at a CIDR where rules it lacks match, a class's row is made from its own.
  { name: "tables-grouped", make: (policy) => new TableEvaluator(buildDecisionTables(policy, { group: groupByAtoms })), stride: 1 },
  { name: "cedar", make: (policy) => new CedarEvaluator(policy), stride: 10 },
];
/** Groups every class with the same identity atoms (`buildDecisionTables`' `group` option). */
function groupByAtoms(classes: readonly IdentityClass[]): number[][] {
  const groups = new Map<string, number[]>();
  classes.forEach((c, s) => {
    const key = atomsKey(c);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [s]);
    else group.push(s);
  });
  return [...groups.values()];
}

const only = process.env["PORTCULLIS_DIFF_ENGINES"]?.split(",");
const engines = only === undefined ? allEngines : allEngines.filter((e, i) => i === 0 || only.includes(e.name));

// ---------------------------------------------------------------- comparing

/** A case: one policy set and its requests, with what a failure message needs to reproduce it. */
interface Case {
  readonly policy: PolicySet;
  readonly requests: readonly Request[];
  /** Where the policy comes from: a path, or the random set's seed and full text. */
  readonly origin: string;
  /** Rotates the strided engines' share, so that over many cases every position is decided. */
  readonly offset: number;
}

function requestJson(r: Request): string {
  return JSON.stringify({ principal: r.principal, uid: r.uid, gid: r.gid, ip: formatIp(r.family, r.ip), port: r.port, protocol: r.protocol });
}

function decisionJson(d: Decision): string {
  return JSON.stringify({ decision: d.decision, reasons: d.reasons, default: d.default });
}

function firstLines(text: string, n: number): string {
  return text.split("\n").slice(0, n).join("\n");
}

function sameDecision(a: Decision, b: Decision): boolean {
  return a.decision === b.decision && a.default === b.default && a.reasons.length === b.reasons.length && a.reasons.every((id, i) => id === b.reasons[i]);
}

/** Runs every engine on the case; returns one message per disagreement (at most a few per engine). */
function compareEngines(c: Case): string[] {
  const [oracle, ...others] = engines;
  const reference = oracle!.make(c.policy);
  const expected = c.requests.map((r) => reference.decide(r));
  const messages: string[] = [];
  const header = (engine: string) => `engine \`${engine}\` disagrees with the ${oracle!.name} (PORTCULLIS_DIFF_SEED=${SEED})`;
  for (const engine of others) {
    let evaluator: Evaluator;
    try {
      evaluator = engine.make(c.policy);
    } catch (e) {
      messages.push(`${header(engine.name)}: building it threw ${firstLines((e as Error).stack ?? String(e), 3)}\n  policy: ${c.origin}`);
      continue;
    }
    let mismatches = 0;
    c.requests.forEach((request, i) => {
      if ((i + c.offset) % engine.stride !== 0) return;
      let actual: string;
      try {
        const d = evaluator.decide(request);
        if (sameDecision(d, expected[i]!)) return;
        actual = decisionJson(d);
      } catch (e) {
        actual = `threw ${(e as Error).message}`;
      }
      if (mismatches++ < REPORTED_MISMATCHES) {
        messages.push(
          [
            header(engine.name),
            `  request:   ${requestJson(request)}`,
            `  ${oracle!.name}: ${decisionJson(expected[i]!)}`,
            `  ${engine.name}: ${actual}`,
            `  policy: ${c.origin}`,
          ].join("\n"),
        );
      }
    });
    if (mismatches > REPORTED_MISMATCHES) messages.push(`engine \`${engine.name}\`: ${mismatches - REPORTED_MISMATCHES} more disagreements on ${c.origin.split("\n")[0]}`);
  }
  return messages;
}

function expectAgreement(cases: readonly Case[]): void {
  const messages = cases.flatMap(compareEngines);
  if (messages.length > 0) expect.fail(`${messages.length} disagreement report(s)\n\n${messages.join("\n\n")}`);
}

// ---------------------------------------------------------------- policy sets

/** The seed of random set `index` of this run. */
function setSeed(index: number): number {
  return Random.forItem(SEED, index).uint32();
}

/** A random set, checked: fails with the diagnostics and the text when it has any error. */
function checkedRandomSet(seed: number, text: string): PolicySet {
  const file = `random-${seed}.policy`;
  const result = checkSources([{ path: file, relPath: file, text }]);
  const errors = result.diagnostics.filter((d) => d.severity === "error");
  expect(errors.map((d) => formatDiagnostic(d, text)).join("\n"), `randomPolicySet(${seed}) must check without errors:\n${text}`).toBe("");
  expect(result.policySet).toBeDefined();
  return result.policySet!;
}

function randomOrigin(index: number, seed: number, text: string): string {
  return `random set ${index} of the run, randomPolicySet(${seed}):\n${text}`;
}

function fixture(paths: readonly string[]): PolicySet {
  const result = loadPolicySet(paths.map((p) => path.join(repoRoot, p)));
  expect(result.policySet, result.diagnostics.map((d) => d.message).join("\n")).toBeDefined();
  return result.policySet!;
}

// ---------------------------------------------------------------- the boundary points themselves

describe("boundary requests", () => {
  const ipKey = (family: 4 | 6, ip: readonly number[]) => formatIp(family, ip);

  it("hit every point of every field, deterministically, whatever the limit", () => {
    const policies = [fixture(["test/fixtures/spec-example.policy"]), fixture(["policies/shop"]), ...[0, 1, 2, 3, 4].map((i) => checkedRandomSet(setSeed(i), randomPolicySet(setSeed(i)).text))];
    for (const policy of policies) {
      const points = boundaryPoints(policy);
      for (const limit of [1, 500]) {
        const requests = boundaryRequests(policy, { limit });
        expect(requests).toEqual(boundaryRequests(policy, { limit }));
        const longest = Math.max(points.principals.length, points.uids.length, points.gids.length, points.addresses.length, points.ports.length);
        expect(requests.length).toBeLessThanOrEqual(Math.max(limit, longest + points.endpoints.length));
        const seen = (f: (r: Request) => unknown) => new Set(requests.map(f));
        expect(seen((r) => r.principal)).toEqual(new Set(points.principals));
        expect(seen((r) => r.uid)).toEqual(new Set(points.uids));
        expect(seen((r) => r.gid)).toEqual(new Set(points.gids));
        expect(seen((r) => ipKey(r.family, r.ip))).toEqual(new Set(points.addresses.map((a) => ipKey(a.family, a.ip))));
        expect(seen((r) => r.port)).toEqual(new Set(points.ports));
        expect(seen((r) => r.protocol)).toEqual(new Set(["tcp", "udp"]));
      }
    }
  });

  it("include each CIDR's ends ± 1, each port range's ends ± 1, each uid constant ± 1 and identities around each pattern", () => {
    const policy = fixture(["test/fixtures/spec-example.policy"]);
    const points = boundaryPoints(policy);
    const addresses = points.addresses.map((a) => ipKey(a.family, a.ip));
    // 10.0.0.0/8, fd00::/8, 169.254.169.254/32, and the service's endpoints.
    for (const a of ["9.255.255.255", "10.0.0.0", "10.255.255.255", "11.0.0.0", "fcff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe00::", "169.254.169.253", "169.254.169.254", "169.254.169.255", "10.0.1.11", "fd00::10"]) {
      expect(addresses).toContain(a);
    }
    expect(points.ports).toEqual(expect.arrayContaining([0, 52, 53, 54, 79, 80, 81, 442, 443, 444, 7999, 8000, 8999, 9000, 8442, 8443, 8444, 65535]));
    // `principal.uid != 0`, the workloads' `uid` selectors, and the ends of u32.
    expect(points.uids).toEqual(expect.arrayContaining([0, 1, 1000, 1001, 1002, 2000, 2001, 2002, 3000, 3001, 3002, 4294967295]));
    // `group web = [workload frontend, "spiffe://shop.example/ns/web/*"]`: an ID the pattern
    // matches that no workload has, the pattern's parent, and a neighbouring namespace.
    expect(points.principals).toEqual(
      expect.arrayContaining([null, "spiffe://shop.example/ns/web/sa/frontend", "spiffe://shop.example/ns/web/x", "spiffe://shop.example/ns/web", "spiffe://shop.example/ns/webx/x", "spiffe://elsewhere.test/ns/web/sa/frontend"]),
    );
    const requests = boundaryRequests(policy, { limit: 1 });
    for (const e of points.endpoints) {
      expect(requests.some((r) => r.port === e.port && r.protocol === e.protocol && ipKey(r.family, r.ip) === ipKey(e.family, e.ip))).toBe(true);
    }
  });
});

// ---------------------------------------------------------------- the differential tests

describe("every engine decides as the reference", () => {
  const fixtures = [["test/fixtures/spec-example.policy"], ["policies/shop"], ["policies/demo"]] as const;
  fixtures.forEach((paths, index) => {
    it(`on the boundary points of ${paths.join(" ")}`, () => {
      const policy = fixture(paths);
      const requests = [...boundaryRequests(policy), ...randomRequests(policy, SEED + index, RANDOM_PER_FIXTURE)];
      expectAgreement([{ policy, requests, origin: paths.join(" "), offset: index }]);
    });
  });

  // A generated set large enough that workloads get long class lists (own parts split in
  // two or three, shared parts merged to fit eight classes) and many identities share parts.
  it("on a generated 300-rule set, where workloads have up to eight classes", () => {
    const text = generatePolicySet({ rules: 300, seed: SEED });
    const policy = checkedRandomSet(SEED, text);
    const tables = buildDecisionTables(policy);
    const lengths = policy.workloads.map((w) => tables.listClasses(tables.workloadLists.get(w.name)!).length);
    expect(Math.max(...lengths)).toBeLessThanOrEqual(8);
    expect(lengths.filter((n) => n >= 6).length, "workloads with 6 or more classes").toBeGreaterThan(0);
    const requests = [...boundaryRequests(policy, { limit: 1_500 }), ...randomRequests(policy, SEED, 1_000)];
    expectAgreement([{ policy, requests, origin: `generatePolicySet({ rules: 300, seed: ${SEED} })`, offset: 0 }]);
  });

  for (let first = 0; first < RANDOM_SETS; first += SETS_PER_TEST) {
    const last = Math.min(RANDOM_SETS, first + SETS_PER_TEST) - 1;
    it(`on random policy sets ${first}..${last}`, () => {
      const cases: Case[] = [];
      for (let index = first; index <= last; index++) {
        const seed = setSeed(index);
        const { text } = randomPolicySet(seed);
        const policy = checkedRandomSet(seed, text);
        const requests = [...boundaryRequests(policy, { limit: BOUNDARY_PER_SET }), ...randomRequests(policy, seed, RANDOM_PER_SET)];
        cases.push({ policy, requests, origin: randomOrigin(index, seed, text), offset: index });
      }
      expectAgreement(cases);
    });
  }
});

// ---------------------------------------------------------------- properties of the reference

describe("the reference", () => {
  /** Random sets and requests for the properties, distinct from the differential ones. */
  function propertyCases(): { seed: number; text: string; parenthesised: string; policy: PolicySet; requests: Request[] }[] {
    return Array.from({ length: PROPERTY_SETS }, (_, index) => {
      const seed = Random.forItem(SEED ^ 0x5eed, index).uint32();
      const { text, parenthesised } = randomPolicySet(seed);
      const policy = checkedRandomSet(seed, text);
      const requests = [...boundaryRequests(policy, { limit: PROPERTY_REQUESTS / 2 }), ...randomRequests(policy, seed, PROPERTY_REQUESTS / 2)];
      return { seed, text, parenthesised, policy, requests };
    });
  }
  let cached: ReturnType<typeof propertyCases> | undefined;
  const propertySets = () => (cached ??= propertyCases());

  /** Fails with the seed, the request and both decisions at the first request where `holds` is false. */
  function expectEvery(seed: number, requests: readonly Request[], holds: (r: Request) => string | undefined): void {
    for (const r of requests) {
      const problem = holds(r);
      if (problem !== undefined) expect.fail(`PORTCULLIS_DIFF_SEED=${SEED}, randomPolicySet(${seed}), request ${requestJson(r)}: ${problem}`);
    }
  }

  it("returns well-formed decisions: sorted reasons of the deciding effect, default exactly when there are none", () => {
    for (const c of propertySets()) {
      const reference = new ReferenceEvaluator(c.policy);
      const effects = new Map(c.policy.rules.map((r) => [r.id, r.effect]));
      expectEvery(c.seed, c.requests, (r) => {
        const d = reference.decide(r);
        const json = decisionJson(d);
        if (d.default !== (d.reasons.length === 0)) return `default must be true exactly when there are no reasons: ${json}`;
        if ([...d.reasons].sort().join("\n") !== d.reasons.join("\n") || new Set(d.reasons).size !== d.reasons.length) return `reasons must be sorted and unique: ${json}`;
        const effect = d.decision === "allow" ? "permit" : "forbid";
        if (d.reasons.some((id) => effects.get(id) !== effect)) return `every reason of ${d.decision} must be a ${effect}: ${json}`;
        if (d.default && r.principal !== null && d.decision !== "deny") return `the default for an identified principal is deny: ${json}`;
        return undefined;
      });
    }
  });

  it("denies everything once `forbid (principal, action, resource);` is added, with its id among the reasons", () => {
    const id = "prop-forbid-all";
    for (const c of propertySets()) {
      const original = new ReferenceEvaluator(c.policy);
      const policy = checkedRandomSet(c.seed, `${c.text}\n@id("${id}")\nforbid (principal, action, resource);\n`);
      const forbidAll = new ReferenceEvaluator(policy);
      expectEvery(c.seed, c.requests, (r) => {
        const d = forbidAll.decide(r);
        const matchingForbids = original
          .explain(r)
          .traces.filter((t) => t.matched && t.rule.effect === "forbid")
          .map((t) => t.rule.id);
        const expected = { decision: "deny" as const, reasons: [...matchingForbids, id].sort(), default: false };
        return sameDecision(d, expected) ? undefined : `expected ${decisionJson(expected)}, got ${decisionJson(d)}`;
      });
    }
  });

  it("gives the default for every request when the set has no rules", () => {
    for (const c of propertySets()) {
      const empty = new ReferenceEvaluator({ ...c.policy, rules: [] });
      expectEvery(c.seed, c.requests, (r) => {
        const d = empty.decide(r);
        const expected = { decision: r.principal === null ? c.policy.defaultUnidentified : "deny", reasons: [], default: true } as const;
        return sameDecision(d, expected) ? undefined : `expected ${decisionJson(expected)}, got ${decisionJson(d)}`;
      });
    }
  });

  it("ignores rules whose conditions are never true", () => {
    const dead = '@id("prop-dead-when")\npermit (principal, action, resource) when { false };\n@id("prop-dead-unless")\nforbid (principal, action, resource) unless { true };\n';
    for (const c of propertySets()) {
      const original = new ReferenceEvaluator(c.policy);
      const withDead = new ReferenceEvaluator(checkedRandomSet(c.seed, `${c.text}\n${dead}`));
      expectEvery(c.seed, c.requests, (r) => {
        const d = withDead.decide(r);
        if (d.reasons.some((id) => id.startsWith("prop-dead"))) return `a dead rule is among the reasons: ${decisionJson(d)}`;
        const before = original.decide(r);
        return sameDecision(d, before) ? undefined : `adding dead rules changed ${decisionJson(before)} into ${decisionJson(d)}`;
      });
    }
  });

  it("changes only unidentified default decisions when `default unidentified` flips", () => {
    for (const c of propertySets()) {
      const original = new ReferenceEvaluator(c.policy);
      const flipped = new ReferenceEvaluator({ ...c.policy, defaultUnidentified: c.policy.defaultUnidentified === "allow" ? "deny" : "allow" });
      expectEvery(c.seed, c.requests, (r) => {
        const before = original.decide(r);
        const after = flipped.decide(r);
        const flips = before.default && r.principal === null;
        const expected = flips ? { ...before, decision: before.decision === "allow" ? ("deny" as const) : ("allow" as const) } : before;
        return sameDecision(after, expected) ? undefined : `expected ${decisionJson(expected)}, got ${decisionJson(after)}`;
      });
    }
  });

  it("decides the same when every `!`, `&&` and `||` is parenthesised (operator precedence)", () => {
    for (const c of propertySets()) {
      const original = new ReferenceEvaluator(c.policy);
      const parenthesised = new ReferenceEvaluator(checkedRandomSet(c.seed, c.parenthesised));
      expectEvery(c.seed, c.requests, (r) => {
        const a = original.decide(r);
        const b = parenthesised.decide(r);
        return sameDecision(a, b) ? undefined : `${decisionJson(a)} with minimal parentheses, ${decisionJson(b)} with full ones:\n${c.parenthesised}`;
      });
    }
  });
});
