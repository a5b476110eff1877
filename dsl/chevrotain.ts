// Owns loading chevrotain. The package's entry point is its source tree (`lib/src`), which
// imports some 600 lodash-es modules: about 0.3 s of every CLI start on these machines. The
// package also ships the same version as one ES module (`lib/chevrotain.mjs`), which loads
// in about 0.02 s; its `exports` map names only the entry point, so the file is found next to
// it. Every chevrotain value the front end uses comes from here, so there is one instance
// (token types and parsers from two copies would not work together); types still come from
// "chevrotain". If the file is ever missing, the entry point is used instead.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

type Chevrotain = typeof import("chevrotain");

/** Where the single-module build is, beside the entry point's `lib/src`. */
export const chevrotainBundle = path.join(path.dirname(createRequire(import.meta.url).resolve("chevrotain")), "..", "chevrotain.mjs");

const chevrotain: Chevrotain = existsSync(chevrotainBundle) ? ((await import(pathToFileURL(chevrotainBundle).href)) as Chevrotain) : await import("chevrotain");

export const { createToken, EmbeddedActionsParser, EOF, Lexer } = chevrotain;
