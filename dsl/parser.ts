// Owns the grammar of the `.policy` language, and nothing else: no semantic actions, no
// AST. One reused `PolicyParser` instance with error recovery on, so one run reports every
// syntax error; `cst-to-ast.ts` turns its CST into the typed AST.
//
// The grammar is deliberately more general than the language where a precise error is
// better given later: any value may stand on either side of an operator (the checker
// reports `port == tcp`), any `key = value` may stand in a declaration body (the checker
// reports an unknown key), any name may follow `default`.
import { CstParser, EOF, type IOrAlt, type IRecognitionException, type IParserErrorMessageProvider, type OrMethodOpts, type TokenType, type IToken } from "chevrotain";
import * as T from "./tokens.js";

function describeTokenType(t: TokenType): string {
  if (t === EOF) return "end of file";
  return t.LABEL ?? t.name;
}

function describeToken(token: IToken): string {
  if (token.tokenType === EOF) return "end of file";
  const image = token.image.length > 40 ? `${token.image.slice(0, 37)}...` : token.image;
  return `\`${image}\``;
}

/** What a rule starts, for "expected" messages where listing every first token would be noise. */
const ruleLabels: Record<string, string> = {
  item: "a declaration, a rule or a test",
  value: "a value",
  primary: "an expression",
  unaryExpr: "an expression",
  relExpr: "an expression",
  expr: "an expression",
  andExpr: "an expression",
  declBody: "`id = …`, `match { … }` or `endpoints = [ … ]`",
  testFrom: "`workload NAME`, a SPIFFE ID string or `unidentified`",
};

function oneOf(labels: string[], ruleName: string): string {
  const unique = [...new Set(labels)];
  if (unique.length > 4 && ruleLabels[ruleName] !== undefined) return ruleLabels[ruleName];
  if (unique.length <= 1) return unique[0] ?? "something else";
  return `${unique.slice(0, -1).join(", ")} or ${unique[unique.length - 1]}`;
}

/** The parser's messages are `expected …, found …` pieces; the AST stage wraps them in a catalog code. */
export interface SyntaxErrorText {
  readonly expected: string;
  readonly found: string;
}

const messages: IParserErrorMessageProvider = {
  buildMismatchTokenMessage({ expected, actual }) {
    return JSON.stringify({ expected: describeTokenType(expected), found: describeToken(actual) } satisfies SyntaxErrorText);
  },
  buildNotAllInputParsedMessage({ firstRedundant }) {
    return JSON.stringify({ expected: "a declaration, a rule or a test", found: describeToken(firstRedundant) } satisfies SyntaxErrorText);
  },
  buildNoViableAltMessage({ expectedPathsPerAlt, actual, ruleName }) {
    const firsts = expectedPathsPerAlt.flatMap((paths) => paths.map((path) => describeTokenType(path[0]!)));
    return JSON.stringify({ expected: oneOf(firsts, ruleName), found: describeToken(actual[0]!) } satisfies SyntaxErrorText);
  },
  buildEarlyExitMessage({ expectedIterationPaths, actual, ruleName }) {
    const firsts = expectedIterationPaths.map((path) => describeTokenType(path[0]!));
    return JSON.stringify({ expected: oneOf(firsts, ruleName), found: describeToken(actual[0]!) } satisfies SyntaxErrorText);
  },
};

export function syntaxErrorText(e: IRecognitionException): SyntaxErrorText {
  return JSON.parse(e.message) as SyntaxErrorText;
}

type Alternatives = IOrAlt<unknown>[];

export class PolicyParser extends CstParser {
  // Alternatives of each OR, built once (chevrotain's advice: a new array per call is the
  // parser's largest allocation).
  private itemAlts?: Alternatives;
  private entryAlts?: Alternatives;
  private unaryAlts?: Alternatives;
  private primaryAlts?: Alternatives;
  private refAlts?: Alternatives;
  private scopeOpAlts?: Alternatives;
  private conditionAlts?: Alternatives;
  private effectAlts?: Alternatives;
  private operatorAlts?: Alternatives;
  private valueAlts?: OrMethodOpts<unknown>;
  private testFromAlts?: OrMethodOpts<unknown>;

