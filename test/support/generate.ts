// Owns the generator of realistic policy sets: workloads, groups, nets, ports sets and
// services in proportion to the number of rules, and rules that mix every scope form and
// condition of the spec (§4). Used by the front-end benchmark and as fuzzing input.
//
// INVARIANT: the output is one valid policy set: every name it references is declared
// before use in list declarations (no cycles), every declaration other than a workload
// is used at least once, every literal is in range (ports, CIDR host bits, SPIFFE IDs),
// and no two workloads can match the same process (each has its own uid and cgroup), so
// the checker reports no diagnostic at all. The same seed gives the same text.
import { formatIp, maskBytes } from "../../dsl/ip.js";
import { Random } from "./random.js";

export interface GenerateOptions {
  readonly rules: number;
  readonly seed: number;
  /**
   * No identity pattern in a condition (`principal like`, `principal in group`), where it
   * may end up under a negation (default false). Such sets need no identity automaton.
   */
  readonly noPatternsInConditions?: boolean;
}

const TRUST_DOMAINS = ["prod.example", "corp.example"] as const;
const TEAMS = ["web", "checkout", "payments", "search", "catalog", "identity", "billing", "infra", "data", "ml", "mobile", "ops"] as const;
const ROLES = ["frontend", "api", "worker", "cache", "gateway", "indexer", "scheduler", "exporter", "proxy", "db-client", "cron", "stream"] as const;
const EXES = ["/usr/bin/node", "/usr/bin/python3", "/usr/lib/jvm/java-21/bin/java", "/usr/local/bin/envoy", "/opt/app/bin/server"] as const;
const WELL_KNOWN_PORTS = [22, 53, 80, 123, 443, 3306, 5432, 6379, 8080, 8443, 9090, 9092, 9200, 11211, 27017] as const;

interface Workload {
  readonly name: string;
  readonly team: string;
  readonly trustDomain: string;
  readonly id: string;
}

/** Hands out the names of one kind round-robin (so each is used) or at random. */
class NamePool {
  private cursor = 0;
  constructor(readonly names: readonly string[]) {}

  /** The next name in turn: after `names.length` calls every name was handed out. */
  next(): string {
    const name = this.names[this.cursor % this.names.length]!;
    this.cursor++;
    return name;
  }
}

class PolicyWriter {
  private readonly out: string[] = [];
  private readonly workloads: Workload[] = [];
  private readonly groupNames: string[] = [];
  private readonly netNames: string[] = [];
  private readonly portsNames: string[] = [];
  private readonly ruleIds: string[] = [];
  private workloadPool!: NamePool;
  private groupPool!: NamePool;
  private netPool!: NamePool;
  private portsPool!: NamePool;
  private servicePool!: NamePool;

  constructor(
    private readonly rng: Random,
    private readonly ruleCount: number,
    private readonly patternsInConditions: boolean,
  ) {}

  generate(): string {
    const workloads = Math.max(4, Math.ceil(this.ruleCount / 10));
    const groups = Math.ceil(this.ruleCount / 50);
    const nets = Math.ceil(this.ruleCount / 50);
    const ports = Math.ceil(this.ruleCount / 100);
    const services = Math.ceil(this.ruleCount / 20);
    const tests = Math.ceil(this.ruleCount / 200);

    this.out.push(`// Generated policy set. rules: ${this.ruleCount}, workloads: ${workloads}, groups: ${groups}, nets: ${nets}, ports sets: ${ports}, services: ${services}.\n\n`);
    for (let i = 0; i < workloads; i++) this.workload(i);
    this.workloadPool = new NamePool(this.workloads.map((w) => w.name));
    this.groupPool = new NamePool(this.declareLists(groups, (i) => this.group(i)));
    this.netPool = new NamePool(this.declareLists(nets, (i) => this.net(i)));
    this.portsPool = new NamePool(this.declareLists(ports, (i) => this.ports(i)));
    this.servicePool = new NamePool(this.declareLists(services, (i) => this.service(i)));
    this.out.push(`default unidentified ${this.rng.chance(0.5) ? "deny" : "allow"};\n\n`);
    // The first rules use every group, net, ports set and service, in turn (services are
    // the most numerous, and there are never more of them than rules).
    const mustUse = Math.max(groups, nets, ports, services);
    for (let i = 0; i < this.ruleCount; i++) this.rule(i, i < mustUse);
    for (let i = 0; i < tests; i++) this.test(i);
    return this.out.join("");
  }

