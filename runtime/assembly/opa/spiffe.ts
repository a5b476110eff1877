// Owns validating and normalising a request's SPIFFE ID exactly as `checkSpiffeId` in
// compiler/spiffe.ts does (same checks in the same order, same reasons), so the OPA module
// refuses what `eval --requests` refuses and classifies the same normalised bytes.
import { writeEscaped, writeText } from "./writer";

export const MAX_SPIFFE_ID_BYTES: usize = 2048;

const OK: u32 = 0;
const NOT_SPIFFE: u32 = 1;
const SCHEME_CASE: u32 = 2;
const TOO_LONG: u32 = 3;
const EMPTY_TRUST_DOMAIN: u32 = 4;
const QUERY_OR_FRAGMENT: u32 = 5;
const TRUST_DOMAIN_CHAR: u32 = 6;
const TRAILING_SLASH: u32 = 7;
const EMPTY_SEGMENT: u32 = 8;
const DOT_SEGMENT: u32 = 9;
const PATH_CHAR: u32 = 10;

/** Why the last `checkSpiffeId` failed, and the bytes it names (a character or a segment). */
let reason: u32 = OK;
let namedAt: usize = 0;
let namedLength: usize = 0;

/** The normalised ID of the last successful check (on the scratch heap). */
export let normalised: usize = 0;
export let normalisedLength: usize = 0;

/** UTF-8 length of the code point starting with byte `b` (1 for a stray continuation byte). */
function sequenceLength(b: u32): usize {
  return b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
}

function lower(c: u32): u32 {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
}

function isTrustDomainChar(c: u32): bool {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c == 0x2e || c == 0x5f || c == 0x2d;
}

function isPathChar(c: u32): bool {
  return isTrustDomainChar(lower(c));
}

/** KELVIN SIGN (U+212A) is the one non-ASCII character whose lower case is ASCII (`k`). */
function isKelvin(at: usize, end: usize): bool {
  return at + 3 <= end && load<u8>(at) == 0xe2 && load<u8>(at + 1) == 0x84 && load<u8>(at + 2) == 0xaa;
}

function refuse(why: u32, at: usize, length: usize): bool {
  reason = why;
  namedAt = at;
  namedLength = length;
  return false;
}

/** Checks `text[0..length)`; on success `normalised` holds the ID with its trust domain in lower case. */
export function checkSpiffeId(text: usize, length: usize): bool {
  const scheme = "spiffe://";
  const schemeLength: usize = 9;
  if (length < schemeLength) return refuse(NOT_SPIFFE, 0, 0);
  for (let i: usize = 0; i < schemeLength; i++) if (lower(<u32>load<u8>(text + i)) != <u32>scheme.charCodeAt(<i32>i)) return refuse(NOT_SPIFFE, 0, 0);
  for (let i: usize = 0; i < schemeLength; i++) if (<u32>load<u8>(text + i) != <u32>scheme.charCodeAt(<i32>i)) return refuse(SCHEME_CASE, 0, 0);
  if (length > MAX_SPIFFE_ID_BYTES) return refuse(TOO_LONG, 0, 0);
  const end = text + length;
  let slash = text + schemeLength;
  while (slash < end && load<u8>(slash) != 0x2f) slash++;
  if (slash == text + schemeLength) return refuse(EMPTY_TRUST_DOMAIN, 0, 0);
  normalised = __alloc(length);
  memory.copy(normalised, text, schemeLength);
  let o = normalised + schemeLength;
  for (let p = text + schemeLength; p < slash; ) {
    const c = <u32>load<u8>(p);
    if (c == 0x3f || c == 0x23) return refuse(QUERY_OR_FRAGMENT, 0, 0);
    if (isKelvin(p, slash)) {
      store<u8>(o++, 0x6b);
      p += 3;
      continue;
    }
    if (!isTrustDomainChar(lower(c))) return refuse(TRUST_DOMAIN_CHAR, p, min(sequenceLength(c), slash - p));
    store<u8>(o++, <u8>lower(c));
    p++;
  }
  if (slash < end) {
    if (load<u8>(end - 1) == 0x2f) return refuse(TRAILING_SLASH, 0, 0);
    let segment = slash + 1;
    while (segment <= end) {
      let segmentEnd = segment;
      while (segmentEnd < end && load<u8>(segmentEnd) != 0x2f) segmentEnd++;
      const n = segmentEnd - segment;
      if (n == 0) return refuse(EMPTY_SEGMENT, 0, 0);
      if (load<u8>(segment) == 0x2e && (n == 1 || (n == 2 && load<u8>(segment + 1) == 0x2e))) return refuse(DOT_SEGMENT, segment, n);
      for (let p = segment; p < segmentEnd; p++) {
        const c = <u32>load<u8>(p);
        if (c == 0x3f || c == 0x23) return refuse(QUERY_OR_FRAGMENT, 0, 0);
        if (!isPathChar(c)) return refuse(PATH_CHAR, p, min(sequenceLength(c), segmentEnd - p));
      }
      segment = segmentEnd + 1;
    }
    memory.copy(o, slash, end - slash);
    o += end - slash;
  }
  normalisedLength = o - normalised;
  reason = OK;
  return true;
}

/** Writes why the last check failed, as compiler/spiffe.ts words it, inside a JSON string. */
export function writeSpiffeReason(): void {
  if (reason == NOT_SPIFFE) writeText("it must start with `spiffe://`");
  else if (reason == SCHEME_CASE) writeText("the scheme must be lower case `spiffe`");
  else if (reason == TOO_LONG) writeText("it is longer than 2048 bytes");
  else if (reason == EMPTY_TRUST_DOMAIN) writeText("the trust domain is empty");
  else if (reason == QUERY_OR_FRAGMENT) writeText("a query or fragment is not allowed");
  else if (reason == TRAILING_SLASH) writeText("a trailing `/` is not allowed");
  else if (reason == EMPTY_SEGMENT) writeText("an empty path segment (`//`) is not allowed");
  else if (reason == DOT_SEGMENT) {
    writeText("the path segment `");
    writeEscaped(namedAt, namedLength);
    writeText("` is not allowed");
  } else {
    writeText(reason == TRUST_DOMAIN_CHAR ? "the trust domain may hold only letters, digits, `.`, `-` and `_`, not `" : "path segments may hold only letters, digits, `.`, `-` and `_`, not `");
    writeEscaped(namedAt, namedLength);
    writeText("`");
  }
}
