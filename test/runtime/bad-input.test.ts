// Bad input to the WASM evaluator: corrupt tables are refused exactly when the tables
// engine refuses them (and decided as it decides when both accept them), requests out of
// range get a RequestError naming the field, random request words never trap, and the
// identity cache stays right when it is full.
//
// Corruption: 6 sets × 300 damaged tables (one to three words changed, behind a valid
// bundle checksum); each accepted one decides 100 requests singly and in a batch.
//
// Reproduce a failure with the seed it prints:
//   PORTCULLIS_WASM_SEED=<seed> npx vitest run test/runtime/bad-input.test.ts
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { readBundle, writeBundle } from "../../compiler/bundle.js";
import type { PolicySet } from "../../compiler/model.js";
import { ReferenceEvaluator } from "../../compiler/reference.js";
import { RequestError, type Request } from "../../compiler/request.js";
import { DecisionTableReader, TableEvaluator } from "../../compiler/table-eval.js";
import { buildDecisionTables } from "../../compiler/tables.js";
import { EvaluatorLoadError, loadEvaluator, REQUEST_WORDS, TRANSIENT_HANDLE, UNIDENTIFIED_HANDLE, type WasmEvaluator } from "../../runtime/evaluator.js";
import { boundaryRequests } from "../support/boundary.js";
import { Random } from "../support/random.js";
import { randomRequests } from "../support/random-policy.js";
import { decisionJson, fixturePolicy, randomSet as randomSetOf, requestJson } from "../support/policy-sets.js";

const SEED = Number(process.env["PORTCULLIS_WASM_SEED"] ?? 20261122);
const CORRUPTIONS_PER_SET = 300;
const REQUESTS_PER_CORRUPTION = 100;


const randomSet = (index: number) => randomSetOf(SEED, index, "PORTCULLIS_WASM_SEED");


// ---------------------------------------------------------------- corrupt tables

/** Re-signs a damaged bundle so that only the table validation can catch the damage. */
function resign(bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  createHash("sha256").update(out.subarray(0, 24)).update(out.subarray(56)).digest().copy(out, 24);
  return out;
}

function tablesOf(bundle: Buffer): { start: number; words: Uint32Array } {
  const manifestLength = bundle.readUInt32LE(16);
  const start = 56 + manifestLength + ((4 - (manifestLength % 4)) % 4);
  const words = new Uint32Array((bundle.length - start) / 4);
  for (let i = 0; i < words.length; i++) words[i] = bundle.readUInt32LE(start + i * 4);
  return { start, words };
}

