/**
 * An HTTP/2 client that sends what a well-behaved one never would: any frame in any order, more
 * streams than the server allows, malformed header blocks, no answers to PING. The listener
 * hardening tests speak to the built sidecar through it. It reads the server's frames (type, flags,
 * stream, payload) but never decodes a header block: tests that need a gRPC status use node:http2's
 * own client.
 */
import { connect } from 'node:net';
import type { Socket } from 'node:net';

/** Frame types (RFC 9113 §6). */
export const FrameType = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, CONTINUATION: 0x9 } as const;
/** Error codes (RFC 9113 §7). */
export const ErrorCode = { NO_ERROR: 0x0, REFUSED_STREAM: 0x7, CANCEL: 0x8, COMPRESSION_ERROR: 0x9, ENHANCE_YOUR_CALM: 0xb } as const;
/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const Setting = { MAX_CONCURRENT_STREAMS: 0x3 } as const;

const FLAG_END_STREAM = 0x1;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** SETTINGS_MAX_FRAME_SIZE's initial value: what a peer accepts before it says otherwise. */
const MAX_FRAME_BYTES = 16_384;

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly stream: number;
  readonly payload: Buffer;
}

export function encodeFrame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const frame = Buffer.alloc(9 + payload.length);
  frame.writeUIntBE(payload.length, 0, 3);
  frame[3] = type;
  frame[4] = flags;
  frame.writeUInt32BE(stream & 0x7fffffff, 5);
  payload.copy(frame, 9);
  return frame;
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); the prefix's high bits are `first`. */
function hpackInteger(value: number, prefixBits: number, first = 0): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const bytes = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return bytes;
}

/**
 * A header block of literal fields without indexing, plain (not Huffman-coded) strings (RFC 7541
 * §6.2.2): valid HPACK that leaves the server's dynamic table alone.
 */
export function encodeHeaderBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00]));
    for (const text of [name, value]) {
      const raw = Buffer.from(text, 'latin1');
      parts.push(Buffer.from(hpackInteger(raw.length, 7)), raw);
    }
  }
  return Buffer.concat(parts);
}

/**
 * An HPACK bomb: one header of `valueBytes` added to the server's dynamic table (literal with
 * incremental indexing), then referenced `references` times by its index (62, the first dynamic
 * entry): a few KB on the wire that decode to `references` × `valueBytes` of headers.
 */
export function hpackBomb(valueBytes: number, references: number): Buffer {
  const value = Buffer.alloc(valueBytes, 0x61);
  return Buffer.concat([Buffer.from([0x40, 0x01, 0x78]), Buffer.from(hpackInteger(value.length, 7)), value, Buffer.alloc(references, 0x80 | 62)]);
}

/** The request headers of a gRPC call to `path`. */
export function grpcRequestHeaders(path: string, contentType = 'application/grpc'): Array<readonly [string, string]> {
  return [
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', path],
    [':authority', 'sidecar'],
    ['content-type', contentType],
    ['te', 'trailers'],
  ];
}

/** A gRPC message prefix: not compressed, then the length it declares. */
export function messagePrefix(length: number): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

export interface RawOptions {
  /** Answer the server's PINGs (default true); a client that does not looks dead. */
  readonly answerPings?: boolean;
}

export class RawHttp2Connection {
  readonly frames: Frame[] = [];
  /** Whether the server has closed or ended the TCP connection. */
  closedByServer = false;
  readonly #socket: Socket;
  readonly #answerPings: boolean;
  #pending: Buffer = Buffer.alloc(0);
  readonly #closed: Promise<void>;
  readonly #waiters = new Set<() => void>();
  /** Whether this client has sent the preface: before it, any frame would be a protocol error of ours. */
  #prefaceSent = false;

