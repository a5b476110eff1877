// Owns the grammar of the `.policy` language. One reused `PolicyParser` instance with error
// recovery on, so one run reports every syntax error. Each rule hands what it recognised
// (tokens, its sub-rules' results) to the file's `AstBuilder` (ast-builder.ts), which owns
// the AST and the literal checks; the grammar itself holds no other logic. Building the AST
// as the rules return, rather than through a CST and a visitor, makes no CST at all (the
// CST was most of the front end's time and garbage).
//
// The grammar is deliberately more general than the language where a precise error is
// better given later: any value may stand on either side of an operator (the checker
// reports `port == tcp`), any `key = value` may stand in a declaration body (the checker
// reports an unknown key), any name may follow `default`.
//
// INVARIANT: every CONSUME, SUBRULE, OR, OPTION and MANY runs whether or not the builder is
// called, so chevrotain records the same grammar (and so gives the same lookahead, recovery
// and messages) as without actions; the builder is not called while recording.
import type { IOrAlt, IParserErrorMessageProvider, IRecognitionException, IToken, OrMethodOpts, TokenType } from "chevrotain";
import { EmbeddedActionsParser, EOF } from "./chevrotain.js";
import type * as A from "./ast.js";
import type { AssertionSetting, AstBuilder, DeclBody, ScopeTail, TestFromSyntax } from "./ast-builder.js";
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

interface ParseState {
  failed: boolean;
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

/**
 * `messages`, also noting in `state` that the parse has an error: chevrotain builds a
 * message exactly for each error it records (and its `errors` getter copies the list).
 */
function noting(state: ParseState): IParserErrorMessageProvider {
  return {
    buildMismatchTokenMessage(options) {
      state.failed = true;
      return messages.buildMismatchTokenMessage(options);
    },
    buildNotAllInputParsedMessage(options) {
      state.failed = true;
      return messages.buildNotAllInputParsedMessage(options);
    },
    buildNoViableAltMessage(options) {
      state.failed = true;
      return messages.buildNoViableAltMessage(options);
    },
    buildEarlyExitMessage(options) {
      state.failed = true;
      return messages.buildEarlyExitMessage(options);
    },
  };
}

export function syntaxErrorText(e: IRecognitionException): SyntaxErrorText {
  return JSON.parse(e.message) as SyntaxErrorText;
}

type Alternatives<R> = IOrAlt<R>[];

type DeclEntry = DeclBody["entries"][number];

export class PolicyParser extends EmbeddedActionsParser {
  /** Builds the AST of the run being parsed; undefined when it is not wanted. */
  private builder: AstBuilder | undefined;
  /** Whether the run being parsed has a syntax error: set by the message provider. */
  private readonly state: ParseState;

  // Alternatives of each OR, built once (chevrotain's advice: a new array per call is the
  // parser's largest allocation).
  private itemAlts?: Alternatives<A.Item>;
  private entryAlts?: Alternatives<DeclEntry>;
  private unaryAlts?: Alternatives<A.Expr>;
  private primaryAlts?: Alternatives<A.Expr>;
  private refAlts?: Alternatives<IToken>;
  private scopeOpAlts?: Alternatives<IToken>;
  private conditionAlts?: Alternatives<IToken>;
  private effectAlts?: Alternatives<IToken>;
  private operatorAlts?: Alternatives<IToken>;
  private valueAlts?: OrMethodOpts<A.Value>;
  private testFromAlts?: OrMethodOpts<TestFromSyntax>;

  /**
   * `validate`: whether chevrotain checks the grammar itself (ambiguities, left recursion)
   * while building the parser. The shared parser skips it, as chevrotain advises once a
   * grammar is known good (about 15 ms of every CLI start); the tests build one with it.
   */
  constructor(options: { readonly validate?: boolean } = {}) {
    const state: ParseState = { failed: false };
    super(T.allTokens as TokenType[], {
      recoveryEnabled: true,
      maxLookahead: 3,
      errorMessageProvider: noting(state),
      skipValidations: options.validate !== true,
    });
    this.state = state;
    this.performSelfAnalysis();
  }

