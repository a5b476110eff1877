// Owns the kernel simulator: the BPF programs' lookup sequence (docs/kernel-maps.md) run in
// TypeScript over the map images of one generation, with the kernel's map semantics —
// hash lookups of encoded keys, longest-prefix match over encoded LPM keys (prefixlen +
// data bits, most significant first), arrays by index. Two entry points:
// - `decideProcess`: what the kernel does at connect()/sendmsg() for a process (cgroup
//   ancestry, uid, gid) and a destination;
// - `KernelSimEvaluator.decide`: an `eval` request, with the same output as every other
//   engine. A workload's SPIFFE ID has its class list as its identity entries hold it,
//   unidentified the generation's unidentified list; any other ID is classified as the
//   agent classifies a peer (the tables' user-space classification, possibly more than
//   eight classes); then the classes go through the simulated class loop.
import type { BundleManifest } from "../compiler/bundle.js";
import type { Decision, Request } from "../compiler/request.js";
import { DecisionTableReader } from "../compiler/table-eval.js";
import type { Evaluator } from "../compiler/tests.js";
import {
  ANY_CGROUP,
  ANY_ID,
  decodeBlockVal,
  decodeIdentVal,
  decodeRowVal,
  decodeVerdict,
  decodeVerdictRef,
  encodeArrayKey,
  encodeGidKey,
  encodeIdentKey,
  encodePair4Key,
  encodePair6Key,
  encodePortKey,
  encodeUidKey,
  FLAG_ALLOW,
  FLAG_DEFAULT,
  IPPROTO_TCP,
  IPPROTO_UDP,
  keySize,
  LPM_FIXED_BITS,
  MAPS,
  MAP_NAMES,
  MAX_CLASSES,
  NO_BLOCK,
  valueSize,
  type MapName,
  type RowVal,
} from "./layout.js";
import { lowerToMapImages, requiredCgroupPaths, type MapEntry, type MapImages } from "./lower.js";

/** The images broke a kernel expectation (a missing entry, a duplicate key): a lowering bug. */
export class SimulatorError extends Error {}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");

// ---------------------------------------------------------------- map semantics

/** BPF_MAP_TYPE_HASH: exact match of the whole encoded key. */
class HashMapSim {
  private readonly values = new Map<string, Uint8Array>();

  constructor(name: MapName, entries: readonly MapEntry[]) {
    for (const e of entries) {
      checkSizes(name, e);
      const k = hex(e.key);
      if (this.values.has(k)) throw new SimulatorError(`${name} holds key ${k} twice`);
      this.values.set(k, e.value);
    }
  }

  lookup(key: Uint8Array): Uint8Array | undefined {
    return this.values.get(hex(key));
  }
}

/** BPF_MAP_TYPE_ARRAY: `capacity` zeroed slots, indexed by a __u32 key. */
class ArrayMapSim {
  private readonly slots: Uint8Array[];

  constructor(name: MapName, entries: readonly MapEntry[], capacity: number) {
    this.slots = Array.from({ length: capacity }, () => new Uint8Array(valueSize(name)));
    for (const e of entries) {
      checkSizes(name, e);
      const index = new DataView(e.key.buffer, e.key.byteOffset, 4).getUint32(0, true);
      if (index >= capacity) throw new SimulatorError(`${name} index ${index} is past its capacity ${capacity}`);
      this.slots[index] = e.value;
    }
  }

  lookup(key: Uint8Array): Uint8Array | undefined {
    return this.slots[new DataView(key.buffer, key.byteOffset, 4).getUint32(0, true)];
  }
}

/**
 * BPF_MAP_TYPE_LPM_TRIE: a key is `__u32 prefixlen` (host order) then data bytes. A lookup
 * with a full-length key finds the entry with the longest prefixlen whose first prefixlen
 * data bits equal the key's; bits of an entry past its prefixlen are ignored, as in the
 * kernel's trie, and two entries with the same prefix are a duplicate.
 */
class LpmTrieSim {
  /** prefixlen → the data's first prefixlen bits (`leadingBits`) → value; prefixlens longest first. */
  private readonly byLength = new Map<number, Map<string, Uint8Array>>();
  private readonly lengths: number[];
  private readonly dataBits: number;

  constructor(
    private readonly name: MapName,
    entries: readonly MapEntry[],
  ) {
    this.dataBits = (keySize(name) - 4) * 8;
    for (const e of entries) {
      checkSizes(name, e);
      const prefixlen = new DataView(e.key.buffer, e.key.byteOffset, 4).getUint32(0, true);
      if (prefixlen > this.dataBits) throw new SimulatorError(`${name} holds prefixlen ${prefixlen} > ${this.dataBits}`);
      const k = leadingBits(hex(e.key.subarray(4)), prefixlen);
      let level = this.byLength.get(prefixlen);
      if (level === undefined) this.byLength.set(prefixlen, (level = new Map()));
      if (level.has(k)) throw new SimulatorError(`${name} holds prefix ${k}/${prefixlen} twice`);
      level.set(k, e.value);
    }
    this.lengths = [...this.byLength.keys()].sort((a, b) => b - a);
  }

