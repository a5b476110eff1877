// Owns the policy sets differential tests run on: the checked-in example sets, and seeded
// random sets (test/support/random-policy.ts) checked and labelled so that a failure names
// the seed and shows the text; plus the JSON forms tests compare requests and decisions in.
import path from "node:path";
import type { Decision, Request } from "../../compiler/request.js";
import type { PolicySet } from "../../compiler/model.js";
import { checkSources, loadPolicySet } from "../../compiler/program.js";
import { formatIp } from "../../dsl/ip.js";
import { repoRoot } from "./baselines.js";
import { Random } from "./random.js";
import { randomPolicySet } from "./random-policy.js";

/** A checked-in policy set, by paths relative to the repository; throws with its diagnostics. */
export function fixturePolicy(...paths: string[]): PolicySet {
  const r = loadPolicySet(paths.map((p) => path.join(repoRoot, p)));
  if (r.policySet === undefined) throw new Error(r.diagnostics.map((d) => d.message).join("\n"));
  return r.policySet;
}

export interface RandomSet {
  readonly policy: PolicySet;
  readonly seed: number;
  /** Where the set comes from, with its text: what a failure message shows. */
  readonly origin: string;
}

/** The `index`-th random set of a run seeded by `runSeed` (`seedVariable` names the env var that sets it). */
export function randomSet(runSeed: number, index: number, seedVariable: string): RandomSet {
  const seed = Random.forItem(runSeed, index).uint32();
  const { text } = randomPolicySet(seed);
  const file = `random-${seed}.policy`;
  const checked = checkSources([{ path: file, relPath: file, text }]);
  if (checked.policySet === undefined) throw new Error(`randomPolicySet(${seed}) does not check:\n${text}`);
  return { policy: checked.policySet, seed, origin: `random set ${index}, randomPolicySet(${seed}) (${seedVariable}=${runSeed}):\n${text}` };
}

export const requestJson = (r: Request): string =>
  JSON.stringify({ principal: r.principal, uid: r.uid, gid: r.gid, ip: formatIp(r.family, r.ip), port: r.port, protocol: r.protocol });

export const decisionJson = (d: Decision): string => JSON.stringify({ decision: d.decision, reasons: d.reasons, default: d.default });
