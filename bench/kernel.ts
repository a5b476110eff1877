// Owns the kernel benchmark: connect() latency with the programs attached and 1k / 100k
// policy entries, the process in one or eight identity classes, against no program (same
// run, interleaved rounds), map load speed, and the time of a full generation swap of 100k
// entries. Needs root and the built kernel path; otherwise it reports why it did not run.
//
// The policy images are synthetic (built here, not lowered from a policy set) so that their
// size is exact: the bench process's cgroup is one workload with a list of classes,
// destinations are /32s in 10.0.0.0/8 paired with one class each, 127.0.0.1 is paired with
// every odd class (even ones take their default row: a trie miss and an array lookup),
// each class reaches a row of its own, and rows split ports into many prefixes. Every
// class allows the measured connect, so the program looks up every class (the slowest
// path: a deny may be decided by any class). Rows either name their one protocol block
// (as 88% of the rows of the generated 1,000-rule set do: no uid or gid lookup) or not.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import {
  encodeArrayKey,
  encodeBlockVal,
  encodeGidKey,
  encodeIdentKey,
  encodeIdentVal,
  encodePair4Key,
  encodePortKey,
  encodeRowVal,
  encodeUidKey,
  encodeVerdict,
  encodeVerdictRef,
  ANY_ID,
  IPPROTO_TCP,
  IPPROTO_UDP,
  LPM_FIXED_BITS,
  MAP_NAMES,
  MAPS,
  NO_BLOCK,
  NO_RULE,
  keySize,
  valueSize,
  type MapName,
} from "../kernel-bridge/layout.js";
import { cgroup2Mount, cgroupId, kernelUnavailable, loadPolicy, native, removeCgroups, ensureCgroup, unloadPolicy, type GenerationImage } from "../kernel-bridge/loader.js";
import { packEntries } from "../kernel-bridge/lower.js";
import type { BenchSection } from "./run.js";
import { median } from "./stats.js";

type Entry = { key: Uint8Array; value: Uint8Array };

/**
 * A generation of about `total` entries in which the bench's cgroup (level 1) has identity
 * classes 1..`classes`; with `idLookups`, rows do not name their protocol block, so each
 * class costs a uid and a gid lookup too.
 */
function syntheticImage(total: number, benchCgroup: bigint, classes: number, idLookups: boolean): GenerationImage {
  const rows = 16;
  const destinations = Math.floor(total * 0.45);
  const list = Array.from({ length: classes }, (_, i) => i + 1);
  const maps = Object.fromEntries(MAP_NAMES.map((m) => [m, [] as Entry[]])) as Record<MapName, Entry[]>;
  const pair = (identityClass: number, addr: number[]) => encodePair4Key({ prefixlen: LPM_FIXED_BITS.pair + 32, identityClass, addr });
  // Every uid and gid of row r lead to protocol block r.
  const rowVal = (row: number) => encodeRowVal({ row, protocolBlock: idLookups ? NO_BLOCK : row });
  maps.ident.push({ key: encodeIdentKey({ cgroupId: benchCgroup, uid: ANY_ID, gid: ANY_ID }), value: encodeIdentVal({ order: 0, classes: list }) });
  for (const cls of list.filter((c) => c % 2 === 1)) maps.pairs4.push({ key: pair(cls, [127, 0, 0, 1]), value: rowVal(cls % rows) });
  for (let i = 0; i < destinations; i++) {
    maps.pairs4.push({ key: pair(list[i % classes]!, [10, (i >> 16) & 255, (i >> 8) & 255, i & 255]), value: rowVal(i % rows) });
  }
  for (const cls of [0, ...list]) maps.default_row.push({ key: encodeArrayKey(cls), value: rowVal(cls % rows) });
  for (let row = 0; row < rows; row++) {
    maps.uid_lpm.push({ key: encodeUidKey({ prefixlen: 32, scope: row, value: 0 }), value: encodeBlockVal(row) });
    maps.gid_lpm.push({ key: encodeGidKey({ prefixlen: 32, scope: row, value: 0 }), value: encodeBlockVal(row) });
    for (const protocol of [IPPROTO_TCP, IPPROTO_UDP]) maps.port_lpm.push({ key: encodePortKey({ prefixlen: 48, block: row, protocol, port: 0 }), value: encodeVerdictRef(0) });
  }
  // The rest: single-port prefixes (verdict 1, deny) spread over the rows, away from port 9.
  const remaining = total - MAP_NAMES.reduce((n, m) => n + maps[m].length, 0) - 2;
  for (let i = 0; i < remaining; i++) {
    maps.port_lpm.push({ key: encodePortKey({ prefixlen: 64, block: i % rows, protocol: i % 2 === 0 ? IPPROTO_TCP : IPPROTO_UDP, port: 1024 + Math.floor(i / rows / 2) }), value: encodeVerdictRef(1) });
  }
  maps.verdicts.push({ key: encodeArrayKey(0), value: encodeVerdict({ flags: 1, rule: NO_RULE }) }, { key: encodeArrayKey(1), value: encodeVerdict({ flags: 0, rule: 0 }) });
  return { maps, levels: [1], unidentified: [0] };
}

