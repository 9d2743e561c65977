/**
 * The one message of a unary gRPC request body, out of its length-prefixed frame:
 * [flag:1][length:4 big-endian][message]. Exactly one complete frame is accepted; anything else is
 * refused rather than guessed at, because the service reads the whole stream and a reader that
 * picked "the first message" could authorize a different request than the one served.
 *
 * Compressed frames (flag 1) are inflated per grpc-encoding: gzip, or deflate, which gRPC defines as
 * the zlib format (RFC 1950), not raw deflate. The output is capped by zlib's maxOutputLength, so
 * a small compressed frame cannot make the sidecar allocate more than maxBytes.
 */
import { gunzipSync, inflateSync } from 'node:zlib';
import { refuse } from './contract.js';
import type { BodyRefusal } from './contract.js';
import { success } from '../core/result.js';
import type { Result } from '../core/result.js';

export type Unframed = Result<Buffer, BodyRefusal>;

const PREFIX = 5;

/**
 * The inverse, for what builds requests (`check --message`, tests, bench): `flag` 1 marks a
 * message the caller compressed (tests also pass flags gRPC does not define).
 */
export function frameMessage(message: Uint8Array, flag = 0): Buffer {
  const frame = Buffer.alloc(PREFIX + message.length);
  frame[0] = flag;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, PREFIX);
  return frame;
}

function quoted(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

function inflate(compressed: Buffer, encoding: string, maxBytes: number): Unframed {
  const decompress = encoding === 'gzip' ? gunzipSync : inflateSync;
  try {
    return success(decompress(compressed, { maxOutputLength: maxBytes }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      return refuse('body_too_large', `the ${encoding}-compressed message inflates to more than ${maxBytes} bytes`);
    }
    return refuse('body_malformed', `the ${encoding}-compressed message cannot be inflated (${(error as Error).message})`);
  }
}

/**
 * `bytes` must be a complete body (the envelope checks ran); `grpcEncoding` lower-cased.
 * The returned message is a Buffer so protobufjs decodes strings with Node's UTF-8 decoder.
 */
export function unframeUnary(bytes: Uint8Array, grpcEncoding: string | undefined, maxBytes: number): Unframed {
  if (bytes.length < PREFIX) {
    return refuse('body_truncated', `the body holds ${bytes.length} bytes, less than a gRPC frame prefix`);
  }
  const flag = bytes[0] ?? 0;
  if (flag > 1) return refuse('body_malformed', `gRPC frame flag is ${flag}, not 0 (plain) or 1 (compressed)`);
  const view = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const length = view.readUInt32BE(1);
  if (flag === 0 && length > maxBytes) {
    return refuse('body_too_large', `the gRPC message is ${length} bytes, over the limit of ${maxBytes}`);
  }
  const end = PREFIX + length;
  if (end > bytes.length) {
    return refuse('body_truncated', `the gRPC frame declares ${length} bytes but ${bytes.length - PREFIX} arrived`);
  }
  if (end < bytes.length) {
    const rest = bytes.length - end;
    return rest >= PREFIX && (bytes[end] ?? 2) <= 1
      ? refuse('body_multiple_messages', 'the body holds more than one gRPC message; a unary method takes exactly one')
      : refuse('body_malformed', `${rest} stray bytes follow the gRPC message`);
  }
  const message = view.subarray(PREFIX, end);
  if (flag === 0) return success(message);
  // A compressed message the sidecar cannot inflate is one refusal whatever the header says: with
  // no grpc-encoding or `identity` the compression is unknown, as with one it does not support.
  if (grpcEncoding === undefined || grpcEncoding === 'identity') {
    return refuse('body_unsupported_encoding', `the gRPC frame is marked compressed but grpc-encoding is ${grpcEncoding ?? 'absent'}`);
  }
  if (grpcEncoding !== 'gzip' && grpcEncoding !== 'deflate') {
    return refuse('body_unsupported_encoding', `grpc-encoding ${quoted(grpcEncoding)} is not supported (gzip, deflate)`);
  }
  return inflate(message, grpcEncoding, maxBytes);
}
