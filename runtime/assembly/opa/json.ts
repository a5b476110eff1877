// Owns reading JSON text in linear memory: a validating scan of one value (RFC 8259, as
// JSON.parse accepts it) that records where each member of the top-level object lies,
// string decoding (escapes → UTF-8) and exact integer reading. Nothing here allocates but
// `decodeString`, which allocates on the scratch heap.
//
// INVARIANT: every read is below `end`, which the caller has checked against the memory
// size, so no input can make the module read out of bounds; nesting is limited so no input
// can exhaust the call stack.

/** Deeper nesting than this is refused (JSON.parse accepts more; see docs/opa-wasm.md). */
export const MAX_DEPTH = 64;

export const KIND_STRING: u32 = 1;
export const KIND_NUMBER: u32 = 2;
export const KIND_OTHER: u32 = 3;
export const KIND_NULL: u32 = 4;

let at: usize = 0;
let end: usize = 0;

export function startScan(from: usize, to: usize): void {
  at = from;
  end = to;
}

export function position(): usize {
  return at;
}

function peek(): u32 {
  return at < end ? <u32>load<u8>(at) : 0xffffffff;
}

export function skipWhitespace(): void {
  while (at < end) {
    const c = load<u8>(at);
    if (c != 0x20 && c != 0x09 && c != 0x0a && c != 0x0d) return;
    at++;
  }
}

/** Consumes `c` (after whitespace); false when the next byte is something else. */
export function expect(c: u32): bool {
  skipWhitespace();
  if (peek() != c) return false;
  at++;
  return true;
}

export function atEnd(): bool {
  skipWhitespace();
  return at == end;
}

function isHex(c: u32): bool {
  return (c >= 0x30 && c <= 0x39) || ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66);
}

function hexValue(c: u32): u32 {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}

/** Scans a string starting at its opening quote; false when it is malformed. */
export function scanString(): bool {
  if (peek() != 0x22) return false;
  at++;
  while (at < end) {
    const c = <u32>load<u8>(at);
    if (c == 0x22) {
      at++;
      return true;
    }
    if (c < 0x20) return false;
    if (c == 0x5c) {
      at++;
      const e = peek();
      if (e == 0x75) {
        if (at + 5 > end) return false;
        for (let k: usize = 1; k <= 4; k++) if (!isHex(<u32>load<u8>(at + k))) return false;
        at += 5;
        continue;
      }
      if (e != 0x22 && e != 0x5c && e != 0x2f && e != 0x62 && e != 0x66 && e != 0x6e && e != 0x72 && e != 0x74) return false;
    }
    at++;
  }
  return false;
}

function scanDigits(): bool {
  const from = at;
  while (at < end && load<u8>(at) >= 0x30 && load<u8>(at) <= 0x39) at++;
  return at > from;
}

function scanNumber(): bool {
  if (peek() == 0x2d) at++;
  if (peek() == 0x30) at++;
  else if (!scanDigits()) return false;
  if (peek() == 0x2e) {
    at++;
    if (!scanDigits()) return false;
  }
  if ((peek() | 0x20) == 0x65) {
    at++;
    if (peek() == 0x2b || peek() == 0x2d) at++;
    if (!scanDigits()) return false;
  }
  return true;
}

function scanWord(word: string): bool {
  const n = <usize>word.length;
  if (at + n > end) return false;
  for (let i: usize = 0; i < n; i++) if (<u32>load<u8>(at + i) != <u32>word.charCodeAt(<i32>i)) return false;
  at += n;
  return true;
}

/** Scans one value of any kind (after whitespace); returns its KIND, or 0 when malformed. */
export function scanValue(depth: i32): u32 {
  skipWhitespace();
  const c = peek();
  if (c == 0x22) return scanString() ? KIND_STRING : 0;
  if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return scanNumber() ? KIND_NUMBER : 0;
  if (c == 0x74) return scanWord("true") ? KIND_OTHER : 0;
  if (c == 0x66) return scanWord("false") ? KIND_OTHER : 0;
  if (c == 0x6e) return scanWord("null") ? KIND_NULL : 0;
  if (c != 0x7b && c != 0x5b) return 0;
  if (depth >= MAX_DEPTH) return 0;
  const close: u32 = c == 0x7b ? 0x7d : 0x5d;
  at++;
  if (expect(close)) return KIND_OTHER;
  do {
    if (c == 0x7b) {
      skipWhitespace();
      if (!scanString() || !expect(0x3a)) return 0;
    }
    if (scanValue(depth + 1) == 0) return 0;
  } while (expect(0x2c));
  return expect(close) ? KIND_OTHER : 0;
}

// ---------------------------------------------------------------- decoding

