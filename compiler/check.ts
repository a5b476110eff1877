// Owns checking: name resolution (with "did you mean"), the types of every operator and
// operand (spec §4), literal values (SPIFFE IDs, CIDR host bits, port and range bounds),
// selectors, the scope forms, test assertions, and the warnings (unused declarations,
// workloads that may match the same process). Its output is the resolved `PolicySet`.
//
// INVARIANT: every expression node is typed exactly once, so each problem is reported once.
import type * as A from "../dsl/ast.js";
import { diag, didYouMean, hasErrors, type Diagnostic } from "../dsl/diagnostics.js";
import { formatIp, maskBytes } from "../dsl/ip.js";
import { bindPolicySet, describeKind, type Bindings } from "./bind.js";
import type { Cidr, Endpoint, IdentityMember, MatchSpec, PolicySet, PolicySource, PortRange, RuleInfo, ServiceInfo, WorkloadInfo } from "./model.js";
import { endpointOf } from "./model.js";
import { checkSpiffeId, hasWildcard, normalisePattern, patternNeverMatches, type IdentityPattern, type SpiffeCheck } from "./spiffe.js";

/** The types of the language. `*set` types are what `in` tests against. */
type Ty = "int" | "ip" | "protocol" | "identity" | "bool" | "string" | "action" | "endpoint" | "intset" | "ipset" | "identityset" | "endpointset" | "emptyset" | "error";

const tyText: Record<Ty, string> = {
  int: "an int",
  ip: "an ip address",
  protocol: "a protocol",
  identity: "an identity",
  bool: "a boolean",
  string: "a string",
  action: "an action",
  endpoint: "an endpoint",
  intset: "a set of ports",
  ipset: "a set of addresses",
  identityset: "a set of identities",
  endpointset: "a service",
  emptyset: "an empty list",
  error: "an invalid value",
};

/** Request attributes usable in conditions, and their types (spec §1). */
const attributes: Record<string, Ty> = { port: "int", ip: "ip", protocol: "protocol", principal: "identity", "principal.uid": "int", "principal.gid": "int" };
const constants: Record<string, Ty> = { tcp: "protocol", udp: "protocol", connect: "action" };

interface Typed {
  readonly ty: Ty;
  /** The request attribute this expression is, if it is one (`port`, `principal.uid`, …). */
  readonly attribute: string | undefined;
}

/** The `Typed` of each type that is no attribute, made once (they are immutable). */
const plainTypes = Object.fromEntries(Object.keys(tyText).map((ty) => [ty, { ty, attribute: undefined }])) as Record<Ty, Typed>;

function plain(ty: Ty): Typed {
  return plainTypes[ty];
}

const refTypes: Record<A.RefKind, Ty> = { workload: "identity", group: "identityset", net: "ipset", ports: "intset", service: "endpointset" };

/** What `in` accepts on its right for each type on its left, and the hint when it is not that. */
const inSets: Partial<Record<Ty, { sets: readonly Ty[]; hint: string }>> = {
  int: { sets: ["intset", "emptyset"], hint: "expected a port range like `8000..8999`, a list of ports or `ports NAME`" },
  ip: { sets: ["ipset", "ip", "emptyset"], hint: "expected a CIDR, a list of CIDRs or `net NAME`" },
  identity: { sets: ["identityset", "emptyset"], hint: "expected `group NAME` or a list of workloads and SPIFFE IDs" },
};

/** Types that `==` and `!=` compare. */
const equatable: readonly Ty[] = ["int", "ip", "protocol", "identity", "bool"];

const SELECTOR_KEYS = ["cgroup", "uid", "gid", "exe", "sha256"] as const;

export interface CheckResult {
  readonly diagnostics: readonly Diagnostic[];
  /** Undefined when there are errors. */
  readonly policySet: PolicySet | undefined;
}

export function checkPolicySet(sources: readonly PolicySource[], files: readonly A.PolicyFile[]): CheckResult {
  const diagnostics: Diagnostic[] = [];
  const bindings = bindPolicySet(sources, files, diagnostics);
  const checker = new Checker(bindings, sources, diagnostics);
  const policySet = checker.run(files);
  return { diagnostics, policySet: hasErrors(diagnostics) ? undefined : policySet };
}

class Checker {
  private readonly used = new Set<string>();
  private readonly groups = new Map<string, IdentityMember[]>();
  private readonly nets = new Map<string, Cidr[]>();
  private readonly ports = new Map<string, PortRange[]>();
  private readonly resolving: string[] = [];
  private readonly texts = new Map<string, string>();
  // Pure functions of a string, memoised: the same IDs and patterns recur in every rule.
  private readonly spiffeChecks = new Map<string, SpiffeCheck>();
  private readonly wildcards = new Map<string, boolean>();
  private readonly namesByKind = new Map<A.RefKind, readonly string[]>();
  /** The "did you mean" hint of each unknown name, by kind (a misspelt name often recurs). */
  private readonly suggestions = new Map<string, string>();
  /** Each pattern text, normalised (one object per text: patterns are read-only and compared by text). */
  private readonly patterns = new Map<string, { pattern: IdentityPattern; never: string | undefined }>();

