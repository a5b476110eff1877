// Owns `formatPolicy`: the one canonical layout of a `.policy` file (docs/formatting.md),
// keeping every comment. Three steps: walk the AST in source order while consuming the
// file's tokens one by one (which gives every token, punctuation included, its offset),
// building a layout document in which each comment is attached by offset to the token
// it trails or precedes; mark the groups a comment forces onto several lines; print the
// document at 100 columns (a Wadler/Prettier-style printer).
//
// INVARIANT: every token is printed with its source text, in source order, and only the
// two optional tokens of the grammar are dropped (the `;` after `match { … }`, the
// trailing comma of a list), so re-parsing the output gives the same AST without
// spans. Every comment is printed exactly once, in source order, with its text unchanged
// (a block comment's line breaks become `\n`).
import type { IToken } from "chevrotain";
import type * as A from "./ast.js";
import { policyLexer } from "./tokens.js";

const WIDTH = 100;
const INDENT = 2;

// ---------------------------------------------------------------- layout document

/** A group prints on one line if it fits, else every `line`/`softline` in it breaks. */
interface Group {
  readonly kind: "group";
  readonly contents: Doc;
  /** Set by `markForcedBreaks` when a comment needs the group on several lines. */
  broken: boolean;
}

/** Padding to align `=` or `connect`; its width is settled after the first measurement. */
interface Pad {
  readonly kind: "pad";
  width: number;
}

type Doc =
  | string
  | readonly Doc[]
  | Group
  | Pad
  | { readonly kind: "indent"; readonly contents: Doc }
  /** A line comment that ends the current line, after any `,` or `;` that follows it. */
  | { readonly kind: "suffix"; readonly text: string }
  /** `line`: a space or a line break; `softline`: nothing or a line break; `hardline`: always a line break. */
  | { readonly kind: "line" | "softline" | "hardline" | "space" | "blank" };

const LINE: Doc = { kind: "line" };
const SOFTLINE: Doc = { kind: "softline" };
const HARDLINE: Doc = { kind: "hardline" };
/** A space that merges with its neighbours and vanishes at the start or end of a line. */
const SPACE: Doc = { kind: "space" };
/** Asks for one empty line before the next line (never after `{`, `[`, `(` or before a closer). */
const BLANK: Doc = { kind: "blank" };

function group(contents: Doc): Group {
  return { kind: "group", contents, broken: false };
}

function indent(contents: Doc): Doc {
  return { kind: "indent", contents };
}

/** Tokens that may follow a line comment on its line: they are printed before it. */
function isCommentGlue(s: string): boolean {
  return s === "," || s === ";";
}

/**
 * Breaks every group that contains an own-line comment (a hardline), and every group in
 * which a line comment is followed by more than `,`/`;` — the comment must end its line.
 */
function markForcedBreaks(doc: Doc): void {
  const open: Group[] = [];
  let openAtSuffix: Group[] | undefined;
  const walk = (d: Doc): void => {
    if (typeof d === "string") {
      if (openAtSuffix !== undefined && d !== "" && !isCommentGlue(d)) {
        for (const g of openAtSuffix) if (open.includes(g)) g.broken = true;
        openAtSuffix = undefined;
      }
      return;
    }
    if (Array.isArray(d)) {
      for (const part of d as readonly Doc[]) walk(part);
      return;
    }
    const node = d as Exclude<Doc, string | readonly Doc[]>;
    switch (node.kind) {
      case "group":
        open.push(node);
        walk(node.contents);
        open.pop();
        return;
      case "indent":
        walk(node.contents);
        return;
      case "hardline":
        for (const g of open) g.broken = true;
        openAtSuffix = undefined;
        return;
      case "suffix":
        openAtSuffix = [...open];
        return;
      default:
        return;
    }
  };
  walk(doc);
}

// ---------------------------------------------------------------- printing the document

interface OutputLine {
  readonly code: string;
  /** A trailing line comment, aligned with its neighbours' when the output is joined. */
  readonly comment: string;
}