  private constructor(socket: Socket, options: RawOptions) {
    this.#socket = socket;
    this.#answerPings = options.answerPings ?? true;
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', () => undefined);
    this.#closed = new Promise((resolve) => {
      const closed = (): void => {
        this.closedByServer = true;
        this.#wake();
        resolve();
      };
      socket.once('end', closed);
      socket.once('close', closed);
    });
  }

  /** A TCP connection that has sent nothing yet. */
  static open(port: number, options: RawOptions = {}): Promise<RawHttp2Connection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: '127.0.0.1', noDelay: true });
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawHttp2Connection(socket, options));
      });
      socket.once('error', reject);
    });
  }

  /** Opens a connection and sends the preface and an empty SETTINGS frame. */
  static async handshake(port: number, options: RawOptions = {}): Promise<RawHttp2Connection> {
    const connection = await RawHttp2Connection.open(port, options);
    connection.send(PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0));
    connection.#prefaceSent = true;
    return connection;
  }

  send(...bytes: Buffer[]): void {
    if (!this.#socket.destroyed) this.#socket.write(Buffer.concat(bytes));
  }

  /** A header block: one HEADERS frame, or HEADERS and CONTINUATION frames when it is longer than a frame may be. */
  headers(stream: number, block: Buffer, endStream = false): void {
    const frames: Buffer[] = [];
    for (let at = 0; at === 0 || at < block.length; at += MAX_FRAME_BYTES) {
      const last = at + MAX_FRAME_BYTES >= block.length;
      const flags = (last ? FLAG_END_HEADERS : 0) | (at === 0 && endStream ? FLAG_END_STREAM : 0);
      frames.push(encodeFrame(at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, flags, stream, block.subarray(at, at + MAX_FRAME_BYTES)));
    }
    this.send(...frames);
  }

  data(stream: number, payload: Buffer, endStream = false): void {
    this.send(encodeFrame(FrameType.DATA, endStream ? FLAG_END_STREAM : 0, stream, payload));
  }

  rstStream(stream: number, code: number = ErrorCode.CANCEL): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    this.send(encodeFrame(FrameType.RST_STREAM, 0, stream, payload));
  }

  /** Resolves with the first frame received (so far or later) that matches, or undefined after `timeoutMs` or when the server closes. */
  async frame(matches: (frame: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(matches);
      if (found || this.closedByServer || Date.now() >= deadline) return found;
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.#waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, deadline - Date.now());
        this.#waiters.add(wake);
      });
    }
  }

  /** The GOAWAY the server sent, with its error code, once it arrives (or undefined). */
  async goaway(timeoutMs: number): Promise<{ readonly errorCode: number } | undefined> {
    const frame = await this.frame((f) => f.type === FrameType.GOAWAY, timeoutMs);
    return frame && { errorCode: frame.payload.readUInt32BE(4) };
  }

  /** The RST_STREAM error code the server sent for `stream`, once it arrives (or undefined). */
  async resetCode(stream: number, timeoutMs: number): Promise<number | undefined> {
    const frame = await this.frame((f) => f.type === FrameType.RST_STREAM && f.stream === stream, timeoutMs);
    return frame?.payload.readUInt32BE(0);
  }

  /** The value of `setting` in the server's first SETTINGS frame, once it arrives. */
  async serverSetting(setting: number, timeoutMs: number): Promise<number | undefined> {
    const frame = await this.frame((f) => f.type === FrameType.SETTINGS && (f.flags & FLAG_ACK) === 0, timeoutMs);
    if (!frame) return undefined;
    for (let at = 0; at + 6 <= frame.payload.length; at += 6) if (frame.payload.readUInt16BE(at) === setting) return frame.payload.readUInt32BE(at + 2);
    return undefined;
  }

  /** Resolves once the server has closed the connection, or after `timeoutMs` (then false). */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([this.#closed.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return result;
  }

  /** Ends the connection with a TCP RST, as a client that gives up abruptly does. */
  reset(): void {
    if (!this.#socket.destroyed) this.#socket.resetAndDestroy();
  }

  #read(chunk: Buffer): void {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    while (this.#pending.length >= 9) {
      const length = this.#pending.readUIntBE(0, 3);
      if (this.#pending.length < 9 + length) break;
      const frame: Frame = {
        type: this.#pending[3]!,
        flags: this.#pending[4]!,
        stream: this.#pending.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.#pending.subarray(9, 9 + length)),
      };
      this.#pending = this.#pending.subarray(9 + length);
      this.frames.push(frame);
      if (!this.#prefaceSent) continue;
      if (frame.type === FrameType.SETTINGS && (frame.flags & FLAG_ACK) === 0) this.send(encodeFrame(FrameType.SETTINGS, FLAG_ACK, 0));
      if (frame.type === FrameType.PING && (frame.flags & FLAG_ACK) === 0 && this.#answerPings) this.send(encodeFrame(FrameType.PING, FLAG_ACK, 0, frame.payload));
    }
    this.#wake();
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}
