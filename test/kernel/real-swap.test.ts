// Generations in the real kernel: 100 flips between two policies while processes connect
// in a loop, and every verdict belongs wholly to one of them (the policies are chosen so
// that a call mixing their maps would allow what both deny, and the simulator proves it);
// a bundle too large for the maps is refused with the kernel unchanged; audit mode logs
// and allows; events carry the resolved decision.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readBundle, writeBundle, type Bundle } from "../../compiler/bundle.js";
import { loadPolicySet } from "../../compiler/program.js";
import { bundleGeneration } from "../../kernel-bridge/generation.js";
import { cgroupId, cgroup2Mount, instanceStatus, KernelError, loadPolicy, readEvents, resolveCgroup, unloadPolicy, type LoadRequest } from "../../kernel-bridge/loader.js";
import type { MapImages } from "../../kernel-bridge/lower.js";
import { KernelSimulator } from "../../kernel-bridge/sim.js";
import { EPERM, kernelGate, leftovers, probe, uniqueName, type Attempt, type Placement } from "../support/kernel.js";

const unavailable = kernelGate("real-kernel generations");

const P1 = 47001;
const P2 = 47002;

function policyText(root: string, permitted: { address: string; port: number }, extraPorts = 0): string {
  const extra = Array.from({ length: extraPorts }, (_, i) => `service extra${i} { endpoints = [127.0.0.9:${20000 + i * 3}/udp]; }\npermit (principal == workload app, action == connect, resource == service extra${i});\n`).join("");
  return `workload app {
  id = "spiffe://swap.test/app";
  match { cgroup = "${root}/app" }
}
default unidentified allow;
service target { endpoints = [${permitted.address}:${permitted.port}/udp]; }
@id("only-target")
permit (principal == workload app, action == connect, resource == service target);
${extra}`;
}

function compile(text: string): { bundle: Bundle; bytes: Buffer } {
  const dir = mkdtempSync(path.join(tmpdir(), "portcullis-swap-"));
  writeFileSync(path.join(dir, "p.policy"), text);
  const result = loadPolicySet([dir]);
  if (result.policySet === undefined || result.diagnostics.some((d) => d.severity === "error")) throw new Error(result.diagnostics.map((d) => d.message).join("\n"));
  const bytes = writeBundle(result.policySet, "test");
  const read = readBundle(bytes, "p");
  if (!read.ok) throw new Error(read.diagnostic.message);
  return { bundle: read.bundle, bytes };
}

/** r1 is allowed by A only, r2 by B only; x1 and x2 by neither (but by a mix of A's and B's maps). */
const r1: Attempt = { protocol: "udp", mode: "connect", address: "127.0.0.1", port: P1 };
const r2: Attempt = { protocol: "udp", mode: "connect", address: "127.0.0.2", port: P2 };
const x1: Attempt = { protocol: "udp", mode: "connect", address: "127.0.0.1", port: P2 };
const x2: Attempt = { protocol: "udp", mode: "connect", address: "127.0.0.2", port: P1 };

