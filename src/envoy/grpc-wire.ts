/**
 * gRPC over HTTP/2 as the sidecar's listener speaks it (grpc/doc/PROTOCOL-HTTP2.md): the
 * length-prefixed messages of a request's DATA, and the headers, frames and trailers of an answer.
 * Only what a unary or server-streaming call without compression needs: Envoy's gRPC client never
 * compresses a CheckRequest, and the sidecar advertises `grpc-accept-encoding: identity`.
 */
import { constants } from 'node:http2';
import type { OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { failure, success } from '../core/result.js';
import type { Result } from '../core/result.js';

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

/** The request's one message, or the gRPC status to refuse it with and why. */
export type UnaryMessage = Result<Buffer, GrpcStatus>;

/** Why a request's DATA is refused before it ends: answered with a gRPC status, or (`memory`) reset as REFUSED_STREAM. */
export type DataRefusal =
  | { readonly kind: 'status'; readonly status: GrpcStatus; readonly reason: string; readonly tooLarge: boolean }
  | { readonly kind: 'memory' };

/** Reserves request memory, and gives it back (listener-memory.ts). */
export interface MemoryReservations {
  tryReserve(bytes: number): boolean;
  release(bytes: number): void;
}

/**
 * The one message of a unary request's DATA, checked as it arrives: its prefix is read as soon as
 * its 5 bytes are in, so a message that is compressed, longer than `maxMessageBytes` or beyond the
 * request memory left is refused at once, before the rest is sent; and so is a second message.
 * The message's length is reserved in the request memory until `release()`.
 *
 * A message that arrives in one chunk (Envoy's usual CheckRequest) is that chunk, not copied.
 * Otherwise each chunk is copied into one buffer of the declared length: keeping the chunks would
 * keep the socket reads they are slices of, which for a message sent in tiny DATA frames is many
 * times its size.
 */
export class UnaryRequestData {
  readonly #maxMessageBytes: number;
  readonly #memory: MemoryReservations;
  /** Prefix bytes so far, when a chunk ends inside the prefix. */
  #prefix: Buffer | undefined;
  #prefixBytes = 0;
  /** The message: the chunk that held it all, or a buffer being filled. */
  #message: Buffer | undefined;
  #filled = 0;
  #reserved = 0;
  #refused = false;

  constructor(maxMessageBytes: number, memory: MemoryReservations) {
    this.#maxMessageBytes = maxMessageBytes;
    this.#memory = memory;
  }

  /** Takes the next chunk of DATA; a refusal (once), after which every chunk is dropped. */
  add(chunk: Buffer): DataRefusal | undefined {
    if (this.#refused) return undefined;
    let at = 0;
    if (this.#message === undefined) {
      if (this.#prefixBytes === 0 && chunk.length >= PREFIX_BYTES) {
        const refusal = this.#begin(chunk);
        if (refusal) return this.#refuse(refusal);
        const length = chunk.readUInt32BE(1);
        if (chunk.length === PREFIX_BYTES + length) {
          this.#message = chunk.subarray(PREFIX_BYTES);
          this.#filled = length;
          return undefined;
        }
        this.#message = Buffer.allocUnsafe(length);
        at = PREFIX_BYTES;
      } else {
        this.#prefix ??= Buffer.alloc(PREFIX_BYTES);
        const taken = Math.min(PREFIX_BYTES - this.#prefixBytes, chunk.length);
        chunk.copy(this.#prefix, this.#prefixBytes, 0, taken);
        this.#prefixBytes += taken;
        if (this.#prefixBytes < PREFIX_BYTES) return undefined;
        const refusal = this.#begin(this.#prefix);
        if (refusal) return this.#refuse(refusal);
        this.#message = Buffer.allocUnsafe(this.#prefix.readUInt32BE(1));
        at = taken;
      }
    }
    const room = this.#message.length - this.#filled;
    const rest = chunk.length - at;
    if (rest > room) return this.#refuse({ kind: 'status', status: GrpcStatus.UNIMPLEMENTED, reason: 'more than one request message in a unary call', tooLarge: false });
    if (rest > 0) {
      chunk.copy(this.#message, this.#filled, at);
      this.#filled += rest;
    }
    return undefined;
  }

  /** Checks a complete prefix and reserves the message it declares. */
  #begin(prefix: Buffer): DataRefusal | undefined {
    if (prefix[0] !== 0) return { kind: 'status', status: GrpcStatus.UNIMPLEMENTED, reason: 'compressed messages are not accepted (grpc-accept-encoding: identity)', tooLarge: false };
    const length = prefix.readUInt32BE(1);
    if (length > this.#maxMessageBytes) return { kind: 'status', status: GrpcStatus.RESOURCE_EXHAUSTED, reason: `a request message over ${this.#maxMessageBytes} bytes`, tooLarge: true };
    if (!this.#memory.tryReserve(length)) return { kind: 'memory' };
    this.#reserved = length;
    return undefined;
  }

  #refuse(refusal: DataRefusal): DataRefusal {
    this.#refused = true;
    this.#message = undefined;
    this.#prefix = undefined;
    this.release();
    return refusal;
  }

  /** Once the DATA has ended: the whole message, or why there is not exactly one. */
  end(): UnaryMessage {
    if (this.#message === undefined) {
      return failure(GrpcStatus.INTERNAL, this.#prefixBytes === 0 ? 'no request message' : 'a truncated message prefix');
    }
    if (this.#filled < this.#message.length) return failure(GrpcStatus.INTERNAL, 'a truncated request message');
    return success(this.#message);
  }

  /** Whether a refusal has been returned. */
  get refused(): boolean {
    return this.#refused;
  }

  /** Gives the message's reservation back (when the call closes, or is refused). */
  release(): void {
    this.#memory.release(this.#reserved);
    this.#reserved = 0;
  }
}
