// Owns small random policy sets for differential and property tests, and random requests
// against them. Unlike `generate.ts` (realistic sets for benchmarks), these sets are dense
// in corner cases: identities matched by several patterns or by none, nested and
// overlapping CIDRs of both families (/0, /32, /128, v4-mapped `::ffff:a.b.c.d/104`,
// CIDRs around the mapped range), overlapping port ranges up to 0 and 65535, uids up to
// 4294967295, every scope form of spec §4 and every condition operator, with `!`, `&&`,
// `||` and parentheses nested freely.
//
// INVARIANT: every set checks with zero errors (warnings are fine: unused declarations,
// CIDRs that cover the mapped range, patterns that never match); the same seed gives the
// same text.
import { formatIp, maskBytes } from "../../dsl/ip.js";
import type { PolicySet, Protocol } from "../../compiler/model.js";
import type { Request } from "../../compiler/request.js";
import { boundaryPoints, PORT_MAX, PROTOCOLS, U32_MAX, type Address } from "./boundary.js";
import { Random } from "./random.js";

export interface RandomPolicyOptions {
  /** Number of workloads, at least 1 (default: 3..15 at random). */
  readonly workloads?: number;
  /** Number of rules (default: 5..40 at random). */
  readonly rules?: number;
  /**
   * Only loopback addresses (127.0.0.0/8 and its v4-mapped form, ::1), so that the real
   * kernel tests can connect to every address the set names (default false).
   */
  readonly loopback?: boolean;
  /** The cgroup path under which `cgroup` selectors live, `/pc/<workload>` by default. */
  readonly cgroupRoot?: string;
}

export interface RandomPolicy {
  /** The policy set, one file. */
  readonly text: string;
  /**
   * The same set with every operand of every `!`, `&&` and `||` in its own parentheses:
   * it must mean exactly what `text` means (a test of operator precedence).
   */
  readonly parenthesised: string;
}

const TRUST_DOMAINS = ["a.test", "b.test"] as const;
/** Named by patterns only: no workload lives there. */
const FOREIGN_TRUST_DOMAIN = "c.test";
const NAMESPACES = ["web", "api", "ops"] as const;
const ACCOUNTS = ["x", "y", "x-1", "frontend", "api", "batch"] as const;
const UIDS = [0, 1, 999, 1000, 1001, 2000, 2001, 65534, 65535, 65536, 4294967294, U32_MAX] as const;
const PORTS = [0, 1, 22, 53, 79, 80, 81, 443, 1023, 1024, 5432, 8000, 8080, 8443, 8999, 65534, PORT_MAX] as const;
const COMPARE_OPS = ["==", "!=", "<", "<=", ">", ">="] as const;
/** Prefix lengths, with the ends and their neighbours over-represented. */
const PREFIXES_4 = [0, 1, 7, 8, 9, 15, 16, 17, 23, 24, 25, 28, 31, 32, 32] as const;
const PREFIXES_6 = [0, 1, 7, 8, 16, 32, 48, 63, 64, 65, 96, 112, 120, 127, 128, 128] as const;

/** A condition as a tree, so that it can be printed with minimal or with full parentheses. */
type Cond =
  | { readonly op: "atom"; readonly text: string }
  | { readonly op: "not"; readonly operand: Cond }
  | { readonly op: "&&" | "||"; readonly left: Cond; readonly right: Cond }
  /** Parentheses the author wrote although precedence did not need them. */
  | { readonly op: "paren"; readonly inner: Cond };

/** Binding strength: `||` loosest, then `&&`, then `!`, then a comparison (dsl/parser.ts). */
const PRECEDENCE = { "||": 1, "&&": 2, not: 3, atom: 4, paren: 4 } as const;

function precedence(c: Cond): number {
  return c.op === "not" ? PRECEDENCE.not : PRECEDENCE[c.op];
}

