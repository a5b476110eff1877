// Owns parsing a request's `ip` text exactly as `parseIp` in dsl/ip.ts does: dotted IPv4
// without leading zeros, IPv6 with at most one `::` (standing for at least one group) and
// an optional embedded IPv4 tail; a v4-mapped IPv6 address is IPv4.

/** The parsed address: `family` 4 (bytes 0..3) or 6 (bytes 0..15). */
export let family: u32 = 0;
export const addressBytes: usize = memory.data(16);
const groups: usize = memory.data(16); // eight u16 groups
const tail: usize = memory.data(4); // an embedded IPv4 tail

function byteAt(from: usize, i: usize): u32 {
  return <u32>load<u8>(from + i);
}

/** Parses dotted IPv4 in `from[a..b)` into `to[0..4)`. */
function parseIpv4(from: usize, a: usize, b: usize, to: usize): bool {
  let part = 0;
  let i = a;
  while (true) {
    const start = i;
    let value: u32 = 0;
    while (i < b && byteAt(from, i) >= 0x30 && byteAt(from, i) <= 0x39 && i - start < 4) value = value * 10 + byteAt(from, i++) - 0x30;
    const length = i - start;
    if (length == 0 || length > 3 || (length > 1 && byteAt(from, start) == 0x30) || value > 255) return false;
    store<u8>(to + <usize>part, <u8>value);
    part++;
    if (part == 4) return i == b;
    if (i >= b || byteAt(from, i) != 0x2e) return false;
    i++;
  }
}

/** Parses `:`-separated hex groups in `from[a..b)` into `groups` from index `first`; returns the count or -1. */
function parseGroups(from: usize, a: usize, b: usize, first: i32, limit: i32): i32 {
  if (a == b) return 0;
  let count = 0;
  let i = a;
  while (true) {
    const start = i;
    let value: u32 = 0;
    while (i < b && byteAt(from, i) != 0x3a) {
      const c = byteAt(from, i);
      let d: u32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x66) d = (c | 0x20) - 0x61 + 10;
      else return -1;
      value = (value << 4) | d;
      i++;
      if (i - start > 4) return -1;
    }
    if (i == start || first + count >= limit) return -1;
    store<u16>(groups + ((<usize>(first + count)) << 1), <u16>value);
    count++;
    if (i == b) return count;
    i++; // the `:`
    if (i == b) return -1; // a trailing single `:`
  }
}

/** Parses `from[0..length)` as an address; false when it is none. */
export function parseAddress(from: usize, length: usize): bool {
  let colon = false;
  let dot = false;
  let lastColon: isize = -1;
  for (let i: usize = 0; i < length; i++) {
    const c = byteAt(from, i);
    if (c == 0x3a) {
      colon = true;
      lastColon = <isize>i;
    } else if (c == 0x2e) dot = true;
  }
  if (!colon) {
    family = 4;
    return parseIpv4(from, 0, length, addressBytes);
  }
  // IPv6, with an embedded IPv4 tail in place of the last two groups when there is a `.`.
  let headEnd = length;
  let groupsWanted = 8;
  if (dot) {
    if (!parseIpv4(from, <usize>(lastColon + 1), length, tail)) return false;
    groupsWanted = 6;
    headEnd = <usize>(lastColon + 1);
    const endsWithDouble = headEnd >= 2 && byteAt(from, headEnd - 2) == 0x3a;
    if (!endsWithDouble) headEnd--;
  }
  let doubleColon: isize = -1;
  for (let i: usize = 0; i + 1 < headEnd; i++) {
    if (byteAt(from, i) == 0x3a && byteAt(from, i + 1) == 0x3a) {
      if (doubleColon >= 0) return false;
      doubleColon = <isize>i;
      i++;
    }
  }
  // dsl/ip.ts finds `::` with indexOf/lastIndexOf, so `:::` counts as two.
  for (let i: usize = 0; i + 2 < headEnd; i++) if (byteAt(from, i) == 0x3a && byteAt(from, i + 1) == 0x3a && byteAt(from, i + 2) == 0x3a) return false;
  if (doubleColon >= 0) {
    const d = <usize>doubleColon;
    const left = parseGroups(from, 0, d, 0, groupsWanted);
    if (left < 0) return false;
    const right = parseGroups(from, d + 2, headEnd, left, groupsWanted);
    if (right < 0) return false;
    const missing = groupsWanted - left - right;
    if (missing < 1) return false;
    // Move the right groups to the end and zero the gap.
    for (let k = right - 1; k >= 0; k--) store<u16>(groups + (<usize>(left + missing + k) << 1), load<u16>(groups + (<usize>(left + k) << 1)));
    for (let k = 0; k < missing; k++) store<u16>(groups + (<usize>(left + k) << 1), 0);
  } else {
    if (parseGroups(from, 0, headEnd, 0, groupsWanted) != groupsWanted) return false;
  }
  for (let k = 0; k < groupsWanted; k++) {
    const g = <u32>load<u16>(groups + (<usize>k << 1));
    store<u8>(addressBytes + (<usize>k << 1), <u8>(g >> 8));
    store<u8>(addressBytes + (<usize>k << 1) + 1, <u8>g);
  }
  if (dot) memory.copy(addressBytes + 12, tail, 4);
  // A v4-mapped address (::ffff:a.b.c.d) is IPv4.
  let mapped = load<u8>(addressBytes + 10) == 0xff && load<u8>(addressBytes + 11) == 0xff;
  for (let i: usize = 0; i < 10; i++) if (load<u8>(addressBytes + i) != 0) mapped = false;
  if (mapped) {
    memory.copy(addressBytes, addressBytes + 12, 4);
    family = 4;
  } else family = 6;
  return true;
}