  private declareLists(count: number, write: (i: number) => string): string[] {
    const names: string[] = [];
    for (let i = 0; i < count; i++) names.push(write(i));
    this.out.push("\n");
    return names;
  }

  // ---------------------------------------------------------------- declarations

  private workload(i: number): void {
    const team = TEAMS[i % TEAMS.length]!;
    const name = `${team}-${this.rng.pick(ROLES)}-${i}`;
    const trustDomain = this.rng.chance(0.85) ? TRUST_DOMAINS[0] : TRUST_DOMAINS[1];
    const id = `spiffe://${trustDomain}/ns/${team}/sa/${name}`;
    this.workloads.push({ name, team, trustDomain, id });
    // INVARIANT: uid and cgroup are unique per workload, so no two workloads overlap.
    const uid = 10000 + i;
    const blocks: string[] = [];
    const form = this.rng.int(5);
    if (form <= 1) blocks.push(`match { cgroup = "/${team}/${name}" }`);
    if (form === 1 || form === 2) blocks.push(`match { uid = ${uid}, exe = "${this.rng.pick(EXES)}" }`);
    if (form === 3) blocks.push(`match { uid = ${uid} }`);
    if (form === 4) blocks.push(`match { uid = ${uid}, gid = ${uid}, sha256 = "${this.hex(64)}" }`);
    this.out.push(`workload ${name} {\n  id = "${id}";\n${blocks.map((b) => `  ${b}\n`).join("")}}\n\n`);
  }

  private group(i: number): string {
    const name = `${this.rng.pick(TEAMS)}-clients-${i}`;
    const members = new Set<string>();
    // A workload is named once per list, by reference or by its SPIFFE ID.
    const named = new Set<Workload>();
    const size = this.rng.between(2, 6);
    while (members.size < size) {
      const w = this.rng.pick(this.workloads);
      const member = this.rng.weighted<() => string | undefined>([
        [5, () => (named.has(w) ? undefined : `workload ${w.name}`)],
        [2, () => (named.has(w) ? undefined : `"${w.id}"`)],
        [2, () => `"${this.pattern()}"`],
        [1, () => `"spiffe://partner.example/ns/${this.rng.pick(TEAMS)}/sa/${this.rng.pick(ROLES)}"`],
        // Nested groups refer to earlier ones only, so there is no cycle.
        [i > 0 ? 1 : 0, () => `group ${this.groupNames[this.rng.int(i)]!}`],
      ])();
      if (member === undefined) continue;
      if (member.startsWith("workload ") || member === `"${w.id}"`) named.add(w);
      members.add(member);
    }
    this.out.push(`group ${name} = [${[...members].join(", ")}];\n`);
    this.groupNames.push(name);
    return name;
  }

  private net(i: number): string {
    const name = `net-${this.rng.pick(TEAMS)}-${i}`;
    const items = new Set<string>();
    const size = this.rng.between(1, 4);
    while (items.size < size) {
      items.add(
        this.rng.weighted<() => string>([
          [6, () => this.cidr4()],
          [2, () => this.cidr6()],
          [i > 0 ? 1 : 0, () => `net ${this.netNames[this.rng.int(i)]!}`],
        ])(),
      );
    }
    this.out.push(`net ${name} = [${[...items].join(", ")}];\n`);
    this.netNames.push(name);
    return name;
  }

  private ports(i: number): string {
    const name = `${this.rng.pick(TEAMS)}_ports_${i}`;
    const items = new Set<string>();
    const size = this.rng.between(1, 5);
    while (items.size < size) {
      items.add(
        this.rng.weighted<() => string>([
          [4, () => String(this.rng.pick(WELL_KNOWN_PORTS))],
          [2, () => this.portRange()],
          [i > 0 ? 1 : 0, () => `ports ${this.portsNames[this.rng.int(i)]!}`],
        ])(),
      );
    }
    this.out.push(`ports ${name} = [${[...items].join(", ")}];\n`);
    this.portsNames.push(name);
    return name;
  }