/** With the fewest parentheses that keep the tree (`a || b || c` is `(a || b) || c`). */
function printMinimal(c: Cond, atLeast = 0): string {
  let text: string;
  switch (c.op) {
    case "atom":
      return c.text;
    case "paren":
      return `(${printMinimal(c.inner)})`;
    case "not":
      text = `!${printMinimal(c.operand, PRECEDENCE.not)}`;
      break;
    default: {
      const p = PRECEDENCE[c.op];
      text = `${printMinimal(c.left, p)} ${c.op} ${printMinimal(c.right, p + 1)}`;
    }
  }
  return precedence(c) < atLeast ? `(${text})` : text;
}

/** Every operand of `!`, `&&` and `||` in its own parentheses, atoms included. */
function printParenthesised(c: Cond): string {
  switch (c.op) {
    case "atom":
      return c.text;
    case "paren":
      return printParenthesised(c.inner);
    case "not":
      return `!(${printParenthesised(c.operand)})`;
    default:
      return `(${printParenthesised(c.left)}) ${c.op} (${printParenthesised(c.right)})`;
  }
}

interface Workload {
  readonly name: string;
  readonly id: string;
}

/** A rule or declaration: text, or conditions to print two ways. */
type Chunk = string | { readonly head: string; readonly conditions: readonly { readonly polarity: "when" | "unless"; readonly cond: Cond }[] };

class RandomPolicyWriter {
  private readonly chunks: Chunk[] = [];
  private readonly workloads: Workload[] = [];
  private readonly groups: string[] = [];
  private readonly nets: string[] = [];
  private readonly portsSets: string[] = [];
  private readonly services: string[] = [];
  private readonly uids: number[] = [...UIDS];
  private readonly v4Anchors: number[][] = [];
  private readonly v6Anchors: number[][] = [];

  constructor(
    private readonly rng: Random,
    private readonly options: RandomPolicyOptions,
  ) {}

  write(): RandomPolicy {
    const rng = this.rng;
    for (let i = 0; i < 4; i++) this.v4Anchors.push(this.v4Anchor());
    for (let i = 0; i < 3; i++) this.v6Anchors.push(this.v6Anchor());
    const workloadCount = Math.max(1, this.options.workloads ?? rng.between(3, 15));
    for (let i = 0; i < workloadCount; i++) this.workload(i);
    for (let i = rng.between(1, 4); i > 0; i--) this.group();
    for (let i = rng.between(1, 4); i > 0; i--) this.net();
    for (let i = rng.between(1, 3); i > 0; i--) this.portsSet();
    for (let i = rng.between(1, 4); i > 0; i--) this.service();
    const fallback = rng.weighted([
      [4, "allow"],
      [4, "deny"],
      [1, undefined],
    ] as const);
    if (fallback !== undefined) this.chunks.push(`default unidentified ${fallback};\n`);
    const ruleCount = this.options.rules ?? rng.between(5, 40);
    for (let i = 0; i < ruleCount; i++) this.rule(i);
    const print = (how: (c: Cond) => string) =>
      this.chunks.map((chunk) => (typeof chunk === "string" ? chunk : `${chunk.head}${chunk.conditions.map((c) => `\n${c.polarity} { ${how(c.cond)} }`).join("")};\n`)).join("\n");
    return { text: print((c) => printMinimal(c)), parenthesised: print(printParenthesised) };
  }

  // ---------------------------------------------------------------- identities

  /** A trust domain as written: sometimes in upper case, which the checker normalises. */
  private writtenTrustDomain(td: string): string {
    return this.rng.weighted([
      [8, td],
      [1, td.toUpperCase()],
      [1, td[0]!.toUpperCase() + td.slice(1)],
    ]);
  }

  private newId(): string {
    const rng = this.rng;
    const td = rng.pick(TRUST_DOMAINS);
    return rng.chance(0.85) ? `spiffe://${td}/ns/${rng.pick(NAMESPACES)}/sa/${rng.pick(ACCOUNTS)}` : `spiffe://${td}/${rng.pick(ACCOUNTS)}`;
  }

