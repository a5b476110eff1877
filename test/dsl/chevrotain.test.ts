// The front end loads chevrotain's single-module build (dsl/chevrotain.ts): about 0.3 s less
// at every CLI start than its source tree. If the file moved, the fallback would quietly
// cost that again; this fails instead.
import { pathToFileURL } from "node:url";
import { expect, test } from "vitest";
import { chevrotainBundle, createToken, EmbeddedActionsParser, EOF, Lexer } from "../../dsl/chevrotain.js";

test("chevrotain's values come from its single-module build", async () => {
  const bundle = (await import(pathToFileURL(chevrotainBundle).href)) as typeof import("chevrotain");
  expect(createToken).toBe(bundle.createToken);
  expect(EmbeddedActionsParser).toBe(bundle.EmbeddedActionsParser);
  expect(EOF).toBe(bundle.EOF);
  expect(Lexer).toBe(bundle.Lexer);
  expect(Lexer).not.toBe((await import("chevrotain")).Lexer);
});
