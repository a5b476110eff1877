// Owns the bundle file (docs/bundle-format.md): header, manifest, tables and checksum;
// writing one deterministically from a checked policy set, and reading one back with
// every check done before anything is used. A refused bundle yields one diagnostic.
import { createHash } from "node:crypto";
import { diag, type Diagnostic } from "../dsl/diagnostics.js";
import { formatIp } from "../dsl/ip.js";
import type { MatchSpec, PolicySet } from "./model.js";
import { buildDecisionTables, type DecisionTables, type TableStats } from "./tables.js";
import { DecisionTableReader, TableError } from "./table-eval.js";
import { assertionRequest } from "./tests.js";

export const BUNDLE_MAGIC = "PCBUNDLE";
export const BUNDLE_FORMAT_VERSION = 2;
const HEADER_BYTES = 56;

export interface BundleTest {
  readonly test: string;
  readonly file: string;
  readonly line: number;
  readonly column: number;
  readonly expect: "allow" | "deny";
  readonly because: readonly string[];
  readonly request: { principal: string | null; uid: number; gid: number; ip: string; port: number; protocol: "tcp" | "udp" };
}

export interface BundleManifest {
  readonly format: number;
  readonly compiler: { readonly name: string; readonly version: string };
  readonly sources: readonly { readonly path: string; readonly sha256: string }[];
  readonly counts: TableStats & { readonly rules: number; readonly workloads: number; readonly tests: number };
  readonly defaultUnidentified: "allow" | "deny";
  readonly rules: readonly { id: string; effect: "permit" | "forbid"; file: string; line: number; annotations: Record<string, string> }[];
  readonly workloads: readonly { name: string; id: string; identityList: number; identityClasses: readonly number[]; match: readonly MatchSpec[] }[];
  readonly tests: readonly BundleTest[];
}

export interface Bundle {
  readonly manifest: BundleManifest;
  readonly words: Uint32Array;
  readonly ruleIds: readonly string[];
  /** The tables, validated once at load. */
  readonly reader: DecisionTableReader;
}

