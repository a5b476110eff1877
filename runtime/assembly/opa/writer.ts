// Owns the output of one evaluation: a NUL-terminated UTF-8 JSON text built on the scratch
// heap (heap.ts) in one growing block, so the host reads it with one scan.
let start: usize = 0;
let at: usize = 0;
let capacity: usize = 0;

/** Starts a new output text; the previous one is scratch and may be overwritten. */
export function beginOutput(): void {
  capacity = 256;
  start = __alloc(capacity);
  at = start;
}

function reserve(n: usize): void {
  const used = at - start;
  if (used + n <= capacity) return;
  let grown = capacity << 1;
  while (grown < used + n) grown <<= 1;
  // The output is the last block on the heap, so this grows it in place.
  start = __realloc(start, grown);
  capacity = grown;
  at = start + used;
}

export function writeByte(b: u32): void {
  reserve(1);
  store<u8>(at, <u8>b);
  at++;
}

export function writeBytes(from: usize, length: usize): void {
  reserve(length);
  memory.copy(at, from, length);
  at += length;
}

/** Writes an ASCII literal (the module's fixed texts). */
export function writeAscii(text: string): void {
  const n = text.length;
  reserve(<usize>n);
  for (let i = 0; i < n; i++) store<u8>(at + <usize>i, <u8>text.charCodeAt(i));
  at += <usize>n;
}

/** Writes an ASCII literal inside a JSON string (`"` and `\\` escaped). */
export function writeText(text: string): void {
  for (let i = 0; i < text.length; i++) {
    const c = <u32>text.charCodeAt(i);
    if (c == 0x22 || c == 0x5c) writeByte(0x5c);
    writeByte(c);
  }
}

export function writeUnsigned(value: u32): void {
  if (value >= 10) writeUnsigned(value / 10);
  writeByte(0x30 + (value % 10));
}

const HEX = "0123456789abcdef";

/**
 * Writes UTF-8 bytes as the inside of a JSON string: `"` and `\` escaped, control
 * characters as `\n`, `\t`… or `\u00XX` and lone surrogates as `\uXXXX`, as JSON.stringify
 * does; other bytes as they are.
 */
export function writeEscaped(from: usize, length: usize): void {
  for (let i: usize = 0; i < length; i++) {
    const b = <u32>load<u8>(from + i);
    if (b == 0x22 || b == 0x5c) {
      writeByte(0x5c);
      writeByte(b);
    } else if (b == 0xed && i + 2 < length && <u32>load<u8>(from + i + 1) >= 0xa0) {
      // A lone surrogate (WTF-8, see json.ts decodeString).
      const unit = ((b & 0x0f) << 12) | ((<u32>load<u8>(from + i + 1) & 0x3f) << 6) | (<u32>load<u8>(from + i + 2) & 0x3f);
      writeAscii("\\u");
      for (let shift = 12; shift >= 0; shift -= 4) writeByte(<u32>HEX.charCodeAt((unit >> shift) & 15));
      i += 2;
    } else if (b >= 0x20) {
      writeByte(b);
    } else if (b == 0x08) writeAscii("\\b");
    else if (b == 0x09) writeAscii("\\t");
    else if (b == 0x0a) writeAscii("\\n");
    else if (b == 0x0c) writeAscii("\\f");
    else if (b == 0x0d) writeAscii("\\r");
    else {
      writeAscii("\\u00");
      writeByte(<u32>HEX.charCodeAt(b >> 4));
      writeByte(<u32>HEX.charCodeAt(b & 15));
    }
  }
}

/** Ends the text with a NUL and returns its address. */
export function endOutput(): usize {
  writeByte(0);
  return start;
}
