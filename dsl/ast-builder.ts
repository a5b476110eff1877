// Owns building the typed AST of `ast.ts` from what the parser recognised: the parser's
// rules hand their tokens and their sub-rules' results to these methods, which attach a
// span to every node and validate literal text (IP forms, escapes, endpoint shape, number
// size) as they go.
//
// INVARIANT: only called while the parse has no syntax error, so every part the grammar
// requires is present; optional parts are checked.
// INVARIANT: the parser calls the methods that report diagnostics in the order of the
// original CST visitor (source order, except that an assertion's `uid`/`gid` come before
// its `from`), so diagnostics keep their order.
import type { IToken } from "chevrotain";
import type * as A from "./ast.js";
import { diag, type Diagnostic } from "./diagnostics.js";
import { formatIp, parseIp, parseIpv6 } from "./ip.js";
import type { LineMap } from "./lines.js";
import { UnterminatedString } from "./tokens.js";

/** Largest value an int literal may have: u32, the widest integer the language uses (uid/gid). */
const MAX_INT = 0xffffffff;

type DeclEntry = A.IdEntry | A.MatchEntry | A.EndpointsEntry | A.UnknownEntry;

/** A `{ … }` declaration body: its entries in source order and its closing brace. */
export interface DeclBody {
  readonly entries: readonly DeclEntry[];
  readonly close: IToken;
}

/** `== value`, `in value` or `like value` after a scope head. */
export interface ScopeTail {
  readonly op: IToken;
  readonly value: A.Value;
}

/** The tokens of a test assertion's `from` part, built after its `uid`/`gid` (see the header). */
export type TestFromSyntax =
  | { readonly kind: "workload"; readonly keyword: IToken; readonly name: IToken }
  | { readonly kind: "id"; readonly id: IToken }
  | { readonly kind: "word"; readonly word: IToken };

/** `uid 1000` or `gid 1000` in a test assertion. */
export interface AssertionSetting {
  readonly key: IToken;
  readonly value: IToken;
}

/** The parts of an assertion before `to`, built before its target. */
export interface AssertionHead {
  readonly start: IToken;
  readonly expect: "allow" | "deny";
  readonly expectSpan: A.Span;
  readonly action: A.Ident;
  readonly from: A.TestFrom;
  readonly uid: A.IntLit | undefined;
  readonly gid: A.IntLit | undefined;
}

/**
 * `list` at its exact length: an array grown by `push` keeps spare room (17 slots for one
 * annotation), and the AST is most of the front end's memory.
 */
function exact<T>(list: readonly T[]): readonly T[] {
  return list.length === 0 ? list : list.slice();
}

/** An IP literal's fields other than its span, shared by every literal with the same text. */
type IpFields = Omit<A.IpLit, "span"> | Omit<A.CidrLit, "span">;

export class AstBuilder {
  readonly diagnostics: Diagnostic[] = [];
  private readonly strings = new Map<string, string>();
  /** Valid IP and CIDR literals by text (their `bytes` are shared: the AST is read-only). */
  private readonly ips = new Map<string, IpFields>();

  /** `lines` is the line map of the file's text (tokens carry offsets only). */
  constructor(
    private readonly fileName: string,
    private readonly lines: LineMap,
  ) {}

  // ---------------------------------------------------------------- spans

  tokenSpan(t: IToken): A.Span {
    return this.lines.span(this.fileName, t.startOffset, t.image.length);
  }

  /** The span from the start of token `first` to the end of token `last`. */
  private tokensSpan(first: IToken, last: IToken): A.Span {
    return this.lines.span(this.fileName, first.startOffset, last.startOffset + last.image.length - first.startOffset);
  }

  /** The span from the start of token `first` to the end of `last`. */
  private untilSpan(first: IToken, last: A.Span): A.Span {
    return this.lines.span(this.fileName, first.startOffset, last.offset + last.length - first.startOffset);
  }

  /** The span from the start of `a` to the end of `b`. */
  join(a: A.Span, b: A.Span): A.Span {
    return { file: a.file, line: a.line, column: a.column, offset: a.offset, length: b.offset + b.length - a.offset };
  }

  ident(t: IToken): A.Ident {
    return { kind: "ident", name: this.intern(t.image), span: this.tokenSpan(t) };
  }