const NO_SPACE_BEFORE = /^[,;)\].]/;
const NO_SPACE_AFTER = /[([.]$/;
const OPENER_AT_END = /[{[(]$/;
const CLOSER_AT_START = /^[}\])]/;

/** Accumulates output lines; owns spacing, blank lines and trailing line comments. */
class LineWriter {
  private readonly lines: OutputLine[] = [];
  private code = "";
  private comment = "";
  private atLineStart = true;
  private indent = 0;
  private pendingSpace = false;
  private pendingBlank = false;

  /** Where the next text starts; after a line comment, at `ind` on the next line. */
  position(ind: number): LinePosition {
    if (this.comment !== "") return { column: ind, atLineStart: true, pendingSpace: false, afterOpener: false };
    if (this.atLineStart) return { column: this.indent, atLineStart: true, pendingSpace: false, afterOpener: false };
    return { column: this.code.length, atLineStart: false, pendingSpace: this.pendingSpace, afterOpener: NO_SPACE_AFTER.test(this.code) };
  }

  text(s: string, ind: number): void {
    if (s === "") return;
    if (this.comment !== "") {
      if (isCommentGlue(s)) {
        this.code += s;
        return;
      }
      this.newline(ind);
    }
    if (this.atLineStart) this.startLine(s);
    else if (this.pendingSpace && !NO_SPACE_BEFORE.test(s) && !NO_SPACE_AFTER.test(this.code)) this.code += " ";
    this.pendingSpace = false;
    // Only a block comment contains line breaks; its later lines are kept verbatim.
    const [first, ...rest] = s.split("\n");
    this.code += first!;
    for (const part of rest) {
      this.lines.push({ code: this.code, comment: "" });
      this.code = part;
    }
  }

  newline(ind: number): void {
    if (!this.atLineStart) this.endLine();
    this.indent = ind;
    this.pendingSpace = false;
  }

  space(): void {
    if (!this.atLineStart) this.pendingSpace = true;
  }

  blank(): void {
    this.pendingBlank = true;
  }

  /** Alignment padding; none where the line starts or a line comment has ended it. */
  pad(width: number): void {
    if (width === 0 || this.atLineStart || this.comment !== "") return;
    this.code += " ".repeat(width + (this.pendingSpace ? 1 : 0));
    this.pendingSpace = false;
  }

  suffix(comment: string, ind: number): void {
    if (this.comment !== "") this.newline(ind);
    if (this.atLineStart) this.startLine(comment);
    this.comment = comment;
  }

  finish(): string {
    if (!this.atLineStart) this.endLine();
    const out: string[] = [];
    for (let i = 0; i < this.lines.length; ) {
      const { code, comment } = this.lines[i]!;
      if (comment === "" || code.trim() === "") {
        out.push(code + comment);
        i++;
        continue;
      }
      // Comments align over a run of consecutive lines at one indentation, each ending in
      // a line comment, none of which opens or closes a block.
      const depth = indentationOf(code);
      const aligns = (l: OutputLine): boolean =>
        l.comment !== "" && l.code.trim() !== "" && indentationOf(l.code) === depth && !OPENER_AT_END.test(l.code) && !CLOSER_AT_START.test(l.code.trimStart());
      let j = i + 1;
      if (aligns(this.lines[i]!)) while (j < this.lines.length && aligns(this.lines[j]!)) j++;
      const column = Math.max(...this.lines.slice(i, j).map((l) => l.code.length));
      for (const l of this.lines.slice(i, j)) out.push(`${l.code.padEnd(column)} ${l.comment}`);
      i = j;
    }
    return out.join("\n");
  }

  private startLine(first: string): void {
    const last = this.lines[this.lines.length - 1];
    const lastIsBlank = last !== undefined && last.code === "" && last.comment === "";
    if (this.pendingBlank && last !== undefined && !lastIsBlank && !OPENER_AT_END.test(last.code) && !CLOSER_AT_START.test(first)) {
      this.lines.push({ code: "", comment: "" });
    }
    this.pendingBlank = false;
    this.code = " ".repeat(this.indent);
    this.atLineStart = false;
  }

  private endLine(): void {
    this.lines.push({ code: this.code, comment: this.comment });
    this.code = "";
    this.comment = "";
    this.atLineStart = true;
  }
}

function indentationOf(code: string): number {
  return code.length - code.trimStart().length;
}

type Mode = "flat" | "break";

interface Command {
  readonly ind: number;
  readonly mode: Mode;
  readonly doc: Doc;
}

/** Where the next text goes, so that `fits` measures exactly what `LineWriter` prints. */
interface LinePosition {
  readonly column: number;
  readonly atLineStart: boolean;
  readonly pendingSpace: boolean;
  /** The line ends with `(`, `[` or `.`, after which no space is printed. */
  readonly afterOpener: boolean;
}

/** Whether `next`, printed flat, and what follows it up to the next line break fit in the line. */
function fits(next: Command, rest: readonly Command[], position: LinePosition): boolean {
  const stack: Command[] = [next];
  let restIndex = rest.length;
  let remaining = WIDTH - position.column;
  let { atLineStart, pendingSpace, afterOpener } = position;
  let lineCommentPending = false;
  while (remaining >= 0) {
    let command = stack.pop();
    if (command === undefined) {
      if (restIndex === 0) return true;
      command = rest[--restIndex]!;
    }
    const { ind, mode, doc } = command;
    if (typeof doc === "string") {
      if (doc === "") continue;
      if (lineCommentPending && !isCommentGlue(doc)) return true;
      if (pendingSpace && !NO_SPACE_BEFORE.test(doc) && !afterOpener) remaining -= 1;
      const newline = doc.indexOf("\n");
      if (newline >= 0) return remaining - newline >= 0;
      remaining -= doc.length;
      atLineStart = false;
      pendingSpace = false;
      afterOpener = NO_SPACE_AFTER.test(doc);
      continue;
    }
    if (Array.isArray(doc)) {
      for (let i = doc.length - 1; i >= 0; i--) stack.push({ ind, mode, doc: (doc as readonly Doc[])[i]! });
      continue;
    }
    const node = doc as Exclude<Doc, string | readonly Doc[]>;
    switch (node.kind) {
      case "group":
        stack.push({ ind, mode: node.broken ? "break" : mode, doc: node.contents });
        break;
      case "indent":
        stack.push({ ind, mode, doc: node.contents });
        break;
      case "line":
        if (mode === "break") return true;
        pendingSpace = !atLineStart;
        break;
      case "softline":
        if (mode === "break") return true;
        break;
      case "hardline":
        return true;
      case "space":
        pendingSpace = !atLineStart;
        break;
      case "pad":
        if (node.width === 0 || atLineStart || lineCommentPending) break;
        remaining -= node.width + (pendingSpace ? 1 : 0);
        pendingSpace = false;
        afterOpener = false;
        break;
      case "suffix":
        lineCommentPending = true;
        break;
      default:
        break;
    }
  }
  return false;
}

function render(doc: Doc): string {
  markForcedBreaks(doc);
  const out = new LineWriter();
  const stack: Command[] = [{ ind: 0, mode: "break", doc }];
  for (let command = stack.pop(); command !== undefined; command = stack.pop()) {
    const { ind, mode, doc: d } = command;
    if (typeof d === "string") {
      out.text(d, ind);
      continue;
    }
    if (Array.isArray(d)) {
      for (let i = d.length - 1; i >= 0; i--) stack.push({ ind, mode, doc: (d as readonly Doc[])[i]! });
      continue;
    }
    const node = d as Exclude<Doc, string | readonly Doc[]>;
    switch (node.kind) {
      case "group": {
        const flat = mode === "flat" || (!node.broken && fits({ ind, mode: "flat", doc: node.contents }, stack, out.position(ind)));
        stack.push({ ind, mode: flat ? "flat" : "break", doc: node.contents });
        break;
      }
      case "indent":
        stack.push({ ind: ind + INDENT, mode, doc: node.contents });
        break;
      case "line":
        if (mode === "flat") out.space();
        else out.newline(ind);
        break;
      case "softline":
        if (mode === "break") out.newline(ind);
        break;
      case "hardline":
        out.newline(ind);
        break;
      case "space":
        out.space();
        break;
      case "blank":
        out.blank();
        break;
      case "suffix":
        out.suffix(node.text, ind);
        break;
      case "pad":
        out.pad(node.width);
        break;
    }
  }
  return out.finish();
}

// ---------------------------------------------------------------- comments and tokens

function lineBreaks(s: string): number {
  return s.match(/\r\n|\r|\n/g)?.length ?? 0;
}

function commentText(c: A.Comment): string {
  return c.block ? c.text.replace(/\r\n?/g, "\n") : c.text;
}

/** An entry of a `workload` or `service` body. */
type BodyEntry = A.WorkloadDecl["entries"][number] | A.ServiceDecl["entries"][number];

/** One top-level item with the comments on the lines above it. */
interface Unit {
  readonly item: A.Item;
  /** The source has an empty line before the item (or before its leading comments). */
  readonly blankBefore: boolean;
  readonly lead: Doc[];
  readonly body: Doc;
  /** Alignment of `=` in a run of one-line `group`/`net`/`ports` declarations. */
  readonly pad: Pad | undefined;
}

/**
 * Builds the layout document of one file. Every `tok` consumes the next source token
 * (checking it is the one the AST says comes next) and carries the comments around it:
 * those on their own lines before it, and those after it on its line.
 */
class DocBuilder {
  private readonly tokens: readonly IToken[];
  private readonly comments: readonly A.Comment[];
  private pos = 0;
  private nextComment = 0;
  /** End offset of the last token or comment placed in the document. */
  private lastEnd = 0;
  /**
   * Only `,`/`;` came since the last line comment placed, so its line ends before the
   * next text: comments after those tokens are placed by `leading` (on the next line),
   * where formatting the output again finds them too.
   */
  private lineEndedByComment = false;

  constructor(
    private readonly ast: A.PolicyFile,
    private readonly text: string,
  ) {
    this.tokens = policyLexer().tokenize(text).tokens;
    this.comments = ast.comments;
  }

  file(): Doc {
    const units = this.ast.items.map((item): Unit => {
      const blankBefore = this.blankAhead();
      const lead = this.leading(item.span.offset, true);
      const pad: Pad | undefined = item.kind === "group" || item.kind === "net" || item.kind === "ports" ? { kind: "pad", width: 0 } : undefined;
      return { item, blankBefore, lead, body: this.item(item, pad), pad };
    });
    const tail = this.leading(this.text.length + 1, true);
    if (this.pos !== this.tokens.length) throw new Error(`formatter: token ${this.tokens[this.pos]!.image} at offset ${this.tokens[this.pos]!.startOffset} is not in the AST`);

    // A unit is one line if its body prints on one line starting a line of its own.
    const oneLine = (u: Unit): boolean => u.lead[u.lead.length - 1] !== SPACE && !render(u.body).includes("\n");
    const single = units.map(oneLine);
    const adjacent = units.map((u, i) => i > 0 && !u.blankBefore && single[i - 1]! && single[i]!);
    for (let start = 0; start < units.length; ) {
      let end = start + 1;
      while (end < units.length && units[end]!.pad !== undefined && adjacent[end] && units[end]!.lead.length === 0) end++;
      if (units[start]!.pad !== undefined && end - start > 1) this.align(units.slice(start, end), oneLine);
      start = end;
    }
    return [units.map((u, i) => [i === 0 ? [] : [HARDLINE, adjacent[i] ? [] : BLANK], u.lead, u.body]), tail];
  }

  /** Pads `kind name` so the `=` of the run lines up, unless that would wrap one of them. */
  private align(run: readonly Unit[], oneLine: (u: Unit) => boolean): void {
    const width = (u: Unit): number => {
      const decl = u.item as A.GroupDecl | A.NetDecl | A.PortsDecl;
      return decl.kind.length + 1 + decl.name.name.length;
    };
    const widest = Math.max(...run.map(width));
    for (const u of run) u.pad!.width = widest - width(u);
    if (!run.every(oneLine)) for (const u of run) u.pad!.width = 0;
  }

  // ------------------------------------------------------------ token cursor

  private peek(): IToken | undefined {
    return this.tokens[this.pos];
  }

  private nextOffset(): number {
    return this.peek()?.startOffset ?? this.text.length + 1;
  }

  /** Consumes the next token, which must be `expected` when given (the AST says what comes next). */
  private take(expected: string | undefined, statement: boolean): { lead: Doc[]; image: string; trail: Doc } {
    const t = this.peek();
    if (t === undefined || (expected !== undefined && t.image !== expected)) {
      throw new Error(`formatter: expected ${expected ?? "a token"} at offset ${t?.startOffset ?? this.text.length}, found ${t?.image ?? "end of file"}`);
    }
    this.pos++;
    const lead = this.leading(t.startOffset, statement);
    this.lastEnd = t.startOffset + t.image.length;
    if (lead.length > 0 || !isCommentGlue(t.image)) this.lineEndedByComment = false;
    return { lead, image: t.image, trail: this.trailing() };
  }

  /** The next token with its comments; `statement`: it starts an item, an entry or an assertion. */
  private tok(expected?: string, statement = false): Doc {
    const { lead, image, trail } = this.take(expected, statement);
    return [lead, image, trail];
  }

  /** Consumes an optional token that the canonical layout leaves out, keeping its comments. */
  private drop(image: string): Doc {
    if (this.peek()?.image !== image) return [];
    const { lead, trail } = this.take(image, false);
    return [lead, trail];
  }

  /** Whether the source has an empty line between the last thing placed and the next one. */
  private blankAhead(): boolean {
    const nextThing = Math.min(this.nextOffset(), this.comments[this.nextComment]?.span.offset ?? Infinity);
    return lineBreaks(this.text.slice(this.lastEnd, nextThing)) >= 2;
  }

  /**
   * The comments before `offset` not yet placed: each starts a line (one on the line of
   * the one before stays there). An empty line of the source is kept before and after
   * them, and before a statement (`statement`).
   */
  private leading(offset: number, statement: boolean): Doc[] {
    const parts: Doc[] = [];
    let emitted = false;
    while (this.nextComment < this.comments.length && this.comments[this.nextComment]!.span.offset < offset) {
      const c = this.comments[this.nextComment++]!;
      const breaks = lineBreaks(this.text.slice(this.lastEnd, c.span.offset));
      if (breaks === 0) parts.push(SPACE);
      else parts.push(breaks >= 2 ? BLANK : [], HARDLINE);
      // A line comment is a suffix here too, so that its line aligns as it would trailing code.
      parts.push(c.block ? commentText(c) : { kind: "suffix", text: c.text });
      this.lastEnd = c.span.offset + c.span.length;
      emitted = true;
    }
    if (!emitted && !statement) return parts;
    const breaks = lineBreaks(this.text.slice(this.lastEnd, Math.min(offset, this.text.length)));
    if (emitted) {
      if (breaks === 0) parts.push(SPACE);
      else parts.push(breaks >= 2 ? BLANK : [], HARDLINE);
    } else if (breaks >= 2) {
      parts.push(BLANK);
    }
    return parts;
  }

  /** The comments after the token just consumed that start on its line. */
  private trailing(): Doc {
    if (this.lineEndedByComment) return [];
    const run: A.Comment[] = [];
    const limit = this.nextOffset();
    while (this.nextComment < this.comments.length) {
      const c = this.comments[this.nextComment]!;
      if (c.span.offset >= limit || lineBreaks(this.text.slice(this.lastEnd, c.span.offset)) > 0) break;
      run.push(c);
      this.nextComment++;
      this.lastEnd = c.span.offset + c.span.length;
    }
    if (run.length === 0) return [];
    const last = run[run.length - 1]!;
    const inline = (last.block ? run : run.slice(0, -1)).flatMap((c) => [SPACE, commentText(c)]);
    if (last.block) return [inline, SPACE];
    this.lineEndedByComment = true;
    return [inline, { kind: "suffix", text: last.text }];
  }

  /** Own-line comments before the closing token of a block, list or parenthesis. */
  private beforeCloser(): Doc[] {
    return this.leading(this.nextOffset(), false);
  }

  // ------------------------------------------------------------ items

  private item(item: A.Item, pad: Pad | undefined): Doc {
    switch (item.kind) {
      case "workload":
      case "service":
        return [this.tok(item.kind, true), SPACE, this.tok(item.name.name), SPACE, this.block<BodyEntry>(item.entries, (e) => this.entry(e))];
      case "group":
        return this.listDecl(item.kind, item.members, pad);
      case "net":
      case "ports":
        return this.listDecl(item.kind, item.items, pad);
      case "default":
        return [this.tok("default", true), SPACE, this.tok(item.target.name), SPACE, this.tok(item.value.name), this.tok(";")];
      case "rule":
        return this.rule(item);
      case "test":
        return [this.tok("test", true), SPACE, this.tok(), SPACE, this.block(item.assertions, (a) => this.assertion(a))];
    }
  }

  private listDecl(kind: string, list: A.ListExpr, pad: Pad | undefined): Doc {
    return [this.tok(kind, true), SPACE, this.tok(), pad ?? [], SPACE, this.tok("="), SPACE, this.list(list.items), this.tok(";")];
  }

  /** `{` one entry per line `}`, or `{}` when empty. */
  private block<T>(entries: readonly T[], print: (entry: T) => Doc): Doc {
    const open = this.tok("{");
    const body = entries.map((e) => [HARDLINE, print(e)]);
    const closing = this.beforeCloser();
    if (body.length === 0 && closing.length === 0) return [open, this.tok("}")];
    return [open, indent([body, closing]), HARDLINE, this.tok("}")];
  }

  private entry(e: BodyEntry): Doc {
    switch (e.kind) {
      case "id":
        return [this.tok("id", true), SPACE, this.tok("="), SPACE, this.tok(), this.tok(";")];
      case "endpoints":
        return [this.tok("endpoints", true), SPACE, this.tok("="), SPACE, this.list(e.items), this.tok(";")];
      case "match": {
        const head = [this.tok("match", true), SPACE, this.tok("{")];
        const selectors = e.selectors.map((s, i) => [i === 0 ? [] : [this.tok(","), LINE], this.tok(s.key.name), SPACE, this.tok("="), SPACE, this.expr(s.value)]);
        const closing = this.beforeCloser();
        const inner = selectors.length === 0 ? [closing] : [LINE, selectors, closing];
        return [head, group([indent(inner), selectors.length === 0 ? SOFTLINE : LINE, this.tok("}")]), this.drop(";")];
      }
      case "unknown-entry":
        if (e.value === undefined) return this.verbatim(e.span);
        return [this.tok(e.key.name, true), SPACE, this.tok("="), SPACE, this.expr(e.value), this.tok(";")];
    }
  }

  /** The tokens of `span` separated by single spaces: an entry whose parts the AST does not keep. */
  private verbatim(span: A.Span): Doc {
    const parts: Doc[] = [this.tok(undefined, true)];
    while (this.nextOffset() < span.offset + span.length) parts.push(SPACE, this.tok());
    return parts;
  }

  private rule(rule: A.Rule): Doc {
    const annotations = rule.annotations.map((a, i) => [this.tok(`@${a.name.name}`, i === 0), this.tok("("), this.tok(), this.tok(")"), HARDLINE]);
    const effect = this.tok(rule.effect, rule.annotations.length === 0);
    const open = this.tok("(");
    const scope = [SOFTLINE, this.scope(rule.principal), this.tok(","), LINE, this.scope(rule.action), this.tok(","), LINE, this.scope(rule.resource), this.beforeCloser()];
    const head = group([effect, SPACE, open, indent(scope), SOFTLINE, this.tok(")")]);
    const conditions = rule.conditions.map((c) => [HARDLINE, this.condition(c)]);
    return [annotations, head, conditions, this.tok(";")];
  }

  private scope(part: A.ScopePart): Doc {
    const head = this.tok(part.head.name);
    if (part.op === undefined || part.value === undefined) return head;
    return [head, SPACE, this.tok(part.op), SPACE, this.expr(part.value)];
  }

  private condition(c: A.Condition): Doc {
    const keyword = this.tok(c.polarity);
    const open = this.tok("{");
    const body = [LINE, this.expr(c.expr), this.beforeCloser()];
    return [keyword, SPACE, group([open, indent(body), LINE, this.tok("}")])];
  }

  private assertion(a: A.Assertion): Doc {
    // `allow` and `deny` padded to one width, so `connect` lines up (spec §6).
    const pad: Pad = { kind: "pad", width: Math.max(0, "allow".length - a.expectSpan.length) };
    const parts: Doc[] = [this.tok(undefined, true), pad];
    parts.push(SPACE, this.tok(a.action.name), SPACE, this.tok("from"), SPACE, this.testFrom(a.from));
    while (this.peek()?.image === "uid" || this.peek()?.image === "gid") parts.push(SPACE, this.tok(), SPACE, this.tok());
    parts.push(SPACE, this.tok("to"), SPACE, this.expr(a.to));
    a.because.forEach((_, i) => parts.push(i === 0 ? [SPACE, this.tok("because")] : this.tok(","), SPACE, this.tok()));
    parts.push(this.tok(";"));
    return parts;
  }

  private testFrom(from: A.TestFrom): Doc {
    if (from.kind === "from-workload") return [this.tok("workload"), SPACE, this.tok(from.name.name)];
    return this.tok();
  }

  // ------------------------------------------------------------ expressions

  /** `nested`: the operand of a chain of `&&`/`||`; a chain there indents its continuation lines. */
  private expr(e: A.Expr, nested = false): Doc {
    switch (e.kind) {
      case "logical":
        return this.chain(e, nested);
      case "paren": {
        const open = this.tok("(");
        const inner = [SOFTLINE, this.expr(e.inner), this.beforeCloser()];
        return group([open, indent(inner), SOFTLINE, this.tok(")")]);
      }
      case "not":
        return [this.tok("!"), this.expr(e.operand)];
      case "compare":
        return [this.expr(e.left), SPACE, this.tok(e.op), SPACE, this.expr(e.right)];
      case "in":
        return [this.expr(e.left), SPACE, this.tok("in"), SPACE, this.expr(e.right)];
      case "like":
        return [this.expr(e.left), SPACE, this.tok("like"), SPACE, this.expr(e.pattern)];
      case "ref":
        return [this.tok(e.refKind), SPACE, this.tok(e.name.name)];
      case "range":
        return [this.tok(), this.tok(".."), this.tok()];
      case "name":
        return e.member === undefined ? this.tok(e.name.name) : [this.tok(e.name.name), this.tok("."), this.tok(e.member.name)];
      case "list":
        return this.list(e.items);
      case "int":
      case "ip":
      case "cidr":
      case "endpoint":
      case "string":
      case "bool":
        return this.tok();
    }
  }

  /** `a && b && c`, one operand per line (operator first) when it does not fit. */
  private chain(e: A.LogicalExpr, nested: boolean): Doc {
    const operands: A.Expr[] = [];
    let left: A.Expr = e;
    while (left.kind === "logical" && left.op === e.op) {
      operands.unshift(left.right);
      left = left.left;
    }
    operands.unshift(left);
    const first = this.expr(operands[0]!, true);
    const rest = operands.slice(1).map((operand) => [LINE, this.tok(e.op), SPACE, this.expr(operand, true)]);
    return group([first, nested ? indent(rest) : rest]);
  }

  /**
   * `[a, b]`, or one item per line when it does not fit. No trailing comma: the grammar
   * lists one, but the parser rejects `[a, b,]` (only `[,]` parses, and prints as `[]`).
   */
  private list(items: readonly A.Expr[]): Doc {
    const open = this.tok("[");
    const parts = items.map((item, i) => [i === 0 ? [] : [this.tok(","), LINE], this.expr(item)]);
    const trailingComma = this.drop(",");
    const closing = this.beforeCloser();
    const inner = parts.length === 0 ? [trailingComma, closing] : [SOFTLINE, parts, trailingComma, closing];
    return group([open, indent(inner), SOFTLINE, this.tok("]")]);
  }
}

/**
 * The canonical text of a file that parsed without syntax errors (`ast` from
 * `parsePolicy(text, …)`): same meaning, every comment kept, and idempotent.
 * The result ends with one `\n`, or is empty for a file without tokens or comments.
 * Throws when `ast` is not the AST of `text`.
 */
export function formatPolicy(ast: A.PolicyFile, text: string): string {
  const out = render(new DocBuilder(ast, text).file());
  return out === "" ? "" : `${out}\n`;
}