const countOf = (image: GenerationImage) => MAP_NAMES.reduce((n, m) => n + image.maps[m].length, 0);

/** CPU ns per UDP connect() to 127.0.0.1:9 from this thread (the connect hook runs each time). */
function connectNs(iterations: number): number {
  const ns = native().connectLoop(4, "127.0.0.1", 9, iterations);
  if (ns < 0) throw new Error(`connect failed: errno ${-ns}`);
  return ns / iterations;
}

function moveSelf(dir: string): void {
  writeFileSync(path.join(dir, "cgroup.procs"), String(process.pid));
}

function ownCgroup(): string {
  const line = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => l.startsWith("0::"))!;
  return path.join(cgroup2Mount(), line.slice(3));
}

/**
 * Entries per second filling a fresh map of `name`'s type with the image's entries, per CPU
 * second of the process (the kernel does the fill in our syscall) and per wall second
 * (which counts time other processes take from the core); medians of 5 fills.
 */
function loadRate(name: MapName, image: GenerationImage): { cpu: number; wall: number } {
  const n = native();
  const entries = image.maps[name];
  const { keys, values } = packEntries(name, entries);
  const lpm = MAPS[name].type === "lpm_trie";
  const cpu: number[] = [];
  const wall: number[] = [];
  for (let run = 0; run < 5; run++) {
    const fd = n.mapCreate(lpm ? n.MAP_LPM_TRIE : n.MAP_HASH, "pc_bench", keySize(name), valueSize(name), entries.length, n.F_NO_PREALLOC);
    try {
      const t = process.cpuUsage();
      const w = performance.now();
      n.mapUpdateMany(fd, keys, values, entries.length, true);
      wall.push(entries.length / ((performance.now() - w) / 1000));
      const used = process.cpuUsage(t);
      cpu.push(entries.length / ((used.user + used.system) / 1e6));
    } finally {
      n.close(fd);
    }
  }
  return { cpu: median(cpu), wall: median(wall) };
}

