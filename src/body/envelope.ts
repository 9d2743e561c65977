/**
 * Checks every reader makes before looking inside a body: is there one, did all of it arrive, and
 * is it the kind of body the reader understands. A partial body is never decoded: the part that
 * arrived can hold different values than the whole message the service will read.
 */
import { refuse } from './contract.js';
import type { BodyRefused, RequestBody } from './contract.js';

const NO_BODY = refuse(
  'body_missing',
  'the request carried no body (Envoy sends it only when with_request_body is set for the route; gRPC also needs pack_as_bytes)',
);
const EMPTY_BODY = refuse('body_missing', 'the request body is empty');
const PARTIAL_BODY = refuse(
  'body_truncated',
  'Envoy sent a partial body (x-envoy-auth-partial-body: true); raise max_request_bytes or turn allow_partial_message off',
);

export function checkEnvelope(body: RequestBody | undefined): BodyRefused | undefined {
  if (body === undefined) return NO_BODY;
  if (body.truncated) return PARTIAL_BODY;
  const length = body.bytes.length;
  if (body.contentLength !== undefined && body.contentLength > length) {
    return refuse('body_truncated', `content-length is ${body.contentLength} but ${length} bytes arrived`);
  }
  if (length === 0) return EMPTY_BODY;
  return undefined;
}

/** The media type of a content-type header: lower-cased, parameters dropped. */
export function mediaType(contentType: string): string {
  const semicolon = contentType.indexOf(';');
  return (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
}

export function wrongContentType(contentType: string, expected: string): BodyRefused {
  // The header is the caller's; quote a bounded, escaped copy so a log line stays one line.
  const shown = JSON.stringify(contentType.length > 80 ? `${contentType.slice(0, 80)}…` : contentType);
  return refuse('body_malformed', `content-type ${shown} is not ${expected}`);
}
