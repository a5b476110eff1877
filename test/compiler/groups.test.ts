// Which classes share one walk (`groupClasses`). Any grouping gives the same decisions (the
// differential tests' `tables-grouped` engine groups every class with the same atoms);
// these tests pin which classes the compiler groups, since that decides its speed.
import { describe, expect, it } from "vitest";
import type { NormalRule } from "../../compiler/normalise.js";
import { groupClasses, type IdentityClass } from "../../compiler/rows.js";

/** A class of the rules with these indices (grouping reads only their indices). */
function cls(indices: readonly number[], atoms: readonly number[] = [1], unidentified = false): IdentityClass {
  return { atoms: new Set(atoms), unidentified, rules: indices.map((index) => ({ index }) as NormalRule) };
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("groupClasses", () => {
  it("groups classes with the same atoms whose rules differ in a few, and nothing else", () => {
    const shared = range(0, 100);
    const classes = [
      cls(shared),
      cls(shared.filter((i) => i !== 5)), // the shared part less the rule that negates one ID
      cls(shared.filter((i) => i !== 7 && i !== 8)),
      cls(range(200, 300)), // as large, other rules
      cls(shared, [2]), // other atoms
      cls(shared, [1], true), // unidentified
      cls(range(0, 10)), // too small to group
      cls([...shared.slice(0, 90), ...range(300, 310)]), // differs in 20 of 100
    ];
    expect(groupClasses(classes)).toEqual([[0, 1, 2], [3], [4], [5], [6], [7]]);
  });

  it("keeps a group's union of rules within 5 % of its first class", () => {
    // Each class has its predecessor's rules and 20 more (within 3 % of it), so the union grows.
    const classes = [0, 1, 2, 3, 4, 5].map((k) => cls(range(0, 1000 + 20 * k)));
    // 1,000 rules allow a union of 1,054: the class of 1,060 starts a group (allowing 1,117).
    expect(groupClasses(classes)).toEqual([
      [0, 1, 2],
      [3, 4, 5],
    ]);
  });
});