  /**
   * The builder, when the result of the rule being run is wanted: not while chevrotain
   * records the grammar, not when the AST is not wanted, and not once this parse has a
   * syntax error (sub-results may then be missing).
   * INVARIANT: a rule's result is read only when the parse has no syntax error, so the
   * `undefined` a rule returns otherwise (`this.b?.…!`) is never read as a node; and every
   * token is consumed before `this.b?.…` (its arguments are not evaluated without a builder).
   */
  private get b(): AstBuilder | undefined {
    return this.RECORDING_PHASE || this.state.failed ? undefined : this.builder;
  }

  /**
   * Parses one run of whole items. Their AST is built by `builder` unless it is undefined
   * or the run has a syntax error; `errors` are chevrotain's.
   */
  parseItems(tokens: IToken[], builder: AstBuilder | undefined): { readonly items: A.Item[]; readonly errors: IRecognitionException[] } {
    this.builder = builder;
    this.state.failed = false;
    this.input = tokens;
    const items = this.file();
    const errors = this.errors;
    // The parser would otherwise keep the run's tokens and the builder alive until the next parse.
    this.input = [];
    this.builder = undefined;
    return { items, errors };
  }

  private file = this.RULE("file", (): A.Item[] => {
    const items: A.Item[] = [];
    this.MANY(() => {
      items.push(this.SUBRULE(this.item));
    });
    return items;
  });

  private item = this.RULE("item", (): A.Item =>
    this.OR((this.itemAlts ??= [
      { ALT: () => this.SUBRULE(this.workloadDecl) },
      { ALT: () => this.SUBRULE(this.groupDecl) },
      { ALT: () => this.SUBRULE(this.netDecl) },
      { ALT: () => this.SUBRULE(this.portsDecl) },
      { ALT: () => this.SUBRULE(this.serviceDecl) },
      { ALT: () => this.SUBRULE(this.defaultDecl) },
      { ALT: () => this.SUBRULE(this.rule) },
      { ALT: () => this.SUBRULE(this.testBlock) },
    ])),
  );

  // workload NAME { id = "…"; match { key = value, … } }
  private workloadDecl = this.RULE("workloadDecl", (): A.WorkloadDecl => {
    const keyword = this.CONSUME(T.Workload);
    const name = this.CONSUME(T.Identifier);
    const body = this.SUBRULE(this.declBody);
    return this.b?.workloadDecl(keyword, name, body)!;
  });

  // service NAME { id = "…"; endpoints = [ … ]; }
  private serviceDecl = this.RULE("serviceDecl", (): A.ServiceDecl => {
    const keyword = this.CONSUME(T.Service);
    const name = this.CONSUME(T.Identifier);
    const body = this.SUBRULE(this.declBody);
    return this.b?.serviceDecl(keyword, name, body)!;
  });

  private declBody = this.RULE("declBody", (): DeclBody => {
    this.CONSUME(T.LBrace);
    const entries: DeclEntry[] = [];
    this.MANY(() => {
      entries.push(
        this.OR((this.entryAlts ??= [
          { ALT: () => this.SUBRULE(this.matchEntry) },
          { ALT: () => this.SUBRULE(this.keyEntry) },
        ])),
      );
    });
    const close = this.CONSUME(T.RBrace);
    return { entries, close };
  });

  private matchEntry = this.RULE("matchEntry", (): A.MatchEntry => {
    const keyword = this.CONSUME(T.Match);
    this.CONSUME(T.LBrace);
    const selectors: A.Selector[] = [];
    this.MANY_SEP({
      SEP: T.Comma,
      DEF: () => {
        selectors.push(this.SUBRULE(this.selector));
      },
    });
    const close = this.CONSUME(T.RBrace);
    const semicolon = this.OPTION(() => this.CONSUME(T.Semicolon));
    return this.b?.matchEntry(keyword, selectors, semicolon ?? close)!;
  });

  private selector = this.RULE("selector", (): A.Selector => {
    const key = this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    const value = this.SUBRULE(this.value);
    return this.b?.selector(key, value)!;
  });

  private keyEntry = this.RULE("keyEntry", (): A.IdEntry | A.EndpointsEntry | A.UnknownEntry => {
    const key = this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    const value = this.SUBRULE(this.value);
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.keyEntry(key, value, semicolon)!;
  });

