// Owns the CST → AST step: a chevrotain CST visitor that builds the typed AST of
// `ast.ts`, attaching a span to every node and validating literal text (IP forms,
// escapes, endpoint shape, number size) as it goes.
//
// INVARIANT: only called on a CST that parsed without errors, so every child the grammar
// requires is present; optional children are checked.
import type { CstNode, IToken } from "chevrotain";
import type * as A from "./ast.js";
import { diag, type Diagnostic } from "./diagnostics.js";
import { formatIp, parseIp, parseIpv6 } from "./ip.js";
import type { LineMap } from "./lines.js";
import { policyParser } from "./parser.js";
import { UnterminatedString } from "./tokens.js";

type Children = Record<string, (CstNode | IToken)[] | undefined>;

const BaseVisitor = policyParser.getBaseCstVisitorConstructorWithDefaults();

/** Largest value an int literal may have: u32, the widest integer the language uses (uid/gid). */
const MAX_INT = 0xffffffff;

export class AstBuilder extends BaseVisitor {
  readonly diagnostics: Diagnostic[] = [];

  /** `lines` is the line map of the file's text (tokens and CST nodes carry offsets only). */
  constructor(
    private readonly fileName: string,
    private readonly lines: LineMap,
  ) {
    super();
    this.validateVisitor();
  }

  // ---------------------------------------------------------------- spans

  tokenSpan(t: IToken): A.Span {
    return this.lines.span(this.fileName, t.startOffset, t.image.length);
  }

  nodeSpan(n: CstNode): A.Span {
    const loc = n.location!;
    return this.lines.span(this.fileName, loc.startOffset, loc.endOffset! - loc.startOffset + 1);
  }

  /** The span from the start of `a` to the end of `b`. */
  join(a: A.Span, b: A.Span): A.Span {
    return { file: a.file, line: a.line, column: a.column, offset: a.offset, length: b.offset + b.length - a.offset };
  }

  // ---------------------------------------------------------------- child access
  // A CST node's children are lists keyed by rule or token name, present only when not empty.

  private tokens(c: Children, name: string): IToken[] {
    return (c[name] ?? []) as IToken[];
  }

  private token(c: Children, name: string, index = 0): IToken {
    return (c[name] as IToken[])[index]!;
  }

  private firstToken(c: Children, name: string): IToken | undefined {
    return (c[name] as IToken[] | undefined)?.[0];
  }

  private nodes(c: Children, name: string): CstNode[] {
    return (c[name] ?? []) as CstNode[];
  }

  private node(c: Children, name: string): CstNode {
    return (c[name] as CstNode[])[0]!;
  }

  private firstNode(c: Children, name: string): CstNode | undefined {
    return (c[name] as CstNode[] | undefined)?.[0];
  }

  private ident(t: IToken): A.Ident {
    return { kind: "ident", name: t.image, span: this.tokenSpan(t) };
  }

  // ---------------------------------------------------------------- file and items

  /** The items of a `file` CST (a whole file, or a run of its items). */
  items(n: CstNode): A.Item[] {
    return this.nodes(n.children as Children, "item").map((i) => this.item(i));
  }

  item(n: CstNode): A.Item {
    const c = n.children as Children;
    let inner: CstNode | undefined;
    if ((inner = this.firstNode(c, "rule")) !== undefined) return this.rule(inner);
    if ((inner = this.firstNode(c, "workloadDecl")) !== undefined) return this.workloadDecl(inner);
    if ((inner = this.firstNode(c, "serviceDecl")) !== undefined) return this.serviceDecl(inner);
    if ((inner = this.firstNode(c, "groupDecl")) !== undefined) return this.listDecl(inner, "groupDecl");
    if ((inner = this.firstNode(c, "netDecl")) !== undefined) return this.listDecl(inner, "netDecl");
    if ((inner = this.firstNode(c, "portsDecl")) !== undefined) return this.listDecl(inner, "portsDecl");
    if ((inner = this.firstNode(c, "defaultDecl")) !== undefined) return this.defaultDecl(inner);
    return this.testBlock(this.node(c, "testBlock"));
  }

  workloadDecl(n: CstNode): A.WorkloadDecl {
    const c = n.children as Children;
    const entries = this.declBody(this.node(c, "declBody")).map((e) => (e.kind === "endpoints" ? this.asUnknown(e) : e));
    return { kind: "workload", name: this.ident(this.token(c, "Identifier")), entries, span: this.nodeSpan(n) };
  }

