/**
 * Hand-framed gRPC, for tests of rules that read the request message. grpc-js frames and
 * compresses bodies itself and would never send what these tests need to send: two messages on a
 * unary call, or a frame compressed with an encoding it does not implement. So the body is built
 * here byte by byte ([flag:1][length:4 big-endian][message], grpc/doc/PROTOCOL-HTTP2.md) and sent
 * with node:http2 exactly as given.
 */
import { connect } from 'node:http2';
import type { IncomingHttpHeaders, IncomingHttpStatusHeader } from 'node:http2';
import { gzipSync } from 'node:zlib';
import { frameMessage } from '../../src/body/grpc-frame.js';


/** A frame compressed the way grpc-encoding: gzip means (RFC 1952). */
export function gzipFrame(message: Uint8Array): Buffer {
  return frameMessage(gzipSync(message), 1);
}

/**
 * A valid snappy block (the raw block format) holding `data` as literal elements, so a
 * grpc-encoding: snappy frame really is snappy: a varint of the uncompressed length, then
 * literals of at most 60 bytes, each tagged ((length - 1) << 2) with element type 00.
 */
export function snappyBlock(data: Uint8Array): Buffer {
  const out: number[] = [];
  let length = data.length;
  do {
    out.push((length & 0x7f) | (length > 0x7f ? 0x80 : 0));
    length >>>= 7;
  } while (length > 0);
  for (let at = 0; at < data.length; at += 60) {
    const chunk = data.subarray(at, at + 60);
    out.push((chunk.length - 1) << 2, ...chunk);
  }
  return Buffer.from(out);
}

export interface RawGrpcOutcome {
  /** The HTTP :status (200 for every gRPC answer, Envoy's local replies included). */
  readonly httpStatus: number;
  /** From the trailers, or from the headers of a trailers-only answer (how Envoy's local replies come). */
  readonly grpcStatus: number | undefined;
  /** Percent-decoded, as a gRPC client shows it. */
  readonly grpcMessage: string;
  /** Response headers and trailers together, by lower-case name. */
  readonly metadata: Readonly<Record<string, string>>;
}

function grpcMessageText(raw: string | undefined): string {
  if (raw === undefined) return '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/**
 * One POST to `path` on `origin` (h2c, prior knowledge) with `body` as the whole request stream.
 * The body and the end of the stream are queued before the connection is up, so the whole body
 * goes out as DATA frames of at most 16 KiB (Envoy's HTTP/2 frame size) and END_STREAM rides on
 * the last of them, as gRPC clients send a unary request. Resolves with whatever came back;
 * rejects only when nothing did.
 */
export function rawGrpcCall(
  origin: string,
  path: string,
  metadata: Record<string, string>,
  body: Uint8Array,
  timeoutMs = 10_000,
): Promise<RawGrpcOutcome> {
  return new Promise((resolve, reject) => {
    const session = connect(origin);
    let httpStatus = 0;
    const fail = (error: Error): void => {
      // A reset after the answer (Envoy resets a request whose body it stopped reading) changes nothing.
      if (httpStatus !== 0) return;
      session.destroy();
      reject(error);
    };
    session.on('error', fail);
    const seen: Record<string, string> = {};
    const keep = (headers: IncomingHttpHeaders & IncomingHttpStatusHeader): void => {
      for (const [name, value] of Object.entries(headers)) {
        if (value !== undefined) seen[name] = Array.isArray(value) ? value.join(',') : String(value);
      }
    };
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...metadata });
    const timer = setTimeout(() => {
      session.destroy();
      reject(new Error(`no answer to ${path} within ${timeoutMs} ms`));
    }, timeoutMs);
    stream.on('response', (headers) => {
      httpStatus = Number(headers[':status']);
      keep(headers);
    });
    stream.on('trailers', keep);
    stream.on('error', fail);
    stream.resume();
    stream.on('close', () => {
      clearTimeout(timer);
      session.close();
      if (httpStatus === 0) {
        reject(new Error(`${path}: the stream closed without a response (RST code ${stream.rstCode ?? 'none'})`));
        return;
      }
      const status = seen['grpc-status'];
      resolve({
        httpStatus,
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: grpcMessageText(seen['grpc-message']),
        metadata: seen,
      });
    });
    stream.end(body);
  });
}
