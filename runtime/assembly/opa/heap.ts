// Owns the OPA module's heap as the host sees it: `opa_heap_ptr_get/set` and the heap
// pointer of `opa_eval` read and move the top of the allocator (runtime.ts). The host resets
// the top before every evaluation, so everything allocated after `sealHeap()` is scratch
// that lives until the next evaluation; the part below the sealed top (payload, tables,
// static values) can never be reset.

/** The top of the persistent part. */
let sealedTop: usize = 0;

export function heapTop(): usize {
  return __heap_top();
}

/** Moves the heap top to `address` (rounded up to the alignment), never below the sealed part. */
export function setHeapTop(address: usize): void {
  __heap_top_set(address < sealedTop ? sealedTop : address);
}

/** Marks everything allocated so far as persistent. */
export function sealHeap(): void {
  sealedTop = __heap_top();
}