  serviceDecl(n: CstNode): A.ServiceDecl {
    const c = n.children as Children;
    const entries = this.declBody(this.node(c, "declBody")).map((e) => (e.kind === "match" ? this.asUnknown(e) : e));
    return { kind: "service", name: this.ident(this.token(c, "Identifier")), entries, span: this.nodeSpan(n) };
  }

  private asUnknown(e: A.MatchEntry | A.EndpointsEntry): A.UnknownEntry {
    const key: A.Ident = { kind: "ident", name: e.kind, span: { ...e.span, length: e.kind.length } };
    return { kind: "unknown-entry", key, value: undefined, span: e.span };
  }

  declBody(n: CstNode): (A.IdEntry | A.MatchEntry | A.EndpointsEntry | A.UnknownEntry)[] {
    const c = n.children as Children;
    const entries = [...this.nodes(c, "matchEntry"), ...this.nodes(c, "keyEntry")].sort(
      (a, b) => a.location!.startOffset - b.location!.startOffset,
    );
    return entries.map((e) => {
      const ec = e.children as Children;
      const span = this.nodeSpan(e);
      if (e.name === "matchEntry") {
        return { kind: "match", selectors: this.nodes(ec, "selector").map((s) => this.selector(s)), span };
      }
      const key = this.ident(this.token(ec, "Identifier"));
      const value = this.value(this.node(ec, "value"));
      if (key.name === "id" && value.kind === "string") return { kind: "id", value, span };
      if (key.name === "endpoints" && value.kind === "list") return { kind: "endpoints", items: value.items, span };
      return { kind: "unknown-entry", key, value, span };
    });
  }

  selector(n: CstNode): A.Selector {
    const c = n.children as Children;
    return {
      kind: "selector",
      key: this.ident(this.token(c, "Identifier")),
      value: this.value(this.node(c, "value")),
      span: this.nodeSpan(n),
    };
  }

  listDecl(n: CstNode, key: "groupDecl" | "netDecl" | "portsDecl"): A.GroupDecl | A.NetDecl | A.PortsDecl {
    const c = n.children as Children;
    const name = this.ident(this.token(c, "Identifier"));
    const list = this.list(this.node(c, "list"));
    const span = this.nodeSpan(n);
    if (key === "groupDecl") return { kind: "group", name, members: list, span };
    if (key === "netDecl") return { kind: "net", name, items: list, span };
    return { kind: "ports", name, items: list, span };
  }

  defaultDecl(n: CstNode): A.DefaultDecl {
    const c = n.children as Children;
    return {
      kind: "default",
      target: this.ident(this.token(c, "Identifier", 0)),
      value: this.ident(this.token(c, "Identifier", 1)),
      span: this.nodeSpan(n),
    };
  }

  // ---------------------------------------------------------------- rules

  rule(n: CstNode): A.Rule {
    const c = n.children as Children;
    const effectToken = this.firstToken(c, "Permit") ?? this.token(c, "Forbid");
    return {
      kind: "rule",
      annotations: this.nodes(c, "annotation").map((a) => this.annotation(a)),
      effect: effectToken.image === "permit" ? "permit" : "forbid",
      principal: this.scope(this.node(c, "principalScope")),
      action: this.scope(this.node(c, "actionScope")),
      resource: this.scope(this.node(c, "resourceScope")),
      conditions: this.nodes(c, "condition").map((x) => this.condition(x)),
      span: this.nodeSpan(n),
    };
  }

  annotation(n: CstNode): A.Annotation {
    const c = n.children as Children;
    const at = this.token(c, "Annotation");
    return {
      kind: "annotation",
      name: { kind: "ident", name: at.image.slice(1), span: this.lines.span(this.fileName, at.startOffset + 1, at.image.length - 1) },
      value: this.string(this.token(c, "StringLiteral")),
      span: this.nodeSpan(n),
    };
  }

  scope(n: CstNode): A.ScopePart {
    const c = n.children as Children;
    const headToken = this.firstToken(c, "Principal") ?? this.firstToken(c, "Action") ?? this.token(c, "Resource");
    const tail = this.firstNode(c, "scopeTail");
    if (tail === undefined) return { kind: "scope", head: this.ident(headToken), op: undefined, value: undefined, span: this.nodeSpan(n) };
    const tc = tail.children as Children;
    const opToken = this.firstToken(tc, "EqEq") ?? this.firstToken(tc, "In") ?? this.token(tc, "Like");
    const op = opToken.image as "==" | "in" | "like";
    return { kind: "scope", head: this.ident(headToken), op, value: this.value(this.node(tc, "value")), span: this.nodeSpan(n) };
  }