  // group NAME = [ … ];   net NAME = [ … ];   ports NAME = [ … ];
  private groupDecl = this.RULE("groupDecl", (): A.GroupDecl => {
    const keyword = this.CONSUME(T.Group);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    const list = this.SUBRULE(this.list);
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.listDecl(keyword, name, list, semicolon) as A.GroupDecl;
  });

  private netDecl = this.RULE("netDecl", (): A.NetDecl => {
    const keyword = this.CONSUME(T.Net);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    const list = this.SUBRULE(this.list);
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.listDecl(keyword, name, list, semicolon) as A.NetDecl;
  });

  private portsDecl = this.RULE("portsDecl", (): A.PortsDecl => {
    const keyword = this.CONSUME(T.Ports);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Assign);
    const list = this.SUBRULE(this.list);
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.listDecl(keyword, name, list, semicolon) as A.PortsDecl;
  });

  // default unidentified allow;
  private defaultDecl = this.RULE("defaultDecl", (): A.DefaultDecl => {
    const keyword = this.CONSUME(T.Default);
    const target = this.CONSUME1(T.Identifier);
    const value = this.CONSUME2(T.Identifier);
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.defaultDecl(keyword, target, value, semicolon)!;
  });

  // @id("…") permit ( principal …, action …, resource … ) when { … } unless { … };
  private rule = this.RULE("rule", (): A.Rule => {
    const annotations: A.Annotation[] = [];
    this.MANY(() => {
      annotations.push(this.SUBRULE(this.annotation));
    });
    const effect = this.OR((this.effectAlts ??= [{ ALT: () => this.CONSUME(T.Permit) }, { ALT: () => this.CONSUME(T.Forbid) }]));
    this.CONSUME(T.LParen);
    const principal = this.SUBRULE(this.principalScope);
    this.CONSUME1(T.Comma);
    const action = this.SUBRULE(this.actionScope);
    this.CONSUME2(T.Comma);
    const resource = this.SUBRULE(this.resourceScope);
    this.CONSUME(T.RParen);
    const conditions: A.Condition[] = [];
    this.MANY1(() => {
      conditions.push(this.SUBRULE(this.condition));
    });
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.rule(annotations, effect, principal, action, resource, conditions, semicolon)!;
  });

  private annotation = this.RULE("annotation", (): A.Annotation => {
    const at = this.CONSUME(T.Annotation);
    this.CONSUME(T.LParen);
    const value = this.CONSUME(T.StringLiteral);
    const close = this.CONSUME(T.RParen);
    return this.b?.annotation(at, value, close)!;
  });

  private principalScope = this.RULE("principalScope", (): A.ScopePart => {
    const head = this.CONSUME(T.Principal);
    const tail = this.OPTION(() => this.SUBRULE(this.scopeTail));
    return this.b?.scope(head, tail)!;
  });

  private actionScope = this.RULE("actionScope", (): A.ScopePart => {
    const head = this.CONSUME(T.Action);
    const tail = this.OPTION(() => this.SUBRULE(this.scopeTail));
    return this.b?.scope(head, tail)!;
  });

  private resourceScope = this.RULE("resourceScope", (): A.ScopePart => {
    const head = this.CONSUME(T.Resource);
    const tail = this.OPTION(() => this.SUBRULE(this.scopeTail));
    return this.b?.scope(head, tail)!;
  });

  private scopeTail = this.RULE("scopeTail", (): ScopeTail => {
    const op = this.OR((this.scopeOpAlts ??= [
      { ALT: () => this.CONSUME(T.EqEq) },
      { ALT: () => this.CONSUME(T.In) },
      { ALT: () => this.CONSUME(T.Like) },
    ]));
    const value = this.SUBRULE(this.value);
    return { op, value };
  });

  private condition = this.RULE("condition", (): A.Condition => {
    const keyword = this.OR((this.conditionAlts ??= [{ ALT: () => this.CONSUME(T.When) }, { ALT: () => this.CONSUME(T.Unless) }]));
    this.CONSUME(T.LBrace);
    const expr = this.SUBRULE(this.expr);
    const close = this.CONSUME(T.RBrace);
    return this.b?.condition(keyword, expr, close)!;
  });