  constructor() {
    super(T.allTokens as TokenType[], {
      recoveryEnabled: true,
      maxLookahead: 3,
      // Offsets only: spans get their lines and columns from the file's `LineMap` (lines.ts).
      nodeLocationTracking: "onlyOffset",
      errorMessageProvider: messages,
    });
    this.performSelfAnalysis();
  }

  public file = this.RULE("file", () => {
    this.MANY(() => this.SUBRULE(this.item));
  });

  private item = this.RULE("item", () => {
    this.OR((this.itemAlts ??= [
      { ALT: () => this.SUBRULE(this.workloadDecl) },
      { ALT: () => this.SUBRULE(this.groupDecl) },
      { ALT: () => this.SUBRULE(this.netDecl) },
      { ALT: () => this.SUBRULE(this.portsDecl) },
      { ALT: () => this.SUBRULE(this.serviceDecl) },
      { ALT: () => this.SUBRULE(this.defaultDecl) },
      { ALT: () => this.SUBRULE(this.rule) },
      { ALT: () => this.SUBRULE(this.testBlock) },
    ]));
  });

  // workload NAME { id = "…"; match { key = value, … } }
  private workloadDecl = this.RULE("workloadDecl", () => {
    this.CONSUME(T.Workload);
    this.CONSUME(T.Identifier);
    this.SUBRULE(this.declBody);
  });

  // service NAME { id = "…"; endpoints = [ … ]; }
  private serviceDecl = this.RULE("serviceDecl", () => {
    this.CONSUME(T.Service);
    this.CONSUME(T.Identifier);
    this.SUBRULE(this.declBody);
  });

  private declBody = this.RULE("declBody", () => {
    this.CONSUME(T.LBrace);
    this.MANY(() =>
      this.OR((this.entryAlts ??= [
        { ALT: () => this.SUBRULE(this.matchEntry) },
        { ALT: () => this.SUBRULE(this.keyEntry) },
      ])),
    );
    this.CONSUME(T.RBrace);
  });

  private matchEntry = this.RULE("matchEntry", () => {
    this.CONSUME(T.Match);
    this.CONSUME(T.LBrace);
    this.MANY_SEP({ SEP: T.Comma, DEF: () => this.SUBRULE(this.selector) });
    this.CONSUME(T.RBrace);
    this.OPTION(() => this.CONSUME(T.Semicolon));
  });