  /** An exact ID as written in the policy: often a workload's, sometimes nobody's. */
  private exactId(): string {
    const id = this.rng.chance(0.6) ? this.rng.pick(this.workloads).id : this.newId();
    const td = id.slice("spiffe://".length).split("/")[0]!;
    return `"spiffe://${this.writtenTrustDomain(td)}${id.slice("spiffe://".length + td.length)}"`;
  }

  private pattern(): string {
    const rng = this.rng;
    const td = this.writtenTrustDomain(rng.pick(TRUST_DOMAINS));
    const ns = rng.pick(NAMESPACES);
    const sa = rng.pick(ACCOUNTS);
    const text = rng.weighted<() => string>([
      [4, () => `spiffe://${td}/ns/${ns}/*`],
      [2, () => `spiffe://${td}/*`],
      [2, () => `spiffe://${td}/ns/*/sa/${sa}`],
      [1, () => `spiffe://*/sa/${sa}`],
      [1, () => `*/sa/${sa}`],
      [1, () => `*${sa}`],
      [2, () => `spiffe://${td}/ns/${ns}/sa/${sa}*`],
      [1, () => `spiffe://${td}/ns/*/sa/*-1`],
      [1, () => `spiffe://${td}/ns/**/sa/*`],
      [2, () => `spiffe://${FOREIGN_TRUST_DOMAIN}/*`],
      [1, () => `spiffe://${td}/ns/nobody/*`],
      [1, () => "*"],
      // A literal star: never matches (a warning), but must not break anything.
      [1, () => `spiffe://${td}/ns/${ns}/sa/\\*/*`],
      // A pattern over a workload's own ID, cut at a random point.
      [2, () => {
        const id = rng.pick(this.workloads).id;
        const cut = rng.between("spiffe://".length + 1, id.length);
        return `${id.slice(0, cut)}*${rng.chance(0.3) ? id.slice(cut + 1) : ""}`;
      }],
    ])();
    return `"${text}"`;
  }

  /** One item of an identity list: a workload, a group, an exact ID or a pattern. */
  private identityItem(): string {
    return this.rng.weighted<() => string>([
      [3, () => `workload ${this.rng.pick(this.workloads).name}`],
      [this.groups.length > 0 ? 1 : 0, () => `group ${this.rng.pick(this.groups)}`],
      [2, () => this.exactId()],
      [3, () => this.pattern()],
    ])();
  }

  /** A list literal of 0, 1, 2 or 4 items (mostly 1 or 2). */
  private list(item: () => string): string {
    const size = this.rng.weighted([
      [1, 0],
      [4, 1],
      [4, 2],
      [2, 4],
    ] as const);
    return `[${Array.from({ length: size }, item).join(", ")}]`;
  }

  private identityList(): string {
    return this.list(() => this.identityItem());
  }

  // ---------------------------------------------------------------- addresses

  private v4Anchor(): number[] {
    const rng = this.rng;
    const b = () => rng.int(256);
    if (this.options.loopback) {
      return rng.weighted<() => number[]>([
        [2, () => [127, 0, 0, 1]],
        [2, () => [127, 0, 0, b()]],
        [2, () => [127, b(), b(), b()]],
        [1, () => [127, 255, 255, 255]],
      ])();
    }
    return rng.weighted<() => number[]>([
      [4, () => [10, b(), b(), b()]],
      [2, () => [10, 0, rng.int(4), b()]],
      [2, () => [192, 168, b(), b()]],
      [1, () => [0, 0, 0, 0]],
      [1, () => [255, 255, 255, 255]],
      [1, () => [169, 254, 169, 254]],
      [1, () => [127, 0, 0, 1]],
      [2, () => [b(), b(), b(), b()]],
    ])();
  }