  // ------------------------------------------------------------ expressions
  // Precedence, loosest first: ||, &&, !, comparison (== != < <= > >= in like).

  private expr = this.RULE("expr", (): A.Expr => {
    const operands = [this.SUBRULE(this.andExpr)];
    this.MANY(() => {
      this.CONSUME(T.OrOr);
      operands.push(this.SUBRULE2(this.andExpr));
    });
    return this.b?.logical(operands, "||")!;
  });

  private andExpr = this.RULE("andExpr", (): A.Expr => {
    const operands = [this.SUBRULE(this.unaryExpr)];
    this.MANY(() => {
      this.CONSUME(T.AndAnd);
      operands.push(this.SUBRULE2(this.unaryExpr));
    });
    return this.b?.logical(operands, "&&")!;
  });

  private unaryExpr = this.RULE("unaryExpr", (): A.Expr =>
    this.OR((this.unaryAlts ??= [
      {
        ALT: () => {
          const bang = this.CONSUME(T.Bang);
          const operand = this.SUBRULE(this.unaryExpr);
          return this.b?.not(bang, operand)!;
        },
      },
      { ALT: () => this.SUBRULE(this.relExpr) },
    ])),
  );

  private relExpr = this.RULE("relExpr", (): A.Expr => {
    const left = this.SUBRULE(this.primary);
    const rest = this.OPTION(() => {
      const op = this.OR((this.operatorAlts ??= [
        { ALT: () => this.CONSUME(T.EqEq) },
        { ALT: () => this.CONSUME(T.NotEq) },
        { ALT: () => this.CONSUME(T.LtEq) },
        { ALT: () => this.CONSUME(T.GtEq) },
        { ALT: () => this.CONSUME(T.Lt) },
        { ALT: () => this.CONSUME(T.Gt) },
        { ALT: () => this.CONSUME(T.In) },
        { ALT: () => this.CONSUME(T.Like) },
      ]));
      const right = this.SUBRULE2(this.primary);
      return { op, right };
    });
    return rest === undefined ? left : this.b?.relation(left, rest.op, rest.right)!;
  });

  private primary = this.RULE("primary", (): A.Expr =>
    this.OR((this.primaryAlts ??= [
      {
        ALT: () => {
          const open = this.CONSUME(T.LParen);
          const inner = this.SUBRULE(this.expr);
          const close = this.CONSUME(T.RParen);
          return this.b?.paren(open, inner, close)!;
        },
      },
      { ALT: () => this.SUBRULE(this.value) },
    ])),
  );

  private value = this.RULE("value", (): A.Value =>
    this.OR((this.valueAlts ??= {
      IGNORE_AMBIGUITIES: true,
      DEF: [
        { ALT: () => this.SUBRULE(this.ref) },
        { ALT: () => this.SUBRULE(this.intOrRange) },
        {
          ALT: () => {
            const t = this.CONSUME(T.Ipv4);
            return this.b?.ipOrCidr(t)!;
          },
        },
        {
          ALT: () => {
            const t = this.CONSUME(T.Ipv6);
            return this.b?.ipOrCidr(t)!;
          },
        },
        {
          ALT: () => {
            const t = this.CONSUME(T.Endpoint4);
            return this.b?.endpoint(t)!;
          },
        },
        {
          ALT: () => {
            const t = this.CONSUME(T.Endpoint6);
            return this.b?.endpoint(t)!;
          },
        },
        {
          ALT: () => {
            const t = this.CONSUME(T.StringLiteral);
            return this.b?.string(t)!;
          },
        },
        {
          ALT: () => {
            const t = this.CONSUME(T.True);
            return this.b?.bool(t)!;
          },
        },
        {
          ALT: () => {
            const t = this.CONSUME(T.False);
            return this.b?.bool(t)!;
          },
        },
        { ALT: () => this.SUBRULE(this.list) },
        { ALT: () => this.SUBRULE(this.name) },
      ],
    })),
  );

  // INVARIANT: tried before `name`, so `workload x` is a reference and a bare `workload` a name.
  private ref = this.RULE("ref", (): A.RefExpr => {
    const kind = this.OR((this.refAlts ??= [
      { ALT: () => this.CONSUME(T.Workload) },
      { ALT: () => this.CONSUME(T.Group) },
      { ALT: () => this.CONSUME(T.Net) },
      { ALT: () => this.CONSUME(T.Ports) },
      { ALT: () => this.CONSUME(T.Service) },
    ]));
    const name = this.CONSUME(T.Identifier);
    return this.b?.ref(kind, name)!;
  });

