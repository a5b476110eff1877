// Rows made from bit masks (compiler/rows.ts). The differential tests check every row
// against the reference; this file covers what random sets almost never reach.
import { describe, expect, it } from "vitest";
import { checkSources } from "../../compiler/program.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import { mix } from "../../compiler/rows.js";
import { TableEvaluator } from "../../compiler/table-eval.js";
import { buildDecisionTables } from "../../compiler/tables.js";

describe("rows", () => {
  // A port cell's verdict among rules that read neither uid nor gid is found again by the
  // sum of its deciding rules' position mixes, then checked. Positions 29 + 1037 and
  // 79 + 484 have the same sum: at port 1000 rules 79 and 484 decide, at port 2000 rules 29
  // and 1037 (with 79 and 484 matching too when 29 and 1037 are forbids).
  const collidingSet = (effect: "permit" | "forbid") => {
    const rule = (i: number) => {
      const id = `@id("r${String(i).padStart(4, "0")}")`;
      if (i === 29 || i === 1037) return `${id} ${effect} (principal, action, resource) when { port == 2000 };`;
      if (i === 79 || i === 484) return `${id} permit (principal, action, resource) when { port == 1000 || port == ${effect === "forbid" ? 2000 : 1000} };`;
      return `${id} permit (principal, action, resource) when { port == 7 };`;
    };
    const checked = checkSources([{ path: "collide.policy", relPath: "collide.policy", text: Array.from({ length: 1038 }, (_, i) => rule(i)).join("\n") }]);
    expect(checked.policySet).toBeDefined();
    return checked.policySet!;
  };

  for (const effect of ["forbid", "permit"] as const) {
    it(`decides a port cell afresh when its deciding rules hash like others seen (${effect}s after permits)`, () => {
      const sum = (a: number, b: number) => (mix(a) + mix(b)) | 0;
      expect(sum(29, 1037)).toBe(sum(79, 484));
      const policy = collidingSet(effect);
      const reference = new ReferenceEvaluator(policy);
      const tables = new TableEvaluator(buildDecisionTables(policy));
      for (const port of [7, 1000, 2000, 3000]) {
        const request = { principal: null, uid: 1000, gid: 1000, family: 4 as const, ip: [127, 0, 0, 1], port, protocol: "tcp" as const };
        expect(tables.decide(request), `port ${port}`).toEqual(reference.decide(request));
      }
      expect(reference.decide({ principal: null, uid: 0, gid: 0, family: 4, ip: [10, 0, 0, 1], port: 2000, protocol: "tcp" }).reasons).toEqual(["r0029", "r1037"]);
    });
  }
});
