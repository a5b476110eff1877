// Lowering limits: a policy past one is refused with a LoweringError (PC3002), never
// approximated and never built half-way.
import { describe, expect, it } from "vitest";
import { checkSources } from "../../compiler/program.js";
import { buildDecisionTables, LoweringError, MAX_GRID_CELLS, MAX_GRID_WORDS } from "../../compiler/tables.js";

const allOf = (n: number, atom: (i: number) => string) => Array.from({ length: n }, (_, i) => atom(i + 1)).join(" && ");

/** One rule reading uid, gid and port, with `x != k` for k = 1..n on each axis. */
function policyWithGrid(uids: number, gids: number, ports: number) {
  const text = `permit (principal, action, resource) when { ${allOf(uids, (i) => `principal.uid != ${i}`)} && ${allOf(gids, (i) => `principal.gid != ${i}`)} && ${allOf(ports, (i) => `port != ${i}`)} };\n`;
  const checked = checkSources([{ path: "grid.policy", relPath: "grid.policy", text }]);
  expect(checked.policySet).toBeDefined();
  return checked.policySet!;
}

describe("lowering limits", () => {
  it("refuses a rule whose own uid × gid × protocol × port grid has more than MAX_GRID_CELLS cells", () => {
    // `x != k` cuts at k and k + 1: 522 uid and 522 gid intervals from 0, 262 port intervals, both protocols.
    const cells = 522 * 522 * 2 * 262;
    expect(cells).toBeGreaterThan(MAX_GRID_CELLS);
    const policy = policyWithGrid(520, 520, 260);
    expect(() => buildDecisionTables(policy)).toThrow(LoweringError);
    expect(() => buildDecisionTables(policy)).toThrow(`rule grid.policy:1 cuts ${cells} uid × gid × protocol × port cells, more than ${MAX_GRID_CELLS}`);
  });

  it("refuses rules each below the limit whose grid where they all match passes it", () => {
    // Both rules read uid and gid (so they are in one class) and match at every destination:
    // one cuts 1,002 uid intervals, the other 1,002 gid intervals, both 5 port intervals.
    const ports = allOf(3, (i) => `port != ${i}`);
    const text = [
      `permit (principal, action, resource) when { ${allOf(1000, (i) => `principal.uid != ${i}`)} && principal.gid != 0 && ${ports} };`,
      `forbid (principal, action, resource) when { ${allOf(1000, (i) => `principal.gid != ${i}`)} && principal.uid != 0 && ${ports} };`,
    ].join("\n");
    const checked = checkSources([{ path: "two.policy", relPath: "two.policy", text }]);
    const cells = 1002 * 1002 * 2 * 5;
    expect(cells).toBeGreaterThan(MAX_GRID_CELLS);
    expect(() => buildDecisionTables(checked.policySet!)).toThrow(`the rules of one identity class that match at one destination cut ${cells} uid × gid × protocol × port cells, more than ${MAX_GRID_CELLS}`);
  });

  it("refuses a grid below the cell limit whose masks over many rules reading uid and gid pass the word limit", () => {
    // 256 rules, each `uid == i && gid != i && port != k`: 258 uid and gid intervals, 61 port
    // intervals, all 256 rules matching at every destination: 8 mask words and a verdict per cell.
    const text = Array.from({ length: 256 }, (_, k) => `permit (principal, action, resource) when { principal.uid == ${k + 1} && principal.gid != ${k + 1} && port != ${(k % 59) + 1} };`).join("\n");
    const checked = checkSources([{ path: "many.policy", relPath: "many.policy", text }]);
    const cells = 258 * 258 * 2 * 61;
    expect(cells).toBeLessThanOrEqual(MAX_GRID_CELLS);
    expect(cells * 9).toBeGreaterThan(MAX_GRID_WORDS);
    expect(() => buildDecisionTables(checked.policySet!)).toThrow(`the 256 rules reading uid or gid of one identity class that match at one destination need ${cells * 9} words of masks over ${cells} cells, more than ${MAX_GRID_WORDS}`);
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