function writeUtf8(to: usize, codePoint: u32): usize {
  if (codePoint < 0x80) {
    store<u8>(to, <u8>codePoint);
    return 1;
  }
  if (codePoint < 0x800) {
    store<u8>(to, <u8>(0xc0 | (codePoint >> 6)));
    store<u8>(to + 1, <u8>(0x80 | (codePoint & 0x3f)));
    return 2;
  }
  if (codePoint < 0x10000) {
    store<u8>(to, <u8>(0xe0 | (codePoint >> 12)));
    store<u8>(to + 1, <u8>(0x80 | ((codePoint >> 6) & 0x3f)));
    store<u8>(to + 2, <u8>(0x80 | (codePoint & 0x3f)));
    return 3;
  }
  store<u8>(to, <u8>(0xf0 | (codePoint >> 18)));
  store<u8>(to + 1, <u8>(0x80 | ((codePoint >> 12) & 0x3f)));
  store<u8>(to + 2, <u8>(0x80 | ((codePoint >> 6) & 0x3f)));
  store<u8>(to + 3, <u8>(0x80 | (codePoint & 0x3f)));
  return 4;
}

function hex4(p: usize): u32 {
  return (hexValue(<u32>load<u8>(p)) << 12) | (hexValue(<u32>load<u8>(p + 1)) << 8) | (hexValue(<u32>load<u8>(p + 2)) << 4) | hexValue(<u32>load<u8>(p + 3));
}

/** Decoded bytes of the last `decodeString`. */
export let decodedLength: usize = 0;

/**
 * Decodes a string already validated by `scanString`, from its opening quote at `from`,
 * into UTF-8 on the scratch heap; returns the address (length in `decodedLength`). A
 * surrogate pair becomes one code point; a lone surrogate is kept as its 3-byte WTF-8
 * sequence (ED A0..BF xx), which no valid ID, address or protocol contains and which
 * writeEscaped turns back into `\uXXXX`, as JSON.stringify writes a lone surrogate.
 * INVARIANT: the decoded text is never longer than the quoted one, so one allocation fits.
 */
export function decodeString(from: usize): usize {
  let p = from + 1;
  let length: usize = 0;
  while (load<u8>(p + length) != 0x22) length += load<u8>(p + length) == 0x5c ? 2 : 1;
  const out = __alloc(length);
  let o = out;
  while (true) {
    const c = <u32>load<u8>(p);
    if (c == 0x22) break;
    if (c != 0x5c) {
      store<u8>(o++, <u8>c);
      p++;
      continue;
    }
    const e = <u32>load<u8>(p + 1);
    p += 2;
    if (e == 0x75) {
      let cp = hex4(p);
      p += 4;
      if (cp >= 0xd800 && cp <= 0xdbff && load<u8>(p) == 0x5c && load<u8>(p + 1) == 0x75) {
        const low = hex4(p + 2);
        if (low >= 0xdc00 && low <= 0xdfff) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          p += 6;
        }
      }
      o += writeUtf8(o, cp);
      continue;
    }
    store<u8>(o++, <u8>(e == 0x62 ? 0x08 : e == 0x66 ? 0x0c : e == 0x6e ? 0x0a : e == 0x72 ? 0x0d : e == 0x74 ? 0x09 : e));
  }
  decodedLength = o - out;
  return out;
}

/**
 * The value of a number already validated by `scanNumber` (text `from`..`to`) when it is
 * an integer in 0..`max` (as JSON.parse would give it: `-0`, `1.0` and `1e3` are integers),
 * else -1.
 */
export function readInteger(from: usize, to: usize, max: u64): i64 {
  let p = from;
  const negative = load<u8>(p) == 0x2d;
  if (negative) p++;
  // Significant digits as `mantissa`, with `scale` the decimal exponent applied to them.
  let mantissa: u64 = 0;
  let digits: i32 = 0;
  let scale: i32 = 0;
  let nonZeroLost = false;
  let fraction = false;
  for (; p < to; p++) {
    const c = <u32>load<u8>(p);
    if (c == 0x2e) {
      fraction = true;
      continue;
    }
    if ((c | 0x20) == 0x65) break;
    const d = c - 0x30;
    if (digits == 0 && d == 0) {
      if (fraction) scale--;
      continue;
    }
    if (digits < 19) {
      mantissa = mantissa * 10 + d;
      digits++;
      if (fraction) scale--;
    } else {
      // Past 19 significant digits the value is beyond any limit here, unless a fraction.
      if (!fraction) scale++;
      else if (d != 0) nonZeroLost = true;
    }
  }
  if (p < to) {
    p++;
    let exponentNegative = false;
    if (load<u8>(p) == 0x2b || load<u8>(p) == 0x2d) exponentNegative = load<u8>(p++) == 0x2d;
    let exponent: i32 = 0;
    for (; p < to; p++) if (exponent < 100000) exponent = exponent * 10 + <i32>(load<u8>(p) - 0x30);
    scale += exponentNegative ? -exponent : exponent;
  }
  if (mantissa == 0) return nonZeroLost ? -1 : 0;
  if (negative || nonZeroLost) return -1;
  while (scale < 0) {
    if (mantissa % 10 != 0) return -1;
    mantissa /= 10;
    scale++;
  }
  while (scale > 0) {
    if (mantissa > max) return -1;
    mantissa *= 10;
    scale--;
  }
  return mantissa > max ? -1 : <i64>mantissa;
}
