// How the front end loads chevrotain (dsl/chevrotain.ts). Its single-module build: about 0.3 s less
// at every CLI start than its source tree. If the file moved, the fallback would quietly
// cost that again; this fails instead.
import { pathToFileURL } from "node:url";
import { expect, test } from "vitest";
import { chevrotainBundle, createToken, EmbeddedActionsParser, EOF, Lexer } from "../../dsl/chevrotain.js";
import { PolicyParser } from "../../dsl/parser.js";

test("chevrotain's values come from its single-module build", async () => {
  const bundle = (await import(pathToFileURL(chevrotainBundle).href)) as typeof import("chevrotain");
  expect(createToken).toBe(bundle.createToken);
  expect(EmbeddedActionsParser).toBe(bundle.EmbeddedActionsParser);
  expect(EOF).toBe(bundle.EOF);
  expect(Lexer).toBe(bundle.Lexer);
  expect(Lexer).not.toBe((await import("chevrotain")).Lexer);
});

test("the grammar passes chevrotain's own checks (which the shared parser skips at start-up)", () => {
  expect(() => new PolicyParser({ validate: true })).not.toThrow();
});
