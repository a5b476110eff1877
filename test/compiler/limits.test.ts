// Lowering limits: a policy past one is refused with a LoweringError (PC3002), never
// approximated and never built half-way.
import { describe, expect, it } from "vitest";
import { checkSources } from "../../compiler/program.js";
import { buildDecisionTables, LoweringError, MAX_CLASS_CELLS } from "../../compiler/tables.js";

const allOf = (n: number, atom: (i: number) => string) => Array.from({ length: n }, (_, i) => atom(i + 1)).join(" && ");

/** One rule reading uid, gid and port, with `x != k` for k = 1..n on each axis. */
function policyWithGrid(uids: number, gids: number, ports: number) {
  const text = `permit (principal, action, resource) when { ${allOf(uids, (i) => `principal.uid != ${i}`)} && ${allOf(gids, (i) => `principal.gid != ${i}`)} && ${allOf(ports, (i) => `port != ${i}`)} };\n`;
  const checked = checkSources([{ path: "grid.policy", relPath: "grid.policy", text }]);
  expect(checked.policySet).toBeDefined();
  return checked.policySet!;
}

describe("lowering limits", () => {
  it("refuses an identity class whose uid × gid × protocol × port grid has more than MAX_CLASS_CELLS cells", () => {
    // `x != k` cuts at k and k + 1: 522 uid and 522 gid intervals from 0, 262 port intervals, both protocols.
    const cells = 522 * 522 * 2 * 262;
    expect(cells).toBeGreaterThan(MAX_CLASS_CELLS);
    const policy = policyWithGrid(520, 520, 260);
    expect(() => buildDecisionTables(policy)).toThrow(LoweringError);
    expect(() => buildDecisionTables(policy)).toThrow(`one identity class (1 rules) cuts ${cells} uid × gid × protocol × port cells, more than ${MAX_CLASS_CELLS}`);
  });

  it("refuses alternatives on three axes whose product passes the limit, without expanding them first", () => {
    // (uid == 1 || … 300) && (gid == 1 || …) && (port == 1 || …): 302 × 302 × 2 × 302 cells (cuts at 1..301).
    const anyOf = (n: number, atom: (i: number) => string) => Array.from({ length: n }, (_, i) => atom(i + 1)).join(" || ");
    const text = `permit (principal, action, resource) when { (${anyOf(300, (i) => `principal.uid == ${i}`)}) && (${anyOf(300, (i) => `principal.gid == ${i}`)}) && (${anyOf(300, (i) => `port == ${i}`)}) };\n`;
    const checked = checkSources([{ path: "any.policy", relPath: "any.policy", text }]);
    expect(() => buildDecisionTables(checked.policySet!)).toThrow(`cuts ${302 * 302 * 2 * 302} uid × gid × protocol × port cells`);
  });

  it("builds a class with a large grid below the limit", () => {
    const tables = buildDecisionTables(policyWithGrid(30, 30, 30));
    expect(tables.stats.rows).toBeGreaterThan(0);
  });
});
