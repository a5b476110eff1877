// Owns the front end's one entry point: text → tokens → CST → AST, with every lexical and
// syntax diagnostic of the file. Used by the compiler, the formatter and the CLI.
import type { IRecognitionException, IToken } from "chevrotain";
import type { Comment, PolicyFile, Span } from "./ast.js";
import { AstBuilder } from "./cst-to-ast.js";
import { diag, type Diagnostic } from "./diagnostics.js";
import { policyParser, syntaxErrorText } from "./parser.js";
import { policyLexer, UnterminatedBlockComment, UnterminatedString, BlockComment } from "./tokens.js";

export interface ParseResult {
  /**
   * Undefined when the file has lexical or syntax errors (they are all in `diagnostics`).
   * With only literal errors (a malformed IP, a bad escape) the AST exists, holding a
   * harmless placeholder for each bad literal, so that checking can go on.
   */
  readonly ast: PolicyFile | undefined;
  readonly diagnostics: readonly Diagnostic[];
  /** The tokens of the file (comments excluded), for tools such as the formatter. */
  readonly tokens: readonly IToken[];
}

function tokenSpan(file: string, t: IToken): Span {
  return { file, line: t.startLine ?? 1, column: t.startColumn ?? 1, offset: t.startOffset, length: Math.max(1, t.image.length) };
}

/** Span of the empty text just after `t` (where a missing `;` belongs), or the file's end. */
function spanAfter(file: string, text: string, t: IToken | undefined): Span {
  if (t === undefined || Number.isNaN(t.startOffset)) {
    const lines = text.split("\n");
    return { file, line: lines.length, column: lines[lines.length - 1]!.length + 1, offset: text.length, length: 0 };
  }
  const lastNewline = t.image.lastIndexOf("\n");
  const line = (t.startLine ?? 1) + (t.image.split("\n").length - 1);
  const column = lastNewline < 0 ? (t.startColumn ?? 1) + t.image.length : t.image.length - lastNewline;
  return { file, line, column, offset: t.startOffset + t.image.length, length: 0 };
}

function syntaxDiagnostic(file: string, text: string, e: IRecognitionException): Diagnostic {
  const { expected, found } = syntaxErrorText(e);
  const atEnd = e.token.tokenType.name === "EOF" || Number.isNaN(e.token.startOffset);
  // A missing terminator belongs right after what it should terminate, as in TypeScript.
  const missingTerminator = expected === "`;`" && e.name === "MismatchedTokenException";
  const span = atEnd || missingTerminator ? spanAfter(file, text, (e as IRecognitionException & { previousToken?: IToken }).previousToken) : tokenSpan(file, e.token);
  return e.name === "MismatchedTokenException"
    ? diag("SyntaxExpected", span, expected, found)
    : diag("SyntaxUnexpected", span, found, expected);
}

export function parsePolicy(text: string, file: string): ParseResult {
  const diagnostics: Diagnostic[] = [];
  const lexed = policyLexer.tokenize(text);

  for (const e of lexed.errors) {
    const span: Span = { file, line: e.line ?? 1, column: e.column ?? 1, offset: e.offset, length: e.length };
    diagnostics.push(diag("UnexpectedCharacter", span, text.slice(e.offset, e.offset + e.length)));
  }
  for (const t of lexed.tokens) {
    if (t.tokenType === UnterminatedString) diagnostics.push(diag("UnterminatedString", tokenSpan(file, t)));
  }
  const commentTokens = (lexed.groups["comments"] ?? []) as IToken[];
  const comments: Comment[] = [];
  for (const t of commentTokens) {
    if (t.tokenType === UnterminatedBlockComment) {
      diagnostics.push(diag("UnterminatedComment", { ...tokenSpan(file, t), length: 2 }));
    }
    comments.push({ text: t.image, block: t.tokenType === BlockComment || t.tokenType === UnterminatedBlockComment, span: tokenSpan(file, t) });
  }

  policyParser.input = lexed.tokens;
  const cst = policyParser.file();
  for (const e of policyParser.errors) diagnostics.push(syntaxDiagnostic(file, text, e));
  // The shared parser would otherwise keep this file's tokens alive until the next parse.
  policyParser.input = [];

  if (diagnostics.length > 0) return { ast: undefined, diagnostics, tokens: lexed.tokens };

  const builder = new AstBuilder(file);
  const ast = { ...builder.file(cst, text), comments };
  return { ast, diagnostics: builder.diagnostics, tokens: lexed.tokens };
}
