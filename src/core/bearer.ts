/**
 * Reads the bearer token from a request, once, the same way for both directions. A request with
 * more than one Authorization header is refused outright (CVE-2021-32777 class): which of two
 * tokens a downstream reads is not something to guess.
 */
import type { RequestContext } from './request-context.js';
import { failure, success } from './result.js';
import type { Result } from './result.js';

/** The token, or undefined when the request carries no Authorization header. */
export type BearerResult = Result<string | undefined>;

const NONE: BearerResult = Object.freeze(success(undefined));
/** RFC 6750 b64token, which covers every compact JWS. */
export const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export function readBearer(request: RequestContext, maxTokenBytes: number): BearerResult {
  if (request.duplicateHeaders.has('authorization')) return failure('duplicate_authorization');
  const header = request.headers.get('authorization');
  if (header === undefined) return NONE;
  if (header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') return failure('malformed_authorization');
  const token = header.slice(7).trim();
  if (token.length > maxTokenBytes) return failure('token_too_large');
  if (!B64TOKEN.test(token)) return failure('malformed_authorization');
  return success(token);
}
