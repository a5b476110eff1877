// SPIFFE ID validation: the one-pass path for IDs already in normal form gives exactly what
// the full validation gives, on fuzzed text near the ID grammar (valid and invalid).
import { describe, expect, it } from "vitest";
import { checkSpiffeId, MAX_SPIFFE_ID_BYTES, validateSpiffeId } from "../../compiler/spiffe.js";
import { Random } from "../support/random.js";

const PIECES = ["a", "z", "A", "Q", "0", "9", ".", "..", "-", "_", "/", "//", "?", "#", "%", " ", "é", "\u{1F600}", "prod.example", "ns", "sa", "web"];
const STARTS = ["spiffe://", "spiffe://", "spiffe://", "SPIFFE://", "Spiffe://", "spiffe:/", "spiffe://.", "spiffe:///", "http://", ""];

function fuzzedId(random: Random): string {
  let s = random.pick(STARTS);
  const n = random.int(12);
  for (let i = 0; i < n; i++) s += random.pick(PIECES);
  return s;
}

describe("checkSpiffeId", () => {
  it("gives what the full validation gives, on 200,000 fuzzed IDs", () => {
    const random = new Random(7);
    let normal = 0;
    let invalid = 0;
    for (let k = 0; k < 200_000; k++) {
      const text = fuzzedId(random);
      const fast = checkSpiffeId(text);
      const full = validateSpiffeId(text);
      if (JSON.stringify(fast) !== JSON.stringify(full)) expect({ text, fast }).toEqual({ text, fast: full });
      if (full.ok && full.id === text) normal++;
      if (!full.ok) invalid++;
    }
    // Both kinds are well represented, so both paths ran.
    expect(normal).toBeGreaterThan(10_000);
    expect(invalid).toBeGreaterThan(10_000);
  });

  it("refuses at the length limit as the full validation does", () => {
    for (const extra of [-1, 0, 1]) {
      const text = `spiffe://example.org/${"a".repeat(MAX_SPIFFE_ID_BYTES - "spiffe://example.org/".length + extra)}`;
      expect(checkSpiffeId(text)).toEqual(validateSpiffeId(text));
      expect(checkSpiffeId(text).ok).toBe(extra <= 0);
    }
  });
});