  private service(i: number): string {
    const owner = this.rng.pick(this.workloads);
    const name = `${owner.team}-svc-${i}`;
    const endpoints = new Set<string>();
    const size = this.rng.between(1, 4);
    while (endpoints.size < size) endpoints.add(this.endpoint());
    const id = this.rng.chance(0.7) ? `  id = "${owner.id}";\n` : "";
    this.out.push(`service ${name} {\n${id}  endpoints = [${[...endpoints].join(", ")}];\n}\n`);
    return name;
  }

  // ---------------------------------------------------------------- rules

  private rule(i: number, useAll: boolean): void {
    const lines: string[] = [];
    if (this.rng.chance(0.85)) {
      const id = `rule-${i}`;
      this.ruleIds.push(id);
      lines.push(`@id("${id}")`);
    }
    if (this.rng.chance(0.2)) lines.push(`@description("${this.rng.pick(TEAMS)} traffic, reviewed by ${this.rng.pick(TEAMS)}")`);
    const effect = this.rng.chance(0.8) ? "permit" : "forbid";
    const principal = useAll ? `principal in group ${this.groupPool.next()}` : this.principalScope();
    const action = this.rng.chance(0.5) ? "action" : "action == connect";
    let resource = useAll ? `resource == service ${this.servicePool.next()}` : this.resourceScope();
    // Never every principal to every destination at once: such a rule, even under a
    // condition, decides most requests of the set (forbids are carve-outs).
    while (principal === "principal" && resource === "resource") resource = this.resourceScope();
    lines.push(`${effect} (\n  ${principal},\n  ${action},\n  ${resource}\n)`);
    if (useAll) {
      lines.push(`when { port in ports ${this.portsPool.next()} && ${this.expr(1)} }`);
      lines.push(`unless { ip in net ${this.netPool.next()} }`);
    } else {
      const conditions = this.rng.weighted([[4, 0], [4, 1], [1, 2]] as const);
      for (let c = 0; c < conditions; c++) lines.push(`${this.rng.chance(0.75) ? "when" : "unless"} { ${this.expr(this.rng.int(3))} }`);
    }
    this.out.push(`${lines.join("\n")};\n\n`);
  }

  private principalScope(): string {
    return this.rng.weighted<() => string>([
      [1, () => "principal"],
      [3, () => `principal == workload ${this.workloadPool.next()}`],
      [1, () => `principal == "${this.rng.pick(this.workloads).id}"`],
      [3, () => `principal in group ${this.groupPool.next()}`],
      [1, () => `principal in [workload ${this.rng.pick(this.workloads).name}, "${this.pattern()}"]`],
      [1, () => `principal like "${this.pattern()}"`],
    ])();
  }

  private resourceScope(): string {
    return this.rng.weighted<() => string>([
      [1, () => "resource"],
      [4, () => `resource == service ${this.servicePool.next()}`],
      [3, () => `resource in net ${this.netPool.next()}`],
      [1, () => `resource in ${this.cidr4()}`],
      [1, () => `resource in [${this.cidr4()}, ${this.cidr6()}]`],
      [1, () => `resource == ${this.ip4()}`],
    ])();
  }

  /** A boolean expression of nesting `depth` (0: one comparison). */
  private expr(depth: number): string {
    if (depth === 0) return this.atom();
    return this.rng.weighted<() => string>([
      [4, () => `${this.expr(depth - 1)} && ${this.expr(depth - 1)}`],
      [2, () => `(${this.expr(depth - 1)} || ${this.expr(depth - 1)})`],
      [1, () => `!(${this.expr(depth - 1)})`],
      [1, () => this.atom()],
    ])();
  }

  private atom(): string {
    return this.rng.weighted<() => string>([
      [3, () => `port == ${this.rng.pick(WELL_KNOWN_PORTS)}`],
      [1, () => `port != ${this.rng.pick(WELL_KNOWN_PORTS)}`],
      [2, () => `port in ${this.portRange()}`],
      [1, () => `port in [${this.rng.pick(WELL_KNOWN_PORTS)}, ${this.portRange()}]`],
      [2, () => `port in ports ${this.portsPool.next()}`],
      [1, () => this.rng.pick(["port >= 1024", "port > 1023", "port < 1024", "port <= 32767"])],
      [3, () => `protocol == ${this.rng.chance(0.8) ? "tcp" : "udp"}`],
      [1, () => `ip in ${this.cidr4()}`],
      [1, () => `ip in [${this.cidr4()}, ${this.cidr6()}]`],
      [1, () => `ip in net ${this.netPool.next()}`],
      [1, () => `ip == ${this.ip4()}`],
      [1, () => this.rng.pick(["principal.uid != 0", "principal.uid >= 1000", "principal.uid <= 999"])],
      [1, () => `principal.gid < ${this.rng.between(100, 65535)}`],
      [1, () => `principal == workload ${this.rng.pick(this.workloads).name}`],
      [this.patternsInConditions ? 1 : 0, () => `principal in group ${this.groupPool.next()}`],
      [1, () => {
        const [a, b] = this.twoWorkloads();
        return `principal in [workload ${a.name}, "${b.id}"]`;
      }],
      [1, () => `principal == "${this.rng.pick(this.workloads).id}"`],
      [this.patternsInConditions ? 1 : 0, () => `principal like "${this.pattern()}"`],
    ])();
  }

