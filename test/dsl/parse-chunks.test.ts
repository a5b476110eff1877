// Large files are lexed in slices of lines and parsed in runs of whole items (dsl/parse.ts).
// Whatever the slice and run sizes, the AST and the diagnostics must be exactly those of
// lexing and parsing the file in one piece.
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../dsl/parse.js";
import { generatePolicySet } from "../support/generate.js";

const whole = Number.MAX_SAFE_INTEGER;

describe("parsing in runs of items", () => {
  const text = generatePolicySet({ rules: 400, seed: 7 });

  it("gives the same AST as one piece, for any run size", () => {
    const one = parsePolicy(text, "big.policy", { chunkTokens: whole });
    expect(one.ast?.items.length).toBeGreaterThan(400);
    for (const size of [1, 50, 999, 4096]) {
      const runs = parsePolicy(text, "big.policy", { chunkTokens: size });
      expect(runs.diagnostics).toEqual(one.diagnostics);
      expect(runs.ast).toEqual(one.ast);
    }
  });

  it("reports syntax errors in several runs with the same positions as one piece", () => {
    // Misspell `action` in two rules far apart: brackets stay balanced, so the runs are used.
    const lines = text.split("\n");
    const ruleLines = lines.map((l, i) => (/\baction\b/.test(l) ? i : -1)).filter((i) => i >= 0);
    const targets = new Set([ruleLines[Math.floor(ruleLines.length / 3)], ruleLines[Math.floor((2 * ruleLines.length) / 3)]]);
    const brokenText = lines.map((l, i) => (targets.has(i) ? l.replace(/\baction\b/, "acton") : l)).join("\n");
    const one = parsePolicy(brokenText, "big.policy", { chunkTokens: whole });
    const runs = parsePolicy(brokenText, "big.policy", { chunkTokens: 200 });
    expect(one.diagnostics.length).toBeGreaterThanOrEqual(2);
    expect(runs.diagnostics.map((d) => [d.code, d.span?.line, d.span?.column])).toEqual(one.diagnostics.map((d) => [d.code, d.span?.line, d.span?.column]));
  });

  it("gives the same AST and diagnostics as one piece, for any slice size", () => {
    // Block comments across many lines (and one never closed), CRLF line ends, lexing errors.
    const lines = text.split("\n");
    const commented = [...lines.slice(0, 40), "/* a comment", "across lines */ /* and", "more */", ...lines.slice(40)].join("\r\n");
    const unclosed = `${lines.slice(0, 300).join("\n")}\n/* never closed\n${lines.slice(300).join("\n")}`;
    const strayCharacters = lines.map((l, i) => (i % 97 === 5 ? `${l} # $` : l)).join("\n");
    const loneCarriageReturns = text.replace(/\n/g, "\r");
    // Syntax errors all along, and a stray `}` far into the file: no cut after it, so the
    // rest is one run.
    const misspelled = lines.map((l, i) => (i % 7 === 0 ? l.replace(/\baction\b/, "acton") : l));
    const unbalanced = [...misspelled.slice(0, 500), "}", ...misspelled.slice(500)].join("\n");
    for (const variant of [text, commented, unclosed, strayCharacters, loneCarriageReturns, unbalanced]) {
      const one = parsePolicy(variant, "big.policy", { chunkTokens: whole, sliceChars: whole });
      for (const sliceChars of [1, 37, 1000]) {
        for (const chunkTokens of [whole, 50]) {
          const runs = parsePolicy(variant, "big.policy", { chunkTokens, sliceChars });
          expect(runs.diagnostics).toEqual(one.diagnostics);
          expect(runs.ast).toEqual(one.ast);
        }
      }
    }
  });
});
