// Owns turning a bundle's decision tables into a policy module for OPA hosts (docs/opa-wasm.md):
// the payload (tables, rule ids as JSON literals, workloads) in the layout that
// runtime/assembly/opa/payload.ts reads, and its embedding into the template module that
// `npm run build` compiles from runtime/assembly/opa.ts — as a passive data segment copied
// to the heap at instantiation, so the module needs no more initial memory than an OPA host
// gives — plus an OPA-layout bundle (`.manifest` + `/policy.wasm`, tar.gz).
import { readFileSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";

export const OPA_ENTRYPOINT = "portcullis/decision";
const PAYLOAD_MAGIC = 0x574f4350; // "PCOW"
const PAYLOAD_VERSION = 1;
/** Where `npm run build` writes the template, from the package root. */
export const OPA_TEMPLATE_PATH = "dist/runtime/opa-template.wasm";
const PAYLOAD_SEGMENT = "portcullis_payload";

export interface OpaWorkload {
  readonly name: string;
  readonly id: string;
  /** The uid/gid a request naming `workload:NAME` gets when it names none. */
  readonly defaultUid: number;
  readonly defaultGid: number;
}

export interface OpaPolicyInput {
  /** The bundle's tables (docs/bundle-format.md). */
  readonly words: Uint32Array;
  /** Rule index → id. */
  readonly ruleIds: readonly string[];
  /** Rule index → position in rule-id order (the order of a combined decision's reasons). */
  readonly ruleRanks: Uint32Array;
  readonly workloads: readonly OpaWorkload[];
}

/** The payload bytes (layout in runtime/assembly/opa/payload.ts). */
export function buildOpaPayload(input: OpaPolicyInput): Uint8Array {
  const strings: Buffer[] = [];
  let stringBytes = 0;
  const addString = (text: string): [number, number] => {
    const bytes = Buffer.from(text, "utf8");
    strings.push(bytes);
    stringBytes += bytes.length;
    return [stringBytes - bytes.length, bytes.length];
  };
  const ruleWords = input.ruleIds.flatMap((id) => addString(JSON.stringify(id)));
  const workloadWords = input.workloads.flatMap((w) => [...addString(w.name), ...addString(w.id), w.defaultUid, w.defaultGid]);
  const header = [PAYLOAD_MAGIC, PAYLOAD_VERSION, input.words.length, input.ruleIds.length, input.workloads.length, stringBytes];
  const wordCount = header.length + input.words.length + ruleWords.length + input.ruleRanks.length + workloadWords.length;
  const out = new Uint8Array(wordCount * 4 + ((stringBytes + 3) & ~3));
  // INVARIANT: the payload is little-endian whatever the host; wasm memory is little-endian.
  const view = new DataView(out.buffer);
  let at = 0;
  const put = (words: ArrayLike<number>): void => {
    for (let i = 0; i < words.length; i++, at += 4) view.setUint32(at, words[i]!, true);
  };
  [header, input.words, ruleWords, input.ruleRanks, workloadWords].forEach(put);
  Buffer.concat(strings).copy(out, at);
  return out;
}

/** Binaryen's data segment readers, which its JS API has and its typings (131) lack. */
interface DataSegmentReader {
  getNumDataSegments(): number;
  getDataSegmentByIndex(index: number): number;
  getDataSegmentInfo(segment: number): { name: string; offset: number | null; data: ArrayBuffer; passive: boolean };
}

/** The template module built by `npm run build`; `root` is the package root. */
export function readOpaTemplate(root: string): Uint8Array {
  return readFileSync(path.join(root, OPA_TEMPLATE_PATH));
}

/**
 * Embeds the payload into the template: a passive data segment, and the two placeholder
 * imports `portcullis.payload_size` / `portcullis.payload_copy` replaced by functions that
 * return its size and copy it (`memory.init` + `data.drop`). Everything else is unchanged.
 */
export async function emitOpaModule(template: Uint8Array, payload: Uint8Array): Promise<Uint8Array> {
  const { default: binaryen } = await import("binaryen");
  const module = binaryen.readBinary(template);
  try {
    module.setFeatures(module.getFeatures() | binaryen.Features.BulkMemory | binaryen.Features.BulkMemoryOpt);
    const placeholders = new Map<string, string>();
    for (let i = 0; i < module.getNumFunctions(); i++) {
      const info = binaryen.getFunctionInfo(module.getFunctionByIndex(i));
      if (info.module === "portcullis") placeholders.set(info.base ?? "", info.name);
    }
    const sizeFunction = placeholders.get("payload_size");
    const copyFunction = placeholders.get("payload_copy");
    if (sizeFunction === undefined || copyFunction === undefined || placeholders.size !== 2) throw new Error("the OPA template module has no payload placeholders; rebuild it with `npm run build`");

    // setMemory replaces the memory and its segments: keep the template's, add the payload,
    // then make the memory imported from `env.memory` again (without a maximum).
    // The template exports its memory as `memory`; the export names it inside the module.
    const memoryName = binaryen.getExportInfo(module.getExport("memory")).value;
    const memory = module.getMemoryInfo(memoryName);
    const dataSegments = module as unknown as DataSegmentReader;
    const segments: { name?: string; offset: number; data: Uint8Array; passive: boolean }[] = [];
    for (let i = 0; i < dataSegments.getNumDataSegments(); i++) {
      const info = dataSegments.getDataSegmentInfo(dataSegments.getDataSegmentByIndex(i));
      segments.push({ name: info.name, offset: module.i32.const(info.offset ?? 0), data: new Uint8Array(info.data), passive: info.passive });
    }
    segments.push({ name: PAYLOAD_SEGMENT, offset: 0, data: payload, passive: true });
    module.setMemory(memory.initial, -1, null, segments, false, false, memoryName);
    module.addMemoryImport(memoryName, "env", "memory");

    const { i32, none } = binaryen;
    module.removeFunction(sizeFunction);
    module.addFunction(sizeFunction, none, i32, [], module.i32.const(payload.length));
    module.removeFunction(copyFunction);
    const destination = module.local.get(0, i32);
    module.addFunction(
      copyFunction,
      i32,
      none,
      [],
      module.block(null, [module.memory.init(PAYLOAD_SEGMENT, destination, module.i32.const(0), module.i32.const(payload.length), memoryName), module.data.drop(PAYLOAD_SEGMENT)]),
    );
    if (!module.validate()) throw new Error("the embedded OPA module does not validate");
    return module.emitBinary();
  } finally {
    module.dispose();
  }
}

// ---------------------------------------------------------------- OPA bundle (tar.gz)

function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, "utf8");
  header.write("0000644\0", 100, "ascii"); // mode
  header.write("0000000\0", 108, "ascii"); // uid
  header.write("0000000\0", 116, "ascii"); // gid
  header.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "ascii");
  header.write("00000000000\0", 136, "ascii"); // mtime 0: the same policy gives the same bytes
  header.write("        ", 148, "ascii"); // checksum placeholder
  header.write("0", 156, "ascii"); // regular file
  header.write("ustar\0", 257, "ascii");
  header.write("00", 263, "ascii");
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
  return header;
}

function tar(files: readonly { name: string; data: Uint8Array }[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(tarHeader(f.name, f.data.length), Buffer.from(f.data), Buffer.alloc((512 - (f.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** An OPA bundle: `/.manifest` naming the wasm module and its entrypoint, and `/policy.wasm`. */
export function opaBundle(wasm: Uint8Array, revision: string): Buffer {
  const manifest = { revision, roots: ["portcullis"], wasm: [{ entrypoint: OPA_ENTRYPOINT, module: "/policy.wasm" }] };
  return gzipSync(
    tar([
      { name: ".manifest", data: Buffer.from(JSON.stringify(manifest), "utf8") },
      { name: "policy.wasm", data: wasm },
    ]),
  );
}
