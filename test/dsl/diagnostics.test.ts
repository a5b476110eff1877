// "Did you mean" hints compare a name with every declared name, so they use an edit
// distance that stops once it exceeds the hint's limit: it must agree with the full one.
import { describe, expect, it } from "vitest";
import { boundedEditDistance, editDistance } from "../../dsl/diagnostics.js";
import { Random } from "../support/random.js";

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