  condition(n: CstNode): A.Condition {
    const c = n.children as Children;
    const polarity = c["When"] !== undefined ? "when" : "unless";
    return { kind: "condition", polarity, expr: this.expr(this.node(c, "expr")), span: this.nodeSpan(n) };
  }

  // ---------------------------------------------------------------- expressions

  expr(n: CstNode): A.Expr {
    const c = n.children as Children;
    return this.foldLeft(this.nodes(c, "andExpr").map((x) => this.andExpr(x)), "||");
  }

  andExpr(n: CstNode): A.Expr {
    const c = n.children as Children;
    return this.foldLeft(this.nodes(c, "unaryExpr").map((x) => this.unaryExpr(x)), "&&");
  }

  private foldLeft(operands: A.Expr[], op: "&&" | "||"): A.Expr {
    let left = operands[0]!;
    for (let i = 1; i < operands.length; i++) {
      const right = operands[i]!;
      left = { kind: "logical", op, left, right, span: this.join(left.span, right.span) };
    }
    return left;
  }

  unaryExpr(n: CstNode): A.Expr {
    const c = n.children as Children;
    const inner = this.firstNode(c, "unaryExpr");
    if (inner !== undefined) return { kind: "not", operand: this.unaryExpr(inner), span: this.nodeSpan(n) };
    return this.relExpr(this.node(c, "relExpr"));
  }

  relExpr(n: CstNode): A.Expr {
    const c = n.children as Children;
    const [leftNode, rightNode] = this.nodes(c, "primary");
    const left = this.primary(leftNode!);
    if (rightNode === undefined) return left;
    const right = this.primary(rightNode);
    const span = this.join(left.span, right.span);
    const op = (
      this.firstToken(c, "EqEq") ??
      this.firstToken(c, "NotEq") ??
      this.firstToken(c, "LtEq") ??
      this.firstToken(c, "GtEq") ??
      this.firstToken(c, "Lt") ??
      this.firstToken(c, "Gt") ??
      this.firstToken(c, "In") ??
      this.token(c, "Like")
    ).image;
    if (op === "in") return { kind: "in", left, right, span };
    if (op === "like") return { kind: "like", left, pattern: right, span };
    return { kind: "compare", op: op as A.CompareOp, left, right, span };
  }

  primary(n: CstNode): A.Expr {
    const c = n.children as Children;
    const inner = this.firstNode(c, "expr");
    if (inner !== undefined) return { kind: "paren", inner: this.expr(inner), span: this.nodeSpan(n) };
    return this.value(this.node(c, "value"));
  }

  /** A value node has exactly one child: one of the alternatives of the `value` rule. */
  value(n: CstNode): A.Value {
    const c = n.children as Children;
    let node: CstNode | undefined;
    if ((node = this.firstNode(c, "ref")) !== undefined) return this.ref(node);
    if ((node = this.firstNode(c, "name")) !== undefined) return this.name(node);
    if ((node = this.firstNode(c, "intOrRange")) !== undefined) return this.intOrRange(node);
    if ((node = this.firstNode(c, "list")) !== undefined) return this.list(node);
    let t: IToken | undefined;
    if ((t = this.firstToken(c, "Ipv4") ?? this.firstToken(c, "Ipv6")) !== undefined) return this.ipOrCidr(t);
    if ((t = this.firstToken(c, "StringLiteral")) !== undefined) return this.string(t);
    if ((t = this.firstToken(c, "Endpoint4") ?? this.firstToken(c, "Endpoint6")) !== undefined) return this.endpoint(t);
    if ((t = this.firstToken(c, "True") ?? this.firstToken(c, "False")) !== undefined) return { kind: "bool", value: t.image === "true", span: this.tokenSpan(t) };
    throw new Error(`unhandled value ${Object.keys(c).join(", ")}`);
  }

