// Owns the typed AST of a `.policy` file. Every node carries the span of the source text
// it was built from; nothing here knows about name resolution or types (compiler/ does).
//
// INVARIANT: the AST is plain data (no methods, no cycles), so `stripSpans` of two ASTs can
// be compared with deep equality — that is how `fmt` proves it never changes meaning.

export interface Span {
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column, in UTF-16 code units. */
  readonly column: number;
  /** 0-based offset into the file text. */
  readonly offset: number;
  readonly length: number;
}

export interface Ident {
  readonly kind: "ident";
  readonly name: string;
  readonly span: Span;
}

// ---------------------------------------------------------------- literals and values

export interface IntLit {
  readonly kind: "int";
  readonly value: number;
  readonly span: Span;
}

export interface RangeLit {
  readonly kind: "range";
  readonly low: IntLit;
  readonly high: IntLit;
  readonly span: Span;
}

export type IpFamily = 4 | 6;

export interface IpLit {
  readonly kind: "ip";
  readonly family: IpFamily;
  /** 4 or 16 bytes; a v4-mapped IPv6 literal is stored as IPv4 (spec §1). */
  readonly bytes: readonly number[];
  /** Canonical text (`10.0.0.1`, `fd00::1`). */
  readonly text: string;
  readonly span: Span;
}

export interface CidrLit {
  readonly kind: "cidr";
  readonly family: IpFamily;
  readonly bytes: readonly number[];
  readonly prefix: number;
  /** Canonical text as written after v4-mapping (`10.0.0.0/8`). */
  readonly text: string;
  /** The literal as written in the source, for messages. */
  readonly raw: string;
  readonly span: Span;
}

export interface EndpointLit {
  readonly kind: "endpoint";
  readonly ip: IpLit;
  readonly port: IntLit;
  readonly protocol: Ident;
  readonly span: Span;
}

export interface StringLit {
  readonly kind: "string";
  /** The value with escapes resolved. */
  readonly value: string;
  readonly span: Span;
}

export interface BoolLit {
  readonly kind: "bool";
  readonly value: boolean;
  readonly span: Span;
}

export type RefKind = "workload" | "group" | "net" | "ports" | "service";

/** `workload frontend`, `net private`, … */
export interface RefExpr {
  readonly kind: "ref";
  readonly refKind: RefKind;
  readonly name: Ident;
  readonly span: Span;
}

/** A bare name, optionally with one member: `port`, `tcp`, `principal.uid`. */
export interface NameExpr {
  readonly kind: "name";
  readonly name: Ident;
  readonly member: Ident | undefined;
  readonly span: Span;
}

export interface ListExpr {
  readonly kind: "list";
  readonly items: readonly Expr[];
  readonly span: Span;
}

export type Literal = IntLit | RangeLit | IpLit | CidrLit | EndpointLit | StringLit | BoolLit;
export type Value = Literal | RefExpr | NameExpr | ListExpr;

// ---------------------------------------------------------------- expressions

export type CompareOp = "==" | "!=" | "<" | "<=" | ">" | ">=";

export interface CompareExpr {
  readonly kind: "compare";
  readonly op: CompareOp;
  readonly left: Expr;
  readonly right: Expr;
  readonly span: Span;
}

export interface InExpr {
  readonly kind: "in";
  readonly left: Expr;
  readonly right: Expr;
  readonly span: Span;
}

export interface LikeExpr {
  readonly kind: "like";
  readonly left: Expr;
  readonly pattern: Expr;
  readonly span: Span;
}

export interface LogicalExpr {
  readonly kind: "logical";
  readonly op: "&&" | "||";
  readonly left: Expr;
  readonly right: Expr;
  readonly span: Span;
}

export interface NotExpr {
  readonly kind: "not";
  readonly operand: Expr;
  readonly span: Span;
}

export interface ParenExpr {
  readonly kind: "paren";
  readonly inner: Expr;
  readonly span: Span;
}

export type Expr = Value | CompareExpr | InExpr | LikeExpr | LogicalExpr | NotExpr | ParenExpr;

// ---------------------------------------------------------------- declarations

export interface Selector {
  readonly kind: "selector";
  readonly key: Ident;
  readonly value: Expr;
  readonly span: Span;
}

export interface IdEntry {
  readonly kind: "id";
  readonly value: StringLit;
  readonly span: Span;
}

export interface MatchEntry {
  readonly kind: "match";
  readonly selectors: readonly Selector[];
  readonly span: Span;
}