  private v6Anchor(): number[] {
    const rng = this.rng;
    const sparse = (head: number[]) => [...head, ...Array.from({ length: 16 - head.length }, () => (rng.chance(0.6) ? 0 : rng.int(256)))];
    if (this.options.loopback) return [...new Array<number>(15).fill(0), 1];
    return rng.weighted<() => number[]>([
      [4, () => sparse([0xfd, 0x00])],
      [2, () => sparse([0x20, 0x01, 0x0d, 0xb8])],
      [1, () => [...new Array<number>(15).fill(0), 1]],
      [1, () => new Array<number>(16).fill(0)],
      [1, () => new Array<number>(16).fill(0xff)],
      // Either side of the v4-mapped range ::ffff:0:0/96.
      [1, () => [...new Array<number>(10).fill(0), 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff]],
      [1, () => [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]],
    ])();
  }

  /** An address near an anchor: the anchor itself, or another host of its last byte. */
  private near(anchors: readonly number[][]): number[] {
    const a = [...this.rng.pick(anchors)];
    // In loopback sets ::1 is the only IPv6 address; any 127.x.x.x stays loopback.
    if (this.rng.chance(0.5) && !(this.options.loopback && a.length === 16)) a[a.length - 1] = this.rng.int(256);
    return a;
  }

  private ipv4Text(bytes: readonly number[]): string {
    return this.rng.chance(0.8) ? formatIp(4, bytes) : `::ffff:${formatIp(4, bytes)}`;
  }

  private ip(): string {
    return this.rng.chance(0.65) ? this.ipv4Text(this.near(this.v4Anchors)) : formatIp(6, this.near(this.v6Anchors));
  }

  private cidr4(): string {
    const prefix = this.rng.pick(this.options.loopback ? PREFIXES_4.filter((p) => p >= 8) : PREFIXES_4);
    const bytes = maskBytes(this.rng.pick(this.v4Anchors), prefix);
    return this.rng.chance(0.85) ? `${formatIp(4, bytes)}/${prefix}` : `::ffff:${formatIp(4, bytes)}/${96 + prefix}`;
  }

  private cidr6(): string {
    const prefix = this.rng.pick(this.options.loopback ? PREFIXES_6.filter((p) => p >= 112) : PREFIXES_6);
    return `${formatIp(6, maskBytes(this.rng.pick(this.v6Anchors), prefix))}/${prefix}`;
  }

  private cidr(): string {
    return this.rng.chance(0.65) ? this.cidr4() : this.cidr6();
  }

  /** One item of an address list: a CIDR, an address or a net. */
  private addressItem(): string {
    return this.rng.weighted<() => string>([
      [4, () => this.cidr4()],
      [2, () => this.cidr6()],
      [1, () => this.ip()],
      [this.nets.length > 0 ? 1 : 0, () => `net ${this.rng.pick(this.nets)}`],
    ])();
  }

  private addressList(): string {
    return this.list(() => this.addressItem());
  }

  private protocol(): Protocol {
    return this.rng.chance(0.6) ? "tcp" : "udp";
  }

  private endpoint(): string {
    const port = this.rng.chance(0.8) ? this.rng.pick(PORTS) : this.rng.int(PORT_MAX + 1);
    const v4 = this.rng.chance(0.65);
    const host = v4 ? this.ipv4Text(this.near(this.v4Anchors)) : formatIp(6, this.near(this.v6Anchors));
    return `${host.includes(":") ? `[${host}]` : host}:${port}/${this.protocol()}`;
  }

  // ---------------------------------------------------------------- ports and uids

  private portItem(): string {
    const rng = this.rng;
    return rng.weighted<() => string>([
      [3, () => String(rng.pick(PORTS))],
      [3, () => {
        const low = rng.pick(PORTS);
        return `${low}..${Math.min(PORT_MAX, low + rng.pick([0, 1, 10, 100, 1000, PORT_MAX]))}`;
      }],
      [2, () => {
        const [a, b] = [rng.pick(PORTS), rng.pick(PORTS)];
        return `${Math.min(a, b)}..${Math.max(a, b)}`;
      }],
    ])();
  }

  private portSetExpr(): string {
    return this.rng.weighted<() => string>([
      [3, () => this.portItem().replace(/^(\d+)$/, "$1..$1")],
      [3, () => `[${Array.from({ length: this.rng.between(0, 3) }, () => this.portItem()).join(", ")}]`],
      [this.portsSets.length > 0 ? 3 : 0, () => `ports ${this.rng.pick(this.portsSets)}`],
    ])();
  }