  /**
   * One string object per distinct name or string value of the file: the same names recur
   * in every rule, and the checker's lookups by name compare one object instead of two
   * copies' characters.
   */
  private intern(text: string): string {
    const known = this.strings.get(text);
    if (known !== undefined) return known;
    this.strings.set(text, text);
    return text;
  }

  // ---------------------------------------------------------------- declarations

  workloadDecl(keyword: IToken, name: IToken, body: DeclBody): A.WorkloadDecl {
    const entries = body.entries.map((e) => (e.kind === "endpoints" ? this.asUnknown(e) : e));
    return { kind: "workload", name: this.ident(name), entries, span: this.tokensSpan(keyword, body.close) };
  }

  serviceDecl(keyword: IToken, name: IToken, body: DeclBody): A.ServiceDecl {
    const entries = body.entries.map((e) => (e.kind === "match" ? this.asUnknown(e) : e));
    return { kind: "service", name: this.ident(name), entries, span: this.tokensSpan(keyword, body.close) };
  }

  private asUnknown(e: A.MatchEntry | A.EndpointsEntry): A.UnknownEntry {
    const key: A.Ident = { kind: "ident", name: e.kind, span: { ...e.span, length: e.kind.length } };
    return { kind: "unknown-entry", key, value: undefined, span: e.span };
  }

  /** `match { … }`, ending at its `}` or the optional `;` after it. */
  matchEntry(keyword: IToken, selectors: readonly A.Selector[], last: IToken): A.MatchEntry {
    return { kind: "match", selectors: exact(selectors), span: this.tokensSpan(keyword, last) };
  }

  /** `key = value;`: an `id`, `endpoints` or unknown entry. */
  keyEntry(keyToken: IToken, value: A.Value, semicolon: IToken): A.IdEntry | A.EndpointsEntry | A.UnknownEntry {
    const span = this.tokensSpan(keyToken, semicolon);
    const key = this.ident(keyToken);
    if (key.name === "id" && value.kind === "string") return { kind: "id", value, span };
    if (key.name === "endpoints" && value.kind === "list") return { kind: "endpoints", items: value.items, span };
    return { kind: "unknown-entry", key, value, span };
  }

  selector(key: IToken, value: A.Value): A.Selector {
    return { kind: "selector", key: this.ident(key), value, span: this.untilSpan(key, value.span) };
  }

  listDecl(keyword: IToken, nameToken: IToken, list: A.ListExpr, semicolon: IToken): A.GroupDecl | A.NetDecl | A.PortsDecl {
    const name = this.ident(nameToken);
    const span = this.tokensSpan(keyword, semicolon);
    if (keyword.image === "group") return { kind: "group", name, members: list, span };
    if (keyword.image === "net") return { kind: "net", name, items: list, span };
    return { kind: "ports", name, items: list, span };
  }

  defaultDecl(keyword: IToken, target: IToken, value: IToken, semicolon: IToken): A.DefaultDecl {
    return { kind: "default", target: this.ident(target), value: this.ident(value), span: this.tokensSpan(keyword, semicolon) };
  }

  // ---------------------------------------------------------------- rules

  rule(annotations: readonly A.Annotation[], effect: IToken, principal: A.ScopePart, action: A.ScopePart, resource: A.ScopePart, conditions: readonly A.Condition[], semicolon: IToken): A.Rule {
    const start = annotations.length > 0 ? annotations[0]!.span.offset : effect.startOffset;
    return {
      kind: "rule",
      annotations: exact(annotations),
      effect: effect.image === "permit" ? "permit" : "forbid",
      principal,
      action,
      resource,
      conditions: exact(conditions),
      span: this.lines.span(this.fileName, start, semicolon.startOffset + semicolon.image.length - start),
    };
  }

  annotation(at: IToken, value: IToken, close: IToken): A.Annotation {
    return {
      kind: "annotation",
      name: { kind: "ident", name: this.intern(at.image.slice(1)), span: this.lines.span(this.fileName, at.startOffset + 1, at.image.length - 1) },
      value: this.string(value),
      span: this.tokensSpan(at, close),
    };
  }

