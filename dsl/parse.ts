// Owns the front end's one entry point: text → tokens → AST, with every lexical and
// syntax diagnostic of the file. Used by the compiler, the formatter and the CLI.
import type { ILexingError, IRecognitionException, IToken } from "chevrotain";
import type { Comment, Item, PolicyFile, Span } from "./ast.js";
import { AstBuilder } from "./ast-builder.js";
import { diag, type Diagnostic } from "./diagnostics.js";
import { LineMap } from "./lines.js";
import { policyParser, syntaxErrorText } from "./parser.js";
import {
  allTokens,
  Annotation,
  BlockComment,
  Default,
  Forbid,
  Group,
  LBrace,
  LBracket,
  LParen,
  Net,
  offsetLexer,
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
  /**
   * The tokens of the file (comments excluded), with full positions, for tools such as the
   * formatter. Lexed again on first use: parsing keeps only one run of tokens alive at a time.
   */
  readonly tokens: readonly IToken[];
}

/** Span of `t` (at least one character, so that an empty token is still underlined). */
function tokenSpan(lines: LineMap, file: string, t: IToken): Span {
  return lines.span(file, t.startOffset, Math.max(1, t.image.length));
}

/** Span of the empty text just after `t` (where a missing `;` belongs), or the file's end. */
function spanAfter(lines: LineMap, file: string, text: string, t: IToken | undefined): Span {
  if (t === undefined || Number.isNaN(t.startOffset)) {
    const lines = text.split("\n");
    return { file, line: lines.length, column: lines[lines.length - 1]!.length + 1, offset: text.length, length: 0 };
  }
  // INVARIANT: tokens other than whitespace and comments hold no line break, so the end of
  // `t` is on its line.
  return lines.span(file, t.startOffset + t.image.length, 0);
}

function syntaxDiagnostic(lines: LineMap, file: string, text: string, e: IRecognitionException): Diagnostic {
  const { expected, found } = syntaxErrorText(e);
  const atEnd = e.token.tokenType.name === "EOF" || Number.isNaN(e.token.startOffset);
  // A missing terminator belongs right after what it should terminate, as in TypeScript.
  const missingTerminator = expected === "`;`" && e.name === "MismatchedTokenException";
  const span = atEnd || missingTerminator ? spanAfter(lines, file, text, (e as IRecognitionException & { previousToken?: IToken }).previousToken) : tokenSpan(lines, file, e.token);
  return e.name === "MismatchedTokenException"
    ? diag("SyntaxExpected", span, expected, found)
    : diag("SyntaxUnexpected", span, found, expected);
}

export interface ParseOptions {
  /** Smallest run of tokens parsed by one parser call (tests vary it; results never depend on it). */
  readonly chunkTokens?: number;
  /** Smallest run of characters lexed by one lexer call (tests vary it; results never depend on it). */
  readonly sliceChars?: number;
}

/**
 * Lexes, parses and builds the AST of one file.
 *
 * Large files are lexed a slice of lines at a time and parsed a run of whole items at a
 * time, so only one slice's tokens are ever alive besides the AST: time and memory stay
 * linear in the file.
 */
export function parsePolicy(text: string, file: string, options: ParseOptions = {}): ParseResult {
  const lines = new LineMap(text);
  // Kept apart so that they are reported in the order of lexing the file in one piece.
  const characterErrors: Diagnostic[] = [];
  const stringErrors: Diagnostic[] = [];
  const commentErrors: Diagnostic[] = [];
  const syntaxErrors: Diagnostic[] = [];
  const comments: Comment[] = [];
  const builder = new AstBuilder(file, lines);
  const items: Item[] = [];

  const runs = new ItemRuns(options.chunkTokens ?? CHUNK_TOKENS, (run) => {
    // The AST is only wanted while the file has no error at all.
    const clean = characterErrors.length === 0 && stringErrors.length === 0 && commentErrors.length === 0 && syntaxErrors.length === 0;
    const parsed = policyParser.parseItems(run, clean ? builder : undefined);
    for (const e of parsed.errors) syntaxErrors.push(syntaxDiagnostic(lines, file, text, e));
    if (clean && parsed.errors.length === 0) for (const item of parsed.items) items.push(item);
  });
  for (const lexed of lexSlices(text, options.sliceChars ?? SLICE_CHARS)) {
    for (const e of lexed.errors) {
      characterErrors.push(diag("UnexpectedCharacter", lines.span(file, e.offset, e.length), text.slice(e.offset, e.offset + e.length)));
    }
    for (const t of lexed.tokens) {
      if (t.tokenType === UnterminatedString) stringErrors.push(diag("UnterminatedString", tokenSpan(lines, file, t)));
    }
    for (const t of lexed.comments) {
      const block = t.tokenType === BlockComment || t.tokenType === UnterminatedBlockComment;
      if (t.tokenType === UnterminatedBlockComment) commentErrors.push(diag("UnterminatedComment", { ...tokenSpan(lines, file, t), length: 2 }));
      comments.push({ text: t.image, block, span: tokenSpan(lines, file, t) });
    }
    runs.push(lexed.tokens);
  }
  runs.end();

  const diagnostics = [...characterErrors, ...stringErrors, ...commentErrors, ...syntaxErrors];
  if (diagnostics.length > 0) return parseResult(undefined, diagnostics, text);
  const ast: PolicyFile = { kind: "file", path: file, items, comments, span: { file, line: 1, column: 1, offset: 0, length: text.length } };
  return parseResult(ast, builder.diagnostics, text);
}

function parseResult(ast: PolicyFile | undefined, diagnostics: readonly Diagnostic[], text: string): ParseResult {
  let tokens: IToken[] | undefined;
  return {
    ast,
    diagnostics,
    get tokens() {
      return (tokens ??= policyLexer().tokenize(text).tokens);
    },
  };
}

