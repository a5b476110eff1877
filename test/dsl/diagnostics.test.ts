// "Did you mean" hints compare a name with every declared name, so they use an edit
// distance that stops once it exceeds the hint's limit: it must agree with the full one.
import { describe, expect, it } from "vitest";
import { boundedEditDistance } from "../../dsl/diagnostics.js";
import { Random } from "../support/random.js";

/** The full edit distance with adjacent transpositions (optimal string alignment): the oracle. */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array<number>(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}

describe("boundedEditDistance", () => {
  it("is editDistance when that is within the limit, else the limit plus one", () => {
    const rng = new Random(11);
    const word = () => Array.from({ length: rng.int(14) }, () => "abcab-"[rng.int(6)]).join("");
    for (let n = 0; n < 20_000; n++) {
      const [a, b, limit] = [word(), word(), rng.int(6)];
      expect(boundedEditDistance(a, b, limit), `${a} ${b} ${limit}`).toBe(Math.min(editDistance(a, b), limit + 1));
    }
    const long = "x".repeat(500);
    expect(boundedEditDistance(`${long}ab`, `${long}ba`, 3)).toBe(1);
  });
});
