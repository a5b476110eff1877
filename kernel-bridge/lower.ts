// Owns lowering one bundle's decision tables (docs/bundle-format.md) into the eBPF map
// images of one policy generation (docs/kernel-maps.md): the identity map from the
// workloads' `match` blocks and class lists, the (class, destination) LPM tries from the
// pairs and the destination CIDRs, the default rows, the uid/gid/port LPM tries (intervals
// as exact prefix covers) and the verdicts. Pure: no kernel, no I/O. Reads only the
// validated tables and the manifest's workloads, never the AST.
//
// INVARIANT: exact or refused (DESIGN.md, invariant 5). Every lookup over the images
// gives what the tables give; a construct the maps cannot hold exactly throws
// `KernelLoweringError`, never an approximation.
import type { BundleManifest } from "../compiler/bundle.js";
import { DecisionTableReader, readSections, type Sections } from "../compiler/table-eval.js";
import { EMPTY_SLOT, LoweringError, SECTION } from "../compiler/tables.js";
import {
  ANY_CGROUP,
  ANY_ID,
  encodeArrayKey,
  encodeBlockVal,
  encodeGidKey,
  encodeIdentKey,
  encodeIdentVal,
  encodePair4Key,
  encodePair6Key,
  encodePortKey,
  encodeRowVal,
  encodeUidKey,
  encodeVerdict,
  encodeVerdictRef,
  IPPROTO_TCP,
  IPPROTO_UDP,
  keySize,
  LPM_FIXED_BITS,
  MAP_NAMES,
  MAX_CGROUP_LEVELS,
  MAX_CLASSES,
  NO_BLOCK,
  NO_RULE,
  valueSize,
  type MapName,
} from "./layout.js";

/** A policy that the kernel maps cannot hold exactly; the CLI reports it as PC3002. */
export class KernelLoweringError extends LoweringError {}

function refuse(message: string): never {
  throw new KernelLoweringError(message);
}

// ---------------------------------------------------------------- prefix covers

/** The `bits` leading bits of `value` (a `width`-bit number, the rest zero) form a prefix. */
export interface Prefix {
  readonly value: number;
  readonly bits: number;
}

/**
 * The minimal set of aligned prefixes whose union is exactly `low..high` (inclusive) in a
 * `width`-bit space (at most 32): greedily the largest aligned block starting at `low`
 * that stays inside the interval. The blocks are disjoint, so over a partition of the
 * space into intervals every value is covered by exactly one prefix.
 */
export function prefixCover(low: number, high: number, width: number): Prefix[] {
  const max = 2 ** width - 1;
  if (!Number.isInteger(low) || !Number.isInteger(high) || low < 0 || high > max || low > high) throw new RangeError(`bad interval ${low}..${high} in ${width} bits`);
  const out: Prefix[] = [];
  for (let at = low; at <= high; ) {
    // The block's free (host) bits: no more than `at`'s trailing zeros (alignment) and
    // than log2 of what is left of the interval.
    const aligned = at === 0 ? width : 31 - Math.clz32(at & -at);
    const left = high - at + 1;
    const fits = left >= 2 ** 32 ? 32 : 31 - Math.clz32(left);
    const free = Math.min(aligned, fits);
    out.push({ value: at, bits: width - free });
    at += 2 ** free;
  }
  return out;
}

/** The intervals of a list `n, (start, x)…` (starts ascending from 0): `[start, next start − 1]`, the last up to `max`. */
function intervals(rowData: Uint32Array, at: number, max: number): { low: number; high: number; target: number }[] {
  const n = rowData[at]!;
  const out = [];
  for (let i = 0; i < n; i++) {
    const low = rowData[at + 1 + i * 2]!;
    const high = i + 1 < n ? rowData[at + 3 + i * 2]! - 1 : max;
    if (high < low || high > max) refuse(`a row's interval list is not ascending within 0..${max}`);
    out.push({ low, high, target: rowData[at + 2 + i * 2]! });
  }
  return out;
}