  private uid(): number {
    return this.rng.chance(0.85) ? this.rng.pick(this.uids) : this.rng.uint32();
  }

  private uidSetExpr(): string {
    const range = () => {
      const [a, b] = [this.uid(), this.uid()];
      return `${Math.min(a, b)}..${Math.max(a, b)}`;
    };
    return this.rng.weighted<() => string>([
      [2, range],
      [2, () => `[${Array.from({ length: this.rng.between(1, 3) }, () => (this.rng.chance(0.5) ? String(this.uid()) : range())).join(", ")}]`],
      [this.portsSets.length > 0 ? 1 : 0, () => `ports ${this.rng.pick(this.portsSets)}`],
    ])();
  }

  // ---------------------------------------------------------------- declarations

  private workload(i: number): void {
    const rng = this.rng;
    let id = this.newId();
    for (let tries = 0; this.workloads.some((w) => w.id === id) && tries < 20; tries++) id = this.newId();
    if (this.workloads.some((w) => w.id === id)) id = `spiffe://${rng.pick(TRUST_DOMAINS)}/ns/${rng.pick(NAMESPACES)}/sa/w${i}`;
    const name = `${id.split("/").pop()}-${i}`;
    this.workloads.push({ name, id });
    const td = id.slice("spiffe://".length).split("/")[0]!;
    const written = `spiffe://${this.writtenTrustDomain(td)}${id.slice("spiffe://".length + td.length)}`;
    const blocks: string[] = [];
    const uid = rng.chance(0.7) ? rng.pick(UIDS) : rng.uint32();
    if (!this.uids.includes(uid)) this.uids.push(uid);
    const form = rng.weighted([
      [3, "cgroup"],
      [3, "uid"],
      [2, "both"],
      [1, "uid-gid"],
      [1, "none"],
    ] as const);
    if (form === "cgroup" || form === "both") blocks.push(`match { cgroup = "${this.options.cgroupRoot ?? "/pc"}/${name}" }`);
    if (form === "uid" || form === "both") blocks.push(`match { uid = ${uid}${rng.chance(0.3) ? `, exe = "/usr/bin/${name}"` : ""} }`);
    if (form === "uid-gid") blocks.push(`match { gid = ${rng.pick(UIDS)}, uid = ${uid} }`);
    this.chunks.push(`workload ${name} {\n  id = "${written}";\n${blocks.map((b) => `  ${b}\n`).join("")}}\n`);
  }

  private group(): void {
    const name = `g${this.groups.length}`;
    this.chunks.push(`group ${name} = ${this.identityList()};\n`);
    this.groups.push(name);
  }

  private net(): void {
    const name = `n${this.nets.length}`;
    this.chunks.push(`net ${name} = ${this.addressList()};\n`);
    this.nets.push(name);
  }

  private portsSet(): void {
    const name = `p${this.portsSets.length}`;
    const items = Array.from({ length: this.rng.between(0, 5) }, () => this.portItem());
    if (this.portsSets.length > 0 && this.rng.chance(0.3)) items.push(`ports ${this.rng.pick(this.portsSets)}`);
    this.chunks.push(`ports ${name} = [${items.join(", ")}];\n`);
    this.portsSets.push(name);
  }

  private service(): void {
    const name = `s${this.services.length}`;
    const endpoints = Array.from({ length: this.rng.between(1, 4) }, () => this.endpoint());
    const id = this.rng.chance(0.5) ? `  id = ${this.exactId()};\n` : "";
    this.chunks.push(`service ${name} {\n${id}  endpoints = [${endpoints.join(", ")}];\n}\n`);
    this.services.push(name);
  }

  // ---------------------------------------------------------------- rules