describe("corrupt tables behind a valid checksum", () => {
  const sets: [string, () => PolicySet][] = [
    ["the spec example", () => fixturePolicy("test/fixtures/spec-example.policy")],
    ["policies/shop", () => fixturePolicy("policies/shop")],
    ...[0, 1, 2, 3].map((i): [string, () => PolicySet] => [`random set ${i}`, () => randomSet(1000 + i).policy]),
  ];
  for (const [name, make] of sets) {
    it(`of ${name} are refused exactly when the tables engine refuses them, else decided as it decides`, () => {
      const policy = make();
      const good = writeBundle(policy, "test");
      const { start, words } = tablesOf(good);
      const requests = [...boundaryRequests(policy, { limit: REQUESTS_PER_CORRUPTION / 2 }), ...randomRequests(policy, SEED, REQUESTS_PER_CORRUPTION / 2)];
      const rng = Random.forItem(SEED, 7);
      let refused = 0;
      let accepted = 0;
      for (let i = 0; i < CORRUPTIONS_PER_SET; i++) {
        const bad = Buffer.from(good);
        // One to three words changed: to 0, 1, all ones, a random word, ± 1, or one bit flipped.
        for (let k = rng.between(1, 3); k > 0; k--) {
          const at = start + rng.int(words.length) * 4;
          const old = bad.readUInt32LE(at);
          const values = [0, 1, 0xffffffff, rng.uint32(), old + 1, old - 1, old ^ (1 << rng.int(32))];
          bad.writeUInt32LE(rng.pick(values) >>> 0, at);
        }
        const read = readBundle(resign(bad), "x.bundle");
        const damaged = tablesOf(bad).words;
        let wasm: WasmEvaluator | undefined;
        let wasmError: string | undefined;
        try {
          wasm = loadEvaluator({ words: damaged, ruleIds: policy.rules.map((r) => r.id) });
        } catch (e) {
          if (!(e instanceof EvaluatorLoadError)) throw e;
          wasmError = e.message;
        }
        const where = `corruption ${i} of ${name} (PORTCULLIS_WASM_SEED=${SEED})`;
        if (!read.ok) {
          expect(read.diagnostic.code, where).toBe("PC4006");
          expect(wasmError, `${where}: the tables engine refused it (${read.diagnostic.message}), the WASM evaluator loaded it`).toBeDefined();
          expect(wasmError).not.toContain("\n");
          refused++;
          continue;
        }
        expect(wasmError, `${where}: the tables engine accepted it, the WASM evaluator refused it`).toBeUndefined();
        accepted++;
        const tables = new TableEvaluator(read.bundle);
        const batch = wasm!.decideBatch(requests);
        requests.forEach((r, q) => {
          const expected = decisionJson(tables.decide(r));
          expect(decisionJson(wasm!.decide(r)), `${where}, request ${requestJson(r)}`).toBe(expected);
          expect(decisionJson(batch[q]!), `${where}, batched request ${requestJson(r)}`).toBe(expected);
        });
      }
      expect(refused).toBeGreaterThan(CORRUPTIONS_PER_SET / 10);
      expect(accepted).toBeGreaterThan(CORRUPTIONS_PER_SET / 10);
    });
  }

  it("refuse truncated tables, an empty directory and a wrong rule count with one line each", () => {
    const tables = buildDecisionTables(fixturePolicy("test/fixtures/spec-example.policy"));
    const attempts: [string, Uint32Array, readonly string[]][] = [
      ["empty", new Uint32Array(0), tables.ruleIds],
      ["truncated", tables.words.subarray(0, tables.words.length - 1), tables.ruleIds],
      ["directory only", tables.words.subarray(0, 1), tables.ruleIds],
      ["one rule id short", tables.words, tables.ruleIds.slice(1)],
    ];
    for (const [name, words, ruleIds] of attempts) {
      let message: string | undefined;
      try {
        loadEvaluator({ words, ruleIds });
      } catch (e) {
        if (!(e instanceof EvaluatorLoadError)) throw e;
        message = e.message;
      }
      expect(message, name).toBeDefined();
      expect(message, name).toMatch(/^[a-zA-Z_ ]+[^\n]*$/);
      expect(() => new DecisionTableReader(words, ruleIds), name).toThrow();
    }
  });
});

// ---------------------------------------------------------------- requests

/** A request as the module's words: handle, uid, gid, protocol, port, family, address words 0..3. */
type Encoded = [number, number, number, number, number, number, number, number, number, number];