  ref(n: CstNode): A.RefExpr {
    const c = n.children as Children;
    // The kind keyword is also an Identifier (category), so it is filed under its own name.
    const kindToken =
      this.firstToken(c, "Workload") ?? this.firstToken(c, "Group") ?? this.firstToken(c, "Net") ?? this.firstToken(c, "Ports") ?? this.token(c, "Service");
    return { kind: "ref", refKind: kindToken.image as A.RefKind, name: this.ident(this.token(c, "Identifier")), span: this.nodeSpan(n) };
  }

  intOrRange(n: CstNode): A.IntLit | A.RangeLit {
    const c = n.children as Children;
    const ints = this.tokens(c, "Int").map((t) => this.int(t));
    if (ints.length === 1) return ints[0]!;
    return { kind: "range", low: ints[0]!, high: ints[1]!, span: this.nodeSpan(n) };
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

  name(n: CstNode): A.NameExpr {
    const c = n.children as Children;
    const [head, member] = this.tokens(c, "Identifier");
    return { kind: "name", name: this.ident(head!), member: member === undefined ? undefined : this.ident(member), span: this.nodeSpan(n) };
  }

  list(n: CstNode): A.ListExpr {
    const c = n.children as Children;
    return { kind: "list", items: this.nodes(c, "value").map((v) => this.value(v)), span: this.nodeSpan(n) };
  }

  // ---------------------------------------------------------------- literals

  string(t: IToken): A.StringLit {
    const span = this.tokenSpan(t);
    const closed = t.tokenType !== UnterminatedString;
    const body = closed ? t.image.slice(1, -1) : t.image.slice(1);
    if (!body.includes("\\")) return { kind: "string", value: body, span };
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
    return { kind: "string", value, span };
  }

  /** `10.0.0.1`, `10.0.0.0/8`, `fd00::1`, `fd00::/8`, `::ffff:10.0.0.0/104`. */
  ipOrCidr(t: IToken): A.IpLit | A.CidrLit {
    const span = this.tokenSpan(t);
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

  testBlock(n: CstNode): A.TestBlock {
    const c = n.children as Children;
    return {
      kind: "test",
      name: this.string(this.token(c, "StringLiteral")),
      assertions: this.nodes(c, "assertion").map((a) => this.assertion(a)),
      span: this.nodeSpan(n),
    };
  }

  assertion(n: CstNode): A.Assertion {
    const c = n.children as Children;
    const words = this.tokens(c, "Identifier");
    const ints = this.tokens(c, "Int");
    const expectToken = words[0]!;
    const expect = expectToken.image === "deny" ? "deny" : "allow";
    if (expectToken.image !== "allow" && expectToken.image !== "deny") {
      this.diagnostics.push(diag("SyntaxExpected", this.tokenSpan(expectToken), "`allow` or `deny`", `\`${expectToken.image}\``));
    }
    let uid: A.IntLit | undefined;
    let gid: A.IntLit | undefined;
    words.slice(2).forEach((w, i) => {
      const value = this.int(ints[i]!);
      const lit: A.IntLit = { ...value, span: this.join(this.tokenSpan(w), value.span) };
      if (w.image === "uid") uid = uid === undefined ? lit : this.duplicate(lit, "uid", uid);
      else gid = gid === undefined ? lit : this.duplicate(lit, "gid", gid);
    });
    return {
      kind: "assertion",
      expect,
      expectSpan: this.tokenSpan(expectToken),
      action: this.ident(words[1]!),
      from: this.testFrom(this.node(c, "testFrom")),
      uid,
      gid,
      to: this.value(this.node(c, "value")),
      because: this.tokens(c, "StringLiteral").map((t) => this.string(t)),
      span: this.nodeSpan(n),
    };
  }

  private duplicate(lit: A.IntLit, key: string, first: A.IntLit): A.IntLit {
    this.diagnostics.push(diag("DuplicateEntry", lit.span, key, "this test assertion"));
    return first;
  }

  testFrom(n: CstNode): A.TestFrom {
    const c = n.children as Children;
    const span = this.nodeSpan(n);
    const str = this.firstToken(c, "StringLiteral");
    if (str !== undefined) return { kind: "from-id", id: this.string(str), span };
    if (c["Workload"] !== undefined) return { kind: "from-workload", name: this.ident(this.token(c, "Identifier")), span };
    const word = this.token(c, "Identifier");
    if (word.image !== "unidentified") {
      this.diagnostics.push(diag("SyntaxExpected", span, "`workload NAME`, a SPIFFE ID string or `unidentified`", `\`${word.image}\``));
    }
    return { kind: "from-unidentified", span };
  }
}