describe.skipIf(unavailable !== undefined)("generations in the real kernel", () => {
  afterAll(() => {
    expect(leftovers(), "pins, state or cgroups of ours left behind").toEqual([]);
  });

  /** Loads A at a fresh attach point; runs `body`; unloads whatever happens. */
  async function withPolicyA(body: (ctx: { name: string; attach: string; root: string; a: ReturnType<typeof compile>; app: Placement; request: (b: ReturnType<typeof compile>, audit?: boolean) => LoadRequest }) => Promise<void>, capacity?: (a: MapImages) => LoadRequest["capacity"], audit = false): Promise<void> {
    const name = uniqueName("swap");
    const root = `/${name}`;
    const attach = resolveCgroup(root);
    const a = compile(policyText(root, { address: "127.0.0.1", port: P1 }));
    let capacities: LoadRequest["capacity"];
    const request = (b: ReturnType<typeof compile>, withAudit = audit): LoadRequest => {
      const g = bundleGeneration(b.bundle, attach);
      return { name, cgroup: attach, image: g.image, bundleBytes: b.bytes, audit: withAudit, createdCgroups: g.createdCgroups, ...(capacities === undefined ? {} : { capacity: capacities }) };
    };
    const first = request(a);
    capacities = capacity?.(first.image as MapImages);
    loadPolicy({ ...first, ...(capacities === undefined ? {} : { capacity: capacities }) });
    try {
      await body({ name, attach, root, a, app: { cgroup: `${root}/app`, uid: 1000, gid: 1000 }, request });
    } finally {
      unloadPolicy(name);
    }
  }

  it("100 flips under load: every verdict is A's or B's, never a mix", async () => {
    await withPolicyA(async ({ name, root, a, app, request }) => {
      const b = compile(policyText(root, { address: "127.0.0.2", port: P2 }));
      const imageA = request(a).image as MapImages;
      const imageB = request(b).image as MapImages;
      // The test can see a torn generation: A's (class, destination) → row map with B's rows allows x1 or x2.
      const mixed = new KernelSimulator({ ...imageB, maps: { ...imageB.maps, pairs4: imageA.maps.pairs4 } });
      const mount = cgroup2Mount();
      const ancestors = [mount, path.join(mount, root), path.join(mount, root, "app")].map(cgroupId);
      const mixAllows = [x1, x2].some((x) => mixed.decideProcess({ cgroupAncestors: ancestors, uid: 1000, gid: 1000, family: 4, ip: x.address.split(".").map(Number), port: x.port, protocol: "udp" }).allow);
      expect(mixAllows, "policies A and B must be such that mixing their maps is visible").toBe(true);

      const round = [r1, r2, x1, x2];
      const attempts = Array.from({ length: 1500 }, () => round).flat();
      // Two probe processes connect in a loop for as long as the flips go on.
      let flipping = true;
      const results: number[][] = [];
      const prober = async () => {
        while (flipping) results.push(await probe(app, attempts));
      };
      const flips = (async () => {
        try {
          for (let flip = 0; flip < 100; flip++) {
            loadPolicy(request(flip % 2 === 0 ? b : a));
            await new Promise((r) => setTimeout(r, 2));
          }
        } finally {
          flipping = false;
        }
      })();
      await Promise.all([flips, prober(), prober()]);
      let r1Allowed = 0;
      let r2Allowed = 0;
      const torn: string[] = [];
      for (const errnos of results) {
        errnos.forEach((e, i) => {
          const which = round[i % 4]!;
          if ((which === x1 || which === x2) && e !== EPERM) torn.push(`call ${i}: ${which.address}:${which.port} allowed (errno ${e})`);
          if (which === r1 && e !== EPERM) r1Allowed++;
          if (which === r2 && e !== EPERM) r2Allowed++;
        });
      }
      expect(torn.slice(0, 10)).toEqual([]);
      // Both policies were seen while the probes ran, so the flips happened under load.
      expect(r1Allowed).toBeGreaterThan(0);
      expect(r2Allowed).toBeGreaterThan(0);
      expect(instanceStatus(name, 1).swaps).toBe(101);
    });
  }, 120_000);

  it("a bundle too large for the maps is refused and the kernel keeps the old generation", async () => {
    // Every map exactly as large as policy A needs: anything bigger is refused.
    const smallCapacity = (a: MapImages) => a.capacity;
    await withPolicyA(async ({ name, root, app, request }) => {
      const before = instanceStatus(name, 1);
      const big = compile(policyText(root, { address: "127.0.0.2", port: P2 }, 40));
      let error: unknown;
      try {
        loadPolicy(request(big));
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(KernelError);
      expect((error as KernelError).diagnostic.code).toBe("PC9507");
      const after = instanceStatus(name, 1);
      expect({ generation: after.generation, swaps: after.swaps, entries: after.entries }).toEqual({ generation: before.generation, swaps: before.swaps, entries: before.entries });
      // A still decides: r1 allowed, r2 denied.
      expect(await probe(app, [r1, r2])).toEqual([0, EPERM]);
    }, smallCapacity);
  }, 60_000);

  it("audit mode allows what the policy denies and logs every decision; enforcing mode logs denies", async () => {
    await withPolicyA(async ({ name, app }) => {
      readEvents(name, 0);
      const errnos = await probe(app, [r1, r2]);
      expect(errnos[1]).not.toBe(EPERM);
      const events = readEvents(name, 100);
      const toR2 = events.find((e) => e.port === P2);
      expect(toR2).toMatchObject({ allowed: false, returned: true, hook: "connect4", family: 4, addr: [127, 0, 0, 2], protocol: 17, uid: 1000, gid: 1000 });
      expect(events.find((e) => e.port === P1)).toMatchObject({ allowed: true, returned: true, rule: 0 });
    }, undefined, true);
    await withPolicyA(async ({ name, app }) => {
      readEvents(name, 0);
      expect(await probe(app, [r1, r2])).toEqual([0, EPERM]);
      const events = readEvents(name, 100);
      expect(events.map((e) => ({ port: e.port, allowed: e.allowed, returned: e.returned }))).toEqual([{ port: P2, allowed: false, returned: false }]);
    });
  }, 60_000);
});
