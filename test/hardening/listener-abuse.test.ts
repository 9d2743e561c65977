/**
 * The gRPC listener (src/envoy/grpc-server.ts, node:http2) under abuse, against the built sidecar:
 * raw HTTP/2 frames and clients that misbehave on purpose (test/support/hardening/raw-http2.ts).
 * Each attack is bounded in count and time, and during each one a legitimate Check on a connection
 * of its own must keep being answered. docs/security.md, "Listener limits", lists what each test
 * holds the listener to.
 */
import { readdirSync } from 'node:fs';
import { connect as connectHttp2 } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { envoyAuthProto } from '../../src/envoy/protos.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';
import type { SidecarClient } from '../support/check-client.js';
import { closeNewestFirst } from '../support/closers.js';
import { encodeFrame, encodeHeaderBlock, ErrorCode, FrameType, grpcRequestHeaders, RawHttp2Connection } from '../support/hardening/raw-http2.js';
import { startSidecar } from '../support/sidecar.js';
import type { RunningSidecar } from '../support/sidecar.js';

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
/** Long enough for any one step on a loaded 2-core machine; an attack that outlives it fails the test. */
const STEP_MS = 10_000;

/** A sidecar that decides without SpiceDB or keys: one public route, everything else denied. */
function listenerConfig(limits: Record<string, number> = {}): Record<string, unknown> {
  return {
    server: { drainSeconds: 0 },
    log: { level: 'warn' },
    limits,
    inbound: { default: 'deny', rules: [{ name: 'public', match: { http: { methods: ['GET'], path: '/public' } }, auth: 'none' }] },
  };
}

const openDescriptors = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

let sidecar: RunningSidecar;
/** A legitimate caller with a connection of its own, as one Envoy worker thread has. */
let legit: SidecarClient;
const closers: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  sidecar = await startSidecar(listenerConfig());
  closers.push(() => sidecar.stop());
  legit = sidecarClient(sidecar.grpcPort, { ownConnection: true });
  closers.push(() => legit.close());
});
afterAll(() => closeNewestFirst(closers));

/** A Check Envoy would send for a public route: it must be allowed, whatever else the listener is going through. */
async function expectLegitCheckAllowed(): Promise<void> {
  const response = await legit.check(httpCheck('GET', '/public', {}));
  expect(response.status?.code).toBe(0);
}

/** Runs `count` attacks, `inFlight` at a time. */
async function inBatches(count: number, inFlight: number, attack: (index: number) => Promise<void>): Promise<void> {
  for (let first = 0; first < count; first += inFlight) {
    await Promise.all(Array.from({ length: Math.min(inFlight, count - first) }, (_, offset) => attack(first + offset)));
  }
}

describe('connections the server ends itself', () => {
  it('a connection nghttp2 ends with GOAWAY (bad HPACK, rapid reset) and the client resets holds no descriptor afterwards', async () => {
    await expectLegitCheckAllowed();
    const pid = sidecar.process.child.pid!;
    const baseline = openDescriptors(pid);
    const goawayCodes = new Map<number, number>();
    const endedByServer = async (send: (connection: RawHttp2Connection) => void): Promise<void> => {
      const connection = await RawHttp2Connection.handshake(sidecar.grpcPort);
      send(connection);
      const goaway = await connection.goaway(STEP_MS);
      // The server itself must have ended it: otherwise this would test nothing.
      expect(goaway).toBeDefined();
      goawayCodes.set(goaway!.errorCode, (goawayCodes.get(goaway!.errorCode) ?? 0) + 1);
      connection.reset();
    };
    // An index HPACK does not have (0): a COMPRESSION_ERROR for the whole connection.
    const badHpack = (connection: RawHttp2Connection): void => connection.send(encodeFrame(FrameType.HEADERS, 0x5, 1, Buffer.from([0x80])));
    // HEADERS then RST_STREAM, over and over: nghttp2's rapid-reset guard ends the connection.
    const rapidReset = (connection: RawHttp2Connection): void => {
      const block = encodeHeaderBlock(grpcRequestHeaders(CHECK));
      for (let stream = 1; stream < 2 * 1500; stream += 2) {
        connection.headers(stream, block);
        connection.rstStream(stream, ErrorCode.CANCEL);
      }
    };
    await inBatches(490, 49, () => endedByServer(badHpack));
    await expectLegitCheckAllowed();
    await inBatches(10, 2, () => endedByServer(rapidReset));
    // nghttp2 ends the first kind with COMPRESSION_ERROR; node:http2 ends the second with an error of its own.
    expect(goawayCodes.get(ErrorCode.COMPRESSION_ERROR)).toBe(490);
    expect([...goawayCodes.values()].reduce((sum, count) => sum + count)).toBe(500);
    expect(goawayCodes.has(ErrorCode.NO_ERROR)).toBe(false);
    await expectLegitCheckAllowed();
    // Back to where it was (a few more while the last connections close), not one per connection.
    await expect.poll(() => openDescriptors(pid), { timeout: STEP_MS, interval: 250 }).toBeLessThanOrEqual(baseline + 2);
    await expectLegitCheckAllowed();
  });

  it('a quiet connection that answers PINGs stays open; one that answers nothing is closed', async () => {
    const [answers, deaf] = await Promise.all([
      RawHttp2Connection.handshake(sidecar.grpcPort),
      RawHttp2Connection.handshake(sidecar.grpcPort, { answerPings: false }),
    ]);
    try {
      expect(await deaf.closedWithin(STEP_MS)).toBe(true);
      // The deaf one was pinged before it was closed. The other answered its PING, and a second
      // one comes only to a connection that has outlived the wait for the first answer.
      expect(deaf.frames.some((frame) => frame.type === FrameType.PING)).toBe(true);
      await expect.poll(() => answers.frames.filter((frame) => frame.type === FrameType.PING).length, { timeout: STEP_MS }).toBeGreaterThanOrEqual(2);
      expect(answers.closedByServer).toBe(false);
      await expectLegitCheckAllowed();
    } finally {
      answers.reset();
      deaf.reset();
    }
  });
});