function sha256(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The manifest's workloads: each with its class list (a word offset in CLASS_LISTS, and its classes) and `match` blocks, in policy-set order. */
export function manifestWorkloads(policy: PolicySet, tables: DecisionTables): BundleManifest["workloads"] {
  return policy.workloads.map((w) => ({ name: w.name, id: w.id, identityList: tables.workloadLists.get(w.name)!, identityClasses: tables.listClasses(tables.workloadLists.get(w.name)!), match: w.matches }));
}

export function buildManifest(policy: PolicySet, tables: DecisionTables, compilerVersion: string): BundleManifest {
  const relPathOf = new Map(policy.sources.map((s) => [s.path, s.relPath]));
  return {
    format: BUNDLE_FORMAT_VERSION,
    compiler: { name: "portcullis", version: compilerVersion },
    sources: policy.sources.map((s) => ({ path: s.relPath, sha256: sha256(s.text) })),
    counts: { ...tables.stats, rules: policy.rules.length, workloads: policy.workloads.length, tests: policy.tests.reduce((n, t) => n + t.ast.assertions.length, 0) },
    defaultUnidentified: policy.defaultUnidentified,
    rules: policy.rules.map((r) => ({
      id: r.id,
      effect: r.effect,
      file: relPathOf.get(r.ast.span.file) ?? r.ast.span.file,
      line: r.ast.span.line,
      annotations: Object.fromEntries(r.annotations.map((a) => [a.name, a.value])),
    })),
    workloads: manifestWorkloads(policy, tables),
    tests: policy.tests.flatMap((t) =>
      t.ast.assertions.map((a) => {
        const r = assertionRequest(a, policy);
        return {
          test: t.name,
          file: relPathOf.get(a.span.file) ?? a.span.file,
          line: a.span.line,
          column: a.span.column,
          expect: a.expect,
          because: a.because.map((b) => b.value),
          request: { principal: r.principal, uid: r.uid, gid: r.gid, ip: formatIp(r.family, r.ip), port: r.port, protocol: r.protocol },
        };
      }),
    ),
  };
}

/** Compiles a checked policy set into bundle bytes (deterministic: same sources, same bytes). */
export function writeBundle(policy: PolicySet, compilerVersion: string, tables: DecisionTables = buildDecisionTables(policy)): Buffer {
  const manifest = Buffer.from(JSON.stringify(buildManifest(policy, tables, compilerVersion)), "utf8");
  const pad = (4 - (manifest.length % 4)) % 4;
  const tableBytes = Buffer.from(tables.words.buffer, tables.words.byteOffset, tables.words.byteLength);
  const out = Buffer.alloc(HEADER_BYTES + manifest.length + pad + tableBytes.length);
  out.write(BUNDLE_MAGIC, 0, "ascii");
  out.writeUInt32LE(BUNDLE_FORMAT_VERSION, 8);
  out.writeUInt32LE(0, 12);
  out.writeUInt32LE(manifest.length, 16);
  out.writeUInt32LE(tableBytes.length, 20);
  manifest.copy(out, HEADER_BYTES);
  tableBytes.copy(out, HEADER_BYTES + manifest.length + pad);
  checksum(out).copy(out, 24);
  return out;
}

function checksum(file: Buffer): Buffer {
  return createHash("sha256").update(file.subarray(0, 24)).update(file.subarray(HEADER_BYTES)).digest();
}

export type BundleResult = { readonly ok: true; readonly bundle: Bundle } | { readonly ok: false; readonly diagnostic: Diagnostic };

/** Reads and fully validates a bundle; `name` is how the file is shown in messages. */
export function readBundle(file: Buffer, name: string): BundleResult {
  const refuse = (d: Diagnostic): BundleResult => ({ ok: false, diagnostic: d });
  if (file.length < 8 || file.subarray(0, 8).toString("ascii") !== BUNDLE_MAGIC) {
    return refuse(file.length < 8 ? diag("BundleTruncated", undefined, name, `${file.length} bytes`) : diag("BundleMagic", undefined, name));
  }
  if (file.length < HEADER_BYTES) return refuse(diag("BundleTruncated", undefined, name, `${file.length} bytes, the header alone is ${HEADER_BYTES}`));
  const version = file.readUInt32LE(8);
  if (version !== BUNDLE_FORMAT_VERSION) return refuse(diag("BundleVersion", undefined, name, version, BUNDLE_FORMAT_VERSION));
  const manifestLength = file.readUInt32LE(16);
  const tablesLength = file.readUInt32LE(20);
  const pad = (4 - (manifestLength % 4)) % 4;
  const expected = HEADER_BYTES + manifestLength + pad + tablesLength;
  if (file.length !== expected || tablesLength % 4 !== 0) {
    return refuse(diag("BundleTruncated", undefined, name, `${file.length} bytes where the header announces ${expected}`));
  }
  if (!checksum(file).equals(file.subarray(24, HEADER_BYTES))) return refuse(diag("BundleChecksum", undefined, name));
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(file.subarray(HEADER_BYTES, HEADER_BYTES + manifestLength).toString("utf8")) as BundleManifest;
    if (!Array.isArray(manifest.rules) || !Array.isArray(manifest.tests) || !Array.isArray(manifest.workloads)) throw new Error("missing rules, tests or workloads");
    if (manifest.rules.some((r) => typeof r?.id !== "string")) throw new Error("a rule has no id");
  } catch (e) {
    return refuse(diag("BundleManifest", undefined, name, (e as Error).message));
  }
  const start = HEADER_BYTES + manifestLength + pad;
  const words = new Uint32Array(tablesLength / 4);
  for (let i = 0; i < words.length; i++) words[i] = file.readUInt32LE(start + i * 4);
  const ruleIds = manifest.rules.map((r) => r.id);
  let reader: DecisionTableReader;
  try {
    reader = new DecisionTableReader(words, ruleIds);
  } catch (e) {
    if (e instanceof TableError) return refuse(diag("BundleTables", undefined, name, e.message));
    throw e;
  }
  return { ok: true, bundle: { manifest, words, ruleIds, reader } };
}