  scope(head: IToken, tail: ScopeTail | undefined): A.ScopePart {
    if (tail === undefined) return { kind: "scope", head: this.ident(head), op: undefined, value: undefined, span: this.tokenSpan(head) };
    const op = tail.op.image as "==" | "in" | "like";
    return { kind: "scope", head: this.ident(head), op, value: tail.value, span: this.untilSpan(head, tail.value.span) };
  }

  condition(keyword: IToken, expr: A.Expr, close: IToken): A.Condition {
    return { kind: "condition", polarity: keyword.image === "when" ? "when" : "unless", expr, span: this.tokensSpan(keyword, close) };
  }

  // ---------------------------------------------------------------- expressions

  /** `a op b op c` as `(a op b) op c`. */
  logical(operands: readonly A.Expr[], op: "&&" | "||"): A.Expr {
    let left = operands[0]!;
    for (let i = 1; i < operands.length; i++) {
      const right = operands[i]!;
      left = { kind: "logical", op, left, right, span: this.join(left.span, right.span) };
    }
    return left;
  }

  not(bang: IToken, operand: A.Expr): A.NotExpr {
    return { kind: "not", operand, span: this.untilSpan(bang, operand.span) };
  }

  relation(left: A.Expr, op: IToken, right: A.Expr): A.Expr {
    const span = this.join(left.span, right.span);
    if (op.image === "in") return { kind: "in", left, right, span };
    if (op.image === "like") return { kind: "like", left, pattern: right, span };
    return { kind: "compare", op: op.image as A.CompareOp, left, right, span };
  }

  paren(open: IToken, inner: A.Expr, close: IToken): A.ParenExpr {
    return { kind: "paren", inner, span: this.tokensSpan(open, close) };
  }

  bool(t: IToken): A.BoolLit {
    return { kind: "bool", value: t.image === "true", span: this.tokenSpan(t) };
  }

  ref(kind: IToken, name: IToken): A.RefExpr {
    return { kind: "ref", refKind: kind.image as A.RefKind, name: this.ident(name), span: this.tokensSpan(kind, name) };
  }

  intOrRange(low: IToken, high: IToken | undefined): A.IntLit | A.RangeLit {
    const lowLit = this.int(low);
    if (high === undefined) return lowLit;
    return { kind: "range", low: lowLit, high: this.int(high), span: this.tokensSpan(low, high) };
  }

  int(t: IToken): A.IntLit {
    const span = this.tokenSpan(t);
    const value = Number(t.image);
    if (value > MAX_INT) {
      this.diagnostics.push(diag("IntTooLarge", span, t.image));
      // 0 is valid wherever an int is, so the error is not repeated by later checks.
      return { kind: "int", value: 0, span };
    }
    return { kind: "int", value, span };
  }

  name(head: IToken, member: IToken | undefined): A.NameExpr {
    return { kind: "name", name: this.ident(head), member: member === undefined ? undefined : this.ident(member), span: this.tokensSpan(head, member ?? head) };
  }

  list(open: IToken, items: readonly A.Expr[], close: IToken): A.ListExpr {
    return { kind: "list", items: exact(items), span: this.tokensSpan(open, close) };
  }

  // ---------------------------------------------------------------- literals

  string(t: IToken): A.StringLit {
    const span = this.tokenSpan(t);
    const closed = t.tokenType !== UnterminatedString;
    const body = closed ? t.image.slice(1, -1) : t.image.slice(1);
    if (!body.includes("\\")) return { kind: "string", value: this.intern(body), span };
    let value = "";
    for (let i = 0; i < body.length; i++) {
      const ch = body[i]!;
      if (ch !== "\\") {
        value += ch;
        continue;
      }
      const next = body[i + 1];
      if (next === '"' || next === "\\") {
        value += next;
        i++;
        continue;
      }
      // `\*` is a literal star in identity patterns (spec §3); it stays escaped in the value.
      if (next === "*") {
        value += "\\*";
        i++;
        continue;
      }
      const escapeSpan: A.Span = { ...span, offset: span.offset + 1 + i, column: span.column + 1 + i, length: next === undefined ? 1 : 2 };
      this.diagnostics.push(diag("InvalidEscape", escapeSpan, `\\${next ?? ""}`));
      if (next !== undefined) {
        value += next;
        i++;
      }
    }
    return { kind: "string", value: this.intern(value), span };
  }