  constructor(
    private readonly bindings: Bindings,
    private readonly sources: readonly PolicySource[],
    private readonly diagnostics: Diagnostic[],
  ) {
    for (const s of sources) this.texts.set(s.path, s.text);
  }

  run(files: readonly A.PolicyFile[]): PolicySet {
    const workloads: WorkloadInfo[] = [];
    const services = new Map<string, ServiceInfo>();
    // Declarations first, in order, so that list declarations resolve (with cycle checks) before use.
    for (const file of files) {
      for (const item of file.items) {
        if (item.kind === "rule" || item.kind === "test" || item.kind === "default") continue;
        // A duplicate declaration was reported by the binder; only the first one is checked.
        if (this.bindings.symbols.get(item.name.name)?.decl !== item) continue;
        switch (item.kind) {
          case "workload":
            workloads.push(this.checkWorkload(item));
            break;
          case "service":
            services.set(item.name.name, this.checkService(item));
            break;
          case "group":
            this.resolveGroup(item);
            break;
          case "net":
            this.resolveNet(item);
            break;
          case "ports":
            this.resolvePorts(item);
            break;
        }
      }
    }
    const rules: RuleInfo[] = this.bindings.rules.map(({ id, rule }) => {
      this.checkRule(rule);
      return { id, effect: rule.effect, annotations: rule.annotations.map((a) => ({ name: a.name.name, value: a.value.value })), ast: rule };
    });
    const ruleIds = new Set(rules.map((r) => r.id));
    for (const test of this.bindings.tests) this.checkTest(test, ruleIds);
    this.warnUnused();
    this.warnOverlappingWorkloads(workloads);
    return {
      sources: this.sources,
      files,
      workloads,
      workloadsByName: new Map(workloads.map((w) => [w.name, w])),
      groups: this.groups,
      nets: this.nets,
      ports: this.ports,
      services,
      defaultUnidentified: this.bindings.defaultUnidentified,
      rules,
      tests: this.bindings.tests.map((t) => ({ name: t.name.value, ast: t })),
    };
  }

  private report(d: Diagnostic): void {
    this.diagnostics.push(d);
  }

  private snippet(span: A.Span): string {
    const text = this.texts.get(span.file)?.slice(span.offset, span.offset + span.length).replace(/\s+/g, " ") ?? "";
    return text.length > 40 ? `${text.slice(0, 37)}...` : text;
  }

  // ---------------------------------------------------------------- names

  /** Resolves `ref` to a declaration of `kind`; reports unknown names and wrong kinds. */
  private lookup(name: A.Ident, kind: A.RefKind): A.Declaration | undefined {
    const symbol = this.bindings.symbols.get(name.name);
    if (symbol === undefined) {
      const key = `${kind} ${name.name}`;
      let hint = this.suggestions.get(key);
      if (hint === undefined) this.suggestions.set(key, (hint = didYouMean(name.name, this.namesOfKind(kind))));
      this.report(diag("UnknownName", name.span, describeKind(kind), name.name, hint));
      return undefined;
    }
    if (symbol.kind !== kind) {
      this.report(diag("WrongKind", name.span, name.name, describeKind(symbol.kind), describeKind(kind)));
      return undefined;
    }
    this.used.add(name.name);
    return symbol.decl;
  }

  /** The declared names of `kind`, in declaration order (listed once per kind). */
  private namesOfKind(kind: A.RefKind): readonly string[] {
    let names = this.namesByKind.get(kind);
    if (names === undefined) {
      names = [...this.bindings.symbols.entries()].filter(([, s]) => s.kind === kind).map(([n]) => n);
      this.namesByKind.set(kind, names);
    }
    return names;
  }

  /** Guards a nested list declaration against cycles; returns false (and reports) on one. */
  private enter(decl: A.GroupDecl | A.NetDecl | A.PortsDecl, at: A.Span): boolean {
    const index = this.resolving.indexOf(decl.name.name);
    if (index >= 0) {
      const path = [...this.resolving.slice(index), decl.name.name].join(" → ");
      this.report(diag("CyclicReference", at, describeKind(decl.kind), decl.name.name, path));
      return false;
    }
    this.resolving.push(decl.name.name);
    return true;
  }

  // ---------------------------------------------------------------- declarations

