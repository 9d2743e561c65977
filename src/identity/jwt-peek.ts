/**
 * Reads a compact JWS's header and payload WITHOUT verifying it, only to pick the issuer and the
 * key. Nothing read here is trusted until jose has checked the signature with our own key.
 * Every malformation is a value, never a throw.
 */
interface PeekedJwt {
  readonly alg: string;
  readonly kid: string | undefined;
  /** Undefined when the payload has no `iss`. */
  readonly iss: string | undefined;
}

import { failure, success } from '../core/result.js';
import type { Result } from '../core/result.js';
export type PeekResult = Result<PeekedJwt, 'malformed_token'>;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function decodeJsonObject(segment: string): Record<string, unknown> | undefined {
  if (!BASE64URL.test(segment)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    // Without the early return below, value stays undefined, which the last line returns as undefined too.
  } catch /* Stryker disable next-line BlockStatement: see above */ {
    return undefined;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/**
 * Whether the token has a compact JWS's shape (three dot-separated parts, the first non-empty).
 * Tokens of that shape are JWTs, verified with the issuer's keys; any other token is opaque and
 * can only be introspected.
 */
export function hasCompactJwsShape(token: string): boolean {
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  return first > 0 && second >= 0 && token.indexOf('.', second + 1) < 0;
}

export function peekJwt(token: string): PeekResult {
  if (!hasCompactJwsShape(token)) return failure('malformed_token', 'not a compact JWS');
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  const header = decodeJsonObject(token.slice(0, first));
  if (!header) return failure('malformed_token', 'header is not base64url JSON');
  const payload = decodeJsonObject(token.slice(first + 1, second));
  if (!payload) return failure('malformed_token', 'payload is not base64url JSON');
  if (typeof header.alg !== 'string') return failure('malformed_token', 'header has no alg');
  if (header.kid !== undefined && typeof header.kid !== 'string') return failure('malformed_token', 'kid is not a string');
  if (payload.iss !== undefined && typeof payload.iss !== 'string') return failure('malformed_token', 'iss is not a string');
  return success({ alg: header.alg, kid: header.kid, iss: payload.iss });
}
