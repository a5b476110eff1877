// The real kernel's class loop (steps 2-6 for every class of a list) against the
// simulator, independent of what the compiler emits: seeded synthetic generations in which
// the probing process has a list of 1-8 identity classes (and unidentified processes a
// list of their own), classes are paired with nested loopback prefixes (IPv4 and IPv6) or
// take their default rows, rows name their protocol block or not, and verdicts of every kind (forbid, permit, default deny,
// default allow) sit at random ports. Each call's decision event (audit mode) carries
// what the kernel decided: the workload, the deciding class, verdict and rule, and every
// class's verdict; all must be the simulator's. Then, enforcing, every call is refused with
// EPERM exactly when the simulator denies, and the per-rule counters are the simulator's.
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
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
  LPM_FIXED_BITS,
  MAP_NAMES,
  MAPS,
  MAX_CLASSES,
  NO_BLOCK,
  NO_RULE,
  type MapName,
} from "../../kernel-bridge/layout.js";
import { cgroup2Mount, cgroupId, ensureCgroup, instanceStatus, loadPolicy, MAX_RULES, readEvents, requiredCapacity, resolveCgroup, unloadPolicy } from "../../kernel-bridge/loader.js";
import type { MapEntry, MapImages } from "../../kernel-bridge/lower.js";
import { KernelSimulator } from "../../kernel-bridge/sim.js";
import { parseIp } from "../../dsl/ip.js";
import { EPERM, kernelGate, leftovers, probe, uniqueName, type Attempt, type Placement } from "../support/kernel.js";
import { Random } from "../support/random.js";

const unavailable = kernelGate("real-kernel class lists");

const SEED = Number(process.env["PORTCULLIS_KSIM_SEED"] ?? 20261122);
const ROUNDS = 6;
/** Identity classes 0..CLASSES-1, rows, verdicts and rule indices of the synthetic generations. */
const CLASSES = 11;
const ROWS = 6;
const VERDICTS = 8;
const RULES = 20;
const PORTS = [47100, 47101, 47102, 47103, 47104];
const ADDRESSES = ["127.0.0.1", "127.0.0.2", "127.0.0.3", "::1", "::ffff:127.0.0.1", "::ffff:127.0.0.2"];
/** Nested prefixes the classes are paired with: [address bytes, prefix]. */
const V4_PREFIXES: [number[], number][] = [
  [[127, 0, 0, 0], 8],
  [[127, 0, 0, 0], 24],
  [[127, 0, 0, 1], 32],
  [[127, 0, 0, 2], 31],
];
const V6_PREFIXES: [number[], number][] = [
  [new Array<number>(16).fill(0), 64],
  [[...new Array<number>(15).fill(0), 1], 128],
];

