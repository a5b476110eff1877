// The parser lexes with offsets only and takes lines and columns from a `LineMap`: they
// must be exactly those chevrotain's lexer computes with full position tracking, for every
// line ending (`\n`, `\r\n`, a lone `\r`) and for text that is not a policy at all.
import { describe, expect, it } from "vitest";
import { LineMap } from "../../dsl/lines.js";
import { offsetLexer, policyLexer } from "../../dsl/tokens.js";
import { generatePolicySet } from "../support/generate.js";
import { Random } from "../support/random.js";

const PIECES = ["\n", "\r\n", "\r", "\n\r", "\r\r\n", " ", "\t", "x", "permit", "10.0.0.1", '"a b"', '"open', "/* a\nb\r\nc */", "/* open", "// c\r", "#", "é", "😀", "\u2028", "\uFEFF"];

function randomText(rng: Random): string {
  let text = "";
  for (let n = rng.between(0, 60); n > 0; n--) text += PIECES[rng.int(PIECES.length)];
  return text;
}

describe("LineMap", () => {
  const rng = new Random(42);
  const texts = [generatePolicySet({ rules: 50, seed: 3 }).replace(/\n/g, "\r\n"), "", "\r", "\n\n", ...Array.from({ length: 500 }, () => randomText(rng))];

  it("gives every token, comment and lexing error the line and column of chevrotain's full position tracking", () => {
    for (const text of texts) {
      const lines = new LineMap(text);
      const lexed = policyLexer().tokenize(text);
      const all = [...lexed.tokens, ...((lexed.groups["comments"] ?? []) as typeof lexed.tokens)];
      for (const t of all) {
        expect(lines.span("f", t.startOffset, t.image.length), JSON.stringify(text)).toEqual({ file: "f", line: t.startLine, column: t.startColumn, offset: t.startOffset, length: t.image.length });
      }
      for (const e of lexed.errors) expect(lines.position(e.offset), JSON.stringify(text)).toEqual([e.line, e.column]);
    }
  });

  it("answers in any order of offsets", () => {
    const text = texts[0]!;
    const lines = new LineMap(text);
    const expected = policyLexer().tokenize(text).tokens.map((t) => [t.startLine, t.startColumn]);
    const order = expected.map((_, i) => i).sort(() => rng.float() - 0.5);
    const tokens = policyLexer().tokenize(text).tokens;
    for (const i of order) expect(lines.position(tokens[i]!.startOffset)).toEqual(expected[i]);
  });
});

describe("offsetLexer", () => {
  it("makes the tokens of policyLexer, with start offsets only", () => {
    const text = generatePolicySet({ rules: 50, seed: 4 });
    const full = policyLexer().tokenize(text).tokens;
    const offsets = offsetLexer.tokenize(text).tokens;
    expect(offsets.map((t) => [t.image, t.tokenType, t.startOffset])).toEqual(full.map((t) => [t.image, t.tokenType, t.startOffset]));
    expect(offsets[0]!.startLine).toBeUndefined();
  });
});
