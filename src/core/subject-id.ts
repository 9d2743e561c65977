/**
 * Reversible, collision-free mapping from arbitrary subject ids (Teleport users such as
 * `cloud-teleport-aleksander.rykalin`, e-mail addresses, ...) to SpiceDB object ids, which allow
 * only `[a-zA-Z0-9/_|\-=+]`, at most 1024 bytes, and treat a lone `*` as the wildcard.
 *
 * Scheme (documented in docs/inbound.md):
 * - An id that is non-empty, made only of allowed characters and does not start with `=` is used
 *   unchanged. Almost every real id takes this path, so relationships stay readable.
 * - Every other id is written as `=` followed by its UTF-8 bytes, where a byte that is an allowed
 *   character other than `=` stands for itself and every other byte (including `=`) becomes `=XX`
 *   (two upper-case hex digits). `a.b` → `=a=2Eb`, `=x` → `==3Dx`, `*` → `==2A`, `` → `=`.
 *
 * Why it cannot collide: unchanged ids never start with `=` and escaped ids always do, so the two
 * ranges are disjoint; within the escaped range the byte encoding is a prefix code that
 * `decodeSubjectId` inverts exactly. The decoder rejects non-canonical forms (lower-case hex, an
 * escaped byte that could have been literal), so decoding is the exact inverse on encoder output.
 */

/** SpiceDB's object-id pattern, anchored (from its proto validation rules). */
export const SPICEDB_OBJECT_ID = /^(([a-zA-Z0-9/_|\-=+]{1,})|\*)$/;
export const MAX_OBJECT_ID_BYTES = 1024;

const ESCAPE = 0x3d; // '='
const HEX = '0123456789ABCDEF';

/** Byte → true when it may stand for itself inside an escaped id (allowed and not `=`). */
const LITERAL = new Uint8Array(256);
for (const ch of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_|-+') LITERAL[ch.charCodeAt(0)] = 1;

const encoder = new TextEncoder();
// ignoreBOM: a leading U+FEFF is part of the id, not a byte-order mark to drop ("\ufeff" must round-trip).
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** String.prototype.isWellFormed is ES2024; the project targets ES2023 typings. */
function isWellFormed(s: string): boolean {
  // Stryker disable next-line EqualityOperator: one step past the end, charCodeAt is NaN, which neither surrogate range matches
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return false;
    }
  }
  return true;
}

function passesUnchanged(id: string): boolean {
  if (id.length === 0 || id.length > MAX_OBJECT_ID_BYTES || id.charCodeAt(0) === ESCAPE) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c !== ESCAPE && (c > 0x7f || LITERAL[c] !== 1)) return false;
  }
  return true;
}

/**
 * Encodes `id` as a valid SpiceDB object id. Returns undefined when the id cannot be represented:
 * not well-formed UTF-16 (a lone surrogate has no UTF-8 form, so it could not round-trip), or the
 * encoded form would exceed SpiceDB's 1024-byte limit. Callers treat undefined as a failed check.
 */
export function encodeSubjectId(id: string): string | undefined {
  if (passesUnchanged(id)) return id;
  if (!isWellFormed(id)) return undefined;
  const bytes = encoder.encode(id);
  let out = '=';
  for (const b of bytes) {
    out += LITERAL[b] === 1 ? String.fromCharCode(b) : `=${HEX[b >> 4]}${HEX[b & 15]}`;
    if (out.length > MAX_OBJECT_ID_BYTES) return undefined;
  }
  return out;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1; // lower case is not canonical
}

/** Inverts `encodeSubjectId`; undefined for anything the encoder could not have produced. */
export function decodeSubjectId(encoded: string): string | undefined {
  if (encoded.length === 0 || encoded.length > MAX_OBJECT_ID_BYTES) return undefined;
  if (encoded.charCodeAt(0) !== ESCAPE) return passesUnchanged(encoded) ? encoded : undefined;
  const bytes = new Uint8Array(encoded.length);
  let n = 0;
  for (let i = 1; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === ESCAPE) {
      // charCodeAt past the end is NaN, which hexValue rejects: a truncated escape fails here.
      const hi = hexValue(encoded.charCodeAt(i + 1));
      const lo = hexValue(encoded.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      const b = (hi << 4) | lo;
      if (LITERAL[b] === 1) return undefined;
      bytes[n++] = b;
      i += 2;
    } else if (c <= 0x7f && LITERAL[c] === 1) {
      bytes[n++] = c;
    } else {
      return undefined;
    }
  }
  let decoded: string;
  try {
    decoded = strictDecoder.decode(bytes.subarray(0, n));
  } catch {
    return undefined;
  }
  // The encoder only escapes ids that cannot pass unchanged; an escaped form of one that could is
  // not canonical, and accepting it would give two encodings for one id.
  return passesUnchanged(decoded) ? undefined : decoded;
}