/** A generation in which processes of `cgroup` (any uid, gid) are workload 0 with a random class list. */
function syntheticGeneration(rng: Random, cgroup: bigint, level: number): MapImages {
  const maps = Object.fromEntries(MAP_NAMES.map((m) => [m, [] as MapEntry[]])) as Record<MapName, MapEntry[]>;
  // Every uid and gid of row r lead to protocol block r, so a row value may name it (the
  // program then skips the uid and gid lookups) or not: both paths are taken.
  const rowVal = () => {
    const row = rng.int(ROWS);
    return encodeRowVal({ row, protocolBlock: rng.chance(0.5) ? row : NO_BLOCK });
  };
  const list = () => Array.from({ length: 1 + rng.int(MAX_CLASSES) }, () => rng.int(CLASSES));
  maps.ident.push({ key: encodeIdentKey({ cgroupId: cgroup, uid: ANY_ID, gid: ANY_ID }), value: encodeIdentVal({ order: 0, classes: list() }) });
  for (let cls = 0; cls < CLASSES; cls++) {
    for (const [addr, prefix] of V4_PREFIXES) {
      if (rng.chance(0.4)) maps.pairs4.push({ key: encodePair4Key({ prefixlen: LPM_FIXED_BITS.pair + prefix, identityClass: cls, addr }), value: rowVal() });
    }
    for (const [addr, prefix] of V6_PREFIXES) {
      if (rng.chance(0.4)) maps.pairs6.push({ key: encodePair6Key({ prefixlen: LPM_FIXED_BITS.pair + prefix, identityClass: cls, addr }), value: rowVal() });
    }
    maps.default_row.push({ key: encodeArrayKey(cls), value: rowVal() });
  }
  // Row r: every uid to gid block r, every gid to protocol block r; per protocol a verdict
  // for the whole port space and other verdicts at some single ports.
  for (let row = 0; row < ROWS; row++) {
    maps.uid_lpm.push({ key: encodeUidKey({ prefixlen: LPM_FIXED_BITS.uid, scope: row, value: 0 }), value: encodeBlockVal(row) });
    maps.gid_lpm.push({ key: encodeGidKey({ prefixlen: LPM_FIXED_BITS.gid, scope: row, value: 0 }), value: encodeBlockVal(row) });
    for (const protocol of [IPPROTO_TCP, IPPROTO_UDP]) {
      maps.port_lpm.push({ key: encodePortKey({ prefixlen: LPM_FIXED_BITS.port, block: row, protocol, port: 0 }), value: encodeVerdictRef(rng.int(VERDICTS)) });
      for (const port of PORTS.filter(() => rng.chance(0.5))) {
        maps.port_lpm.push({ key: encodePortKey({ prefixlen: LPM_FIXED_BITS.port + 16, block: row, protocol, port }), value: encodeVerdictRef(rng.int(VERDICTS)) });
      }
    }
  }
  // Every kind of verdict: forbid (0), permit (1), default deny (2), default allow (3).
  for (let v = 0; v < VERDICTS; v++) maps.verdicts.push({ key: encodeArrayKey(v), value: encodeVerdict({ flags: v % 4, rule: v % 4 >= 2 ? NO_RULE : rng.int(RULES) }) });
  const counts = Object.fromEntries(MAP_NAMES.map((m) => [m, maps[m].length])) as Record<MapName, number>;
  const image = { maps, levels: [level], unidentified: list() };
  const capacity = requiredCapacity(image);
  for (const m of MAP_NAMES) if (MAPS[m].type !== "array") capacity[m] = Math.max(1, capacity[m]);
  return { ...image, counts, capacity };
}

function ancestorsOf(rel: string): bigint[] {
  const mount = cgroup2Mount();
  const parts = rel.split("/").filter((s) => s !== "");
  return [cgroupId(mount), ...parts.map((_, i) => cgroupId(path.join(mount, ...parts.slice(0, i + 1))))];
}