async function runKernelBench(): Promise<string> {
  const why = kernelUnavailable();
  if (why !== undefined) return `Not measured: ${why}`;
  const home = ownCgroup();
  const name = `pcbench-${process.pid}`;
  const plain = path.join(cgroup2Mount(), `${name}-plain`);
  const attach = path.join(cgroup2Mount(), name);
  const created = [...ensureCgroup(plain), ...ensureCgroup(attach)];
  const benchId = cgroupId(attach);
  const small = syntheticImage(1_000, benchId, 1, false);
  const large = syntheticImage(100_000, benchId, 1, false);
  const large8 = syntheticImage(100_000, benchId, 8, false);
  const large8ids = syntheticImage(100_000, benchId, 8, true);
  const lines: string[] = [];
  let loaded = false;
  try {
    const loadT = performance.now();
    loadPolicy({ name, cgroup: attach, image: small, bundleBytes: new Uint8Array(0), audit: false });
    loaded = true;
    const firstLoadMs = performance.now() - loadT;
    // Interleaved rounds: no program, 1k, 100k, 100k with 8 classes, the same with uid/gid lookups (swaps between), repeated.
    const rounds = { none: [] as number[], k1: [] as number[], k100: [] as number[], k100x8: [] as number[], k100x8ids: [] as number[] };
    const swapMs: number[] = [];
    const iterations = 100_000;
    for (let round = 0; round < 9; round++) {
      moveSelf(plain);
      rounds.none.push(connectNs(iterations));
      moveSelf(attach);
      rounds.k1.push(connectNs(iterations));
      let t = performance.now();
      loadPolicy({ name, cgroup: attach, image: large, bundleBytes: new Uint8Array(0), audit: false });
      swapMs.push(performance.now() - t);
      rounds.k100.push(connectNs(iterations));
      loadPolicy({ name, cgroup: attach, image: large8, bundleBytes: new Uint8Array(0), audit: false });
      rounds.k100x8.push(connectNs(iterations));
      loadPolicy({ name, cgroup: attach, image: large8ids, bundleBytes: new Uint8Array(0), audit: false });
      rounds.k100x8ids.push(connectNs(iterations));
      t = performance.now();
      loadPolicy({ name, cgroup: attach, image: small, bundleBytes: new Uint8Array(0), audit: false });
    }
    moveSelf(home);
    // The fastest round is the least disturbed (caches, frequency) by other work; the median is shown beside it.
    const best = (xs: number[]) => Math.min(...xs);
    const none = best(rounds.none);
    const k1 = best(rounds.k1);
    const k100 = best(rounds.k100);
    const k100x8 = best(rounds.k100x8);
    const k100x8ids = best(rounds.k100x8ids);
    const fmt = (x: number) => x.toFixed(0);
    lines.push("| connect() (UDP, loopback) | CPU ns per call (fastest of 9 × 100k) | median of 9 | ratio to no program | added ns | target |", "|---|---:|---:|---:|---:|---|");
    lines.push(`| no program | ${fmt(none)} | ${fmt(median(rounds.none))} | 1.00 | 0 | |`);
    lines.push(`| attached, ${countOf(small).toLocaleString("en")} entries, 1 class | ${fmt(k1)} | ${fmt(median(rounds.k1))} | ${(k1 / none).toFixed(2)} | ${fmt(k1 - none)} | |`);
    lines.push(`| attached, ${countOf(large).toLocaleString("en")} entries, 1 class | ${fmt(k100)} | ${fmt(median(rounds.k100))} | ${(k100 / none).toFixed(2)} | ${fmt(k100 - none)} | ≤ 1000 added: ${k100 - none <= 1000 ? "met" : "NOT met"} |`);
    lines.push(`| attached, ${countOf(large8).toLocaleString("en")} entries, 8 classes | ${fmt(k100x8)} | ${fmt(median(rounds.k100x8))} | ${(k100x8 / none).toFixed(2)} | ${fmt(k100x8 - none)} | ≤ 1000 added: ${k100x8 - none <= 1000 ? "met" : "NOT met"} |`);
    lines.push(`| attached, ${countOf(large8ids).toLocaleString("en")} entries, 8 classes, every row by uid and gid | ${fmt(k100x8ids)} | ${fmt(median(rounds.k100x8ids))} | ${(k100x8ids / none).toFixed(2)} | ${fmt(k100x8ids - none)} | ≤ 1000 added: ${k100x8ids - none <= 1000 ? "met" : "NOT met"} |`);
    lines.push("");
    lines.push("| map load (100k-entry image) | entries | entries per CPU second | per wall second | target (CPU) |", "|---|---:|---:|---:|---|");
    for (const [label, map] of [
      ["LPM trie (pairs4)", "pairs4"],
      ["LPM trie (port_lpm)", "port_lpm"],
    ] as const) {
      const rate = loadRate(map, large);
      lines.push(`| ${label}, one BPF_MAP_UPDATE_BATCH | ${large.maps[map].length} | ${fmt(rate.cpu)} | ${fmt(rate.wall)} | ≥ 500k/s: ${rate.cpu >= 500_000 ? "met" : "NOT met"} |`);
    }
    lines.push("");
    const swap = median(swapMs);
    lines.push("| generation swap | entries | ms (median of 9) | target |", "|---|---:|---:|---|");
    lines.push(`| full swap to the 100k image (create, fill, RCU waits, flip) | ${countOf(large).toLocaleString("en")} | ${fmt(swap)} | ≤ 1000 ms: ${swap <= 1000 ? "met" : "NOT met"} |`);
    lines.push(`| first load (object, verifier, pins, 1k image, attach) | ${countOf(small).toLocaleString("en")} | ${fmt(firstLoadMs)} | |`);
  } finally {
    moveSelf(home);
    if (loaded) unloadPolicy(name);
    removeCgroups(created);
  }
  return lines.join("\n");
}

export const kernelSection: BenchSection = {
  id: "kernel",
  title: "Kernel (eBPF at connect())",
  describe:
    "`bench/kernel.ts`: UDP `connect()` to 127.0.0.1 in a tight C loop, timed in the thread's CPU time (user + system, so time other processes take from the core is not counted; the connect4 hook runs on every call, no packet is sent), from a cgroup without a program and from one with the four programs attached and a synthetic generation of 1k or 100k entries, the process in 1 identity class or in 8 (every class allows, so the program looks up all of them; each class reaches a row of its own, which names its protocol block or, in the last row, does not, costing a uid and a gid lookup per class) (9 interleaved rounds in one run; the fastest round is the least disturbed by other load, the median is shown beside it); map fill speed of the addon (one `BPF_MAP_UPDATE_BATCH` call per map; per CPU second of the process, and per wall second, which also counts time other processes take); the wall time of `loadPolicy` swapping in the 100k generation (it includes about ten RCU grace periods). Needs root.",
  run: runKernelBench,
};
