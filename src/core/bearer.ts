/**
 * Reads the bearer token from a request, once, the same way for both directions. A request with
 * more than one Authorization header is refused outright (CVE-2021-32777 class): which of two
 * tokens a downstream reads is not something to guess.
 */
import type { Reason } from './decision.js';
import type { RequestContext } from './request-context.js';

export type BearerResult =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'invalid'; readonly reason: Reason };

const NONE: BearerResult = { kind: 'none' };
/** RFC 6750 b64token, which covers every compact JWS. */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export function readBearer(request: RequestContext, maxTokenBytes: number): BearerResult {
  if (request.duplicateHeaders.has('authorization')) return { kind: 'invalid', reason: 'duplicate_authorization' };
  const header = request.headers.get('authorization');
  if (header === undefined) return NONE;
  if (header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') {
    return { kind: 'invalid', reason: 'malformed_authorization' };
  }
  const token = header.slice(7).trim();
  if (token.length > maxTokenBytes) return { kind: 'invalid', reason: 'token_too_large' };
  if (!B64TOKEN.test(token)) return { kind: 'invalid', reason: 'malformed_authorization' };
  return { kind: 'token', token };
}