  private intOrRange = this.RULE("intOrRange", (): A.IntLit | A.RangeLit => {
    const low = this.CONSUME1(T.Int);
    const high = this.OPTION(() => {
      this.CONSUME(T.DotDot);
      return this.CONSUME2(T.Int);
    });
    return this.b?.intOrRange(low, high)!;
  });

  private name = this.RULE("name", (): A.NameExpr => {
    const head = this.CONSUME1(T.Identifier);
    const member = this.OPTION(() => {
      this.CONSUME(T.Dot);
      return this.CONSUME2(T.Identifier);
    });
    return this.b?.name(head, member)!;
  });

  // A trailing comma is allowed: `[a, b,]`.
  private list = this.RULE("list", (): A.ListExpr => {
    const open = this.CONSUME(T.LBracket);
    const items: A.Value[] = [];
    this.OPTION(() => {
      items.push(this.SUBRULE(this.value));
      this.MANY(() => {
        this.CONSUME1(T.Comma);
        items.push(this.SUBRULE2(this.value));
      });
      this.OPTION2(() => this.CONSUME2(T.Comma));
    });
    const close = this.CONSUME(T.RBracket);
    return this.b?.list(open, items, close)!;
  });

  // ------------------------------------------------------------ tests

  // test "name" { allow connect from … to …; … }
  private testBlock = this.RULE("testBlock", (): A.TestBlock => {
    const keyword = this.CONSUME(T.Test);
    const nameToken = this.CONSUME(T.StringLiteral);
    const name = this.b?.string(nameToken)!;
    this.CONSUME(T.LBrace);
    const assertions: A.Assertion[] = [];
    this.MANY(() => {
      assertions.push(this.SUBRULE(this.assertion));
    });
    const close = this.CONSUME(T.RBrace);
    return this.b?.testBlock(keyword, name, assertions, close)!;
  });

  // allow connect from workload web uid 0 gid 0 to 10.0.0.1:80/tcp because "r1", "r2";
  private assertion = this.RULE("assertion", (): A.Assertion => {
    const expect = this.CONSUME1(T.Identifier);
    const action = this.CONSUME2(T.Identifier);
    this.CONSUME(T.From);
    const from = this.SUBRULE(this.testFrom);
    const settings: AssertionSetting[] = [];
    this.MANY({
      GATE: () => {
        const image = this.LA(1).image;
        return image === "uid" || image === "gid";
      },
      DEF: () => {
        const key = this.CONSUME3(T.Identifier);
        const value = this.CONSUME(T.Int);
        settings.push({ key, value });
      },
    });
    const head = this.b?.assertionHead(expect, action, from, settings)!;
    this.CONSUME(T.To);
    const to = this.SUBRULE(this.value);
    const because: IToken[] = [];
    this.OPTION(() => {
      this.CONSUME(T.Because);
      this.AT_LEAST_ONE_SEP({
        SEP: T.Comma,
        DEF: () => {
          because.push(this.CONSUME(T.StringLiteral));
        },
      });
    });
    const semicolon = this.CONSUME(T.Semicolon);
    return this.b?.assertion(head, to, because, semicolon)!;
  });

  private testFrom = this.RULE("testFrom", (): TestFromSyntax =>
    this.OR((this.testFromAlts ??= {
      IGNORE_AMBIGUITIES: true,
      DEF: [
        {
          ALT: (): TestFromSyntax => {
            const keyword = this.CONSUME(T.Workload);
            const name = this.CONSUME1(T.Identifier);
            return { kind: "workload", keyword, name };
          },
        },
        { ALT: (): TestFromSyntax => ({ kind: "id", id: this.CONSUME(T.StringLiteral) }) },
        { ALT: (): TestFromSyntax => ({ kind: "word", word: this.CONSUME2(T.Identifier) }) },
      ],
    })),
  );
}

/** The one parser instance (chevrotain parsers are built once and reused). */
export const policyParser = new PolicyParser();
