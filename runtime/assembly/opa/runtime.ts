// Owns memory allocation in the OPA module (built with `--runtime` pointing here): a bump
// allocator with the stub runtime's block layout (~lib/rt/common), plus what the OPA ABI
// needs and AssemblyScript's stub runtime does not offer: reading and moving the top
// without writing below it, since the host keeps its input just below the top it sets.
//
// INVARIANT: `top` is always 16k - BLOCK_OVERHEAD, so every payload is 16-byte aligned;
// nothing is ever freed except the last block, and the whole heap above a sealed point is
// reset by the host between evaluations (heap.ts).
import { AL_MASK, BLOCK, BLOCK_MAXSIZE, BLOCK_OVERHEAD, OBJECT, OBJECT_MAXSIZE, OBJECT_OVERHEAD } from "~lib/rt/common";

// @ts-ignore: decorator
@lazy let top: usize = ((__heap_base + BLOCK_OVERHEAD + AL_MASK) & ~AL_MASK) - BLOCK_OVERHEAD;

// @ts-ignore: decorator
@inline function payloadSizeFor(size: usize): usize {
  return ((size + BLOCK_OVERHEAD + AL_MASK) & ~AL_MASK) - BLOCK_OVERHEAD;
}

/** Grows the memory so that `[0, end)` exists; out of memory ends in the abort hook. */
function ensureMemory(end: usize): void {
  const pages = <i32>((<u64>end + 0xffff) >> 16);
  const have = memory.size();
  if (pages <= have) return;
  // Grow by at least as much as there is (amortised), else by exactly what is needed.
  if (memory.grow(max(have, pages - have)) < 0 && memory.grow(pages - have) < 0) abort("out of memory", null, 0, 0);
}

// @ts-ignore: decorator
@unsafe @global
export function __alloc(size: usize): usize {
  if (size > BLOCK_MAXSIZE) abort("allocation too large", null, 0, 0);
  const block = changetype<BLOCK>(top);
  const payload = top + BLOCK_OVERHEAD;
  const payloadSize = payloadSizeFor(size);
  ensureMemory(payload + payloadSize);
  block.mmInfo = payloadSize;
  top = payload + payloadSize;
  return payload;
}

// @ts-ignore: decorator
@unsafe @global
export function __realloc(payload: usize, size: usize): usize {
  const block = changetype<BLOCK>(payload - BLOCK_OVERHEAD);
  const oldSize = block.mmInfo;
  const newSize = payloadSizeFor(size);
  if (payload + oldSize == top) {
    // The last block grows or shrinks in place.
    if (size > BLOCK_MAXSIZE) abort("allocation too large", null, 0, 0);
    ensureMemory(payload + newSize);
    block.mmInfo = newSize;
    top = payload + newSize;
    return payload;
  }
  if (newSize <= oldSize) return payload;
  const moved = __alloc(max(newSize, oldSize << 1));
  memory.copy(moved, payload, oldSize);
  return moved;
}

// @ts-ignore: decorator
@unsafe @global
export function __free(payload: usize): void {
  const block = changetype<BLOCK>(payload - BLOCK_OVERHEAD);
  if (payload + block.mmInfo == top) top = changetype<usize>(block);
}

// @ts-ignore: decorator
@unsafe @global
export function __new(size: usize, id: u32): usize {
  if (size > OBJECT_MAXSIZE) abort("allocation too large", null, 0, 0);
  const payload = __alloc(OBJECT_OVERHEAD + size);
  const object = changetype<OBJECT>(payload - BLOCK_OVERHEAD);
  object.gcInfo = 0;
  object.gcInfo2 = 0;
  object.rtId = id;
  object.rtSize = <u32>size;
  return payload + OBJECT_OVERHEAD;
}

// @ts-ignore: decorator
@unsafe @global
export function __renew(oldPayload: usize, size: usize): usize {
  if (size > OBJECT_MAXSIZE) abort("allocation too large", null, 0, 0);
  const payload = __realloc(oldPayload - OBJECT_OVERHEAD, OBJECT_OVERHEAD + size);
  changetype<OBJECT>(payload - BLOCK_OVERHEAD).rtSize = <u32>size;
  return payload + OBJECT_OVERHEAD;
}

// No collector: linking, pinning, visiting and collecting do nothing.
// @ts-ignore: decorator
@global @unsafe
export function __link(_parent: usize, _child: usize, _expectMultiple: bool): void {}
// @ts-ignore: decorator
@global @unsafe
export function __pin(payload: usize): usize {
  return payload;
}
// @ts-ignore: decorator
@global @unsafe
export function __unpin(_payload: usize): void {}
// @ts-ignore: decorator
@global @unsafe
function __visit(_payload: usize, _cookie: u32): void {}
// @ts-ignore: decorator
@global @unsafe
export function __collect(): void {}

/** Where the next block starts. */
// @ts-ignore: decorator
@global @unsafe
export function __heap_top(): usize {
  return top;
}

/** Moves the top to `address` rounded up to the alignment (writes nothing). */
// @ts-ignore: decorator
@global @unsafe
export function __heap_top_set(address: usize): void {
  const aligned = ((address + BLOCK_OVERHEAD + AL_MASK) & ~AL_MASK) - BLOCK_OVERHEAD;
  ensureMemory(aligned + BLOCK_OVERHEAD);
  top = aligned;
}
