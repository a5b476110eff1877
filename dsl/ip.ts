// Owns the textual forms of IP addresses: strict parsing of IPv4 (dotted decimal, no
// leading zeros) and every RFC 4291 IPv6 form (`::`, embedded IPv4), canonical printing
// (RFC 5952), and the rule that an IPv4-mapped IPv6 address is the IPv4 address (spec §1).

export interface ParsedIp {
  readonly family: 4 | 6;
  readonly bytes: number[];
}

export function parseIpv4(text: string): number[] | undefined {
  // Four decimal parts of one to three digits, no leading zero, each at most 255: scanned
  // by character (a split and a regular expression per part cost a third of parsing a set's
  // addresses).
  const bytes: number[] = [];
  let i = 0;
  for (let part = 0; part < 4; part++) {
    if (part > 0) {
      if (text.charCodeAt(i) !== 46) return undefined; // "."
      i++;
    }
    const start = i;
    let n = 0;
    while (i < text.length && i - start < 4) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || (digits > 1 && text.charCodeAt(start) === 48) || n > 255) return undefined;
    bytes.push(n);
  }
  return i === text.length ? bytes : undefined;
}

/** Returns 16 bytes, or undefined when `text` is not an IPv6 address. */
export function parseIpv6(text: string): number[] | undefined {
  let head = text;
  let tail: number[] = [];
  // An embedded IPv4 suffix takes the place of the last two groups.
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".")) {
    const v4 = parseIpv4(text.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    tail = [(v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!];
    head = text.slice(0, lastColon + 1);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsWanted = 8 - tail.length;
  const doubleColon = head.indexOf("::");
  if (doubleColon !== head.lastIndexOf("::")) return undefined;
  /** Colon-separated groups of one to four hex digits ("": none). */
  const parseGroups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    let i = 0;
    for (;;) {
      const start = i;
      let n = 0;
      while (i < s.length && i - start < 5) {
        const d = hexDigit(s.charCodeAt(i));
        if (d < 0) break;
        n = n * 16 + d;
        i++;
      }
      if (i === start || i - start > 4) return undefined;
      out.push(n);
      if (i === s.length) return out;
      if (s.charCodeAt(i) !== 58) return undefined; // ":"
      i++;
    }
  };
  let groups: number[];
  if (doubleColon >= 0) {
    const left = parseGroups(head.slice(0, doubleColon));
    const right = parseGroups(head.slice(doubleColon + 2));
    if (left === undefined || right === undefined) return undefined;
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    const all = parseGroups(head);
    if (all === undefined || all.length !== groupsWanted) return undefined;
    groups = all;
  }
  const bytes: number[] = [];
  for (const g of [...groups, ...tail]) bytes.push(g >> 8, g & 0xff);
  return bytes;
}

/** The value of a hex digit's character code, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

export function isV4Mapped(bytes16: readonly number[]): boolean {
  for (let i = 0; i < 10; i++) if (bytes16[i] !== 0) return false;
  return bytes16[10] === 0xff && bytes16[11] === 0xff;
}

/** Parses either family; a v4-mapped IPv6 address comes back as IPv4. */
export function parseIp(text: string): ParsedIp | undefined {
  if (!text.includes(":")) {
    const v4 = parseIpv4(text);
    return v4 === undefined ? undefined : { family: 4, bytes: v4 };
  }
  const v6 = parseIpv6(text);
  if (v6 === undefined) return undefined;
  return isV4Mapped(v6) ? { family: 4, bytes: v6.slice(12) } : { family: 6, bytes: v6 };
}

export function formatIp(family: 4 | 6, bytes: readonly number[]): string {
  if (family === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  // RFC 5952: compress the longest run (length >= 2) of zero groups, the first on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/** Clears every bit past `prefix`; returns a new array. */
export function maskBytes(bytes: readonly number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const bitsHere = Math.max(0, Math.min(8, prefix - i * 8));
    return b & ((0xff << (8 - bitsHere)) & 0xff);
  });
}
