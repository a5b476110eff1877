// Owns SPIFFE IDs and identity patterns: validation per the SPIFFE-ID standard (spec §2),
// trust-domain normalisation, and Cedar-`like` pattern matching (`*` any sequence, `/`
// included; `\*` a literal star). Every evaluator classifies identities with these.

export const MAX_SPIFFE_ID_BYTES = 2048;

export type SpiffeCheck = { readonly ok: true; readonly id: string } | { readonly ok: false; readonly reason: string };

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_CHAR = /^[A-Za-z0-9._-]$/;

/**
 * An ID already in normal form, the common case: a lower-case trust domain and non-empty
 * path segments, all of allowed ASCII characters (checked in one pass; `.` and `..` segments
 * and the length are checked beside it).
 */
const NORMAL_ID = /^spiffe:\/\/[a-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;
const DOT_SEGMENT = /\/\.\.?(?:\/|$)/;

/** Validates a SPIFFE ID and returns it with its trust domain in lower case. */
export function checkSpiffeId(text: string): SpiffeCheck {
  if (text.length <= MAX_SPIFFE_ID_BYTES && NORMAL_ID.test(text) && !DOT_SEGMENT.test(text)) return { ok: true, id: text };
  return validateSpiffeId(text);
}

/** `checkSpiffeId` without its one-pass path for IDs in normal form (exported for the tests that compare the two). */
export function validateSpiffeId(text: string): SpiffeCheck {
  if (!text.toLowerCase().startsWith("spiffe://")) return { ok: false, reason: "it must start with `spiffe://`" };
  if (!text.startsWith("spiffe://")) return { ok: false, reason: "the scheme must be lower case `spiffe`" };
  if (Buffer.byteLength(text, "utf8") > MAX_SPIFFE_ID_BYTES) return { ok: false, reason: `it is longer than ${MAX_SPIFFE_ID_BYTES} bytes` };
  const rest = text.slice("spiffe://".length);
  const slash = rest.indexOf("/");
  const trustDomain = (slash < 0 ? rest : rest.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? "" : rest.slice(slash);
  if (trustDomain === "") return { ok: false, reason: "the trust domain is empty" };
  for (const ch of trustDomain) {
    if (ch === "?" || ch === "#") return { ok: false, reason: "a query or fragment is not allowed" };
    if (!TRUST_DOMAIN_CHAR.test(ch)) return { ok: false, reason: `the trust domain may hold only letters, digits, \`.\`, \`-\` and \`_\`, not \`${ch}\`` };
  }
  if (path !== "") {
    if (path.endsWith("/")) return { ok: false, reason: "a trailing `/` is not allowed" };
    for (const segment of path.slice(1).split("/")) {
      if (segment === "") return { ok: false, reason: "an empty path segment (`//`) is not allowed" };
      if (segment === "." || segment === "..") return { ok: false, reason: `the path segment \`${segment}\` is not allowed` };
      for (const ch of segment) {
        if (ch === "?" || ch === "#") return { ok: false, reason: "a query or fragment is not allowed" };
        if (!PATH_CHAR.test(ch)) return { ok: false, reason: `path segments may hold only letters, digits, \`.\`, \`-\` and \`_\`, not \`${ch}\`` };
      }
    }
  }
  return { ok: true, id: `spiffe://${trustDomain}${path}` };
}

/**
 * The normalised form of an ID the checker accepted.
 * INVARIANT: only called after checking; an invalid ID here is a bug, so it throws.
 */
export function checkedSpiffeId(text: string): string {
  const checked = checkSpiffeId(text);
  if (!checked.ok) throw new Error(`invalid SPIFFE ID \`${text}\` in a checked policy set`);
  return checked.id;
}

// ---------------------------------------------------------------- patterns

/** A parsed `like` pattern: literal pieces between wildcards. */
export interface IdentityPattern {
  /** The pattern text as normalised (trust domain lower-cased), with `\*` escapes kept. */
  readonly text: string;
  /** Literal pieces; a wildcard stands between each two. `["a"]` has no wildcard. */
  readonly pieces: readonly string[];
}

export function hasWildcard(patternText: string): boolean {
  return parsePatternPieces(patternText).length > 1;
}

function parsePatternPieces(text: string): string[] {
  const pieces: string[] = [""];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === "\\" && text[i + 1] === "*") {
      pieces[pieces.length - 1] += "*";
      i++;
    } else if (ch === "*") {
      pieces.push("");
    } else {
      pieces[pieces.length - 1] += ch;
    }
  }
  return pieces;
}

/**
 * Lower-cases the literal characters of the trust-domain part of a pattern (after
 * `spiffe://`, to the first `/`), since every identity's trust domain is lower case.
 */
export function normalisePattern(text: string): IdentityPattern {
  let normalised = text;
  // Only after the exact scheme: `SPIFFE://…` is no SPIFFE ID, so such a pattern never matches.
  if (text.startsWith("spiffe://")) {
    const start = "spiffe://".length;
    let end = text.indexOf("/", start);
    if (end < 0) end = text.length;
    normalised = text.slice(0, end).toLowerCase() + text.slice(end);
  }
  return { text: normalised, pieces: parsePatternPieces(normalised) };
}

/** Cedar `like`: `*` matches any sequence (including empty and `/`). */
export function matchesPattern(pattern: IdentityPattern, id: string): boolean {
  const { pieces } = pattern;
  if (pieces.length === 1) return id === pieces[0];
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  if (id.length < first.length + last.length || !id.startsWith(first) || !id.endsWith(last)) return false;
  // Greedy left-to-right search of the middle pieces is exact for `*`-only patterns.
  let position = first.length;
  const limit = id.length - last.length;
  for (let i = 1; i < pieces.length - 1; i++) {
    const found = id.indexOf(pieces[i]!, position);
    if (found < 0 || found + pieces[i]!.length > limit) return false;
    position = found + pieces[i]!.length;
  }
  return true;
}

/** Why a pattern can never match any valid SPIFFE ID, or undefined when it might. */
export function patternNeverMatches(pattern: IdentityPattern): string | undefined {
  const literal = pattern.pieces.join("");
  for (const ch of literal) {
    if (!/[A-Za-z0-9._\-/:]/.test(ch)) return `a SPIFFE ID never contains \`${ch}\``;
  }
  const head = pattern.pieces[0]!;
  const scheme = "spiffe://";
  const comparable = Math.min(head.length, scheme.length);
  if (pattern.pieces.length === 1 ? !head.startsWith(scheme) : head.slice(0, comparable) !== scheme.slice(0, comparable)) {
    return "it does not start with `spiffe://`";
  }
  return undefined;
}