describe.skipIf(unavailable !== undefined)("the real kernel's class loop = the simulator's", () => {
  afterAll(() => {
    expect(leftovers(), "pins, state or cgroups of ours left behind").toEqual([]);
  });

  it(`on ${ROUNDS} seeded generations: every event field, every EPERM and every counter`, async () => {
    const name = uniqueName("cls");
    const root = `/${name}`;
    const attach = resolveCgroup(root);
    const created = ensureCgroup(path.join(attach, "p"));
    const placements: Placement[] = [
      { cgroup: `${root}/p`, uid: 1000, gid: 1000 },
      { cgroup: root, uid: 1000, gid: 1000 },
    ];
    const attempts: Attempt[] = ADDRESSES.flatMap((address) => PORTS.flatMap((port) => (["connect", "sendto"] as const).map((mode) => ({ protocol: "udp" as const, mode, address, port }))));
    const rng = new Random(SEED);
    const mismatches: string[] = [];
    const seen = { events: 0, denied: 0, allowed: 0, laterClassDecides: 0, severalClasses: 0, unidentified: 0 };
    let loaded = false;
    try {
      for (let round = 0; round < ROUNDS; round++) {
        const image = syntheticGeneration(rng, cgroupId(path.join(attach, "p")), 2);
        const sim = new KernelSimulator(image);
        const expected = (p: Placement, a: Attempt) => {
          const ip = parseIp(a.address)!;
          return sim.decideProcess({ cgroupAncestors: ancestorsOf(p.cgroup), uid: p.uid, gid: p.gid, family: ip.family, ip: ip.bytes, port: a.port, protocol: a.protocol });
        };

        // Audit mode: one event per call, carrying the whole decision.
        loadPolicy({ name, cgroup: attach, image, bundleBytes: new Uint8Array(0), audit: true, createdCgroups: loaded ? [] : created });
        loaded = true;
        for (const p of placements) {
          readEvents(name, 0);
          await probe(p, attempts);
          const events = readEvents(name, 200);
          expect(events.length, `round ${round}: one event per call`).toBe(attempts.length);
          events.forEach((e, i) => {
            const want = expected(p, attempts[i]!);
            const got = { allow: e.allowed, order: e.workload, identityClass: e.identityClass, verdict: e.verdict, rule: e.rule, verdicts: e.verdicts };
            const wanted = { allow: want.allow, order: want.order, identityClass: want.identityClass, verdict: want.verdict, rule: want.rule, verdicts: want.steps.map((s) => s.verdict) };
            if (JSON.stringify(got) !== JSON.stringify(wanted)) mismatches.push(`round ${round}, ${JSON.stringify(p)} ${JSON.stringify(attempts[i])} (classes ${want.classes}): kernel ${JSON.stringify(got)}, simulator ${JSON.stringify(wanted)}`);
            seen.events++;
            if (want.deciding > 0) seen.laterClassDecides++;
            if (want.classes.length > 1) seen.severalClasses++;
            if (want.order === undefined) seen.unidentified++;
            if (want.allow) seen.allowed++;
            else seen.denied++;
          });
        }

        // Enforcing: EPERM exactly where the simulator denies; counters per deciding rule.
        loadPolicy({ name, cgroup: attach, image, bundleBytes: new Uint8Array(0), audit: false });
        const counters = new Map<number, { allowed: bigint; denied: bigint }>();
        for (const p of placements) {
          const errnos = await probe(p, attempts);
          attempts.forEach((a, i) => {
            const want = expected(p, a);
            if ((errnos[i] === EPERM) !== !want.allow) mismatches.push(`round ${round}, enforcing, ${JSON.stringify(p)} ${JSON.stringify(a)}: errno ${errnos[i]}, simulator ${want.allow ? "allow" : "deny"}`);
            const slot = want.rule < MAX_RULES ? want.rule : MAX_RULES;
            const c = counters.get(slot) ?? { allowed: 0n, denied: 0n };
            counters.set(slot, want.allow ? { ...c, allowed: c.allowed + 1n } : { ...c, denied: c.denied + 1n });
          });
        }
        const inKernel = instanceStatus(name, RULES).counters;
        expect(new Map([...inKernel].sort(([a], [b]) => a - b)), `round ${round}: counters`).toEqual(new Map([...counters].sort(([a], [b]) => a - b)));
      }
    } finally {
      if (loaded) unloadPolicy(name);
    }
    expect(mismatches.slice(0, 20)).toEqual([]);
    // Not vacuous: lists of several classes, decisions by a later class, both outcomes, unidentified calls.
    expect(seen.events).toBe(ROUNDS * placements.length * attempts.length);
    expect(seen.severalClasses).toBeGreaterThan(seen.events / 4);
    expect(seen.laterClassDecides).toBeGreaterThan(20);
    expect(seen.denied).toBeGreaterThan(20);
    expect(seen.allowed).toBeGreaterThan(20);
    expect(seen.unidentified).toBe(ROUNDS * attempts.length);
  }, 120_000);
});
