// Owns the front end's one entry point: text → tokens → CST → AST, with every lexical and
// syntax diagnostic of the file. Used by the compiler, the formatter and the CLI.
import type { IRecognitionException, IToken, TokenType } from "chevrotain";
import type { Comment, Item, PolicyFile, Span } from "./ast.js";
import { AstBuilder } from "./cst-to-ast.js";
import { diag, type Diagnostic } from "./diagnostics.js";
import { policyParser, syntaxErrorText } from "./parser.js";
import {
  Annotation,
  BlockComment,
  Default,
  Forbid,
  Group,
  LBrace,
  LBracket,
  LParen,
  Net,
  Permit,
  policyLexer,
  Ports,
  RBrace,
  RBracket,
  RParen,
  Semicolon,
  Service,
  Test,
  UnterminatedBlockComment,
  UnterminatedString,
  Workload,
} from "./tokens.js";

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

export interface ParseOptions {
  /** Smallest run of tokens parsed by one parser call (tests vary it; results never depend on it). */
  readonly chunkTokens?: number;
}

export function parsePolicy(text: string, file: string, options: ParseOptions = {}): ParseResult {
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

  // Large files are parsed a run of whole items at a time, and each run's CST becomes AST
  // at once, so only one run's CST is ever alive: time and memory stay linear in the file.
  const builder = new AstBuilder(file);
  const items: Item[] = [];
  for (const chunk of itemChunks(lexed.tokens, options.chunkTokens ?? CHUNK_TOKENS)) {
    policyParser.input = chunk;
    const cst = policyParser.file();
    for (const e of policyParser.errors) diagnostics.push(syntaxDiagnostic(file, text, e));
    if (diagnostics.length === 0) items.push(...builder.items(cst));
  }
  // The shared parser would otherwise keep this file's tokens alive until the next parse.
  policyParser.input = [];

  if (diagnostics.length > 0) return { ast: undefined, diagnostics, tokens: lexed.tokens };
  const ast: PolicyFile = { kind: "file", path: file, items, comments, span: { file, line: 1, column: 1, offset: 0, length: text.length } };
  return { ast, diagnostics: builder.diagnostics, tokens: lexed.tokens };
}

/** Tokens that can start a top-level item. */
const itemStarts = new Set<TokenType>([Workload, Group, Net, Ports, Service, Default, Permit, Forbid, Test, Annotation]);
const openers = new Set<TokenType>([LParen, LBrace, LBracket]);
const closers = new Set<TokenType>([RParen, RBrace, RBracket]);

/** Smallest run of tokens worth a parser call of its own. */
const CHUNK_TOKENS = 4096;

/**
 * Splits tokens into runs of whole top-level items: a cut is made only before an
 * item-starting keyword that follows `;` or `}` with every bracket closed. Once brackets
 * are unbalanced (a syntax error), no later cut is made, so such a file parses as one run.
 */
function itemChunks(tokens: IToken[], chunkTokens: number): IToken[][] {
  if (tokens.length <= chunkTokens) return [tokens];
  const chunks: IToken[][] = [];
  let start = 0;
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!.tokenType;
    if (openers.has(t)) depth++;
    else if (closers.has(t)) depth--;
    if (depth < 0) break;
    const next = tokens[i + 1];
    if (depth === 0 && i + 1 - start >= chunkTokens && (t === Semicolon || t === RBrace) && next !== undefined && itemStarts.has(next.tokenType)) {
      chunks.push(tokens.slice(start, i + 1));
      start = i + 1;
    }
  }
  chunks.push(tokens.slice(start));
  return chunks;
}