  private checkWorkload(decl: A.WorkloadDecl): WorkloadInfo {
    let id: string | undefined;
    const matches: MatchSpec[] = [];
    for (const entry of decl.entries) {
      if (entry.kind === "id") {
        if (id !== undefined) {
          this.report(diag("DuplicateEntry", entry.span, "id", `workload \`${decl.name.name}\``));
          continue;
        }
        id = this.exactIdentity(entry.value) ?? "";
      } else if (entry.kind === "match") {
        matches.push(this.checkMatch(entry, decl.name.name));
      } else {
        this.unknownEntry(entry, "workload", "`id = \"spiffe://…\";` or `match { … }`");
      }
    }
    if (id === undefined) this.report(diag("MissingEntry", decl.name.span, "workload", decl.name.name, "id"));
    if (matches.length === 0) this.report(diag("WorkloadWithoutMatch", decl.name.span, decl.name.name));
    return { name: decl.name.name, id: id ?? "", matches, decl };
  }

  private unknownEntry(entry: A.UnknownEntry, where: string, expected: string): void {
    if (entry.value !== undefined) this.typeOf(entry.value);
    const known = where === "workload" ? ["id", "match"] : ["id", "endpoints"];
    if (known.includes(entry.key.name)) {
      const wanted = entry.key.name === "id" ? "a SPIFFE ID string" : "a list of endpoints";
      this.report(diag("SyntaxExpected", entry.value?.span ?? entry.span, wanted, `\`${this.snippet(entry.value?.span ?? entry.span)}\``));
      return;
    }
    this.report(diag("UnknownEntryKey", entry.key.span, entry.key.name, where, `${expected}${didYouMean(entry.key.name, known).replace(/^; /, ", ")}`));
  }

