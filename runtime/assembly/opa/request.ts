// Owns turning the OPA input (JSON text) into a request, with the same checks, in the same
// order, with the same messages as `parseRequestObject` in compiler/request.ts: the input
// must be an object with only the fields principal, uid, gid, ip, port, protocol; principal
// null/absent/"unidentified", "workload:NAME" or a SPIFFE ID; uid/gid default to the
// workload's selectors (else 1000). A refused input yields one field name and one message.
import { parseAddress } from "./address";
import { atEnd, decodedLength, decodeString, expect, KIND_NULL, KIND_NUMBER, KIND_STRING, position, readInteger, scanString, scanValue, skipWhitespace, startScan } from "./json";
import { findWorkload, workloadGid, workloadId, workloadIdLength, workloadUid } from "./payload";
import { checkSpiffeId, normalised, normalisedLength, writeSpiffeReason } from "./spiffe";
import { writeAscii, writeEscaped, writeText } from "./writer";

const DEFAULT_UID: u32 = 1000;
const U32_MAX: u64 = 0xffffffff;

// The request, valid after `readRequest` returned true.
export let identified: bool = false;
export let principal: usize = 0;
export let principalLength: usize = 0;
export let uid: u32 = 0;
export let gid: u32 = 0;
export let port: u32 = 0;
export let tcp: bool = false;

// Why `readRequest` returned false: the field and what to say (written by `writeRefusal`).
const WHY_NOT_JSON: u32 = 1;
const WHY_NOT_OBJECT: u32 = 2;
const WHY_UNKNOWN_FIELD: u32 = 3;
const WHY_PRINCIPAL_TYPE: u32 = 4;
const WHY_UNKNOWN_WORKLOAD: u32 = 5;
const WHY_BAD_SPIFFE: u32 = 6;
const WHY_IP: u32 = 7;
const WHY_UID: u32 = 8;
const WHY_GID: u32 = 9;
const WHY_PORT: u32 = 10;
const WHY_PROTOCOL: u32 = 11;
let why: u32 = 0;
/** The bytes the refusal names: an unknown field's name, a workload name, an ID, a value's JSON text. */
let namedAt: usize = 0;
let namedLength: usize = 0;

// Where each known member's value lies in the input (start 0 = absent), and its kind.
const FIELDS = 6;
const PRINCIPAL = 0;
const UID = 1;
const GID = 2;
const IP = 3;
const PORT = 4;
const PROTOCOL = 5;
const valueStart: usize = memory.data(FIELDS * 4);
const valueEnd: usize = memory.data(FIELDS * 4);
const valueKind: usize = memory.data(FIELDS * 4);

function fieldIndex(name: usize, length: usize): i32 {
  if (matches(name, length, "principal")) return PRINCIPAL;
  if (matches(name, length, "uid")) return UID;
  if (matches(name, length, "gid")) return GID;
  if (matches(name, length, "ip")) return IP;
  if (matches(name, length, "port")) return PORT;
  if (matches(name, length, "protocol")) return PROTOCOL;
  return -1;
}

function matches(bytes: usize, length: usize, text: string): bool {
  if (length != <usize>text.length) return false;
  for (let i = 0; i < text.length; i++) if (<u32>load<u8>(bytes + <usize>i) != <u32>text.charCodeAt(i)) return false;
  return true;
}

function refuse(reason: u32, at: usize, length: usize): bool {
  why = reason;
  namedAt = at;
  namedLength = length;
  return false;
}

function refuseValue(reason: u32, field: i32): bool {
  const start = load<u32>(valueStart + <usize>field * 4);
  return refuse(reason, <usize>start, start == 0 ? 0 : <usize>load<u32>(valueEnd + <usize>field * 4) - <usize>start);
}

function kindOf(field: i32): u32 {
  return load<u32>(valueKind + <usize>field * 4);
}

function startOf(field: i32): usize {
  return <usize>load<u32>(valueStart + <usize>field * 4);
}

/** The field's value as an integer in 0..max (absent: `fallback`), or -1 when it is none. */
function integerField(field: i32, max: u64, fallback: u32): i64 {
  if (startOf(field) == 0) return <i64>fallback;
  if (kindOf(field) != KIND_NUMBER) return -1;
  return readInteger(startOf(field), <usize>load<u32>(valueEnd + <usize>field * 4), max);
}

