// Owns the real kernel: loading the BPF object through the libbpf addon, pinning it under
// /sys/fs/bpf/portcullis/<name>/, attaching the four programs to a cgroup v2 directory
// (BPF_F_ALLOW_MULTI), installing generations of policy maps, reading counters and events,
// and unloading without leaving anything behind. Policy-free: it installs map images
// (`GenerationImage`), whatever produced them. Every failure a user can cause is a
// `KernelError` carrying one diagnostic line.
//
// Generations (docs/kernel.md). Each policy map is an ARRAY_OF_MAPS outer with two slots;
// `pc_control.generation` says which slot the programs use. A swap:
//   1. checks every map's entry count against its capacity (nothing written yet);
//   2. creates fresh inner maps and fills them: no program can see them yet;
//   3. waits for an RCU grace period (`synchronizeRcu`): every program that read the
//      control word before the previous flip, and so may still be reading the inactive
//      slot, has returned;
//   4. writes the inactive generation's config and zeroes its counters, installs the
//      fresh maps in the inactive slots (the kernel waits for a grace period after each
//      outer-map update, and frees the maps they replace once no program holds them);
//   5. flips the control word (one byte of it changes, so no read can be torn).
// INVARIANT: a map is never written once it sits in an outer slot, so a program that read
// the control word sees one whole generation.
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { diag, type CatalogKey, type Diagnostic } from "../dsl/diagnostics.js";
import { ANY_CGROUP, ANY_ID, decodeIdentKey, keySize, MAP_NAMES, MAPS, MAX_CGROUP_LEVELS, MAX_CLASSES, valueSize, type MapName } from "./layout.js";
import { packEntries, type MapImages } from "./lower.js";

export const PIN_ROOT = "/sys/fs/bpf/portcullis";
export const STATE_ROOT = "/run/portcullis";
const BTF_FILE = "/sys/kernel/btf/vmlinux";

/** Mirrors portcullis.h (PC_MAX_LEVELS is layout.ts's MAX_CGROUP_LEVELS). */
const MAX_LEVELS = MAX_CGROUP_LEVELS;
export const MAX_RULES = 16384;
const COUNTER_SLOTS = MAX_RULES + 1;
const CONTROL_BYTES = 8;
const CONFIG_BYTES = 8 + 4 * MAX_LEVELS + 8 + 4 * MAX_CLASSES;
const COUNTER_BYTES = 16;
const EVENT_BYTES = 128;

/** Sizes of the loader's own structs in portcullis.h; the layout test compares them with the BTF. */
export const LOADER_STRUCT_SIZES = { pc_control: CONTROL_BYTES, pc_gen_config: CONFIG_BYTES, pc_counter: COUNTER_BYTES } as const;

/** Entries each map of a generation holds unless `kernel load --capacity MAP=N` says otherwise. */
export const DEFAULT_CAPACITY: Readonly<Record<MapName, number>> = {
  ident: 16384,
  pairs4: 524288,
  pairs6: 262144,
  default_row: 65536,
  uid_lpm: 262144,
  gid_lpm: 262144,
  port_lpm: 524288,
  verdicts: 65536,
};

const PROGRAMS = ["pc_connect4", "pc_connect6", "pc_sendmsg4", "pc_sendmsg6"] as const;

export class KernelError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
  }
}

function fail(key: CatalogKey, ...args: (string | number)[]): never {
  throw new KernelError(diag(key, undefined, ...args));
}

// ---------------------------------------------------------------- the addon

interface NativeError extends Error {
  readonly errno?: number;
}

interface ObjInfo {
  readonly id: number;
  readonly type: number;
  readonly name: string;
  readonly valueSize?: number;
  readonly maxEntries?: number;
}