  lookup(key: Uint8Array): Uint8Array | undefined {
    const prefixlen = new DataView(key.buffer, key.byteOffset, 4).getUint32(0, true);
    if (prefixlen !== this.dataBits) throw new SimulatorError(`${this.name} lookups use full-length keys`);
    const data = hex(key.subarray(4));
    for (const length of this.lengths) {
      const value = this.byLength.get(length)!.get(leadingBits(data, length));
      if (value !== undefined) return value;
    }
    return undefined;
  }
}

/** The first `bits` bits of data given in hex, as hex: whole nibbles, then the partial one masked. */
function leadingBits(dataHex: string, bits: number): string {
  const whole = bits >> 2;
  const rest = bits & 3;
  if (rest === 0) return dataHex.slice(0, whole);
  return dataHex.slice(0, whole) + (parseInt(dataHex[whole]!, 16) & (0xf0 >> rest) & 0xf).toString(16);
}

function checkSizes(name: MapName, e: MapEntry): void {
  if (e.key.byteLength !== keySize(name) || e.value.byteLength !== valueSize(name)) {
    throw new SimulatorError(`${name} entry is ${e.key.byteLength}+${e.value.byteLength} bytes, not ${keySize(name)}+${valueSize(name)}`);
  }
}

type MapSim = HashMapSim | ArrayMapSim | LpmTrieSim;

// ---------------------------------------------------------------- the lookup sequence

/** What the kernel sees at connect()/sendmsg(). */
export interface ProcessRequest {
  /** `bpf_get_current_ancestor_cgroup_id(L)` for L = 0 (the root) .. the process's own cgroup. */
  readonly cgroupAncestors: readonly bigint[];
  readonly uid: number;
  readonly gid: number;
  readonly family: 4 | 6;
  /** 4 or 16 bytes; a v4-mapped IPv6 address is decided as IPv4. */
  readonly ip: readonly number[];
  readonly port: number;
  readonly protocol: "tcp" | "udp";
}

/** One class's lookups: its row and verdict, with the verdict's record. */
export interface ClassStep {
  readonly identityClass: number;
  readonly row: number;
  /** The tables' verdict index. */
  readonly verdict: number;
  readonly flags: number;
  /** First rule index of the verdict's reason set, or NO_RULE. */
  readonly rule: number;
}

/** What the class loop decides (steps 2-6) and what the decision event carries. */
export interface ClassDecision {
  readonly allow: boolean;
  /** Every class's lookups, in list order. */
  readonly steps: readonly ClassStep[];
  /** Index in `steps` of the deciding verdict: the first forbid, else the first permit, else 0. */
  readonly deciding: number;
  /** The deciding class, verdict, flags and rule (the event's and the counters'). */
  readonly identityClass: number;
  readonly verdict: number;
  readonly flags: number;
  readonly rule: number;
}

/** The kernel's decision for a process, with its identity. */
export interface KernelOutcome extends ClassDecision {
  /** The winning identity entry's workload order; undefined when unidentified. */
  readonly order: number | undefined;
  /** The class list the process got (its identity entry's, or the unidentified list). */
  readonly classes: readonly number[];
}

/** The prefixlen of a lookup key: all of its data bits. */
const FULL_KEY_BITS = { uid: 64, pair4: LPM_FIXED_BITS.pair + 32, pair6: LPM_FIXED_BITS.pair + 128 } as const;
/** `flags & KIND` of a verdict: 0 forbid, FLAG_ALLOW permit, else a default. */
const KIND = FLAG_ALLOW | FLAG_DEFAULT;

export class KernelSimulator {
  private readonly maps: Record<MapName, MapSim>;
  readonly levels: readonly number[];
  readonly unidentified: readonly number[];

  constructor(images: Pick<MapImages, "maps" | "levels" | "unidentified" | "capacity">) {
    const built = {} as Record<MapName, MapSim>;
    for (const name of MAP_NAMES) {
      const type = MAPS[name].type;
      const entries = images.maps[name];
      if (entries.length > images.capacity[name]) throw new SimulatorError(`${name} holds ${entries.length} entries, more than its capacity ${images.capacity[name]}`);
      built[name] = type === "hash" ? new HashMapSim(name, entries) : type === "array" ? new ArrayMapSim(name, entries, images.capacity[name]) : new LpmTrieSim(name, entries);
    }
    if (images.unidentified.length === 0 || images.unidentified.length > MAX_CLASSES) throw new SimulatorError(`the unidentified list has ${images.unidentified.length} classes`);
    this.maps = built;
    this.levels = images.levels;
    this.unidentified = images.unidentified;
  }

