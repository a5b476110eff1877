// The "workloads may match the same processes" warning (PC2102) is found
// through an index so that a selector value shared by many workloads stays linear. Property
// test: on random workloads over few selector values, the checker reports exactly what the
// definition gives when every pair of match blocks is tried in the documented order.
import { describe, expect, it } from "vitest";
import { checkPolicySet } from "../../compiler/check.js";
import { diag } from "../../dsl/diagnostics.js";
import { parsePolicy } from "../../dsl/parse.js";
import { Random } from "../support/random.js";

const KEYS = ["cgroup", "uid", "gid", "exe", "sha256"] as const;
type Spec = Partial<Record<(typeof KEYS)[number], string | number>>;
const CGROUPS = ["/", "/a", "/a/b", "/a/b/c", "/a/bc", "/b", "/b/a"];

function randomWorkloads(rng: Random): Spec[][] {
  return Array.from({ length: rng.between(2, 20) }, () =>
    Array.from({ length: rng.between(1, 3) }, () => {
      const spec: Spec = {};
      if (rng.chance(0.5)) spec.cgroup = rng.pick(CGROUPS);
      if (rng.chance(0.4)) spec.uid = rng.between(1, 3);
      if (rng.chance(0.3)) spec.gid = rng.between(1, 2);
      if (rng.chance(0.4)) spec.exe = rng.pick(["/x", "/y"]);
      if (rng.chance(0.2)) spec.sha256 = rng.pick(["a", "b"]).repeat(64);
      if (Object.keys(spec).length === 0) spec.uid = rng.between(1, 3);
      return spec;
    }),
  );
}

function policyText(workloads: Spec[][]): string {
  return workloads
    .map((blocks, w) => {
      const matches = blocks.map((spec) => `  match { ${KEYS.filter((k) => spec[k] !== undefined).map((k) => `${k} = ${typeof spec[k] === "number" ? spec[k] : `"${spec[k]}"`}`).join(", ")} }`);
      return `workload w${w} {\n  id = "spiffe://x/w${w}";\n${matches.join("\n")}\n}\n`;
    })
    .join("");
}

/**
 * The warnings by definition: each block (in order) tries every block that shares a value
 * with it key by key (cgroup: at or above its own, shallowest first), in block order; the
 * first compatible block of another workload reports the pair, once.
 */
function expectedWarnings(workloads: Spec[][]): string[] {
  const blocks = workloads.flatMap((specs, workload) => specs.map((spec) => ({ workload, spec })));
  const underOrAt = (inner: string, outer: string) => outer === "/" || inner === outer || inner.startsWith(`${outer}/`);
  const compatible = (a: Spec, b: Spec) =>
    KEYS.every((k) => a[k] === undefined || b[k] === undefined || (k === "cgroup" ? underOrAt(String(a[k]), String(b[k])) || underOrAt(String(b[k]), String(a[k])) : a[k] === b[k]));
  const reported = new Set<string>();
  const out: string[] = [];
  for (const block of blocks) {
    const tried: typeof blocks = [];
    for (const k of KEYS) {
      const value = block.spec[k];
      if (value === undefined) continue;
      if (k === "cgroup") {
        const parts = value === "/" ? [""] : String(value).split("/");
        for (let i = 1; i <= parts.length; i++) tried.push(...blocks.filter((b) => b.spec.cgroup === (parts.slice(0, i).join("/") || "/")));
      } else tried.push(...blocks.filter((b) => b.spec[k] === value));
    }
    for (const other of tried) {
      if (other.workload === block.workload || !compatible(block.spec, other.spec)) continue;
      const [first, second] = other.workload < block.workload ? [other, block] : [block, other];
      if (reported.has(`${first.workload}/${second.workload}`)) continue;
      reported.add(`${first.workload}/${second.workload}`);
      const shared = KEYS.filter((k) => first.spec[k] !== undefined && second.spec[k] !== undefined)
        .map((k) => (first.spec[k] === second.spec[k] ? `both match ${k} \`${first.spec[k]}\`` : `${k} \`${second.spec[k]}\` overlaps \`${first.spec[k]}\``))
        .join(", ");
      out.push(diag("OverlappingWorkloads", undefined, `w${second.workload}`, `w${first.workload}`, shared).message);
    }
  }
  return out;
}

describe("overlapping workloads", () => {
  it("are reported as by trying every pair of match blocks, in the same order", () => {
    const rng = new Random(20260722);
    let warnings = 0;
    for (let n = 0; n < 300; n++) {
      const workloads = randomWorkloads(rng);
      const text = policyText(workloads);
      const parsed = parsePolicy(text, "f.policy");
      const checked = checkPolicySet([{ path: "f.policy", relPath: "f.policy", text }], [parsed.ast!]);
      const got = checked.diagnostics.filter((d) => d.code === "PC2102").map((d) => d.message);
      expect(got, text).toEqual(expectedWarnings(workloads));
      warnings += got.length;
    }
    expect(warnings).toBeGreaterThan(1000);
  });
});