  private rule(i: number): void {
    const rng = this.rng;
    const annotations: string[] = [];
    if (rng.chance(0.8)) annotations.push(`@id("r${i}")`);
    if (rng.chance(0.1)) annotations.push(`@description("rule ${i}")`);
    const effect = rng.chance(0.65) ? "permit" : "forbid";
    const action = rng.weighted([
      [2, "action"],
      [2, "action == connect"],
      [1, "action in [connect]"],
    ] as const);
    const head = `${annotations.map((a) => `${a}\n`).join("")}${effect} (${this.principalScope()}, ${action}, ${this.resourceScope()})`;
    const count = rng.weighted([
      [3, 0],
      [4, 1],
      [2, 2],
      [1, 3],
    ] as const);
    const conditions = Array.from({ length: count }, () => ({ polarity: rng.chance(0.65) ? ("when" as const) : ("unless" as const), cond: this.cond(rng.int(4)) }));
    this.chunks.push({ head, conditions });
  }

  private principalScope(): string {
    return this.rng.weighted<() => string>([
      [2, () => "principal"],
      [2, () => `principal == workload ${this.rng.pick(this.workloads).name}`],
      [1, () => `principal == ${this.exactId()}`],
      [2, () => `principal in group ${this.rng.pick(this.groups)}`],
      [2, () => `principal in ${this.identityList()}`],
      [2, () => `principal like ${this.pattern()}`],
    ])();
  }

  private resourceScope(): string {
    return this.rng.weighted<() => string>([
      [2, () => "resource"],
      [2, () => `resource == service ${this.rng.pick(this.services)}`],
      [2, () => `resource in net ${this.rng.pick(this.nets)}`],
      [1, () => `resource in ${this.cidr()}`],
      [2, () => `resource in ${this.addressList()}`],
      [1, () => `resource == ${this.ip()}`],
      [1, () => `resource in ${this.ip()}`],
      [1, () => `resource == ${this.endpoint()}`],
    ])();
  }

  /** A condition of nesting `depth` (0: one atom). */
  private cond(depth: number): Cond {
    if (depth === 0) return { op: "atom", text: this.atom() };
    return this.rng.weighted<() => Cond>([
      [3, () => ({ op: "&&", left: this.cond(depth - 1), right: this.cond(depth - 1) })],
      [3, () => ({ op: "||", left: this.cond(depth - 1), right: this.cond(depth - 1) })],
      [2, () => ({ op: "not", operand: this.cond(depth - 1) })],
      [1, () => ({ op: "paren", inner: this.cond(depth - 1) })],
      [1, () => ({ op: "atom", text: this.atom() })],
    ])();
  }

  private atom(): string {
    const rng = this.rng;
    const op = () => rng.pick(COMPARE_OPS);
    return rng.weighted<() => string>([
      // port
      [3, () => {
        const o = op();
        const value = o === "==" || o === "!=" || rng.chance(0.9) ? rng.pick(PORTS) : PORT_MAX + 1;
        return rng.chance(0.8) ? `port ${o} ${value}` : `${value} ${o} port`;
      }],
      [3, () => `port in ${this.portSetExpr()}`],
      // protocol
      [2, () => `protocol ${rng.chance(0.7) ? "==" : "!="} ${this.protocol()}`],
      [1, () => `${this.protocol()} == protocol`],
      // ip
      [2, () => `ip in ${this.cidr()}`],
      [2, () => `ip in ${this.addressList()}`],
      [2, () => `ip in net ${rng.pick(this.nets)}`],
      [1, () => `ip ${rng.chance(0.7) ? "==" : "!="} ${this.ip()}`],
      [1, () => `ip in ${this.ip()}`],
      // uid and gid
      [2, () => `principal.uid ${op()} ${this.uid()}`],
      [1, () => `${this.uid()} ${op()} principal.uid`],
      [2, () => `principal.gid ${op()} ${this.uid()}`],
      [1, () => `principal.${rng.chance(0.5) ? "uid" : "gid"} in ${this.uidSetExpr()}`],
      // principal
      [2, () => `principal ${rng.chance(0.7) ? "==" : "!="} workload ${rng.pick(this.workloads).name}`],
      [1, () => `workload ${rng.pick(this.workloads).name} == principal`],
      [1, () => `principal ${rng.chance(0.7) ? "==" : "!="} ${this.exactId()}`],
      [2, () => `principal in group ${rng.pick(this.groups)}`],
      [1, () => `principal in ${this.identityList()}`],
      [2, () => `principal like ${this.pattern()}`],
      // constants
      [1, () => (rng.chance(0.5) ? "true" : "false")],
      [1, () => rng.pick(["1 < 2", "80 == 80", "tcp == udp", `workload ${rng.pick(this.workloads).name} == workload ${rng.pick(this.workloads).name}`])],
    ])();
  }
}