  private get(name: MapName, key: Uint8Array): Uint8Array | undefined {
    return this.maps[name].lookup(key);
  }

  private must(name: MapName, key: Uint8Array): Uint8Array {
    const value = this.get(name, key);
    if (value === undefined) throw new SimulatorError(`${name} has no entry for ${hex(key)}`);
    return value;
  }

  /**
   * 1. process → class list: for each level L in `levels`, the key {ancestor(L), uid, gid}
   * with each of uid/gid replaced by ANY (4 variants), then the same with cgroup 0; the
   * lowest `order` among all hits wins; no hit is unidentified, with the generation's
   * unidentified list.
   */
  identify(cgroupAncestors: readonly bigint[], uid: number, gid: number): { classes: readonly number[]; order: number | undefined } {
    if (uid === ANY_ID || gid === ANY_ID) throw new RangeError(`no process has uid or gid ${ANY_ID} ((uid_t)-1 is never assigned)`);
    let best: { classes: readonly number[]; order: number } | undefined;
    const cgroups = [...this.levels.map((level) => cgroupAncestors[level] ?? ANY_CGROUP), ANY_CGROUP];
    for (const cgroupId of cgroups) {
      for (const [u, g] of [
        [uid, gid],
        [uid, ANY_ID],
        [ANY_ID, gid],
        [ANY_ID, ANY_ID],
      ] as const) {
        const hit = this.get("ident", encodeIdentKey({ cgroupId, uid: u, gid: g }));
        if (hit === undefined) continue;
        const v = decodeIdentVal(hit);
        if (best === undefined || v.order < best.order) best = v;
      }
    }
    return best === undefined ? { classes: this.unidentified, order: undefined } : best;
  }

  /**
   * 2+3. (identity class, destination) → row: the longest prefix in pairs4 or pairs6 under
   * the class (a v4-mapped IPv6 address is looked up in pairs4); a miss uses the class's
   * default row. With the row, its one protocol block or NO_BLOCK.
   */
  row(identityClass: number, family: 4 | 6, ip: readonly number[]): RowVal {
    const mapped = family === 6 && ip.slice(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff;
    const hit =
      family === 4 || mapped
        ? this.get("pairs4", encodePair4Key({ prefixlen: FULL_KEY_BITS.pair4, identityClass, addr: family === 4 ? ip : ip.slice(12) }))
        : this.get("pairs6", encodePair6Key({ prefixlen: FULL_KEY_BITS.pair6, identityClass, addr: ip }));
    return decodeRowVal(hit ?? this.must("default_row", encodeArrayKey(identityClass)));
  }

  /**
   * 4. row, uid → gid block; gid → protocol block (both skipped when the row names its one
   * protocol block); protocol, port → verdict (LPM lookups).
   */
  verdict(row: RowVal, uid: number, gid: number, protocol: "tcp" | "udp", port: number): number {
    let block = row.protocolBlock;
    if (block === NO_BLOCK) {
      const gidBlock = decodeBlockVal(this.must("uid_lpm", encodeUidKey({ prefixlen: FULL_KEY_BITS.uid, scope: row.row, value: uid })));
      block = decodeBlockVal(this.must("gid_lpm", encodeGidKey({ prefixlen: FULL_KEY_BITS.uid, scope: gidBlock, value: gid })));
    }
    return decodeVerdictRef(this.must("port_lpm", encodePortKey({ prefixlen: FULL_KEY_BITS.uid, block, protocol: protocol === "tcp" ? IPPROTO_TCP : IPPROTO_UDP, port })));
  }

  /** 5. verdict → flags and first rule. */
  verdictRecord(verdict: number): { flags: number; rule: number } {
    return decodeVerdict(this.must("verdicts", encodeArrayKey(verdict)));
  }

  /**
   * 2-6 for each class of a list (all of them, as the program does, so that the event
   * carries every verdict): the first forbid decides (deny), else the first permit
   * (allow), else the first class's default. The BPF loop holds at most MAX_CLASSES
   * classes; a peer's longer list is decided here the same way.
   */
  decideClasses(classes: readonly number[], r: { uid: number; gid: number; family: 4 | 6; ip: readonly number[]; port: number; protocol: "tcp" | "udp" }): ClassDecision {
    if (classes.length === 0) throw new SimulatorError("an empty class list");
    const steps = classes.map((identityClass): ClassStep => {
      const row = this.row(identityClass, r.family, r.ip);
      const verdict = this.verdict(row, r.uid, r.gid, r.protocol, r.port);
      return { identityClass, row: row.row, verdict, ...this.verdictRecord(verdict) };
    });
    const forbid = steps.findIndex((x) => (x.flags & KIND) === 0);
    const permit = steps.findIndex((x) => (x.flags & KIND) === FLAG_ALLOW);
    const deciding = forbid >= 0 ? forbid : permit >= 0 ? permit : 0;
    const d = steps[deciding]!;
    return { allow: (d.flags & FLAG_ALLOW) !== 0, steps, deciding, identityClass: d.identityClass, verdict: d.verdict, flags: d.flags, rule: d.rule };
  }

  /** The whole sequence for one process, as the BPF program runs it. */
  decideProcess(p: ProcessRequest): KernelOutcome {
    const { classes, order } = this.identify(p.cgroupAncestors, p.uid, p.gid);
    return { ...this.decideClasses(classes, p), order, classes };
  }
}

// ---------------------------------------------------------------- made-up cgroups

/** Where the simulator's managed per-workload cgroups live (the attach point). */
export const SIM_MANAGED_ROOT = "/portcullis";
const SIM_ROOT_ID = 1n;
const SIM_FIRST_ID = 0x1000n;

/**
 * A cgroup2 hierarchy with made-up ids (the root is 1, as its inode is): every path gets
 * an id on first use, so the lowering's input and a process's ancestry agree.
 */
export class SyntheticCgroups {
  private readonly ids = new Map<string, bigint>([["/", SIM_ROOT_ID]]);