export interface NativeBpf {
  loadObject(objectPath: string, pinDir: string, capacities: Record<string, number>): void;
  objGet(pinPath: string): number;
  openDir(dir: string): number;
  close(fd: number): void;
  mapCreate(type: number, name: string, keySize: number, valueSize: number, maxEntries: number, flags: number): number;
  mapUpdateMany(fd: number, keys: Uint8Array, values: Uint8Array, count: number, batch: boolean): number;
  mapUpdate(fd: number, key: Uint8Array, value: Uint8Array): void;
  mapLookup(fd: number, key: Uint8Array, valueBytes: number): Buffer | null;
  mapCount(fd: number, keySize: number): number;
  mapFdById(id: number): number;
  possibleCpus(): number;
  objInfo(fd: number, isMap: boolean): ObjInfo;
  progAttach(progFd: number, cgroupFd: number, attachType: number): void;
  progDetach(progFd: number, cgroupFd: number, attachType: number): void;
  progQuery(cgroupFd: number, attachType: number): number[];
  synchronizeRcu(): void;
  ringbufRead(fd: number, timeoutMs: number): Buffer[];
  btfStructs(objectPath: string): Record<string, { size: number; fields: Record<string, { offset: number; size: number }> }>;
  connectLoop(family: 4 | 6, address: string, port: number, iterations: number): number;
  readonly MAP_HASH: number;
  readonly MAP_ARRAY: number;
  readonly MAP_LPM_TRIE: number;
  readonly F_NO_PREALLOC: number;
  readonly ATTACH_CONNECT4: number;
  readonly ATTACH_CONNECT6: number;
  readonly ATTACH_SENDMSG4: number;
  readonly ATTACH_SENDMSG6: number;
}

/** Where the build (scripts/setup-kernel.sh) puts the object, the addon and portcullis_run. */
export function buildDir(): string {
  let dir = path.dirname(new URL(import.meta.url).pathname);
  while (!existsSync(path.join(dir, "package.json"))) dir = path.dirname(dir);
  return path.join(dir, "build/kernel");
}

export const artifacts = {
  object: () => path.join(buildDir(), "portcullis.bpf.o"),
  addon: () => path.join(buildDir(), "portcullis_bpf.node"),
  runner: () => path.join(buildDir(), "portcullis_run"),
};

let nativeModule: NativeBpf | undefined;

export function native(): NativeBpf {
  if (nativeModule === undefined) {
    const addon = artifacts.addon();
    if (!existsSync(addon)) fail("KernelNotBuilt", addon);
    nativeModule = createRequire(import.meta.url)(addon) as NativeBpf;
  }
  return nativeModule;
}

function attachTypes(n: NativeBpf): Record<(typeof PROGRAMS)[number], number> {
  return { pc_connect4: n.ATTACH_CONNECT4, pc_connect6: n.ATTACH_CONNECT6, pc_sendmsg4: n.ATTACH_SENDMSG4, pc_sendmsg6: n.ATTACH_SENDMSG6 };
}

// ---------------------------------------------------------------- environment

/** The cgroup v2 mount point, from /proc/mounts. */
export function cgroup2Mount(): string {
  const mounts = existsSync("/proc/mounts") ? readFileSync("/proc/mounts", "utf8") : "";
  const line = mounts.split("\n").find((l) => l.split(" ")[2] === "cgroup2");
  if (line === undefined) fail("KernelNoCgroup2");
  return line.split(" ")[1]!;
}

function bpffsMounted(): boolean {
  const mounts = existsSync("/proc/mounts") ? readFileSync("/proc/mounts", "utf8") : "";
  return mounts.split("\n").some((l) => l.split(" ")[1] === "/sys/fs/bpf" && l.split(" ")[2] === "bpf");
}

/** Everything the kernel path needs, checked in the order a user would fix it; throws the first missing one. */
export function preflight(): void {
  if (process.platform !== "linux" || process.getuid?.() !== 0) fail("KernelNotRoot");
  if (!bpffsMounted()) fail("KernelNoBpffs");
  cgroup2Mount();
  if (!existsSync(BTF_FILE)) fail("KernelNoBtf");
  for (const f of [artifacts.object(), artifacts.addon(), artifacts.runner()]) if (!existsSync(f)) fail("KernelNotBuilt", f);
  native();
}