/** A random valid policy set; the same seed gives the same text. */
export function randomPolicySet(seed: number, options: RandomPolicyOptions = {}): RandomPolicy {
  return new RandomPolicyWriter(new Random(seed), options).write();
}

// ---------------------------------------------------------------- requests

/** A valid SPIFFE ID no policy names on purpose, built from the same vocabulary. */
function randomId(rng: Random): string {
  const td = rng.pick([...TRUST_DOMAINS, FOREIGN_TRUST_DOMAIN, "d.test"]);
  const segments = Array.from({ length: rng.between(0, 4) }, () => rng.pick(["ns", "sa", ...NAMESPACES, ...ACCOUNTS, "z", `q${rng.int(100)}`]));
  return `spiffe://${td}${segments.map((s) => `/${s}`).join("")}`;
}

function randomAddress(rng: Random, cidrs: readonly { family: 4 | 6; bytes: readonly number[]; prefix: number }[]): Address {
  const inside = cidrs.length > 0 && rng.chance(0.5);
  if (inside) {
    // A random host of a random CIDR of the set.
    const c = rng.pick(cidrs);
    const ip = c.bytes.map((b, i) => {
      const hostBits = Math.max(0, Math.min(8, (i + 1) * 8 - c.prefix));
      return b | (rng.int(256) & ((1 << hostBits) - 1));
    });
    return { family: c.family, ip };
  }
  if (rng.chance(0.6)) return { family: 4, ip: Array.from({ length: 4 }, () => rng.int(256)) };
  const ip = Array.from({ length: 16 }, () => rng.int(256));
  // Uniformly random IPv6 addresses are never v4-mapped; requests give those as IPv4 anyway.
  return { family: 6, ip };
}

/**
 * `n` random requests against `policy`, biased toward its boundary points: each field is
 * taken from the boundary points most of the time and drawn at random otherwise, and some
 * requests aim at an endpoint exactly.
 */
export function randomRequests(policy: PolicySet, seed: number, n: number): Request[] {
  const rng = new Random(seed);
  const points = boundaryPoints(policy);
  const out: Request[] = [];
  for (let i = 0; i < n; i++) {
    const principal = rng.chance(0.8) ? rng.pick(points.principals) : randomId(rng);
    const defaults = points.defaults(principal);
    const int = (boundary: readonly number[], fallback: number): number =>
      rng.weighted<() => number>([
        [5, () => rng.pick(boundary)],
        [2, () => fallback],
        [1, () => rng.int(70_000)],
        [1, () => rng.uint32()],
      ])();
    const uid = int(points.uids, defaults.uid);
    const gid = int(points.gids, defaults.gid);
    let destination: Address & { port: number; protocol: Protocol };
    if (points.endpoints.length > 0 && rng.chance(0.15)) {
      destination = rng.pick(points.endpoints);
    } else {
      const address = rng.chance(0.6) ? rng.pick(points.addresses) : randomAddress(rng, points.cidrs);
      const port = rng.chance(0.6) ? rng.pick(points.ports) : rng.int(PORT_MAX + 1);
      destination = { ...address, port, protocol: rng.pick(PROTOCOLS) };
    }
    out.push({ principal, uid, gid, family: destination.family, ip: destination.ip, port: destination.port, protocol: destination.protocol });
  }
  return out;
}