  idOf(path: string): bigint {
    let id = this.ids.get(path);
    if (id === undefined) this.ids.set(path, (id = SIM_FIRST_ID + BigInt(this.ids.size)));
    return id;
  }

  /** `bpf_get_current_ancestor_cgroup_id(L)` for L = 0 .. level(path), for a process in `path`. */
  ancestors(path: string): bigint[] {
    const segments = path === "/" ? [] : path.split("/").slice(1);
    return [this.idOf("/"), ...segments.map((_, i) => this.idOf(`/${segments.slice(0, i + 1).join("/")}`))];
  }

  /** The lowering's `cgroupIds` input for these paths (their ancestors get ids too). */
  idsFor(paths: readonly string[]): Map<string, bigint> {
    return new Map(paths.map((p) => [p, this.ancestors(p).at(-1)!] as const));
  }
}

// ---------------------------------------------------------------- the eval engine

export type ManifestWorkload = BundleManifest["workloads"][number];

export interface KernelSimInput {
  /** The tables' words and rule ids, with their validated reader when the caller has one. */
  readonly words: Uint32Array;
  readonly ruleIds: readonly string[];
  readonly reader?: DecisionTableReader;
  /** The manifest's workloads, in policy-set order. */
  readonly workloads: readonly ManifestWorkload[];
}

/**
 * `--engine kernel-sim`: lowers the tables with made-up cgroup ids, then decides each
 * request by the simulated kernel lookups. The reasons are resolved in user space from
 * the tables, as `portcullis kernel events` resolves rule ids: the union of the reasons
 * of every verdict of the deciding kind (compiler/table-eval.ts `combine`).
 */
export class KernelSimEvaluator implements Evaluator {
  readonly cgroups = new SyntheticCgroups();
  readonly images: MapImages;
  readonly kernel: KernelSimulator;
  private readonly reader: DecisionTableReader;
  private readonly workloadClasses = new Map<string, readonly number[]>();

  constructor(input: KernelSimInput) {
    this.reader = input.reader ?? new DecisionTableReader(input.words, input.ruleIds);
    const cgroupIds = this.cgroups.idsFor(requiredCgroupPaths(input.workloads, SIM_MANAGED_ROOT));
    this.images = lowerToMapImages(input.words, input.ruleIds, { workloads: input.workloads, cgroupIds, managedRoot: SIM_MANAGED_ROOT });
    this.kernel = new KernelSimulator(this.images);
    for (const w of input.workloads) if (!this.workloadClasses.has(w.id)) this.workloadClasses.set(w.id, w.identityClasses);
  }

  /** A workload's ID has its list (as its identity entries hold it); unidentified the generation's; any other ID is classified as a peer's. */
  identityClasses(principal: string | null): readonly number[] {
    if (principal === null) return this.kernel.unidentified;
    return this.workloadClasses.get(principal) ?? this.reader.identityClasses(principal);
  }

  decide(r: Request): Decision {
    const d = this.kernel.decideClasses(this.identityClasses(r.principal), r);
    const kind = d.flags & KIND;
    if (kind !== 0 && kind !== FLAG_ALLOW) return { decision: d.allow ? "allow" : "deny", reasons: this.reader.decision(d.verdict).reasons, default: true };
    const reasons = d.steps.filter((x) => (x.flags & KIND) === kind).flatMap((x) => this.reader.decision(x.verdict).reasons);
    return { decision: d.allow ? "allow" : "deny", reasons: [...new Set(reasons)].sort(), default: false };
  }
}