export interface EndpointsEntry {
  readonly kind: "endpoints";
  readonly items: readonly Expr[];
  readonly span: Span;
}

/**
 * An entry of a `workload` or `service` body that is not a well-formed `id = "…"`,
 * `match { … }` (workloads) or `endpoints = [ … ]` (services); the checker reports it.
 */
export interface UnknownEntry {
  readonly kind: "unknown-entry";
  readonly key: Ident;
  /** Absent for a `match { … }` block inside a service. */
  readonly value: Expr | undefined;
  readonly span: Span;
}

export interface WorkloadDecl {
  readonly kind: "workload";
  readonly name: Ident;
  readonly entries: readonly (IdEntry | MatchEntry | UnknownEntry)[];
  readonly span: Span;
}

export interface GroupDecl {
  readonly kind: "group";
  readonly name: Ident;
  readonly members: ListExpr;
  readonly span: Span;
}

export interface NetDecl {
  readonly kind: "net";
  readonly name: Ident;
  readonly items: ListExpr;
  readonly span: Span;
}

export interface PortsDecl {
  readonly kind: "ports";
  readonly name: Ident;
  readonly items: ListExpr;
  readonly span: Span;
}

export interface ServiceDecl {
  readonly kind: "service";
  readonly name: Ident;
  readonly entries: readonly (IdEntry | EndpointsEntry | UnknownEntry)[];
  readonly span: Span;
}

/** `default unidentified allow;` */
export interface DefaultDecl {
  readonly kind: "default";
  readonly target: Ident;
  readonly value: Ident;
  readonly span: Span;
}

// ---------------------------------------------------------------- rules

export interface Annotation {
  readonly kind: "annotation";
  /** Without the `@`. */
  readonly name: Ident;
  readonly value: StringLit;
  readonly span: Span;
}

/**
 * One of the three scope parts. `op` is undefined for the bare form (`principal`).
 * `head` is the `principal` / `action` / `resource` keyword.
 */
export interface ScopePart {
  readonly kind: "scope";
  readonly head: Ident;
  readonly op: "==" | "in" | "like" | undefined;
  readonly value: Expr | undefined;
  readonly span: Span;
}

export interface Condition {
  readonly kind: "condition";
  readonly polarity: "when" | "unless";
  readonly expr: Expr;
  readonly span: Span;
}

export interface Rule {
  readonly kind: "rule";
  readonly annotations: readonly Annotation[];
  readonly effect: "permit" | "forbid";
  readonly principal: ScopePart;
  readonly action: ScopePart;
  readonly resource: ScopePart;
  readonly conditions: readonly Condition[];
  readonly span: Span;
}

// ---------------------------------------------------------------- tests

export type TestFrom =
  | { readonly kind: "from-workload"; readonly name: Ident; readonly span: Span }
  | { readonly kind: "from-id"; readonly id: StringLit; readonly span: Span }
  | { readonly kind: "from-unidentified"; readonly span: Span };

export interface Assertion {
  readonly kind: "assertion";
  readonly expect: "allow" | "deny";
  readonly expectSpan: Span;
  /** The action word after allow/deny (`connect`). */
  readonly action: Ident;
  readonly from: TestFrom;
  readonly uid: IntLit | undefined;
  readonly gid: IntLit | undefined;
  readonly to: Expr;
  readonly because: readonly StringLit[];
  readonly span: Span;
}

export interface TestBlock {
  readonly kind: "test";
  readonly name: StringLit;
  readonly assertions: readonly Assertion[];
  readonly span: Span;
}

export type Declaration = WorkloadDecl | GroupDecl | NetDecl | PortsDecl | ServiceDecl;
export type Item = Declaration | DefaultDecl | Rule | TestBlock;

export interface Comment {
  readonly text: string;
  readonly block: boolean;
  readonly span: Span;
}

export interface PolicyFile {
  readonly kind: "file";
  readonly path: string;
  readonly items: readonly Item[];
  /** Every comment in source order; the formatter re-attaches them by offset. */
  readonly comments: readonly Comment[];
  readonly span: Span;
}

/** The AST with every `span` (and `expectSpan`) removed: what "same meaning" compares. */
export function stripSpans(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripSpans);
  if (node !== null && typeof node === "object") {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "span" || key === "expectSpan") continue;
      out[key] = stripSpans(value);
    }
    return out;
  }
  return node;
}