// ---------------------------------------------------------------- identities

/** A workload as the manifest holds it, in policy-set order (its index is its `order`). */
export type WorkloadIdentity = Pick<BundleManifest["workloads"][number], "name" | "id" | "identityList" | "identityClasses" | "match">;
type Block = WorkloadIdentity["match"][number];

export interface IdentityInput {
  /** The manifest's workloads, in policy-set order. */
  readonly workloads: readonly WorkloadIdentity[];
  /**
   * Cgroup v2 id (the directory's inode number) of every path `requiredCgroupPaths` names:
   * paths below the cgroup2 mount, written `/a/b`.
   */
  readonly cgroupIds: ReadonlyMap<string, bigint>;
  /** Path below the cgroup2 mount under which managed per-workload cgroups live (the attach point). */
  readonly managedRoot: string;
}

/** Does a match block need attestation by `portcullis exec` (selectors the kernel cannot see)? */
export function needsAttestation(block: Block): boolean {
  return block.exe !== undefined || block.sha256 !== undefined;
}

/** The name prefix of managed cgroups; selector paths may not use it. */
const MANAGED_PREFIX = "portcullis.";

/** `path` is `prefix` or below it, on whole segments (how a `cgroup` selector matches). */
export function cgroupAtOrBelow(path: string, prefix: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * The managed cgroup of a workload for one block: `<parent>/portcullis.<workload>`, where
 * the parent is `managedRoot` when the block has no `cgroup` selector or its path holds
 * `managedRoot`, else the block's `cgroup` path (so the process is inside it too). A block
 * that needs attestation is keyed by this cgroup: `portcullis exec` places there only
 * processes it attested.
 */
export function managedCgroupPath(managedRoot: string, workload: string, block: Block): string {
  const parent = block.cgroup === undefined || cgroupAtOrBelow(managedRoot, block.cgroup) ? managedRoot : block.cgroup;
  return `${parent === "/" ? "" : parent}/${MANAGED_PREFIX}${workload}`;
}

/**
 * Can a process match the block? No process has uid or gid 4294967295: (uid_t)-1 is
 * INVALID_UID, which Linux never assigns. Such a block gets no identity entry (the value
 * could not be keyed anyway: the identity map uses it for "any").
 */
function matchesSomeProcess(block: Block): boolean {
  return block.uid !== ANY_ID && block.gid !== ANY_ID;
}

/** The cgroup a block's identity entry is keyed by, or undefined for "any cgroup". */
function blockCgroup(managedRoot: string, workload: string, block: Block): string | undefined {
  if (needsAttestation(block)) return managedCgroupPath(managedRoot, workload, block);
  return block.cgroup === "/" ? undefined : block.cgroup;
}

/** What `portcullis exec` knows of a command before it runs it. */
export interface ExecFacts {
  /** Absolute path of the executable and the hex SHA-256 of its contents. */
  readonly exe: string;
  readonly sha256: string;
  /** The caller's uid and gid (used where the block has no `uid`/`gid` selector). */
  readonly uid: number;
  readonly gid: number;
}

export type ExecPlacement =
  | { readonly ok: true; readonly block: number; readonly cgroup: string; readonly uid: number; readonly gid: number }
  | { readonly ok: false; readonly reason: string };

/**
 * Where `portcullis exec --as <workload>` runs a command, or why it refuses: the first
 * `match` block of the workload whose `exe`/`sha256` accept the command, run with the
 * block's uid/gid (else the caller's), in the block's `cgroup` path or, for a block that
 * needs attestation or has no path inside the attach point, in the workload's managed
 * cgroup. Refused when the process would be another workload's (an earlier workload
 * matches it first, spec §3): the kernel could not tell it apart.
 *
 * INVARIANT: with this placement, the kernel identifies every process exec starts as
 * `workload`, exactly as the `match` blocks do.
 */
export function execPlacement(workloads: readonly WorkloadIdentity[], workload: string, facts: ExecFacts, managedRoot: string): ExecPlacement {
  const index = workloads.findIndex((w) => w.name === workload);
  if (index < 0) return { ok: false, reason: `unknown workload \`${workload}\`` };
  let shadowedBy: string | undefined;
  for (const [i, b] of workloads[index]!.match.entries()) {
    if (!matchesSomeProcess(b) || (b.exe !== undefined && b.exe !== facts.exe) || (b.sha256 !== undefined && b.sha256 !== facts.sha256)) continue;
    const placed = { cgroup: placementCgroup(managedRoot, workload, b), uid: b.uid ?? facts.uid, gid: b.gid ?? facts.gid };
    const process = { ...placed, exe: facts.exe, sha256: facts.sha256 };
    const first = workloads.findIndex((w) => w.match.some((c) => blockMatches(c, process)));
    if (first === index) return { ok: true, block: i, ...placed };
    shadowedBy ??= workloads[first]!.name;
  }
  if (shadowedBy !== undefined) return { ok: false, reason: `the process would be workload \`${shadowedBy}\`, which comes first in the policy set` };
  return { ok: false, reason: `no \`match\` block of workload \`${workload}\` accepts \`${facts.exe}\` (sha256 ${facts.sha256})` };
}

/** Where exec places a process for `block`: see `execPlacement`. */
export function placementCgroup(managedRoot: string, workload: string, block: Block): string {
  if (needsAttestation(block) || block.cgroup === undefined || cgroupAtOrBelow(managedRoot, block.cgroup)) return managedCgroupPath(managedRoot, workload, block);
  return block.cgroup;
}

/** Does a process (whose exe and digest exec knows) match a block? */
function blockMatches(block: Block, p: { cgroup: string; uid: number; gid: number; exe: string; sha256: string }): boolean {
  return (
    (block.cgroup === undefined || cgroupAtOrBelow(p.cgroup, block.cgroup)) &&
    (block.uid === undefined || block.uid === p.uid) &&
    (block.gid === undefined || block.gid === p.gid) &&
    (block.exe === undefined || block.exe === p.exe) &&
    (block.sha256 === undefined || block.sha256 === p.sha256)
  );
}

/** Every cgroup path whose id the lowering needs, sorted (the caller creates or stats them). */
export function requiredCgroupPaths(workloads: readonly WorkloadIdentity[], managedRoot: string): string[] {
  const paths = new Set<string>();
  for (const w of workloads) {
    for (const block of w.match.filter(matchesSomeProcess)) {
      const path = blockCgroup(managedRoot, w.name, block);
      if (path !== undefined) paths.add(path);
    }
  }
  return [...paths].sort();
}

/** The level of a cgroup below the cgroup2 mount: the number of its path segments (`/` is 0). */
export function cgroupLevel(path: string): number {
  return path === "/" ? 0 : path.split("/").length - 1;
}

// ---------------------------------------------------------------- images

/** One map entry, encoded by layout.ts. Entries may share a value's bytes: treat them as read-only. */
export interface MapEntry {
  readonly key: Uint8Array;
  readonly value: Uint8Array;
}

/**
 * A map's entries as two contiguous arrays, entry i's key at `i × keySize(map)` and its
 * value at `i × valueSize(map)`: the shape `BPF_MAP_UPDATE_BATCH` takes.
 */
export function packEntries(map: MapName, entries: readonly MapEntry[]): { keys: Uint8Array; values: Uint8Array } {
  const k = keySize(map);
  const v = valueSize(map);
  const keys = new Uint8Array(entries.length * k);
  const values = new Uint8Array(entries.length * v);
  entries.forEach((e, i) => {
    if (e.key.byteLength !== k || e.value.byteLength !== v) throw new RangeError(`${map} entry ${i} is ${e.key.byteLength}+${e.value.byteLength} bytes, not ${k}+${v}`);
    keys.set(e.key, i * k);
    values.set(e.value, i * v);
  });
  return { keys, values };
}

/** One generation of policy as map contents (layout.ts `MAPS`). */
export interface MapImages {
  readonly maps: Readonly<Record<MapName, readonly MapEntry[]>>;
  /** The cgroup levels the program probes (`pc_gen_config.levels`), ascending, at most MAX_CGROUP_LEVELS. */
  readonly levels: readonly number[];
  /** The classes of a process no identity entry matches (`pc_gen_config.unidentified`): the tables' META[9] list. */
  readonly unidentified: readonly number[];
  /** Entries per map. */
  readonly counts: Readonly<Record<MapName, number>>;
  /** The `max_entries` each map needs to hold this generation (arrays: exactly their length; at least 1). */
  readonly capacity: Readonly<Record<MapName, number>>;
}

/** The section words and META counts lowering reads, and the validated reader. */
interface Tables {
  readonly rows: number;
  readonly verdictCount: number;
  readonly s: Sections;
  readonly reader: DecisionTableReader;
}

/** Word offsets in CLASS_LISTS where a list starts (the reader has checked every list's bounds and classes). */
function listStarts(t: Tables): Set<number> {
  const lists = t.s[SECTION.CLASS_LISTS]!;
  const starts = new Set<number>();
  for (let at = 0; at < lists.length; at += 1 + lists[at]!) starts.add(at);
  return starts;
}

/**
 * The identity entries: one per distinct key of a kernel-checkable match block, valued
 * with the workload's order and class list. The list is the manifest's `identityList`,
 * which must start a list of CLASS_LISTS, hold the manifest's `identityClasses` and be the
 * list the tables give the workload's SPIFFE ID: a process of the workload is then
 * decided exactly as its ID is.
 */
function lowerIdentities(t: Tables, input: IdentityInput): { entries: MapEntry[]; levels: number[] } {
  const best = new Map<string, { key: Uint8Array; order: number; classes: readonly number[] }>();
  const levels = new Set<number>();
  const starts = listStarts(t);
  input.workloads.forEach((w, order) => {
    if (!Number.isInteger(w.identityList) || !starts.has(w.identityList)) refuse(`workload \`${w.name}\` names class list ${w.identityList}, which the tables do not have`);
    const classes = t.reader.listClasses(w.identityList);
    if (classes.join(",") !== w.identityClasses.join(",")) refuse(`workload \`${w.name}\`: the manifest's classes ${w.identityClasses.join(", ")} are not its list's (${classes.join(", ")})`);
    if (classes.join(",") !== t.reader.identityClasses(w.id).join(",")) refuse(`workload \`${w.name}\`: its class list is not the one the tables give \`${w.id}\``);
    for (const block of w.match.filter(matchesSomeProcess)) {
      // INVARIANT: only managed cgroups are named `portcullis.*`, so no selector path lies
      // inside another workload's managed cgroup and only exec places processes there.
      if (block.cgroup?.split("/").some((segment) => segment.startsWith(MANAGED_PREFIX))) {
        refuse(`workload \`${w.name}\`: cgroup \`${block.cgroup}\` has a segment named \`${MANAGED_PREFIX}*\`, which is reserved for the cgroups \`portcullis exec\` manages`);
      }
      const path = blockCgroup(input.managedRoot, w.name, block);
      let cgroupId = ANY_CGROUP;
      if (path !== undefined) {
        const id = input.cgroupIds.get(path);
        if (id === undefined) refuse(`workload \`${w.name}\` needs the id of cgroup \`${path}\`, which was not given (does the cgroup exist?)`);
        if (id === ANY_CGROUP) refuse(`cgroup \`${path}\` has id 0, which the identity map uses for "any cgroup"`);
        cgroupId = id;
        levels.add(cgroupLevel(path));
      }
      const key = encodeIdentKey({ cgroupId, uid: block.uid ?? ANY_ID, gid: block.gid ?? ANY_ID });
      const hex = Buffer.from(key).toString("hex");
      // INVARIANT: the first workload in policy-set order wins, so an equal key keeps the lower order.
      if (!best.has(hex)) best.set(hex, { key, order, classes });
    }
  });
  if (levels.size > MAX_CGROUP_LEVELS) refuse(`the workloads' cgroups lie at ${levels.size} different levels; the kernel probes at most ${MAX_CGROUP_LEVELS}`);
  const entries = [...best.values()].map((e) => ({ key: e.key, value: encodeIdentVal({ order: e.order, classes: e.classes }) }));
  return { entries, levels: [...levels].sort((a, b) => a - b) };
}

/** A destination class's CIDR: its address bytes (host bits zero) and prefix. */
interface ClassCidr {
  readonly family: 4 | 6;
  readonly bytes: readonly number[];
  readonly prefix: number;
}

/** The first `prefix` bits of `bytes`, the rest zero. */
function maskBytes(bytes: readonly number[], prefix: number): number[] {
  return bytes.map((b, i) => b & ((0xff00 >> Math.max(0, Math.min(8, prefix - i * 8))) & 0xff));
}

/**
 * Destination class → its CIDR, from DST_V4 and DST_V6. Refused unless every class there
 * is one CIDR (class ≥ 1, no class or CIDR twice) and DST_PARENT names for each class the
 * longest CIDR of its family strictly containing it: what makes one LPM trie per identity
 * class equal to the tables' parent walk.
 */
function classCidrs(t: Tables): Map<number, ClassCidr> {
  const out = new Map<number, ClassCidr>();
  const byCidr = new Map<string, number>();
  const add = (family: 4 | 6, words: Uint32Array, prefix: number, cls: number) => {
    const bytes = maskBytes([...words].flatMap((w) => [w >>> 24, (w >>> 16) & 255, (w >>> 8) & 255, w & 255]), prefix);
    const text = `${family}/${bytes.join(".")}/${prefix}`;
    if (cls === 0 || out.has(cls) || byCidr.has(text)) refuse(`the destination tables hold class ${cls} or CIDR ${text} twice, or class 0`);
    out.set(cls, { family, bytes, prefix });
    byCidr.set(text, cls);
  };
  const v4 = t.s[SECTION.DST_V4]!;
  const v6 = t.s[SECTION.DST_V6]!;
  for (let i = 0; i < v4.length; i += 3) add(4, v4.subarray(i, i + 1), v4[i + 1]!, v4[i + 2]!);
  for (let i = 0; i < v6.length; i += 6) add(6, v6.subarray(i, i + 4), v6[i + 4]!, v6[i + 5]!);
  const parent = t.s[SECTION.DST_PARENT]!;
  const prefixes = (family: 4 | 6) => [...new Set([...out.values()].filter((c) => c.family === family).map((c) => c.prefix))].sort((a, b) => b - a);
  const byFamily = { 4: prefixes(4), 6: prefixes(6) };
  for (const [cls, c] of out) {
    let longest = 0;
    for (const p of byFamily[c.family]) {
      if (p >= c.prefix) continue;
      longest = byCidr.get(`${c.family}/${maskBytes(c.bytes, p).join(".")}/${p}`) ?? 0;
      if (longest !== 0) break;
    }
    if (parent[cls] !== longest) refuse(`DST_PARENT gives class ${cls} the parent ${parent[cls]}, but the longest CIDR containing it is class ${longest}`);
  }
  return out;
}

/**
 * pairs4 / pairs6: per PAIRS entry (s, c, row), the key (s, c's CIDR) → row (with the
 * row's one protocol block, if it has one); default_row: per identity class its row. A lookup with (s, address) finds the longest CIDR paired
 * with s that holds the address, which is the first (s, c) of the tables' walk c = d,
 * DST_PARENT[c], … (the CIDRs holding an address are nested, so that walk visits exactly
 * them, longest first).
 */
function lowerPairs(t: Tables, rowBlock: readonly number[]): { pairs4: MapEntry[]; pairs6: MapEntry[]; defaultRow: MapEntry[] } {
  const cidrs = classCidrs(t);
  const section = t.s[SECTION.PAIRS]!;
  const capacity = section[0]!;
  const pairs4: MapEntry[] = [];
  const pairs6: MapEntry[] = [];
  for (let i = 0; i < capacity; i++) {
    const slot = 1 + i * 3;
    if (section[slot] === EMPTY_SLOT) continue;
    const [identityClass, destinationClass, row] = [section[slot]!, section[slot + 1]!, section[slot + 2]!];
    const c = cidrs.get(destinationClass);
    if (c === undefined) refuse(`PAIRS names destination class ${destinationClass}, which has no CIDR`);
    const key = { prefixlen: LPM_FIXED_BITS.pair + c.prefix, identityClass, addr: c.bytes };
    const value = encodeRowVal({ row, protocolBlock: rowBlock[row]! });
    if (c.family === 4) pairs4.push({ key: encodePair4Key(key), value });
    else pairs6.push({ key: encodePair6Key(key), value });
  }
  const defaults = t.s[SECTION.DEFAULT_ROW]!;
  const defaultRow = [...defaults].map((row, cls) => ({ key: encodeArrayKey(cls), value: encodeRowVal({ row, protocolBlock: rowBlock[row]! }) }));
  return { pairs4, pairs6, defaultRow };
}

const U32_MAX = 0xffffffff;
const PORT_MAX = 0xffff;

/**
 * The uid/gid/port tries. The tables give every gid block and protocol block its own
 * offset even when their contents repeat, so blocks are numbered by content, bottom-up:
 * a protocol block by its (tcp, udp) port lists' contents, a gid block by its intervals
 * and their protocol blocks' numbers. Numbers are dense, in order of first use (rows in
 * order, lists in order), so the same tables always give the same images, and each
 * distinct block's entries are written once.
 */
function lowerRows(t: Tables): { uid: MapEntry[]; gid: MapEntry[]; port: MapEntry[]; rowBlock: number[] } {
  const rowIndex = t.s[SECTION.ROW_INDEX]!;
  const rowData = t.s[SECTION.ROW_DATA]!;
  const uid: MapEntry[] = [];
  const gid: MapEntry[] = [];
  const port: MapEntry[] = [];
  const listKey = (at: number) => rowData.subarray(at, at + 1 + rowData[at]! * 2).join(",");

  const protoByContent = new Map<string, number>();
  const protoByOffset = new Map<number, number>();
  const protoBlock = (at: number): number => {
    const known = protoByOffset.get(at);
    if (known !== undefined) return known;
    const lists = [rowData[at]!, rowData[at + 1]!] as const;
    const content = `${listKey(lists[0])}|${listKey(lists[1])}`;
    let block = protoByContent.get(content);
    if (block === undefined) {
      block = protoByContent.size;
      protoByContent.set(content, block);
      ([IPPROTO_TCP, IPPROTO_UDP] as const).forEach((protocol, k) => {
        for (const ports of intervals(rowData, lists[k], PORT_MAX)) {
          if (ports.target >= t.verdictCount) refuse(`a row names verdict ${ports.target} of ${t.verdictCount}`);
          const value = encodeVerdictRef(ports.target);
          for (const p of prefixCover(ports.low, ports.high, 16)) {
            port.push({ key: encodePortKey({ prefixlen: LPM_FIXED_BITS.port + p.bits, block: block!, protocol, port: p.value }), value });
          }
        }
      });
    }
    protoByOffset.set(at, block);
    return block;
  };

  const gidByContent = new Map<string, number>();
  const gidByOffset = new Map<number, number>();
  /** Gid block → its one protocol block when it has a single interval (every gid), else NO_BLOCK. */
  const gidSingle = new Map<number, number>();
  const gidBlock = (at: number): number => {
    const known = gidByOffset.get(at);
    if (known !== undefined) return known;
    const gids = intervals(rowData, at, U32_MAX).map((g) => ({ ...g, target: protoBlock(g.target) }));
    const content = gids.map((g) => `${g.low}:${g.target}`).join(",");
    let block = gidByContent.get(content);
    if (block === undefined) {
      block = gidByContent.size;
      gidByContent.set(content, block);
      for (const g of gids) {
        const value = encodeBlockVal(g.target);
        for (const p of prefixCover(g.low, g.high, 32)) gid.push({ key: encodeGidKey({ prefixlen: LPM_FIXED_BITS.gid + p.bits, scope: block, value: p.value }), value });
      }
      gidSingle.set(block, gids.length === 1 ? gids[0]!.target : NO_BLOCK);
    }
    gidByOffset.set(at, block);
    return block;
  };

  // INVARIANT: a row's protocol block is set only when the row has one uid interval (every
  // uid) leading to a gid block with one interval (every gid): then the uid and gid
  // lookups the program skips would give exactly that block.
  const rowBlock: number[] = [];
  for (let row = 0; row < t.rows; row++) {
    const uids = intervals(rowData, rowIndex[row]!, U32_MAX).map((u) => ({ ...u, target: gidBlock(u.target) }));
    for (const u of uids) {
      const value = encodeBlockVal(u.target);
      for (const p of prefixCover(u.low, u.high, 32)) uid.push({ key: encodeUidKey({ prefixlen: LPM_FIXED_BITS.uid + p.bits, scope: row, value: p.value }), value });
    }
    rowBlock.push(uids.length === 1 ? gidSingle.get(uids[0]!.target)! : NO_BLOCK);
  }
  return { uid, gid, port, rowBlock };
}

function lowerVerdicts(t: Tables): MapEntry[] {
  const verdicts = t.s[SECTION.VERDICTS]!;
  const reasonIndex = t.s[SECTION.REASON_INDEX]!;
  const reasonData = t.s[SECTION.REASON_DATA]!;
  const out: MapEntry[] = [];
  for (let v = 0; v < t.verdictCount; v++) {
    const set = verdicts[v * 2 + 1]!;
    const first = reasonIndex[set]! < reasonIndex[set + 1]! ? reasonData[reasonIndex[set]!]! : NO_RULE;
    out.push({ key: encodeArrayKey(v), value: encodeVerdict({ flags: verdicts[v * 2]!, rule: first }) });
  }
  return out;
}

/**
 * Lowers validated decision tables (the bundle's table words and rule ids) and the
 * workloads' identities into the map images of one generation. Throws `TableError` for
 * corrupt tables and `KernelLoweringError` for what the maps cannot hold exactly.
 */
export function lowerToMapImages(tables: Uint32Array, ruleIds: readonly string[], identity: IdentityInput): MapImages {
  // Validates every section and stored index before anything is read below.
  const reader = new DecisionTableReader(tables, ruleIds);
  const s = readSections(tables);
  const meta = s[SECTION.META]!;
  const t: Tables = { rows: meta[2]!, verdictCount: meta[3]!, s, reader };
  const ident = lowerIdentities(t, identity);
  const unidentified = reader.listClasses(meta[9]!);
  if (unidentified.length === 0 || unidentified.length > MAX_CLASSES) refuse(`the unidentified list has ${unidentified.length} classes; the kernel holds 1..${MAX_CLASSES}`);
  const rows = lowerRows(t);
  const { pairs4, pairs6, defaultRow } = lowerPairs(t, rows.rowBlock);
  const maps: Record<MapName, readonly MapEntry[]> = {
    ident: ident.entries,
    pairs4,
    pairs6,
    default_row: defaultRow,
    uid_lpm: rows.uid,
    gid_lpm: rows.gid,
    port_lpm: rows.port,
    verdicts: lowerVerdicts(t),
  };
  const counts = Object.fromEntries(MAP_NAMES.map((m) => [m, maps[m].length])) as Record<MapName, number>;
  const capacity = Object.fromEntries(MAP_NAMES.map((m) => [m, Math.max(1, maps[m].length)])) as Record<MapName, number>;
  return { maps, levels: ident.levels, unidentified, counts, capacity };
}
