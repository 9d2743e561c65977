/**
 * gRPC over HTTP/2 as the sidecar's listener speaks it (grpc/doc/PROTOCOL-HTTP2.md): the
 * length-prefixed messages of a request's DATA, and the headers, frames and trailers of an answer.
 * Only what a unary or server-streaming call without compression needs: Envoy's gRPC client never
 * compresses a CheckRequest, and the sidecar advertises `grpc-accept-encoding: identity`.
 */
import { constants } from 'node:http2';
import type { OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';

/** The gRPC status codes this listener answers with. */
export const GrpcStatus = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;
export type GrpcStatus = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** grpc-js's default largest message a server receives: what Envoy was able to send before. */
const MAX_REQUEST_MESSAGE_BYTES = 4 * 1024 * 1024;

const PREFIX_BYTES = 5;

/**
 * Whether a request's content-type is gRPC with protobuf messages: `application/grpc` or
 * `application/grpc+proto`, parameters allowed. Any other subtype (`+json`, ...) would be decoded
 * as something it is not.
 */
export function isGrpcProtoContentType(contentType: string): boolean {
  if (contentType === 'application/grpc') return true;
  const parameters = contentType.indexOf(';');
  const type = (parameters === -1 ? contentType : contentType.slice(0, parameters)).trim().toLowerCase();
  return type === 'application/grpc' || type === 'application/grpc+proto';
}

/** The response headers of every call answered with messages (its status comes as trailers). */
export const RESPONSE_HEADERS: OutgoingHttpHeaders = Object.freeze({
  [constants.HTTP2_HEADER_STATUS]: 200,
  [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
  'grpc-accept-encoding': 'identity',
});

const OK_TRAILERS: OutgoingHttpHeaders = Object.freeze({ 'grpc-status': String(GrpcStatus.OK) });

/** A 'wantTrailers' listener shared by every call: `this` is the stream. */
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** Answers a unary call: headers, its one framed message, then grpc-status 0. */
export function answerMessage(stream: ServerHttp2Stream, framed: Buffer): void {
  stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
  stream.once('wantTrailers', sendOkTrailers);
  stream.end(framed);
}

/**
 * Answers `stream` with a status alone, in one HEADERS frame that ends the stream, unless it is
 * already answered or gone. `message` is ours, never the caller's input, and is percent-encoded
 * as the protocol asks.
 */
export function answerStatus(stream: ServerHttp2Stream, status: GrpcStatus, message: string): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  stream.respond({ ...RESPONSE_HEADERS, 'grpc-status': String(status), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
}

/** `message` with its 5-byte prefix: not compressed, then its length. */
export function frameMessage(message: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(PREFIX_BYTES + message.length);
  frame[0] = 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, PREFIX_BYTES);
  return frame;
}

export type UnaryMessage = { readonly ok: true; readonly message: Buffer } | { readonly ok: false; readonly status: GrpcStatus; readonly reason: string };

/** The one message of a unary request's DATA, whole; or why there is not exactly one. */
export function unaryMessage(data: Buffer): UnaryMessage {
  if (data.length < PREFIX_BYTES) return { ok: false, status: GrpcStatus.INTERNAL, reason: data.length === 0 ? 'no request message' : 'a truncated message prefix' };
  if (data[0] !== 0) return { ok: false, status: GrpcStatus.UNIMPLEMENTED, reason: 'compressed messages are not accepted (grpc-accept-encoding: identity)' };
  const length = data.readUInt32BE(1);
  if (length > MAX_REQUEST_MESSAGE_BYTES) return { ok: false, status: GrpcStatus.RESOURCE_EXHAUSTED, reason: `a request message over ${MAX_REQUEST_MESSAGE_BYTES} bytes` };
  const end = PREFIX_BYTES + length;
  if (data.length < end) return { ok: false, status: GrpcStatus.INTERNAL, reason: 'a truncated request message' };
  if (data.length > end) return { ok: false, status: GrpcStatus.UNIMPLEMENTED, reason: 'more than one request message in a unary call' };
  return { ok: true, message: data.subarray(PREFIX_BYTES, end) };
}

/**
 * Collects a request's DATA up to one maximal message (and its prefix); past that, `onTooLarge`
 * runs once and the rest is dropped, so a caller cannot make the listener buffer without bound.
 */
export class RequestBody {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #overflowed = false;

  /** False once the body has grown past one maximal message. */
  add(chunk: Buffer): boolean {
    if (this.#overflowed) return false;
    this.#bytes += chunk.length;
    if (this.#bytes > PREFIX_BYTES + MAX_REQUEST_MESSAGE_BYTES) {
      this.#overflowed = true;
      this.#chunks = [];
      return false;
    }
    this.#chunks.push(chunk);
    return true;
  }

  /** Everything received; a single chunk (the usual case) is not copied. */
  whole(): Buffer {
    return this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#bytes);
  }
}
