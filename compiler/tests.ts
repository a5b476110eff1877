// Owns policy tests (spec §6): turning each `allow|deny connect from … to …` assertion into
// a request, running it on any evaluator, and judging the result (decision, and every
// `because` id among the reasons).
import type * as A from "../dsl/ast.js";
import type { PolicySet } from "./model.js";
import { endpointOf } from "./model.js";
import type { BundleTest } from "./bundle.js";
import { DEFAULT_UID, parseAddress, workloadPrincipal, type Decision, type Request } from "./request.js";
import { checkedSpiffeId } from "./spiffe.js";

export interface Evaluator {
  decide(request: Request): Decision;
}

export interface AssertionResult {
  readonly test: string;
  readonly assertion: A.Assertion;
  readonly request: Request;
  readonly actual: Decision;
  readonly passed: boolean;
  /** `because` ids missing from the reasons. */
  readonly missingReasons: readonly string[];
}

/** The request an assertion describes (spec §6 defaults for uid/gid). */
export function assertionRequest(a: A.Assertion, policy: PolicySet): Request {
  let principal: string | null = null;
  let uid = DEFAULT_UID;
  let gid = DEFAULT_UID;
  if (a.from.kind === "from-workload") {
    const resolved = workloadPrincipal(policy.workloadsByName.get(a.from.name.name)!);
    principal = resolved.principal;
    uid = resolved.defaultUid;
    gid = resolved.defaultGid;
  } else if (a.from.kind === "from-id") {
    principal = checkedSpiffeId(a.from.id.value);
  }
  const to = endpointOf(a.to as A.EndpointLit);
  return { principal, uid: a.uid?.value ?? uid, gid: a.gid?.value ?? gid, family: to.family, ip: to.bytes, port: to.port, protocol: to.protocol };
}

export function runPolicyTests(policy: PolicySet, evaluator: Evaluator): AssertionResult[] {
  const results: AssertionResult[] = [];
  for (const test of policy.tests) {
    for (const assertion of test.ast.assertions) {
      const request = assertionRequest(assertion, policy);
      const actual = evaluator.decide(request);
      const missingReasons = assertion.because.map((b) => b.value).filter((id) => !actual.reasons.includes(id));
      results.push({ test: test.name, assertion, request, actual, passed: actual.decision === assertion.expect && missingReasons.length === 0, missingReasons });
    }
  }
  return results;
}

/** One failing assertion, as printed by `portcullis test`. */
export function describeFailure(r: AssertionResult): string {
  const { span } = r.assertion;
  return failureLine(`${span.file}(${span.line},${span.column})`, r.test, r.assertion.expect, r.actual, r.missingReasons);
}

function failureLine(where: string, test: string, expected: "allow" | "deny", actual: Decision, missingReasons: readonly string[]): string {
  const reasons = actual.reasons.length > 0 ? actual.reasons.map((id) => `\`${id}\``).join(", ") : actual.default ? "the default" : "none";
  if (actual.decision === expected && missingReasons.length > 0) {
    return `${where}: test "${test}" failed: ${missingReasons.map((id) => `\`${id}\``).join(", ")} not among the reasons (${reasons})`;
  }
  return `${where}: test "${test}" failed: expected ${expected}, got ${actual.decision} (reasons: ${reasons})`;
}

export function testSummary(results: readonly { readonly passed: boolean }[]): string {
  const passed = results.filter((r) => r.passed).length;
  return `${passed} passed, ${results.length - passed} failed`;
}

// ---------------------------------------------------------------- tests compiled into a bundle

export interface BundleTestResult {
  readonly test: BundleTest;
  readonly actual: Decision;
  readonly passed: boolean;
  readonly missingReasons: readonly string[];
}

/** Runs the assertions a bundle's manifest carries (each already a request) on any evaluator. */
export function runBundleTests(tests: readonly BundleTest[], evaluator: Evaluator): BundleTestResult[] {
  return tests.map((test) => {
    const { family, ip } = parseAddress(test.request.ip);
    const actual = evaluator.decide({ ...test.request, family, ip });
    const missingReasons = test.because.filter((id) => !actual.reasons.includes(id));
    return { test, actual, passed: actual.decision === test.expect && missingReasons.length === 0, missingReasons };
  });
}

/** One failing bundle assertion, located in its source file as the manifest records it. */
export function describeBundleFailure(r: BundleTestResult): string {
  const t = r.test;
  return failureLine(`${t.file}(${t.line},${t.column})`, t.test, t.expect, r.actual, r.missingReasons);
}