/** Why the kernel path cannot run here, or undefined when it can (tests print it when they skip). */
export function kernelUnavailable(): string | undefined {
  try {
    preflight();
    return undefined;
  } catch (e) {
    if (e instanceof KernelError) return `${e.diagnostic.code}: ${e.diagnostic.message}`;
    throw e;
  }
}

/** A cgroup path given by a user: absolute below the mount, or relative to it (like `cgroup` selectors). */
export function resolveCgroup(given: string): string {
  const mount = cgroup2Mount();
  const full = given === mount || given.startsWith(`${mount}/`) ? given : path.join(mount, given);
  if (path.relative(mount, full).startsWith("..")) fail("KernelCgroupPath", given, `it is outside the cgroup2 mount \`${mount}\``);
  return path.normalize(full);
}

/** The cgroup id a BPF program sees for a directory: its inode number. */
export function cgroupId(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

export function checkName(name: string): string {
  if (!/^[a-z0-9][a-z0-9_-]{0,31}$/.test(name)) fail("KernelBadOption", `\`--name ${name}\` must be 1-32 characters of a-z, 0-9, \`-\` and \`_\``);
  return name;
}

// ---------------------------------------------------------------- generations

/** One generation of policy as map images: what lowerToMapImages gives (the bench builds synthetic ones). */
export type GenerationImage = Pick<MapImages, "maps" | "levels" | "unidentified">;

/** Entries each map needs: the entry count, or for an ARRAY the highest index + 1. */
export function requiredCapacity(image: GenerationImage): Record<MapName, number> {
  const out = {} as Record<MapName, number>;
  for (const name of MAP_NAMES) {
    const entries = image.maps[name];
    if (MAPS[name].type !== "array") out[name] = entries.length;
    else out[name] = entries.reduce((max, e) => Math.max(max, new DataView(e.key.buffer, e.key.byteOffset, 4).getUint32(0, true) + 1), 0);
  }
  return out;
}

/** Refuses an image that does not fit; runs before anything is written. */
export function checkCapacity(image: GenerationImage, capacity: Readonly<Record<MapName, number>>): void {
  const need = requiredCapacity(image);
  for (const name of MAP_NAMES) if (need[name] > capacity[name]) fail("KernelCapacity", need[name], name, capacity[name]);
  if (image.levels.length > MAX_LEVELS) fail("KernelCapacity", image.levels.length, "levels", MAX_LEVELS);
  if (image.unidentified.length === 0 || image.unidentified.length > MAX_CLASSES) fail("KernelCapacity", image.unidentified.length, "unidentified classes", MAX_CLASSES);
}

function mapTypeNumber(n: NativeBpf, name: MapName): { type: number; flags: number } {
  const type = MAPS[name].type;
  // Hashes are not preallocated either: a generation's maps are created on every swap, and
  // preallocating a large capacity each time would cost more than the fill.
  if (type === "hash") return { type: n.MAP_HASH, flags: n.F_NO_PREALLOC };
  if (type === "array") return { type: n.MAP_ARRAY, flags: 0 };
  return { type: n.MAP_LPM_TRIE, flags: n.F_NO_PREALLOC };
}

/** Creates and fills one generation's maps; returns their fds (the caller closes them). */
function createGeneration(n: NativeBpf, image: GenerationImage, capacity: Readonly<Record<MapName, number>>): Record<MapName, number> {
  const fds = {} as Record<MapName, number>;
  try {
    for (const name of MAP_NAMES) {
      const { type, flags } = mapTypeNumber(n, name);
      fds[name] = n.mapCreate(type, `pc_${name}`.slice(0, 15), keySize(name), valueSize(name), capacity[name], flags);
      const entries = image.maps[name];
      if (entries.length === 0) continue;
      const { keys, values } = packEntries(name, entries);
      n.mapUpdateMany(fds[name], keys, values, entries.length, true);
    }
    return fds;
  } catch (e) {
    for (const fd of Object.values(fds)) n.close(fd);
    throw refused("fill the policy maps", e);
  }
}

function refused(what: string, e: unknown): KernelError {
  if (e instanceof KernelError) return e;
  return new KernelError(diag("KernelRefused", undefined, what, (e as NativeError).message));
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

/**
 * pc_gen_config.probe_mask: the identity key shapes present in the image (bit v for a key
 * with a cgroup id, 4 + v for cgroup id 0; v = uid ANY | gid ANY << 1).
 */
export function probeMask(image: GenerationImage): number {
  let mask = 0;
  for (const e of image.maps.ident) {
    const k = decodeIdentKey(e.key);
    const v = (k.uid === ANY_ID ? 1 : 0) | (k.gid === ANY_ID ? 2 : 0);
    mask |= 1 << (k.cgroupId === ANY_CGROUP ? 4 + v : v);
  }
  return mask;
}

function encodeConfig(audit: boolean, image: GenerationImage): Uint8Array {
  const out = new Uint8Array(CONFIG_BYTES);
  const v = new DataView(out.buffer);
  v.setUint32(0, audit ? 1 : 0, true);
  v.setUint32(4, image.levels.length, true);
  image.levels.forEach((l, i) => v.setUint32(8 + 4 * i, l, true));
  v.setUint32(8 + 4 * MAX_LEVELS, probeMask(image), true);
  v.setUint32(12 + 4 * MAX_LEVELS, image.unidentified.length, true);
  image.unidentified.forEach((cls, i) => v.setUint32(16 + 4 * MAX_LEVELS + 4 * i, cls, true));
  return out;
}

interface Control {
  readonly generation: number;
  readonly swaps: number;
}

function readControl(n: NativeBpf, fd: number): Control {
  const bytes = n.mapLookup(fd, u32(0), CONTROL_BYTES)!;
  return { generation: bytes.readUInt32LE(0), swaps: bytes.readUInt32LE(4) };
}

/** Opens the pinned maps of an instance; the caller closes them. */
function openPinned(n: NativeBpf, name: string): { fds: Record<string, number>; close(): void } {
  const dir = path.join(PIN_ROOT, name);
  const fds: Record<string, number> = {};
  const close = () => Object.values(fds).forEach((fd) => n.close(fd));
  try {
    for (const map of [...MAP_NAMES.map((m) => `pc_${m}`), "pc_control", "pc_config", "pc_counters", "pc_events"]) fds[map] = n.objGet(path.join(dir, map));
  } catch (e) {
    close();
    throw refused("open the pinned maps", e);
  }
  // A pinned instance from another build of portcullis.h would be written with the wrong layout.
  if (n.objInfo(fds["pc_config"]!, true).valueSize !== CONFIG_BYTES || n.objInfo(fds["pc_control"]!, true).valueSize !== CONTROL_BYTES) {
    close();
    fail("KernelRefused", `use the maps pinned at ${dir}`, "they were created by another build of portcullis.h; unload and load again");
  }
  return { fds, close };
}

/** Fills the inactive generation and flips to it (steps 2-5 above). Returns the new generation. */
function swapGeneration(n: NativeBpf, name: string, image: GenerationImage, capacity: Readonly<Record<MapName, number>>, audit: boolean): number {
  checkCapacity(image, capacity);
  const pinned = openPinned(n, name);
  try {
    const control = readControl(n, pinned.fds["pc_control"]!);
    const next = 1 - control.generation;
    const fresh = createGeneration(n, image, capacity);
    try {
      n.synchronizeRcu();
      n.mapUpdate(pinned.fds["pc_config"]!, u32(next), encodeConfig(audit, image));
      zeroCounters(n, pinned.fds["pc_counters"]!, next);
      for (const map of MAP_NAMES) n.mapUpdate(pinned.fds[`pc_${map}`]!, u32(next), u32(fresh[map]));
      const word = new Uint8Array(CONTROL_BYTES);
      new DataView(word.buffer).setUint32(0, next, true);
      new DataView(word.buffer).setUint32(4, (control.swaps + 1) >>> 0, true);
      n.mapUpdate(pinned.fds["pc_control"]!, u32(0), word);
      return next;
    } finally {
      for (const fd of Object.values(fresh)) n.close(fd);
    }
  } catch (e) {
    throw refused("install the new generation", e);
  } finally {
    pinned.close();
  }
}

function zeroCounters(n: NativeBpf, fd: number, generation: number): void {
  const cpus = n.possibleCpus();
  const keys = new Uint8Array(COUNTER_SLOTS * 4);
  const view = new DataView(keys.buffer);
  for (let i = 0; i < COUNTER_SLOTS; i++) view.setUint32(i * 4, generation * COUNTER_SLOTS + i, true);
  n.mapUpdateMany(fd, keys, new Uint8Array(COUNTER_SLOTS * COUNTER_BYTES * cpus), COUNTER_SLOTS, true);
}

// ---------------------------------------------------------------- instances

/** What `kernel load` records beside the pins (STATE_ROOT/<name>/state.json). */
export interface InstanceState {
  readonly name: string;
  /** Absolute path of the attach cgroup. */
  readonly cgroup: string;
  /** Directories this instance created (the attach point, selector and managed cgroups), removed at unload, deepest first. */
  readonly createdCgroups: readonly string[];
  readonly capacity: Readonly<Record<MapName, number>>;
  /** Per generation: the bundle file it was built from (a copy), audit mode, map entry counts. */
  readonly generations: readonly (GenerationRecord | null)[];
}

export interface GenerationRecord {
  readonly bundle: string;
  readonly audit: boolean;
  readonly counts: Readonly<Record<MapName, number>>;
  readonly loadedAt: string;
}

function stateFile(name: string): string {
  return path.join(STATE_ROOT, name, "state.json");
}

export function readState(name: string): InstanceState | undefined {
  const file = stateFile(name);
  if (!existsSync(file) || !existsSync(path.join(PIN_ROOT, name))) return undefined;
  return JSON.parse(readFileSync(file, "utf8")) as InstanceState;
}

function writeState(state: InstanceState): void {
  mkdirSync(path.dirname(stateFile(state.name)), { recursive: true, mode: 0o700 });
  writeFileSync(stateFile(state.name), `${JSON.stringify(state, null, 2)}\n`);
}

export interface LoadRequest {
  readonly name: string;
  /** Absolute attach cgroup (resolveCgroup). */
  readonly cgroup: string;
  readonly image: GenerationImage;
  /** The bundle's bytes, kept so that status and events can resolve indices to ids. */
  readonly bundleBytes: Uint8Array;
  readonly audit: boolean;
  readonly capacity?: Partial<Record<MapName, number>>;
  /** Cgroup directories the caller created for this load (selector and managed cgroups). */
  readonly createdCgroups?: readonly string[];
}

export interface LoadResult {
  readonly created: boolean;
  readonly generation: number;
  readonly counts: Readonly<Record<MapName, number>>;
}

/** Creates a cgroup directory (and missing parents); returns the directories it made, outermost first. */
export function ensureCgroup(dir: string): string[] {
  const made: string[] = [];
  const missing: string[] = [];
  for (let d = dir; !existsSync(d); d = path.dirname(d)) missing.unshift(d);
  for (const d of missing) {
    mkdirSync(d);
    made.push(d);
  }
  if (!existsSync(path.join(dir, "cgroup.procs"))) fail("KernelCgroupPath", dir, "it has no cgroup.procs");
  return made;
}

/**
 * Loads a policy: the first time for `name`, loads and pins the object, installs the image
 * as a generation and attaches the programs to `cgroup`; afterwards, swaps generations.
 * A refused load (capacity, kernel error) leaves the kernel as it was.
 */
export function loadPolicy(req: LoadRequest): LoadResult {
  preflight();
  const n = native();
  const existing = readState(req.name);
  const counts = Object.fromEntries(MAP_NAMES.map((m) => [m, req.image.maps[m].length])) as Record<MapName, number>;
  if (existing !== undefined) {
    if (existing.cgroup !== req.cgroup) {
      removeCgroups(req.createdCgroups ?? []);
      fail("KernelOtherCgroup", req.name, existing.cgroup, req.cgroup);
    }
    let generation: number;
    try {
      generation = swapGeneration(n, req.name, req.image, existing.capacity, req.audit);
    } catch (e) {
      removeCgroups(req.createdCgroups ?? []);
      throw e;
    }
    const generations = [...existing.generations];
    generations[generation] = record(req, generation, counts);
    const createdCgroups = [...existing.createdCgroups, ...(req.createdCgroups ?? []).filter((c) => !existing.createdCgroups.includes(c))];
    writeState({ ...existing, createdCgroups, generations });
    return { created: false, generation, counts };
  }

  const capacity = { ...DEFAULT_CAPACITY, ...req.capacity };
  try {
    checkCapacity(req.image, capacity);
  } catch (e) {
    removeCgroups(req.createdCgroups ?? []);
    throw e;
  }
  const pinDir = path.join(PIN_ROOT, req.name);
  const createdCgroups = [...ensureCgroup(req.cgroup), ...(req.createdCgroups ?? [])];
  mkdirSync(pinDir, { recursive: true });
  const attached: { prog: number; type: number }[] = [];
  let cgroupFd = -1;
  try {
    n.loadObject(artifacts.object(), pinDir, Object.fromEntries(MAP_NAMES.map((m) => [`pc_${m}`, capacity[m]])));
    const generation = swapGeneration(n, req.name, req.image, capacity, req.audit);
    writeState({ name: req.name, cgroup: req.cgroup, createdCgroups, capacity, generations: [null, null].map((g, i) => (i === generation ? record(req, generation, counts) : g)) });
    cgroupFd = n.openDir(req.cgroup);
    const types = attachTypes(n);
    for (const prog of PROGRAMS) {
      const fd = n.objGet(path.join(pinDir, prog));
      try {
        n.progAttach(fd, cgroupFd, types[prog]);
        attached.push({ prog: fd, type: types[prog] });
      } catch (e) {
        n.close(fd);
        throw e;
      }
    }
    return { created: true, generation, counts };
  } catch (e) {
    for (const a of attached) n.progDetach(a.prog, cgroupFd, a.type);
    rmSync(pinDir, { recursive: true, force: true });
    rmSync(path.dirname(stateFile(req.name)), { recursive: true, force: true });
    removeCgroups(createdCgroups);
    throw refused("load the BPF programs", e);
  } finally {
    for (const a of attached) n.close(a.prog);
    if (cgroupFd >= 0) n.close(cgroupFd);
  }
}

function record(req: LoadRequest, generation: number, counts: Record<MapName, number>): GenerationRecord {
  const dir = path.join(STATE_ROOT, req.name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const bundle = path.join(dir, `bundle-${generation}.pcb`);
  writeFileSync(bundle, req.bundleBytes);
  chmodSync(bundle, 0o600);
  return { bundle, audit: req.audit, counts, loadedAt: new Date().toISOString() };
}

/** Removes directories deepest first; one that still holds processes is left (and reported). */
export function removeCgroups(dirs: readonly string[]): string[] {
  const left: string[] = [];
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    try {
      if (existsSync(d)) rmdirSync(d);
    } catch {
      left.push(d);
    }
  }
  return left;
}

export interface UnloadResult {
  /** Cgroups this instance created that still hold processes (so were not removed). */
  readonly busyCgroups: readonly string[];
}

/** Detaches the programs, removes the pins, the state and the cgroups the instance created. */
export function unloadPolicy(name: string): UnloadResult {
  preflight();
  const n = native();
  const state = readState(name);
  const pinDir = path.join(PIN_ROOT, name);
  if (state === undefined && !existsSync(pinDir)) fail("KernelNotLoaded", name);
  if (state !== undefined && existsSync(state.cgroup)) {
    const cgroupFd = n.openDir(state.cgroup);
    try {
      const types = attachTypes(n);
      for (const prog of PROGRAMS) {
        const pin = path.join(pinDir, prog);
        if (!existsSync(pin)) continue;
        const fd = n.objGet(pin);
        try {
          n.progDetach(fd, cgroupFd, types[prog]);
        } catch (e) {
          if ((e as NativeError).errno !== 2) throw refused("detach the programs", e);
        } finally {
          n.close(fd);
        }
      }
    } finally {
      n.close(cgroupFd);
    }
  }
  rmSync(pinDir, { recursive: true, force: true });
  if (existsSync(PIN_ROOT) && readdirSync(PIN_ROOT).length === 0) rmdirSync(PIN_ROOT);
  rmSync(path.join(STATE_ROOT, name), { recursive: true, force: true });
  if (existsSync(STATE_ROOT) && readdirSync(STATE_ROOT).length === 0) rmdirSync(STATE_ROOT);
  return { busyCgroups: state === undefined ? [] : removeCgroups(state.createdCgroups) };
}

// ---------------------------------------------------------------- status, counters, events

export interface ProgramStatus {
  readonly name: string;
  readonly id: number;
  readonly attached: boolean;
}

export interface InstanceStatus {
  readonly state: InstanceState;
  readonly generation: number;
  readonly swaps: number;
  readonly programs: readonly ProgramStatus[];
  /** Entries in the active generation's maps, counted in the kernel. */
  readonly entries: Readonly<Record<MapName, number>>;
  /** Active generation's counters by rule index (MAX_RULES: default / no rule). */
  readonly counters: ReadonlyMap<number, { allowed: bigint; denied: bigint }>;
}

export function instanceStatus(name: string, ruleCount: number): InstanceStatus {
  preflight();
  const n = native();
  const state = readState(name);
  if (state === undefined) fail("KernelNotLoaded", name);
  const pinned = openPinned(n, name);
  const cgroupFd = n.openDir(state.cgroup);
  try {
    const control = readControl(n, pinned.fds["pc_control"]!);
    const types = attachTypes(n);
    const programs = PROGRAMS.map((prog) => {
      const fd = n.objGet(path.join(PIN_ROOT, name, prog));
      try {
        const id = n.objInfo(fd, false).id;
        return { name: prog, id, attached: n.progQuery(cgroupFd, types[prog]).includes(id) };
      } finally {
        n.close(fd);
      }
    });
    const entries = {} as Record<MapName, number>;
    for (const map of MAP_NAMES) {
      const innerId = n.mapLookup(pinned.fds[`pc_${map}`]!, u32(control.generation), 4)!.readUInt32LE(0);
      const fd = n.mapFdById(innerId);
      try {
        entries[map] = MAPS[map].type === "array" ? (state.generations[control.generation]?.counts[map] ?? 0) : n.mapCount(fd, keySize(map));
      } finally {
        n.close(fd);
      }
    }
    return { state, generation: control.generation, swaps: control.swaps, programs, entries, counters: readCounters(n, pinned.fds["pc_counters"]!, control.generation, ruleCount) };
  } finally {
    n.close(cgroupFd);
    pinned.close();
  }
}

function readCounters(n: NativeBpf, fd: number, generation: number, ruleCount: number): Map<number, { allowed: bigint; denied: bigint }> {
  const cpus = n.possibleCpus();
  const out = new Map<number, { allowed: bigint; denied: bigint }>();
  for (const slot of [...Array(Math.min(ruleCount, MAX_RULES)).keys(), MAX_RULES]) {
    const bytes = n.mapLookup(fd, u32(generation * COUNTER_SLOTS + slot), COUNTER_BYTES * cpus)!;
    let allowed = 0n;
    let denied = 0n;
    for (let c = 0; c < cpus; c++) {
      allowed += bytes.readBigUInt64LE(c * COUNTER_BYTES);
      denied += bytes.readBigUInt64LE(c * COUNTER_BYTES + 8);
    }
    if (allowed > 0n || denied > 0n) out.set(slot, { allowed, denied });
  }
  return out;
}

/** One decision as the program logged it (struct pc_event). */
export interface RawEvent {
  readonly cgroupId: bigint;
  readonly timeNs: bigint;
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** The identified workload's index in the manifest, or undefined (unidentified). */
  readonly workload: number | undefined;
  /** The class whose verdict decided. */
  readonly identityClass: number;
  /** The deciding verdict index, NO_VERDICT when a lookup missed. */
  readonly verdict: number;
  readonly rule: number;
  readonly generation: number;
  /** Each class's verdict index, in list order (NO_VERDICT where a lookup missed). */
  readonly verdicts: readonly number[];
  readonly port: number;
  readonly protocol: number;
  readonly family: 4 | 6;
  readonly addr: readonly number[];
  readonly allowed: boolean;
  readonly returned: boolean;
  readonly hook: "connect4" | "connect6" | "sendmsg4" | "sendmsg6";
  readonly comm: string;
}

const HOOKS = ["connect4", "connect6", "sendmsg4", "sendmsg6"] as const;
/** pc_event.workload of an unidentified process (PC_UNIDENTIFIED). */
const UNIDENTIFIED = 0xffffffff;

/** struct pc_event (portcullis.h); the layout test compares it with the object's BTF. */
export const EVENT_LAYOUT = {
  size: EVENT_BYTES,
  fields: {
    cgroup_id: { offset: 0, size: 8 },
    time_ns: { offset: 8, size: 8 },
    pid: { offset: 16, size: 4 },
    uid: { offset: 20, size: 4 },
    gid: { offset: 24, size: 4 },
    workload: { offset: 28, size: 4 },
    identity_class: { offset: 32, size: 4 },
    verdict: { offset: 36, size: 4 },
    rule: { offset: 40, size: 4 },
    generation: { offset: 44, size: 4 },
    count: { offset: 48, size: 4 },
    verdicts: { offset: 52, size: 4 * MAX_CLASSES },
    port: { offset: 84, size: 2 },
    protocol: { offset: 86, size: 1 },
    family: { offset: 87, size: 1 },
    addr: { offset: 88, size: 16 },
    allowed: { offset: 104, size: 1 },
    returned: { offset: 105, size: 1 },
    hook: { offset: 106, size: 1 },
    pad: { offset: 107, size: 5 },
    comm: { offset: 112, size: 16 },
  },
} as const;

export function decodeEvent(b: Buffer): RawEvent {
  const f = EVENT_LAYOUT.fields;
  const family = b.readUInt8(f.family.offset) === 4 ? 4 : 6;
  const comm = b.subarray(f.comm.offset, f.comm.offset + f.comm.size);
  const end = comm.indexOf(0);
  const workload = b.readUInt32LE(f.workload.offset);
  const count = b.readUInt32LE(f.count.offset);
  return {
    cgroupId: b.readBigUInt64LE(f.cgroup_id.offset),
    timeNs: b.readBigUInt64LE(f.time_ns.offset),
    pid: b.readUInt32LE(f.pid.offset),
    uid: b.readUInt32LE(f.uid.offset),
    gid: b.readUInt32LE(f.gid.offset),
    workload: workload === UNIDENTIFIED ? undefined : workload,
    identityClass: b.readUInt32LE(f.identity_class.offset),
    verdict: b.readUInt32LE(f.verdict.offset),
    rule: b.readUInt32LE(f.rule.offset),
    generation: b.readUInt32LE(f.generation.offset),
    verdicts: Array.from({ length: Math.min(count, MAX_CLASSES) }, (_, i) => b.readUInt32LE(f.verdicts.offset + 4 * i)),
    port: b.readUInt16LE(f.port.offset),
    protocol: b.readUInt8(f.protocol.offset),
    family,
    addr: [...b.subarray(f.addr.offset, f.addr.offset + (family === 4 ? 4 : 16))],
    allowed: b.readUInt8(f.allowed.offset) === 1,
    returned: b.readUInt8(f.returned.offset) === 1,
    hook: HOOKS[b.readUInt8(f.hook.offset)] ?? "connect4",
    comm: comm.subarray(0, end < 0 ? comm.length : end).toString("utf8"),
  };
}

/** Events the programs logged since the last read (waiting up to `timeoutMs` for the first). */
export function readEvents(name: string, timeoutMs: number): RawEvent[] {
  const n = native();
  const fd = n.objGet(path.join(PIN_ROOT, name, "pc_events"));
  try {
    return n.ringbufRead(fd, timeoutMs).map(decodeEvent);
  } finally {
    n.close(fd);
  }
}
