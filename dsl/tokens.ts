// Owns every token of the `.policy` language (spec §2) and the lexer built from them.
//
// INVARIANT: token order is the matching order. Longer literal forms come before their
// prefixes (endpoint before IPv4, IPv6 before int and identifier, `==` before `=`), and
// every keyword is in the `Identifier` category with `longer_alt: Identifier`, so a
// keyword is also accepted wherever a name is (`workload test { … }` is legal).
import type { Lexer as ChevrotainLexer, TokenType } from "chevrotain";
import { createToken, Lexer } from "./chevrotain.js";

export const WhiteSpace = createToken({ name: "WhiteSpace", pattern: /[ \t\r\n\uFEFF]+/, group: Lexer.SKIPPED });
export const LineComment = createToken({ name: "LineComment", pattern: /\/\/[^\n\r]*/, group: "comments" });
export const BlockComment = createToken({ name: "BlockComment", pattern: /\/\*[\s\S]*?\*\//, group: "comments", line_breaks: true });
// An unclosed `/*` swallows the rest of the file; the lexer stage reports it (PC1003).
export const UnterminatedBlockComment = createToken({
  name: "UnterminatedBlockComment",
  pattern: /\/\*[\s\S]*/,
  group: "comments",
  line_breaks: true,
});

export const StringLiteral = createToken({ name: "StringLiteral", label: "a string", pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*"/ });
// A string cut off by the end of the line: still a string to the parser (so parsing goes
// on), reported by the lexer stage (PC1002).
export const UnterminatedString = createToken({
  name: "UnterminatedString",
  label: "a string",
  pattern: /"(?:[^"\\\r\n]|\\[^\r\n])*\\?/,
  categories: [StringLiteral],
});

export const Annotation = createToken({ name: "Annotation", label: "an annotation like `@id`", pattern: /@[A-Za-z_][A-Za-z0-9_-]*/ });

// Address-shaped literals. The patterns are deliberately loose (any run of the right
// characters); the AST builder validates the text and reports a precise error.
export const Endpoint6 = createToken({
  name: "Endpoint6",
  label: "an endpoint",
  pattern: /\[[0-9A-Fa-f:.]*\]:[0-9]+(?:\/[A-Za-z][A-Za-z0-9]*)?/,
});
export const Endpoint4 = createToken({
  name: "Endpoint4",
  label: "an endpoint",
  pattern: /[0-9]+(?:\.[0-9]+)+:[0-9]+(?:\/[A-Za-z][A-Za-z0-9]*)?/,
});
export const Ipv4 = createToken({ name: "Ipv4", label: "an IPv4 address or CIDR", pattern: /[0-9]+(?:\.[0-9]+)+(?:\/[0-9]+)?/ });
export const Ipv6 = createToken({
  name: "Ipv6",
  label: "an IPv6 address or CIDR",
  pattern: /(?:[0-9A-Fa-f]{1,4}:|::)[0-9A-Za-z:.]*(?:\/[0-9]+)?/,
});
export const Int = createToken({ name: "Int", label: "a number", pattern: /[0-9]+/ });

export const Identifier = createToken({ name: "Identifier", label: "a name", pattern: /[A-Za-z_][A-Za-z0-9_-]*/ });

function keyword(word: string): TokenType {
  return createToken({
    name: word.charAt(0).toUpperCase() + word.slice(1),
    label: `\`${word}\``,
    pattern: new RegExp(word),
    longer_alt: Identifier,
    categories: [Identifier],
  });
}

export const Workload = keyword("workload");
export const Group = keyword("group");
export const Net = keyword("net");
export const Ports = keyword("ports");
export const Service = keyword("service");
export const Default = keyword("default");
export const Permit = keyword("permit");
export const Forbid = keyword("forbid");
export const When = keyword("when");
export const Unless = keyword("unless");
export const Principal = keyword("principal");
export const Action = keyword("action");
export const Resource = keyword("resource");
export const In = keyword("in");
export const Like = keyword("like");
export const Match = keyword("match");
export const Test = keyword("test");
export const From = keyword("from");
export const To = keyword("to");
export const Because = keyword("because");
export const True = keyword("true");
export const False = keyword("false");

export const EqEq = createToken({ name: "EqEq", label: "`==`", pattern: /==/ });
export const NotEq = createToken({ name: "NotEq", label: "`!=`", pattern: /!=/ });
export const LtEq = createToken({ name: "LtEq", label: "`<=`", pattern: /<=/ });
export const GtEq = createToken({ name: "GtEq", label: "`>=`", pattern: />=/ });
export const Lt = createToken({ name: "Lt", label: "`<`", pattern: /</ });
export const Gt = createToken({ name: "Gt", label: "`>`", pattern: />/ });
export const Assign = createToken({ name: "Assign", label: "`=`", pattern: /=/ });
export const AndAnd = createToken({ name: "AndAnd", label: "`&&`", pattern: /&&/ });
export const OrOr = createToken({ name: "OrOr", label: "`||`", pattern: /\|\|/ });
export const Bang = createToken({ name: "Bang", label: "`!`", pattern: /!/ });
export const DotDot = createToken({ name: "DotDot", label: "`..`", pattern: /\.\./ });
export const Dot = createToken({ name: "Dot", label: "`.`", pattern: /\./ });
export const LParen = createToken({ name: "LParen", label: "`(`", pattern: /\(/ });
export const RParen = createToken({ name: "RParen", label: "`)`", pattern: /\)/ });
export const LBrace = createToken({ name: "LBrace", label: "`{`", pattern: /\{/ });
export const RBrace = createToken({ name: "RBrace", label: "`}`", pattern: /\}/ });
export const LBracket = createToken({ name: "LBracket", label: "`[`", pattern: /\[/ });
export const RBracket = createToken({ name: "RBracket", label: "`]`", pattern: /\]/ });
export const Comma = createToken({ name: "Comma", label: "`,`", pattern: /,/ });
export const Semicolon = createToken({ name: "Semicolon", label: "`;`", pattern: /;/ });

export const keywordTokens: readonly TokenType[] = [
  Workload, Group, Net, Ports, Service, Default, Permit, Forbid, When, Unless, Principal, Action,
  Resource, In, Like, Match, Test, From, To, Because, True, False,
];

export const allTokens: readonly TokenType[] = [
  WhiteSpace,
  LineComment,
  BlockComment,
  UnterminatedBlockComment,
  StringLiteral,
  UnterminatedString,
  Annotation,
  Endpoint6,
  Endpoint4,
  Ipv4,
  Ipv6,
  Int,
  ...keywordTokens,
  Identifier,
  EqEq,
  NotEq,
  LtEq,
  GtEq,
  Lt,
  Gt,
  Assign,
  AndAnd,
  OrOr,
  Bang,
  DotDot,
  Dot,
  LParen,
  RParen,
  LBrace,
  RBrace,
  LBracket,
  RBracket,
  Comma,
  Semicolon,
];

// INVARIANT: both lexers take chevrotain's optimised path (first-character tables); without
// `ensureOptimizations` a lexer that falls back to the slow path says nothing.
// The full-position lexer is made on first use: only tools (the formatter, a parse result's
// `tokens`) want it, and making a chevrotain lexer costs about 14 ms of every CLI start.
let fullLexer: ChevrotainLexer | undefined;
export function policyLexer(): ChevrotainLexer {
  return (fullLexer ??= new Lexer(allTokens as TokenType[], { positionTracking: "full", ensureOptimizations: true }));
}

/**
 * The same lexer tracking start offsets only (a token ends where its image does): what
 * `parsePolicy` lexes with, lines and columns coming from a `LineMap` (lines.ts).
 * `policyLexer` keeps full positions for tools.
 */
export const offsetLexer = new Lexer(allTokens as TokenType[], { positionTracking: "onlyOffset", ensureOptimizations: true });