/** Reads `input[0..length)`; false when it is refused (see `writeRefusal`). */
export function readRequest(input: usize, length: usize): bool {
  for (let f = 0; f < FIELDS; f++) store<u32>(valueStart + <usize>f * 4, 0);
  // No input at all is `undefined` to the reference: not an object.
  if (length == 0) return refuse(WHY_NOT_OBJECT, 0, 0);
  // The whole input must be JSON (JSON.parse runs before any field is looked at).
  startScan(input, input + length);
  skipWhitespace();
  const first = position();
  const kind = scanValue(0);
  if (kind == 0 || !atEnd()) return refuse(WHY_NOT_JSON, 0, 0);
  startScan(first, input + length);
  if (!expect(0x7b)) return refuse(WHY_NOT_OBJECT, 0, 0);
  let unknownAt: usize = 0;
  let unknownLength: usize = 0;
  if (!expect(0x7d)) {
    do {
      skipWhitespace();
      const keyAt = position();
      scanString();
      const name = decodeString(keyAt);
      const nameLength = decodedLength;
      expect(0x3a);
      skipWhitespace();
      const at = position();
      const valueKindHere = scanValue(1);
      const field = fieldIndex(name, nameLength);
      if (field < 0) {
        if (unknownAt == 0) {
          unknownAt = name;
          unknownLength = nameLength;
        }
        continue;
      }
      // A repeated member: the last one counts, as with JSON.parse.
      store<u32>(valueStart + <usize>field * 4, <u32>at);
      store<u32>(valueEnd + <usize>field * 4, <u32>position());
      store<u32>(valueKind + <usize>field * 4, valueKindHere);
    } while (expect(0x2c));
  }
  if (unknownAt != 0) return refuse(WHY_UNKNOWN_FIELD, unknownAt, unknownLength);

  // principal: absent, null or "unidentified"; "workload:NAME"; else a SPIFFE ID.
  let defaultUid = DEFAULT_UID;
  let defaultGid = DEFAULT_UID;
  identified = false;
  if (startOf(PRINCIPAL) != 0 && kindOf(PRINCIPAL) != KIND_NULL) {
    if (kindOf(PRINCIPAL) != KIND_STRING) return refuseValue(WHY_PRINCIPAL_TYPE, PRINCIPAL);
    const text = decodeString(startOf(PRINCIPAL));
    const textLength = decodedLength;
    if (!matches(text, textLength, "unidentified")) {
      identified = true;
      if (textLength >= 9 && matches(text, 9, "workload:")) {
        const w = findWorkload(text + 9, textLength - 9);
        if (w < 0) return refuse(WHY_UNKNOWN_WORKLOAD, text + 9, textLength - 9);
        principal = workloadId(w);
        principalLength = workloadIdLength(w);
        defaultUid = workloadUid(w);
        defaultGid = workloadGid(w);
      } else {
        if (!checkSpiffeId(text, textLength)) return refuse(WHY_BAD_SPIFFE, text, textLength);
        principal = normalised;
        principalLength = normalisedLength;
      }
    }
  }

  if (startOf(IP) == 0 || kindOf(IP) != KIND_STRING) return refuseValue(WHY_IP, IP);
  const address = decodeString(startOf(IP));
  if (!parseAddress(address, decodedLength)) return refuseValue(WHY_IP, IP);

  const uidValue = integerField(UID, U32_MAX, defaultUid);
  if (uidValue < 0) return refuseValue(WHY_UID, UID);
  uid = <u32>uidValue;
  const gidValue = integerField(GID, U32_MAX, defaultGid);
  if (gidValue < 0) return refuseValue(WHY_GID, GID);
  gid = <u32>gidValue;
  const portValue = startOf(PORT) == 0 ? -1 : integerField(PORT, 65535, 0);
  if (portValue < 0) return refuseValue(WHY_PORT, PORT);
  port = <u32>portValue;

  if (startOf(PROTOCOL) == 0 || kindOf(PROTOCOL) != KIND_STRING) return refuseValue(WHY_PROTOCOL, PROTOCOL);
  const protocol = decodeString(startOf(PROTOCOL));
  if (matches(protocol, decodedLength, "tcp")) tcp = true;
  else if (matches(protocol, decodedLength, "udp")) tcp = false;
  else return refuseValue(WHY_PROTOCOL, PROTOCOL);
  return true;
}

/** `not <the value's JSON text>` (or `not undefined` when the field is absent), escaped. */
function writeNotValue(): void {
  writeText(", not ");
  if (namedLength == 0) writeText("undefined");
  else writeEscaped(namedAt, namedLength);
}

/** Writes the refusal as the members `"error":"…","field":"…"` of a JSON object. */
export function writeRefusal(): void {
  writeAscii('"error":"');
  if (why == WHY_NOT_JSON) writeText("the input is not valid JSON");
  else if (why == WHY_NOT_OBJECT) writeText("a request must be a JSON object");
  else if (why == WHY_UNKNOWN_FIELD) {
    writeText("unknown field `");
    writeEscaped(namedAt, namedLength);
    writeText("`");
  } else if (why == WHY_PRINCIPAL_TYPE) {
    writeText('`principal` must be a SPIFFE ID, "workload:NAME" or null');
    writeNotValue();
  } else if (why == WHY_UNKNOWN_WORKLOAD) {
    writeText("unknown workload `");
    writeEscaped(namedAt, namedLength);
    writeText("`");
  } else if (why == WHY_BAD_SPIFFE) {
    writeText("invalid SPIFFE ID `");
    writeEscaped(namedAt, namedLength);
    writeText("`: ");
    writeSpiffeReason();
  } else if (why == WHY_IP) {
    writeText("`ip` must be an IPv4 or IPv6 address");
    writeNotValue();
  } else if (why == WHY_UID || why == WHY_GID) {
    writeText(why == WHY_UID ? "`uid`" : "`gid`");
    writeText(" must be an integer in 0..4294967295");
    writeNotValue();
  } else if (why == WHY_PORT) {
    writeText("`port` must be an integer in 0..65535");
    writeNotValue();
  } else {
    writeText('`protocol` must be "tcp" or "udp"');
    writeNotValue();
  }
  writeAscii('","field":"');
  if (why == WHY_UNKNOWN_FIELD) writeEscaped(namedAt, namedLength);
  else if (why == WHY_NOT_JSON || why == WHY_NOT_OBJECT) writeText("request");
  else if (why == WHY_PRINCIPAL_TYPE || why == WHY_UNKNOWN_WORKLOAD || why == WHY_BAD_SPIFFE) writeText("principal");
  else if (why == WHY_IP) writeText("ip");
  else if (why == WHY_UID) writeText("uid");
  else if (why == WHY_GID) writeText("gid");
  else if (why == WHY_PORT) writeText("port");
  else writeText("protocol");
  writeAscii('"');
}
