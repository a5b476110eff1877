// Owns turning a bundle into one kernel generation for an attach point: the cgroups its
// workloads' identity entries are keyed by (created when missing, so that `portcullis exec`
// can place processes in them), their ids, and the lowering (kernel-bridge/lower.ts).
import { existsSync } from "node:fs";
import path from "node:path";
import type { Bundle } from "../compiler/bundle.js";
import { cgroup2Mount, cgroupId, ensureCgroup, removeCgroups } from "./loader.js";
import { lowerToMapImages, placementCgroup, requiredCgroupPaths, type MapImages } from "./lower.js";

export interface BundleGeneration {
  readonly image: MapImages;
  /** Cgroup directories created for it (absolute), outermost first. */
  readonly createdCgroups: readonly string[];
}

/** The attach point as the lowering names cgroups: a path below the cgroup2 mount, `/a/b`. */
export function cgroupRelative(absolute: string): string {
  const rel = path.relative(cgroup2Mount(), absolute);
  return rel === "" ? "/" : `/${rel}`;
}

/**
 * Lowers `bundle` for the attach cgroup `attach` (absolute). Creates every cgroup that a
 * workload's identity is keyed by or that `portcullis exec` places processes in, when it
 * does not exist yet; on failure removes what it created.
 */
export function bundleGeneration(bundle: Bundle, attach: string): BundleGeneration {
  const mount = cgroup2Mount();
  const managedRoot = cgroupRelative(attach);
  const created: string[] = [];
  const ids = new Map<string, bigint>();
  const execPaths = bundle.manifest.workloads.flatMap((w) => w.match.map((b) => placementCgroup(managedRoot, w.name, b)));
  try {
    for (const rel of new Set([...requiredCgroupPaths(bundle.manifest.workloads, managedRoot), ...execPaths])) {
      const dir = path.join(mount, rel);
      if (!existsSync(dir)) created.push(...ensureCgroup(dir));
      ids.set(rel, cgroupId(dir));
    }
    return { image: lowerToMapImages(bundle.words, bundle.ruleIds, { workloads: bundle.manifest.workloads, cgroupIds: ids, managedRoot }), createdCgroups: created };
  } catch (e) {
    removeCgroups(created);
    throw e;
  }
}