// ---------------------------------------------------------------- lexing in slices

/**
 * Smallest run of characters worth a lexer call of its own. Measured (2 cores, Node 20):
 * 16 to 64 KiB slices parse 10,000 and 100,000 rules fastest; 256 KiB ones take about 30%
 * more CPU.
 */
const SLICE_CHARS = 1 << 15;

interface LexedSlice {
  readonly tokens: IToken[];
  readonly comments: IToken[];
  readonly errors: ILexingError[];
}

/** The offset just after the first `\n` at or after `from`, or the end of the text. */
function lineEndAfter(text: string, from: number): number {
  const newline = text.indexOf("\n", from);
  return newline < 0 ? text.length : newline + 1;
}

/**
 * Lexes `text` in slices that end just after a `\n`, with offsets relative to the whole text.
 * INVARIANT: the tokens, comments and errors are those of lexing `text` in one piece. A line
 * break is whitespace, which is skipped, unless it is inside a block comment: a slice that
 * ends in an unterminated block comment is lexed again up to the end of the line where the
 * comment closes (or to the end of the text when it never does).
 */
function* lexSlices(text: string, sliceChars: number): Generator<LexedSlice> {
  for (let start = 0; start < text.length; ) {
    let end = lineEndAfter(text, start + sliceChars);
    let lexed = offsetLexer.tokenize(start === 0 && end === text.length ? text : text.slice(start, end));
    for (;;) {
      const slicedComments = (lexed.groups["comments"] ?? []) as IToken[];
      const last = slicedComments[slicedComments.length - 1];
      if (end === text.length || last?.tokenType !== UnterminatedBlockComment) break;
      const close = text.indexOf("*/", start + last.startOffset + 2);
      end = close < 0 ? text.length : lineEndAfter(text, close + 2);
      lexed = offsetLexer.tokenize(text.slice(start, end));
    }
    const comments = (lexed.groups["comments"] ?? []) as IToken[];
    if (start > 0) {
      for (const t of lexed.tokens) t.startOffset += start;
      for (const t of comments) t.startOffset += start;
      for (const e of lexed.errors) e.offset += start;
    }
    yield { tokens: lexed.tokens, comments, errors: lexed.errors };
    start = end;
  }
}

// ---------------------------------------------------------------- parsing in runs of items

/** What each token type is to the cutting of runs, by `tokenTypeIdx`. */
const OPENER = 1;
const CLOSER = 2;
const ITEM_START = 4;
const TERMINATOR = 8;
const tokenRoles = new Uint8Array(Math.max(...allTokens.map((t) => t.tokenTypeIdx!)) + 1);
for (const t of [LParen, LBrace, LBracket]) tokenRoles[t.tokenTypeIdx!] |= OPENER;
for (const t of [RParen, RBrace, RBracket]) tokenRoles[t.tokenTypeIdx!] |= CLOSER;
for (const t of [Workload, Group, Net, Ports, Service, Default, Permit, Forbid, Test, Annotation]) tokenRoles[t.tokenTypeIdx!] |= ITEM_START;
for (const t of [Semicolon, RBrace]) tokenRoles[t.tokenTypeIdx!] |= TERMINATOR;

/** Smallest run of tokens worth a parser call of its own. */
const CHUNK_TOKENS = 4096;

/**
 * Cuts the token stream into runs of whole top-level items and hands each to `parse`: a
 * cut is made only before an item-starting keyword that follows `;` or `}` with every
 * bracket closed, once the run has at least `minTokens` tokens. Once brackets are
 * unbalanced (a syntax error), no later cut is made, so the rest parses as one run.
 * INVARIANT: the runs depend only on the whole stream, not on how it is pushed.
 */
class ItemRuns {
  private pending: IToken[] = [];
  /** Where the current run starts in `pending`. */
  private start = 0;
  /** The next token of `pending` to look at. */
  private next = 0;
  private depth = 0;
  private cutting = true;

  constructor(
    private readonly minTokens: number,
    private readonly parse: (run: IToken[]) => void,
  ) {}

  /** Takes `tokens` over (the array may become a run, or grow). */
  push(tokens: IToken[]): void {
    if (this.start === this.pending.length) {
      this.pending = tokens;
      this.next = 0;
    } else if (this.cutting) {
      // The rest of the last slice (less than a run) and this slice, in one exact copy.
      this.pending = this.pending.slice(this.start).concat(tokens);
      this.next -= this.start;
    } else {
      // No more cuts: the rest of the file is one run, grown in place.
      if (this.start > 0) {
        this.pending = this.pending.slice(this.start);
        this.next -= this.start;
      }
      for (const t of tokens) this.pending.push(t);
    }
    this.start = 0;
    this.cut(false);
  }

  end(): void {
    this.cut(true);
    this.parse(this.start === 0 ? this.pending : this.pending.slice(this.start));
    this.pending = [];
  }

  private cut(final: boolean): void {
    const pending = this.pending;
    while (this.cutting && this.next < pending.length) {
      const i = this.next;
      // The cut after `i` depends on the token after it.
      if (i + 1 === pending.length && !final) return;
      const role = tokenRoles[pending[i]!.tokenTypeIdx]!;
      if (role & OPENER) this.depth++;
      else if (role & CLOSER) this.depth--;
      if (this.depth < 0) {
        this.cutting = false;
        return;
      }
      this.next = i + 1;
      const after = pending[i + 1];
      if (this.depth === 0 && i + 1 - this.start >= this.minTokens && role & TERMINATOR && after !== undefined && tokenRoles[after.tokenTypeIdx]! & ITEM_START) {
        this.parse(pending.slice(this.start, i + 1));
        this.start = i + 1;
      }
    }
  }
}