  private selector = this.RULE("selector", () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    this.SUBRULE(this.value);
  });

  private keyEntry = this.RULE("keyEntry", () => {
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    this.SUBRULE(this.value);
    this.CONSUME(T.Semicolon);
  });

  // group NAME = [ … ];   net NAME = [ … ];   ports NAME = [ … ];
  private groupDecl = this.RULE("groupDecl", () => {
    this.CONSUME(T.Group);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    this.SUBRULE(this.list);
    this.CONSUME(T.Semicolon);
  });

  private netDecl = this.RULE("netDecl", () => {
    this.CONSUME(T.Net);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    this.SUBRULE(this.list);
    this.CONSUME(T.Semicolon);
  });

  private portsDecl = this.RULE("portsDecl", () => {
    this.CONSUME(T.Ports);
    this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    this.SUBRULE(this.list);
    this.CONSUME(T.Semicolon);
  });

  // default unidentified allow;
  private defaultDecl = this.RULE("defaultDecl", () => {
    this.CONSUME(T.Default);
    this.CONSUME1(T.Identifier);
    this.CONSUME2(T.Identifier);
    this.CONSUME(T.Semicolon);
  });

  // @id("…") permit ( principal …, action …, resource … ) when { … } unless { … };
  private rule = this.RULE("rule", () => {
    this.MANY(() => this.SUBRULE(this.annotation));
    this.OR((this.effectAlts ??= [{ ALT: () => this.CONSUME(T.Permit) }, { ALT: () => this.CONSUME(T.Forbid) }]));
    this.CONSUME(T.LParen);
    this.SUBRULE(this.principalScope);
    this.CONSUME1(T.Comma);
    this.SUBRULE(this.actionScope);
    this.CONSUME2(T.Comma);
    this.SUBRULE(this.resourceScope);
    this.CONSUME(T.RParen);
    this.MANY1(() => this.SUBRULE(this.condition));
    this.CONSUME(T.Semicolon);
  });

  private annotation = this.RULE("annotation", () => {
    this.CONSUME(T.Annotation);
    this.CONSUME(T.LParen);
    this.CONSUME(T.StringLiteral);
    this.CONSUME(T.RParen);
  });

  private principalScope = this.RULE("principalScope", () => {
    this.CONSUME(T.Principal);
    this.OPTION(() => this.SUBRULE(this.scopeTail));
  });

  private actionScope = this.RULE("actionScope", () => {
    this.CONSUME(T.Action);
    this.OPTION(() => this.SUBRULE(this.scopeTail));
  });

  private resourceScope = this.RULE("resourceScope", () => {
    this.CONSUME(T.Resource);
    this.OPTION(() => this.SUBRULE(this.scopeTail));
  });

  private scopeTail = this.RULE("scopeTail", () => {
    this.OR((this.scopeOpAlts ??= [
      { ALT: () => this.CONSUME(T.EqEq) },
      { ALT: () => this.CONSUME(T.In) },
      { ALT: () => this.CONSUME(T.Like) },
    ]));
    this.SUBRULE(this.value);
  });

  private condition = this.RULE("condition", () => {
    this.OR((this.conditionAlts ??= [{ ALT: () => this.CONSUME(T.When) }, { ALT: () => this.CONSUME(T.Unless) }]));
    this.CONSUME(T.LBrace);
    this.SUBRULE(this.expr);
    this.CONSUME(T.RBrace);
  });

  // ------------------------------------------------------------ expressions
  // Precedence, loosest first: ||, &&, !, comparison (== != < <= > >= in like).

  private expr = this.RULE("expr", () => {
    this.SUBRULE(this.andExpr);
    this.MANY(() => {
      this.CONSUME(T.OrOr);
      this.SUBRULE2(this.andExpr);
    });
  });

  private andExpr = this.RULE("andExpr", () => {
    this.SUBRULE(this.unaryExpr);
    this.MANY(() => {
      this.CONSUME(T.AndAnd);
      this.SUBRULE2(this.unaryExpr);
    });
  });

  private unaryExpr = this.RULE("unaryExpr", () => {
    this.OR((this.unaryAlts ??= [
      {
        ALT: () => {
          this.CONSUME(T.Bang);
          this.SUBRULE(this.unaryExpr);
        },
      },
      { ALT: () => this.SUBRULE(this.relExpr) },
    ]));
  });

  private relExpr = this.RULE("relExpr", () => {
    this.SUBRULE(this.primary);
    this.OPTION(() => {
      this.OR((this.operatorAlts ??= [
        { ALT: () => this.CONSUME(T.EqEq) },
        { ALT: () => this.CONSUME(T.NotEq) },
        { ALT: () => this.CONSUME(T.LtEq) },
        { ALT: () => this.CONSUME(T.GtEq) },
        { ALT: () => this.CONSUME(T.Lt) },
        { ALT: () => this.CONSUME(T.Gt) },
        { ALT: () => this.CONSUME(T.In) },
        { ALT: () => this.CONSUME(T.Like) },
      ]));
      this.SUBRULE2(this.primary);
    });
  });

  private primary = this.RULE("primary", () => {
    this.OR((this.primaryAlts ??= [
      {
        ALT: () => {
          this.CONSUME(T.LParen);
          this.SUBRULE(this.expr);
          this.CONSUME(T.RParen);
        },
      },
      { ALT: () => this.SUBRULE(this.value) },
    ]));
  });

  private value = this.RULE("value", () => {
    this.OR((this.valueAlts ??= {
      IGNORE_AMBIGUITIES: true,
      DEF: [
        { ALT: () => this.SUBRULE(this.ref) },
        { ALT: () => this.SUBRULE(this.intOrRange) },
        { ALT: () => this.CONSUME(T.Ipv4) },
        { ALT: () => this.CONSUME(T.Ipv6) },
        { ALT: () => this.CONSUME(T.Endpoint4) },
        { ALT: () => this.CONSUME(T.Endpoint6) },
        { ALT: () => this.CONSUME(T.StringLiteral) },
        { ALT: () => this.CONSUME(T.True) },
        { ALT: () => this.CONSUME(T.False) },
        { ALT: () => this.SUBRULE(this.list) },
        { ALT: () => this.SUBRULE(this.name) },
      ],
    }));
  });

  // INVARIANT: tried before `name`, so `workload x` is a reference and a bare `workload` a name.
  private ref = this.RULE("ref", () => {
    this.OR((this.refAlts ??= [
      { ALT: () => this.CONSUME(T.Workload) },
      { ALT: () => this.CONSUME(T.Group) },
      { ALT: () => this.CONSUME(T.Net) },
      { ALT: () => this.CONSUME(T.Ports) },
      { ALT: () => this.CONSUME(T.Service) },
    ]));
    this.CONSUME(T.Identifier);
  });

  private intOrRange = this.RULE("intOrRange", () => {
    this.CONSUME1(T.Int);
    this.OPTION(() => {
      this.CONSUME(T.DotDot);
      this.CONSUME2(T.Int);
    });
  });

  private name = this.RULE("name", () => {
    this.CONSUME1(T.Identifier);
    this.OPTION(() => {
      this.CONSUME(T.Dot);
      this.CONSUME2(T.Identifier);
    });
  });

  // A trailing comma is allowed: `[a, b,]`.
  private list = this.RULE("list", () => {
    this.CONSUME(T.LBracket);
    this.OPTION(() => {
      this.SUBRULE(this.value);
      this.MANY(() => {
        this.CONSUME1(T.Comma);
        this.SUBRULE2(this.value);
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    this.CONSUME(T.RBracket);
  });

  // ------------------------------------------------------------ tests

  // test "name" { allow connect from … to …; … }
  private testBlock = this.RULE("testBlock", () => {
    this.CONSUME(T.Test);
    this.CONSUME(T.StringLiteral);
    this.CONSUME(T.LBrace);
    this.MANY(() => this.SUBRULE(this.assertion));
    this.CONSUME(T.RBrace);
  });

  // allow connect from workload web uid 0 gid 0 to 10.0.0.1:80/tcp because "r1", "r2";
  private assertion = this.RULE("assertion", () => {
    this.CONSUME1(T.Identifier);
    this.CONSUME2(T.Identifier);
    this.CONSUME(T.From);
    this.SUBRULE(this.testFrom);
    this.MANY({
      GATE: () => {
        const image = this.LA(1).image;
        return image === "uid" || image === "gid";
      },
      DEF: () => {
        this.CONSUME3(T.Identifier);
        this.CONSUME(T.Int);
      },
    });
    this.CONSUME(T.To);
    this.SUBRULE(this.value);
    this.OPTION(() => {
      this.CONSUME(T.Because);
      this.AT_LEAST_ONE_SEP({ SEP: T.Comma, DEF: () => this.CONSUME(T.StringLiteral) });
    });
    this.CONSUME(T.Semicolon);
  });

  private testFrom = this.RULE("testFrom", () => {
    this.OR((this.testFromAlts ??= {
      IGNORE_AMBIGUITIES: true,
      DEF: [
      {
        ALT: () => {
          this.CONSUME(T.Workload);
          this.CONSUME1(T.Identifier);
        },
      },
      { ALT: () => this.CONSUME(T.StringLiteral) },
      { ALT: () => this.CONSUME2(T.Identifier) },
      ],
    }));
  });
}

/** The one parser instance (chevrotain parsers are built once and reused). */
export const policyParser = new PolicyParser();