/** A node:http2 client connection, to send calls the way a (misbehaving) gRPC client would. */
function http2Client(): ClientHttp2Session {
  const session = connectHttp2(`http://127.0.0.1:${sidecar.grpcPort}`);
  session.on('error', () => undefined);
  closers.push(() => session.destroy());
  return session;
}

interface OpenCall {
  readonly stream: ClientHttp2Stream;
  /** The response headers (with grpc-status when the answer is a status alone), once they come. */
  readonly answered: Promise<IncomingHttpHeaders>;
}

function openCall(session: ClientHttp2Session, path = CHECK, contentType = 'application/grpc'): OpenCall {
  const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': contentType, te: 'trailers' });
  stream.on('error', () => undefined);
  stream.resume();
  return { stream, answered: new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve)) };
}

function messagePrefix(length: number): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(length, 1);
  return prefix;
}

const encodeCheckRequest = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.requestSerialize;

describe('answers', () => {
  it('a call with any content-type but gRPC with protobuf (application/grpc+json) gets HTTP 415', async () => {
    const session = http2Client();
    try {
      for (const contentType of ['application/grpc+json', 'application/grpc+thrift', 'application/json']) {
        const call = openCall(session, CHECK, contentType);
        call.stream.end(Buffer.concat([messagePrefix(2), Buffer.from('{}')]));
        expect((await call.answered)[':status'], contentType).toBe(415);
      }
      for (const contentType of ['application/grpc', 'application/grpc+proto', 'application/grpc; charset=utf-8']) {
        const call = openCall(session, CHECK, contentType);
        const message = encodeCheckRequest(httpCheck('GET', '/public', {}));
        call.stream.end(Buffer.concat([messagePrefix(message.length), message]));
        expect((await call.answered)[':status'], contentType).toBe(200);
      }
    } finally {
      session.destroy();
    }
  });

  it('no answer echoes what the caller sent: an unknown health service, an unknown method', async () => {
    const marker = '<script>alert(1)</script>';
    const error = await legit.health(marker).then(
      () => undefined,
      (caught: grpc.ServiceError) => caught,
    );
    expect(error?.code).toBe(grpc.status.NOT_FOUND);
    expect(error?.details).toBe('unknown service');
    const session = http2Client();
    try {
      const call = openCall(session, `/${marker}/Check`);
      call.stream.end(messagePrefix(0));
      const answer = await call.answered;
      expect(answer['grpc-status']).toBe('12');
      expect(decodeURIComponent(String(answer['grpc-message']))).toBe('unknown method');
      // A health Check of a known service still answers.
      const health = openCall(session, HEALTH_CHECK);
      health.stream.end(messagePrefix(0));
      expect((await health.answered)[':status']).toBe(200);
    } finally {
      session.destroy();
    }
  });
});