  private checkMatch(entry: A.MatchEntry, workload: string): MatchSpec {
    const spec: Record<string, string | number> = {};
    if (entry.selectors.length === 0) this.report(diag("EmptyList", entry.span, "a `match` block (it would match every process)"));
    for (const sel of entry.selectors) {
      const key = sel.key.name;
      if (!(SELECTOR_KEYS as readonly string[]).includes(key)) {
        this.typeOf(sel.value);
        this.report(diag("UnknownSelector", sel.key.span, key, didYouMean(key, SELECTOR_KEYS) || `; expected one of ${SELECTOR_KEYS.map((k) => `\`${k}\``).join(", ")}`));
        continue;
      }
      if (key in spec) {
        this.report(diag("DuplicateEntry", sel.span, key, `a match block of workload \`${workload}\``));
        continue;
      }
      const value = this.selectorValue(key, sel.value);
      if (value !== undefined) spec[key] = value;
    }
    return spec as MatchSpec;
  }

  private selectorValue(key: string, value: A.Expr): string | number | undefined {
    const bad = (why: string): undefined => {
      this.report(diag("InvalidSelectorValue", value.span, key, why));
      return undefined;
    };
    if (key === "uid" || key === "gid") {
      if (value.kind !== "int") return bad(`expected a number, as in \`${key} = 1000\``);
      return value.value;
    }
    if (value.kind !== "string") return bad(`expected a string, as in \`${key} = "${key === "sha256" ? "e3b0c4…" : "/…"}"\``);
    const text = value.value;
    if (key === "sha256") {
      if (!/^[0-9a-fA-F]{64}$/.test(text)) return bad("expected 64 hexadecimal digits");
      return text.toLowerCase();
    }
    if (!text.startsWith("/")) return bad(`expected an absolute path starting with \`/\``);
    const segments = text === "/" ? [] : text.slice(1).split("/");
    if (segments.some((s) => s === "" || s === "." || s === "..")) return bad("empty, `.` and `..` path segments are not allowed (and no trailing `/`)");
    if (text.includes("\0")) return bad("NUL is not allowed in a path");
    return text;
  }

  private checkService(decl: A.ServiceDecl): ServiceInfo {
    let id: string | undefined;
    let endpoints: Endpoint[] | undefined;
    for (const entry of decl.entries) {
      if (entry.kind === "id") {
        if (id !== undefined) this.report(diag("DuplicateEntry", entry.span, "id", `service \`${decl.name.name}\``));
        else id = this.exactIdentity(entry.value) ?? "";
      } else if (entry.kind === "endpoints") {
        if (endpoints !== undefined) {
          this.report(diag("DuplicateEntry", entry.span, "endpoints", `service \`${decl.name.name}\``));
          continue;
        }
        endpoints = [];
        for (const item of entry.items) {
          if (item.kind === "endpoint") {
            const ep = this.endpoint(item);
            if (ep !== undefined) endpoints.push(ep);
          } else {
            this.typeOf(item);
            this.report(diag("InvalidListItem", item.span, "`endpoints`", `\`${this.snippet(item.span)}\`; write endpoints like \`10.0.0.1:443/tcp\``));
          }
        }
        if (entry.items.length === 0) this.report(diag("EmptyList", entry.span, `the endpoints of service \`${decl.name.name}\``));
      } else {
        this.unknownEntry(entry, "service", "`id = \"spiffe://…\";` or `endpoints = [ … ];`");
      }
    }
    if (endpoints === undefined) this.report(diag("MissingEntry", decl.name.span, "service", decl.name.name, "endpoints"));
    return { name: decl.name.name, id, endpoints: endpoints ?? [], decl };
  }

  /** Resolves a list declaration once (memoised in `cache`), refusing cycles through nested references. */
  private resolveList<T>(decl: A.GroupDecl | A.NetDecl | A.PortsDecl, at: A.Span, cache: Map<string, T[]>, items: () => T[]): T[] {
    const done = cache.get(decl.name.name);
    if (done !== undefined) return done;
    if (!this.enter(decl, at)) return [];
    const resolved = items();
    this.resolving.pop();
    cache.set(decl.name.name, resolved);
    return resolved;
  }

  private resolveGroup(decl: A.GroupDecl, at: A.Span = decl.name.span): IdentityMember[] {
    return this.resolveList(decl, at, this.groups, () => this.identityMembers(decl.members.items, "a group"));
  }

  private resolveNet(decl: A.NetDecl, at: A.Span = decl.name.span): Cidr[] {
    return this.resolveList(decl, at, this.nets, () => this.cidrItems(decl.items.items, "a net"));
  }

  private resolvePorts(decl: A.PortsDecl, at: A.Span = decl.name.span): PortRange[] {
    return this.resolveList(decl, at, this.ports, () => this.portItems(decl.items.items, "a ports set"));
  }

  // ---------------------------------------------------------------- sets of identities, addresses, ports

  private identityMembers(items: readonly A.Expr[], container: string): IdentityMember[] {
    const out: IdentityMember[] = [];
    for (const item of items) {
      if (item.kind === "ref" && item.refKind === "workload") {
        const decl = this.lookup(item.name, "workload") as A.WorkloadDecl | undefined;
        const idEntry = decl?.entries.find((e): e is A.IdEntry => e.kind === "id");
        const id = idEntry === undefined ? undefined : this.checkSpiffeId(idEntry.value.value);
        if (id?.ok === true) out.push({ kind: "exact", id: id.id });
      } else if (item.kind === "ref" && item.refKind === "group") {
        const decl = this.lookup(item.name, "group") as A.GroupDecl | undefined;
        if (decl !== undefined) out.push(...this.resolveGroup(decl, item.name.span));
      } else if (item.kind === "string") {
        const member = this.identityMember(item);
        if (member !== undefined) out.push(member);
      } else {
        this.typeOf(item);
        this.report(diag("InvalidListItem", item.span, container, `\`${this.snippet(item.span)}\`; identities are \`workload NAME\`, \`group NAME\` or SPIFFE ID strings and patterns`));
      }
    }
    return out;
  }

  /** A string standing for identities: an exact SPIFFE ID, or a pattern when it has a `*`. */
  private identityMember(lit: A.StringLit): IdentityMember | undefined {
    let wildcard = this.wildcards.get(lit.value);
    if (wildcard === undefined) this.wildcards.set(lit.value, (wildcard = hasWildcard(lit.value)));
    if (!wildcard) {
      const id = this.exactIdentity(lit);
      return id === undefined ? undefined : { kind: "exact", id };
    }
    return { kind: "pattern", pattern: this.pattern(lit) };
  }

  private pattern(lit: A.StringLit): IdentityPattern {
    let known = this.patterns.get(lit.value);
    if (known === undefined) {
      const pattern = normalisePattern(lit.value);
      this.patterns.set(lit.value, (known = { pattern, never: patternNeverMatches(pattern) }));
    }
    if (known.never !== undefined) this.report(diag("PatternNeverMatches", lit.span, lit.value, known.never));
    return known.pattern;
  }

  private checkSpiffeId(text: string): SpiffeCheck {
    let result = this.spiffeChecks.get(text);
    if (result === undefined) this.spiffeChecks.set(text, (result = checkSpiffeId(text)));
    return result;
  }

  private exactIdentity(lit: A.StringLit): string | undefined {
    const result = this.checkSpiffeId(lit.value);
    if (!result.ok) {
      this.report(diag("InvalidSpiffeId", lit.span, lit.value, result.reason));
      return undefined;
    }
    return result.id;
  }

  private cidrItems(items: readonly A.Expr[], container: string): Cidr[] {
    const out: Cidr[] = [];
    for (const item of items) {
      if (item.kind === "cidr") {
        const c = this.cidr(item);
        if (c !== undefined) out.push(c);
      } else if (item.kind === "ip") {
        out.push({ family: item.family, bytes: item.bytes, prefix: item.family === 4 ? 32 : 128 });
      } else if (item.kind === "ref" && item.refKind === "net") {
        const decl = this.lookup(item.name, "net") as A.NetDecl | undefined;
        if (decl !== undefined) out.push(...this.resolveNet(decl, item.name.span));
      } else {
        this.typeOf(item);
        this.report(diag("InvalidListItem", item.span, container, `\`${this.snippet(item.span)}\`; addresses are IPs, CIDRs or \`net NAME\``));
      }
    }
    return out;
  }

  private portItems(items: readonly A.Expr[], container: string): PortRange[] {
    const out: PortRange[] = [];
    for (const item of items) {
      if (item.kind === "int") {
        if (this.port(item)) out.push({ low: item.value, high: item.value });
      } else if (item.kind === "range") {
        const r = this.range(item, true);
        if (r !== undefined) out.push(r);
      } else if (item.kind === "ref" && item.refKind === "ports") {
        const decl = this.lookup(item.name, "ports") as A.PortsDecl | undefined;
        if (decl !== undefined) out.push(...this.resolvePorts(decl, item.name.span));
      } else {
        this.typeOf(item);
        this.report(diag("InvalidListItem", item.span, container, `\`${this.snippet(item.span)}\`; ports are numbers, ranges like \`8000..8999\` or \`ports NAME\``));
      }
    }
    return out;
  }

  private cidr(lit: A.CidrLit): Cidr | undefined {
    const masked = maskBytes(lit.bytes, lit.prefix);
    if (masked.some((b, i) => b !== lit.bytes[i])) {
      this.report(diag("CidrHostBits", lit.span, lit.raw, `${formatIp(lit.family, masked)}/${lit.prefix}`));
      return undefined;
    }
    if (lit.family === 6 && lit.prefix < 96) {
      const mappedBase = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];
      if (maskBytes(mappedBase, lit.prefix).every((b, i) => b === lit.bytes[i])) this.report(diag("MappedRangeInV6Cidr", lit.span, lit.raw));
    }
    return { family: lit.family, bytes: lit.bytes, prefix: lit.prefix };
  }

  private port(lit: A.IntLit): boolean {
    if (lit.value > 65535) {
      this.report(diag("PortOutOfRange", lit.span, lit.value));
      return false;
    }
    return true;
  }

  private range(lit: A.RangeLit, isPort: boolean): PortRange | undefined {
    if (isPort && (!this.port(lit.low) || !this.port(lit.high))) return undefined;
    if (lit.low.value > lit.high.value) {
      this.report(diag("EmptyRange", lit.span, lit.low.value, lit.high.value));
      return undefined;
    }
    return { low: lit.low.value, high: lit.high.value };
  }

  private endpoint(lit: A.EndpointLit): Endpoint | undefined {
    if (!this.port(lit.port)) return undefined;
    return endpointOf(lit);
  }

  // ---------------------------------------------------------------- rules

  private checkRule(rule: A.Rule): void {
    this.checkPrincipalScope(rule.principal);
    this.checkActionScope(rule.action);
    this.checkResourceScope(rule.resource);
    for (const condition of rule.conditions) {
      const t = this.typeOf(condition.expr);
      if (t.ty !== "bool" && t.ty !== "error") this.report(diag("NotBoolean", condition.expr.span, tyText[t.ty]));
    }
  }

  private invalidScope(scope: A.ScopePart, expected: string): void {
    this.report(diag("InvalidScope", scope.span, this.snippet(scope.span), scope.head.name, expected));
  }

  private checkPrincipalScope(scope: A.ScopePart): void {
    const v = scope.value;
    if (v === undefined) return;
    if (scope.op === "==" && v.kind === "ref" && v.refKind === "workload") this.lookup(v.name, "workload");
    else if (scope.op === "==" && v.kind === "string") this.exactIdentity(v);
    else if (scope.op === "in" && v.kind === "ref" && v.refKind === "group") this.lookup(v.name, "group");
    else if (scope.op === "in" && v.kind === "list") this.identityMembers(v.items, "a principal list");
    else if (scope.op === "like" && v.kind === "string") this.pattern(v);
    else {
      this.invalidScope(scope, "use `principal == workload NAME`, `principal == \"spiffe://…\"`, `principal in group NAME`, `principal in [ … ]` or `principal like \"spiffe://…/*\"`");
    }
  }

  private checkActionScope(scope: A.ScopePart): void {
    const v = scope.value;
    if (v === undefined) return;
    const isAction = (e: A.Expr): boolean => {
      if (e.kind === "name" && e.member === undefined) {
        if (e.name.name !== "connect") this.report(diag("UnknownAction", e.span, e.name.name));
        return true;
      }
      return false;
    };
    if (scope.op === "==" && isAction(v)) return;
    if (scope.op === "in" && v.kind === "list" && v.items.every(isAction)) return;
    this.invalidScope(scope, "use `action` or `action == connect`");
  }

  private checkResourceScope(scope: A.ScopePart): void {
    const v = scope.value;
    if (v === undefined) return;
    if (scope.op === "==" && v.kind === "ref" && v.refKind === "service") this.lookup(v.name, "service");
    else if (scope.op === "==" && v.kind === "ip") return;
    else if (scope.op === "==" && v.kind === "endpoint") this.endpoint(v);
    else if (scope.op === "in" && (v.kind === "cidr" || v.kind === "ip" || v.kind === "list" || (v.kind === "ref" && v.refKind === "net"))) {
      this.cidrItems(v.kind === "list" ? v.items : [v], "a resource list");
    } else {
      this.invalidScope(scope, "use `resource == service NAME`, `resource == IP`, `resource in net NAME`, `resource in CIDR` or `resource in [ … ]`");
    }
  }

  // ---------------------------------------------------------------- expressions

  private typeOf(e: A.Expr): Typed {
    switch (e.kind) {
      case "int":
        return plain("int");
      case "range":
        return plain(this.range(e, false) === undefined ? "error" : "intset");
      case "ip":
        return plain("ip");
      case "cidr":
        return plain(this.cidr(e) === undefined ? "error" : "ipset");
      case "endpoint":
        return plain(this.endpoint(e) === undefined ? "error" : "endpoint");
      case "string":
        return plain("string");
      case "bool":
        return plain("bool");
      case "ref": {
        const decl = this.lookup(e.name, e.refKind);
        if (decl === undefined) return plain("error");
        return plain(refTypes[e.refKind]);
      }
      case "name":
        return this.typeOfName(e);
      case "list":
        return plain(this.typeOfList(e));
      case "paren":
        return this.typeOf(e.inner);
      case "not": {
        const t = this.typeOf(e.operand);
        if (t.ty !== "bool" && t.ty !== "error") this.report(diag("NotBoolean", e.operand.span, tyText[t.ty]));
        return plain("bool");
      }
      case "logical": {
        for (const side of [e.left, e.right]) {
          const t = this.typeOf(side);
          if (t.ty !== "bool" && t.ty !== "error") this.report(diag("NotBoolean", side.span, tyText[t.ty]));
        }
        return plain("bool");
      }
      case "compare":
        return this.typeOfCompare(e);
      case "in":
        return this.typeOfIn(e);
      case "like":
        return this.typeOfLike(e);
    }
  }

  private typeOfName(e: A.NameExpr): Typed {
    const full = e.member === undefined ? e.name.name : `${e.name.name}.${e.member.name}`;
    const attrTy = attributes[full];
    if (attrTy !== undefined) return { ty: attrTy, attribute: full };
    const constTy = constants[full];
    if (constTy !== undefined) return { ty: constTy, attribute: undefined };
    const known = [...Object.keys(attributes), ...Object.keys(constants), "true", "false"];
    let hint = didYouMean(full, known);
    if (hint === "" && e.name.name === "resource") hint = "; in conditions, use `ip`, `port` and `protocol`";
    if (hint === "" && this.bindings.symbols.has(full)) {
      const kind = this.bindings.symbols.get(full)!.kind;
      hint = `; to refer to the ${describeKind(kind)}, write \`${kind} ${full}\``;
    }
    this.report(diag("UnknownAttribute", e.span, full, hint));
    return { ty: "error", attribute: undefined };
  }

  private typeOfList(e: A.ListExpr): Ty {
    if (e.items.length === 0) return "emptyset";
    const family = (item: A.Expr): Ty | undefined => {
      switch (item.kind) {
        case "int":
        case "range":
          return "intset";
        case "ip":
        case "cidr":
          return "ipset";
        case "string":
          return "identityset";
        case "endpoint":
          return "endpointset";
        case "ref":
          return ({ workload: "identityset", group: "identityset", net: "ipset", ports: "intset", service: "endpointset" } as const)[item.refKind];
        default:
          return undefined;
      }
    };
    let listTy: Ty | undefined;
    let first: A.Expr | undefined;
    for (const item of e.items) {
      const f = family(item);
      if (f === undefined) {
        this.typeOf(item);
        this.report(diag("InvalidListItem", item.span, "a list", `\`${this.snippet(item.span)}\`; lists hold ports, addresses, identities or endpoints`));
        return "error";
      }
      if (listTy !== undefined && f !== listTy) {
        this.report(diag("MixedList", item.span, `${tyText[listTy].replace(/^a set of /, "")} (\`${this.snippet(first!.span)}\`)`, `${tyText[f].replace(/^a set of /, "")} (\`${this.snippet(item.span)}\`)`));
        return "error";
      }
      listTy = f;
      first ??= item;
    }
    // Items are checked as members of the set they form (SPIFFE IDs, CIDR host bits, port bounds).
    if (listTy === "identityset") this.identityMembers(e.items, "a list");
    else if (listTy === "ipset") this.cidrItems(e.items, "a list");
    else for (const item of e.items) this.typeOf(item);
    return listTy!;
  }

  /** Port bounds of a constant used with the `port` attribute. */
  private checkPortConstant(e: A.Expr): void {
    if (e.kind === "int") this.port(e);
    else if (e.kind === "range") {
      if (e.low.value <= e.high.value) {
        this.port(e.low);
        this.port(e.high);
      }
    } else if (e.kind === "list") for (const item of e.items) this.checkPortConstant(item);
  }

  private typeOfCompare(e: A.CompareExpr): Typed {
    const left = this.typeOf(e.left);
    const right = this.typeOf(e.right);
    const result = plain("bool");
    if (left.ty === "error" || right.ty === "error") return result;
    const describe = (x: A.Expr, t: Typed) => `\`${this.snippet(x.span)}\` (${tyText[t.ty]})`;
    const mismatch = () => this.report(diag("TypeMismatch", e.span, e.op, describe(e.left, left), describe(e.right, right)));
    if (e.op === "==" || e.op === "!=") {
      const identityString = (a: Typed, b: Typed) => a.ty === "identity" && b.ty === "string";
      if (identityString(left, right) || identityString(right, left)) {
        this.exactIdentity((left.ty === "string" ? e.left : e.right) as A.StringLit);
      } else if (left.ty !== right.ty || !equatable.includes(left.ty)) {
        mismatch();
        return result;
      }
    } else if (left.ty !== "int" || right.ty !== "int") {
      mismatch();
      return result;
    }
    if (left.attribute !== undefined && right.attribute !== undefined) {
      this.report(diag("AttributeComparison", e.span, left.attribute, right.attribute));
    }
    if (left.attribute === "port" && (e.op === "==" || e.op === "!=")) this.checkPortConstant(e.right);
    if (right.attribute === "port" && (e.op === "==" || e.op === "!=")) this.checkPortConstant(e.left);
    return result;
  }

  private typeOfIn(e: A.InExpr): Typed {
    const left = this.typeOf(e.left);
    const right = this.typeOf(e.right);
    const result = plain("bool");
    if (left.ty === "error" || right.ty === "error") return result;
    const w = inSets[left.ty];
    if (w === undefined) {
      this.report(diag("InvalidIn", e.span, `\`${this.snippet(e.left.span)}\` (${tyText[left.ty]})`, `\`${this.snippet(e.right.span)}\``, "`in` tests a port, an ip or a principal"));
      return result;
    }
    if (!w.sets.includes(right.ty)) {
      this.report(diag("InvalidIn", e.span, `\`${this.snippet(e.left.span)}\``, `\`${this.snippet(e.right.span)}\` (${tyText[right.ty]})`, w.hint));
      return result;
    }
    if (left.attribute === "port") this.checkPortConstant(e.right);
    return result;
  }

  private typeOfLike(e: A.LikeExpr): Typed {
    const left = this.typeOf(e.left);
    const result = plain("bool");
    if (e.pattern.kind !== "string" || left.ty !== "identity") {
      if (e.pattern.kind !== "string") this.typeOf(e.pattern);
      if (left.ty !== "error") {
        this.report(diag("TypeMismatch", e.span, "like", `\`${this.snippet(e.left.span)}\` (${tyText[left.ty]})`, `\`${this.snippet(e.pattern.span)}\`; \`like\` matches \`principal\` against a string pattern`));
      }
      return result;
    }
    this.pattern(e.pattern);
    return result;
  }

  // ---------------------------------------------------------------- tests

  private checkTest(test: A.TestBlock, ruleIds: ReadonlySet<string>): void {
    for (const a of test.assertions) {
      if (a.action.name !== "connect") this.report(diag("UnknownAction", a.action.span, a.action.name));
      if (a.from.kind === "from-workload") this.lookup(a.from.name, "workload");
      else if (a.from.kind === "from-id") this.exactIdentity(a.from.id);
      if (a.to.kind === "endpoint") this.endpoint(a.to);
      else {
        this.typeOf(a.to);
        this.report(diag("InvalidTestTarget", a.to.span, `\`${this.snippet(a.to.span)}\``));
      }
      for (const reason of a.because) {
        if (!ruleIds.has(reason.value)) this.report(diag("UnknownRuleId", reason.span, reason.value, didYouMean(reason.value, ruleIds)));
      }
    }
  }

  // ---------------------------------------------------------------- warnings

  private warnUnused(): void {
    for (const [name, symbol] of this.bindings.symbols) {
      if (symbol.kind === "workload" || this.used.has(name)) continue;
      this.report(diag("UnusedDeclaration", symbol.decl.name.span, describeKind(symbol.kind), name));
    }
  }

  /**
   * Two workloads may match one process when a match block of each constrains at least one
   * common selector key compatibly (same uid/gid/exe/sha256; one cgroup path at or under the
   * other) and no common key conflicts. Blocks on disjoint keys (cgroup vs uid) are not
   * reported: first-match order resolves them by design (docs/language.md).
   *
   * Each block meets the blocks it shares a selector value with, or a cgroup at or above its
   * own (a pair is reported from its deeper cgroup). Blocks are indexed by the set of keys
   * they constrain and one value, so that a block meets only blocks that agree on its most
   * selective common key other than cgroup: a value shared by many blocks
   * (`exe = "/usr/bin/node"`) does not make the pass quadratic. INVARIANT: the blocks met are taken in the order of meeting
   * them key by key (cgroup by depth, then uid, gid, exe, sha256; each in block order), so
   * which pair is reported first, and from which blocks, is that order.
   */
  private warnOverlappingWorkloads(workloads: readonly WorkloadInfo[]): void {
    interface Block {
      readonly index: number;
      readonly workload: number;
      readonly spec: MatchSpec;
      readonly span: A.Span;
      /** Bit `i` is set when the block constrains `SELECTOR_KEYS[i]`. */
      readonly keys: number;
    }
    const CGROUP = 1; // the bit of SELECTOR_KEYS[0]
    const bucketKey = (keys: number, key: string, value: string | number) => `${keys}|${key}=${value}`;
    const buckets = new Map<string, Block[]>();
    const keySets = new Set<number>();
    const blocks: Block[] = [];
    workloads.forEach((w, workload) => {
      const matchEntries = w.decl.entries.filter((e): e is A.MatchEntry => e.kind === "match");
      w.matches.forEach((spec, i) => {
        let keys = 0;
        SELECTOR_KEYS.forEach((key, bit) => {
          if (spec[key] !== undefined) keys |= 1 << bit;
        });
        const block: Block = { index: blocks.length, workload, spec, span: matchEntries[i]!.span, keys };
        blocks.push(block);
        keySets.add(keys);
        for (const key of SELECTOR_KEYS) {
          const value = spec[key];
          if (value === undefined) continue;
          const k = bucketKey(keys, key, value);
          const list = buckets.get(k);
          if (list === undefined) buckets.set(k, [block]);
          else list.push(block);
        }
      });
    });
    const underOrAt = (inner: string, outer: string) => outer === "/" || inner === outer || inner.startsWith(`${outer}/`);
    const compatible = (a: MatchSpec, b: MatchSpec): boolean =>
      SELECTOR_KEYS.every((key) => {
        const x = a[key];
        const y = b[key];
        if (x === undefined || y === undefined) return true;
        if (key === "cgroup") return underOrAt(String(x), String(y)) || underOrAt(String(y), String(x));
        return x === y;
      });
    /** The cgroup paths at and above `path`, shallowest first. */
    const cgroupsAbove = (path: string): string[] => {
      const parts = path === "/" ? [""] : path.split("/");
      return parts.map((_, i) => parts.slice(0, i + 1).join("/") || "/");
    };
    const reported = new Set<string>();
    for (const block of blocks) {
      const above = block.spec.cgroup === undefined ? [] : cgroupsAbove(String(block.spec.cgroup));
      // Each block met, with where it comes in the order of meeting: [key, cgroup depth, index].
      const met: { other: Block; order: [number, number, number] }[] = [];
      for (const keys of keySets) {
        const common = keys & block.keys;
        if (common === 0) continue;
        if (common !== CGROUP) {
          // A block that agrees with this one agrees on every common key other than cgroup:
          // it is in the smallest of their buckets, and the rest is checked.
          const bit = SELECTOR_KEYS.findIndex((_, b) => b > 0 && (common & (1 << b)) !== 0);
          let candidates: readonly Block[] | undefined;
          SELECTOR_KEYS.forEach((key, b) => {
            if (b === 0 || (common & (1 << b)) === 0) return;
            const bucket = buckets.get(bucketKey(keys, key, block.spec[key]!)) ?? [];
            if (candidates === undefined || bucket.length < candidates.length) candidates = bucket;
          });
          for (const other of candidates!) {
            if (other.workload === block.workload || !compatible(block.spec, other.spec)) continue;
            const depth = (common & CGROUP) === 0 ? -1 : above.indexOf(String(other.spec.cgroup));
            met.push({ other, order: depth >= 0 ? [0, depth, other.index] : [bit, 0, other.index] });
          }
        } else {
          // Only cgroup in common: blocks at or above this block's cgroup.
          above.forEach((path, depth) => {
            for (const other of buckets.get(bucketKey(keys, "cgroup", path)) ?? []) {
              if (other.workload !== block.workload) met.push({ other, order: [0, depth, other.index] });
            }
          });
        }
      }
      met.sort((x, y) => x.order[0] - y.order[0] || x.order[1] - y.order[1] || x.order[2] - y.order[2]);
      for (const { other } of met) {
        const [first, second] = other.workload < block.workload ? [other, block] : [block, other];
        const pair = `${first.workload}/${second.workload}`;
        if (reported.has(pair)) continue;
        reported.add(pair);
        const shared = SELECTOR_KEYS.filter((k) => first.spec[k] !== undefined && second.spec[k] !== undefined)
          .map((k) => (first.spec[k] === second.spec[k] ? `both match ${k} \`${first.spec[k]}\`` : `${k} \`${second.spec[k]}\` overlaps \`${first.spec[k]}\``))
          .join(", ");
        this.report(diag("OverlappingWorkloads", second.span, workloads[second.workload]!.name, workloads[first.workload]!.name, shared));
      }
    }
  }
}
