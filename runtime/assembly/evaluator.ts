// Owns the fast-path evaluator module (dist/runtime/evaluator.wasm): the core's API
// (core.ts) plus memory management for the host, which writes the tables, identity bytes
// and batched requests into buffers it allocates here. runtime/evaluator.ts is its host.
export {
  loadTables,
  loadErrorDetail,
  classifyIdentity,
  identityCount,
  decide,
  decideBatch,
  resultReasonCount,
  resultReasonAt,
  configureGroups,
  groupedIdentities,
} from "./core";

/** A buffer of `bytes` bytes, 16-byte aligned, for the host to fill. */
export function alloc(bytes: usize): usize {
  return heap.alloc(bytes);
}

export function free(ptr: usize): void {
  heap.free(ptr);
}