  /** `10.0.0.1`, `10.0.0.0/8`, `fd00::1`, `fd00::/8`, `::ffff:10.0.0.0/104`. */
  ipOrCidr(t: IToken): A.IpLit | A.CidrLit {
    const span = this.tokenSpan(t);
    const known = this.ips.get(t.image);
    if (known !== undefined) return { ...known, span } as A.IpLit | A.CidrLit;
    const reported = this.diagnostics.length;
    const lit = this.newIpOrCidr(t, span);
    if (this.diagnostics.length === reported) {
      const { span: _, ...fields } = lit;
      this.ips.set(t.image, fields);
    }
    return lit;
  }

  private newIpOrCidr(t: IToken, span: A.Span): A.IpLit | A.CidrLit {
    const slash = t.image.indexOf("/");
    const addressText = slash < 0 ? t.image : t.image.slice(0, slash);
    const isV6Text = addressText.includes(":");
    const parsed = parseIp(addressText);
    if (parsed === undefined) {
      this.diagnostics.push(diag(isV6Text ? "InvalidIpv6" : "InvalidIpv4", span, addressText));
      const zero = isV6Text ? new Array<number>(16).fill(0) : [0, 0, 0, 0];
      const family = isV6Text ? 6 : 4;
      if (slash < 0) return { kind: "ip", family, bytes: zero, text: formatIp(family, zero), span };
      return { kind: "cidr", family, bytes: zero, prefix: 0, text: `${formatIp(family, zero)}/0`, raw: t.image, span };
    }
    if (slash < 0) return { kind: "ip", family: parsed.family, bytes: parsed.bytes, text: formatIp(parsed.family, parsed.bytes), span };
    const prefixText = t.image.slice(slash + 1);
    const writtenBits = isV6Text ? 128 : 32;
    let prefix = Number(prefixText);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(prefixText) || prefix > writtenBits) {
      this.diagnostics.push(diag("InvalidPrefixLength", span, prefixText, isV6Text ? "IPv6" : "IPv4", writtenBits));
      prefix = 0;
    }
    // A v4-mapped CIDR is an IPv4 CIDR (spec §1): `::ffff:10.0.0.0/104` is `10.0.0.0/8`.
    // Below /96 it is an IPv6 CIDR whose host bits hold the `ffff` (PC2008 reports it).
    if (isV6Text && parsed.family === 4) {
      if (prefix < 96) {
        const full = parseIpv6(addressText)!;
        return { kind: "cidr", family: 6, bytes: full, prefix, text: `${formatIp(6, full)}/${prefix}`, raw: t.image, span };
      }
      prefix -= 96;
    }
    return {
      kind: "cidr",
      family: parsed.family,
      bytes: parsed.bytes,
      prefix,
      text: `${formatIp(parsed.family, parsed.bytes)}/${prefix}`,
      raw: t.image,
      span,
    };
  }

  /** `10.0.1.10:8443/tcp`, `[fd00::10]:8443/udp`. */
  endpoint(t: IToken): A.EndpointLit {
    const span = this.tokenSpan(t);
    const image = t.image;
    const bracketed = image.startsWith("[");
    const hostEnd = bracketed ? image.indexOf("]") : image.indexOf(":");
    const hostText = bracketed ? image.slice(1, hostEnd) : image.slice(0, hostEnd);
    const rest = image.slice(hostEnd + (bracketed ? 2 : 1));
    const slash = rest.indexOf("/");
    const portText = slash < 0 ? rest : rest.slice(0, slash);
    const protocolText = slash < 0 ? "" : rest.slice(slash + 1);

    const parsed = parseIp(hostText);
    const hostSpan: A.Span = { ...span, offset: span.offset + (bracketed ? 1 : 0), column: span.column + (bracketed ? 1 : 0), length: hostText.length };
    let ip: A.IpLit;
    if (parsed === undefined) {
      this.diagnostics.push(diag(bracketed ? "InvalidIpv6" : "InvalidIpv4", hostSpan, hostText));
      const zero = bracketed ? new Array<number>(16).fill(0) : [0, 0, 0, 0];
      ip = { kind: "ip", family: bracketed ? 6 : 4, bytes: zero, text: formatIp(bracketed ? 6 : 4, zero), span: hostSpan };
    } else {
      ip = { kind: "ip", family: parsed.family, bytes: parsed.bytes, text: formatIp(parsed.family, parsed.bytes), span: hostSpan };
    }
    const portOffset = image.length - rest.length;
    const portSpan: A.Span = { ...span, offset: span.offset + portOffset, column: span.column + portOffset, length: portText.length };
    const portValue = Number(portText);
    const port: A.IntLit = { kind: "int", value: portValue > MAX_INT ? MAX_INT : portValue, span: portSpan };
    const protocolOffset = portOffset + portText.length + 1;
    const protocolSpan: A.Span =
      slash < 0
        ? { ...span, offset: span.offset + image.length - 1, column: span.column + image.length - 1, length: 1 }
        : { ...span, offset: span.offset + protocolOffset, column: span.column + protocolOffset, length: protocolText.length };
    if (slash < 0) this.diagnostics.push(diag("EndpointNeedsProtocol", span, image));
    else if (protocolText !== "tcp" && protocolText !== "udp") this.diagnostics.push(diag("UnknownProtocol", protocolSpan, protocolText));
    return { kind: "endpoint", ip, port, protocol: { kind: "ident", name: protocolText, span: protocolSpan }, span };
  }

  // ---------------------------------------------------------------- tests

  testBlock(keyword: IToken, name: A.StringLit, assertions: readonly A.Assertion[], close: IToken): A.TestBlock {
    return { kind: "test", name, assertions: exact(assertions), span: this.tokensSpan(keyword, close) };
  }

  assertionHead(expectToken: IToken, actionToken: IToken, fromSyntax: TestFromSyntax, settings: readonly AssertionSetting[]): AssertionHead {
    const expect = expectToken.image === "deny" ? "deny" : "allow";
    if (expectToken.image !== "allow" && expectToken.image !== "deny") {
      this.diagnostics.push(diag("SyntaxExpected", this.tokenSpan(expectToken), "`allow` or `deny`", `\`${expectToken.image}\``));
    }
    let uid: A.IntLit | undefined;
    let gid: A.IntLit | undefined;
    for (const { key, value: valueToken } of settings) {
      const value = this.int(valueToken);
      const lit: A.IntLit = { ...value, span: this.join(this.tokenSpan(key), value.span) };
      if (key.image === "uid") uid = uid === undefined ? lit : this.duplicate(lit, "uid", uid);
      else gid = gid === undefined ? lit : this.duplicate(lit, "gid", gid);
    }
    const from = this.testFrom(fromSyntax);
    return { start: expectToken, expect, expectSpan: this.tokenSpan(expectToken), action: this.ident(actionToken), from, uid, gid };
  }

  assertion(head: AssertionHead, to: A.Value, because: readonly IToken[], semicolon: IToken): A.Assertion {
    return {
      kind: "assertion",
      expect: head.expect,
      expectSpan: head.expectSpan,
      action: head.action,
      from: head.from,
      uid: head.uid,
      gid: head.gid,
      to,
      because: because.map((t) => this.string(t)),
      span: this.tokensSpan(head.start, semicolon),
    };
  }

  private duplicate(lit: A.IntLit, key: string, first: A.IntLit): A.IntLit {
    this.diagnostics.push(diag("DuplicateEntry", lit.span, key, "this test assertion"));
    return first;
  }

  private testFrom(syntax: TestFromSyntax): A.TestFrom {
    if (syntax.kind === "id") return { kind: "from-id", id: this.string(syntax.id), span: this.tokenSpan(syntax.id) };
    if (syntax.kind === "workload") return { kind: "from-workload", name: this.ident(syntax.name), span: this.tokensSpan(syntax.keyword, syntax.name) };
    const span = this.tokenSpan(syntax.word);
    if (syntax.word.image !== "unidentified") {
      this.diagnostics.push(diag("SyntaxExpected", span, "`workload NAME`, a SPIFFE ID string or `unidentified`", `\`${syntax.word.image}\``));
    }
    return { kind: "from-unidentified", span };
  }
}