describe("requests", () => {
  const policy = fixturePolicy("test/fixtures/spec-example.policy");
  const tables = buildDecisionTables(policy);
  const good: Request = { principal: null, uid: 1000, gid: 1000, family: 4, ip: [10, 0, 0, 1], port: 443, protocol: "tcp" };

  it("with an invalid IP, a port out of range, an unknown protocol or a bad uid get a RequestError naming the field, never a trap", () => {
    const wasm = loadEvaluator(tables);
    const bad: [string, Record<string, unknown>][] = [
      ["ip", { ip: [10, 0, 0] }],
      ["ip", { ip: [10, 0, 0, 256] }],
      ["ip", { family: 6 }],
      ["ip", { family: 5 }],
      ["ip", { ip: "10.0.0.1" }],
      ["port", { port: 65536 }],
      ["port", { port: -1 }],
      ["port", { port: 1.5 }],
      ["protocol", { protocol: "icmp" }],
      ["protocol", { protocol: "toString" }],
      ["uid", { uid: -1 }],
      ["gid", { gid: 2 ** 32 }],
      ["principal", { principal: 42 }],
    ];
    for (const [field, change] of bad) {
      const request = { ...good, ...change } as unknown as Request;
      let error: unknown;
      try {
        wasm.decide(request);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(change)).toBeInstanceOf(RequestError);
      expect((error as RequestError).field, JSON.stringify(change)).toBe(field);
      expect((error as Error).message).not.toContain("\n");
      expect(() => wasm.decideBatch([good, request]), JSON.stringify(change)).toThrow(RequestError);
    }
    expect(wasm.decide(good)).toEqual(new ReferenceEvaluator(policy).decide(good));
  });

  it("as raw integers out of range are refused by the module itself; random words never trap", () => {
    const wasm = loadEvaluator(tables);
    const handle = wasm.identityHandle("spiffe://shop.example/ns/web/x");
    const invalid: Encoded[] = [
      [handle + 100, 0, 0, 0, 80, 4, 0, 0, 0, 0],
      [handle, 0, 0, 2, 80, 4, 0, 0, 0, 0],
      [handle, 0, 0, 0, 65536, 4, 0, 0, 0, 0],
      [handle, 0, 0, 0, 80, 5, 0, 0, 0, 0],
      [TRANSIENT_HANDLE, 0, 0, 0, 80, 4, 0, 0, 0, 0],
    ];
    for (const words of invalid) {
      const result = wasm.decideEncoded(...words);
      expect(() => wasm.decision(result), words.join(",")).toThrow(RequestError);
    }
    const rng = new Random(SEED);
    const batch = wasm.createBatch(2000);
    // Each field mostly in range, sometimes anything: many requests are valid, many are not.
    const field = (inRange: () => number) => (rng.chance(0.85) ? inRange() : rng.uint32());
    for (let i = 0; i < 2000; i++) {
      const mapped = rng.chance(0.2);
      const words = [
        field(() => rng.pick([UNIDENTIFIED_HANDLE, TRANSIENT_HANDLE, handle])),
        rng.uint32(),
        rng.uint32(),
        field(() => rng.int(2)),
        field(() => rng.int(65536)),
        field(() => rng.pick([4, 6])),
        mapped ? 0 : rng.uint32(),
        mapped ? 0 : rng.uint32(),
        mapped ? 0xffff : rng.uint32(),
        rng.uint32(),
      ];
      batch.requests.set(words, i * REQUEST_WORDS);
    }
    batch.run(2000);
    let valid = 0;
    for (let i = 0; i < 2000; i++) {
      const w = [...batch.requests.subarray(i * REQUEST_WORDS, (i + 1) * REQUEST_WORDS)] as Encoded;
      const result = batch.result(i);
      expect(wasm.decideEncoded(...w)).toBe(result);
      const inRange = w[0] <= handle && w[0] !== TRANSIENT_HANDLE && w[3] <= 1 && w[4] <= 65535 && (w[5] === 4 || w[5] === 6);
      if (!inRange) {
        expect(() => wasm.decision(result)).toThrow(RequestError);
        continue;
      }
      valid++;
      const family = w[5] as 4 | 6;
      const bytes = (family === 4 ? [w[6]] : w.slice(6, 10)).flatMap((x) => [x >>> 24, (x >>> 16) & 255, (x >>> 8) & 255, x & 255]);
      const mapped = family === 6 && w[6] === 0 && w[7] === 0 && w[8] === 0xffff;
      const request: Request = {
        principal: w[0] === UNIDENTIFIED_HANDLE ? null : "spiffe://shop.example/ns/web/x",
        uid: w[1],
        gid: w[2],
        protocol: w[3] === 0 ? "tcp" : "udp",
        port: w[4],
        family: mapped ? 4 : family,
        ip: mapped ? bytes.slice(12) : bytes,
      };
      expect(wasm.decision(result), requestJson(request)).toEqual(new TableEvaluator(tables).decide(request));
    }
    batch.release();
    expect(valid).toBeGreaterThan(500);
  });

  it("classify each identity once: the same ID keeps its handle; past the cache, transient handles still decide right", () => {
    const wasm = loadEvaluator(tables);
    const reference = new TableEvaluator(tables);
    const a = wasm.identityHandle("spiffe://shop.example/ns/web/a");
    expect(wasm.identityHandle("spiffe://shop.example/ns/web/a")).toBe(a);
    expect(wasm.identityHandle("spiffe://shop.example/ns/web/b")).not.toBe(a);
    const ids = Array.from({ length: 70_000 }, (_, i) => `spiffe://shop.example/ns/${i % 3 === 0 ? "web" : "db"}/sa/n${i}`);
    const handles = new Set<number>();
    ids.forEach((id, i) => {
      handles.add(wasm.identityHandle(id));
      if (i % 997 === 0) {
        const r: Request = { ...good, principal: id, ip: [10, 0, 1, 10], port: 8443 };
        expect(wasm.decide(r), id).toEqual(reference.decide(r));
      }
    });
    // 65,536 cached IDs (two of them classified above), the rest shared the transient handle.
    expect(handles.has(TRANSIENT_HANDLE)).toBe(true);
    expect(handles.size).toBe(65_536 - 2 + 1);
    // Uncached IDs in one batch: each decided alone, none with another's classes.
    const uncached = ["spiffe://shop.example/ns/web/late", "spiffe://shop.example/ns/db/late", "spiffe://elsewhere.test/late"];
    const requests = uncached.flatMap((principal) => [80, 8443, 5432].map((port): Request => ({ ...good, principal, ip: [10, 0, 1, 10], port })));
    expect(wasm.decideBatch([...requests, ...requests])).toEqual([...requests, ...requests].map((r) => reference.decide(r)));
    const batch = wasm.createBatch(1);
    expect(() => batch.set(0, requests[0]!)).toThrow(/identity cache is full/);
  });
});