  // ---------------------------------------------------------------- tests

  private test(i: number): void {
    const lines: string[] = [];
    const count = this.rng.between(3, 6);
    for (let a = 0; a < count; a++) {
      const expect = this.rng.chance(0.5) ? "allow" : "deny";
      const from = this.rng.weighted<() => string>([
        [4, () => `workload ${this.rng.pick(this.workloads).name}`],
        [2, () => `"${this.rng.pick(this.workloads).id}" uid ${this.rng.between(0, 65535)}`],
        [1, () => "unidentified"],
      ])();
      const because = expect === "allow" && this.ruleIds.length > 0 && this.rng.chance(0.5) ? ` because "${this.rng.pick(this.ruleIds)}"` : "";
      lines.push(`  ${expect} connect from ${from} to ${this.endpoint()}${because};`);
    }
    this.out.push(`test "suite ${i}" {\n${lines.join("\n")}\n}\n\n`);
  }

  // ---------------------------------------------------------------- literals

  private pattern(): string {
    const w = this.rng.pick(this.workloads);
    return this.rng.chance(0.7) ? `spiffe://${w.trustDomain}/ns/${w.team}/*` : `spiffe://${w.trustDomain}/ns/*/sa/${this.rng.pick(ROLES)}-*`;
  }

  private twoWorkloads(): [Workload, Workload] {
    const i = this.rng.int(this.workloads.length);
    const j = (i + this.rng.between(1, this.workloads.length - 1)) % this.workloads.length;
    return [this.workloads[i]!, this.workloads[j]!];
  }

  private hex(digits: number): string {
    let s = "";
    for (let i = 0; i < digits; i++) s += "0123456789abcdef"[this.rng.int(16)];
    return s;
  }

  private ip4(): string {
    return `10.${this.rng.int(256)}.${this.rng.int(256)}.${this.rng.between(1, 254)}`;
  }

  private cidr4(): string {
    const prefix = this.rng.pick([8, 12, 16, 20, 24, 24, 24, 28, 32]);
    const first = this.rng.pick([10, 10, 10, 172, 192, 100]);
    const bytes = maskBytes([first, this.rng.int(256), this.rng.int(256), this.rng.int(256)], prefix);
    return `${formatIp(4, bytes)}/${prefix}`;
  }

  private cidr6(): string {
    const prefix = this.rng.pick([16, 32, 48, 56, 64, 64, 112, 128]);
    const bytes = [0xfd, 0x00];
    for (let i = 2; i < 16; i++) bytes.push(this.rng.chance(0.5) ? 0 : this.rng.int(256));
    return `${formatIp(6, maskBytes(bytes, prefix))}/${prefix}`;
  }

  private portRange(): string {
    const low = this.rng.pick([1024, 3000, 8000, 9000, 30000, 49152]);
    return `${low}..${low + this.rng.pick([9, 99, 999])}`;
  }

  private endpoint(): string {
    const port = this.rng.pick(WELL_KNOWN_PORTS);
    const protocol = port === 53 || port === 123 ? "udp" : "tcp";
    if (this.rng.chance(0.8)) return `${this.ip4()}:${port}/${protocol}`;
    return `[fd00::${this.rng.between(1, 0xffff).toString(16)}]:${port}/${protocol}`;
  }
}

/** A valid policy set with `rules` rules and proportional declarations, as one file's text. */
export function generatePolicySet(options: GenerateOptions): string {
  return new PolicyWriter(new Random(options.seed), options.rules, !(options.noPatternsInConditions ?? false)).generate();
}
