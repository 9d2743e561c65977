/**
 * The sidecar's gRPC listener (node:http2, src/envoy/grpc-server.ts) at the protocol level: what
 * a gRPC client that is not Envoy, or a broken one, gets. Envoy's own use of it is covered end to
 * end by the test/e2e suites; here a raw HTTP/2 client sends what Envoy never would, and grpc-js's
 * client checks the health service as Kubernetes and Envoy call it.
 */
import { connect, constants } from 'node:http2';
import type { ClientHttp2Session, IncomingHttpHeaders } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import type { CheckHandler } from '../../src/envoy/authorization-service.js';
import { frameCheckResponse } from '../../src/envoy/answer-encoder.js';
import { startGrpcListener } from '../../src/envoy/grpc-server.js';
import type { GrpcListener } from '../../src/envoy/grpc-server.js';
import { envoyAuthProto } from '../../src/envoy/protos.js';
import { sidecarClient } from '../support/check-client.js';
import { httpCheck } from '../support/check-client.js';

const opened: Array<{ close(): unknown }> = [];
let listener: GrpcListener | undefined;
afterEach(async () => {
  for (const each of opened.splice(0)) each.close();
  await listener?.shutdown(100);
  listener = undefined;
});

const OK = frameCheckResponse({ status: { code: 0 }, ok_response: {} });
const allowAll: CheckHandler = (_request, _metadata, respond) => respond(OK);

async function listen(handler: CheckHandler = allowAll): Promise<GrpcListener> {
  listener = await startGrpcListener('127.0.0.1:0', handler);
  return listener;
}

function frame(message: Buffer, compressed = false): Buffer {
  const prefix = Buffer.alloc(5);
  prefix[0] = compressed ? 1 : 0;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
}

interface RawAnswer {
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders;
  readonly data: Buffer;
}

/** One HTTP/2 request as a raw client sends it: headers, body, then whatever comes back. */
function rawCall(port: number, path: string, body: Buffer | readonly Buffer[], headers: Record<string, string> = {}): Promise<RawAnswer> {
  const session: ClientHttp2Session = connect(`http://127.0.0.1:${port}`);
  opened.push(session);
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (received) => (responseHeaders = received));
    stream.on('trailers', (received) => (trailers = received));
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ headers: responseHeaders, trailers, data: Buffer.concat(chunks) }));
    stream.on('error', reject);
    for (const chunk of Array.isArray(body) ? body : [body]) stream.write(chunk);
    stream.end();
  });
}

/** The gRPC status of an answer: from its trailers, or its headers when the status came alone. */
const statusOf = (answer: RawAnswer): string | undefined => (answer.trailers['grpc-status'] ?? answer.headers['grpc-status']) as string | undefined;

const CHECK = '/envoy.service.auth.v3.Authorization/Check';
const encodeCheckRequest = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.requestSerialize;
const decodeCheckResponse = envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.responseDeserialize;
const aCheckRequest = (): Buffer => encodeCheckRequest(httpCheck('GET', '/v1/things', {}));

describe('the gRPC listener', () => {
  it('answers a Check with headers, one message and grpc-status 0, whatever way the message arrives in DATA frames', async () => {
    const { port } = await listen();
    const framed = frame(aCheckRequest());
    for (const body of [[framed], [framed.subarray(0, 3), framed.subarray(3, 9), framed.subarray(9)]]) {
      const answer = await rawCall(port, CHECK, body);
      expect(answer.headers[':status']).toBe(200);
      expect(answer.headers['content-type']).toBe('application/grpc');
      expect(statusOf(answer)).toBe('0');
      expect(answer.data.readUInt32BE(1)).toBe(answer.data.length - 5);
      expect(decodeCheckResponse(answer.data.subarray(5))).toMatchObject({ status: { code: 0 }, ok_response: {} });
    }
  });

  it('passes the call metadata (its HTTP/2 request headers) to the handler, where Envoy puts its trace context', async () => {
    let seen: IncomingHttpHeaders | undefined;
    const { port } = await listen((_request, metadata, respond) => {
      seen = metadata;
      respond(OK);
    });
    await rawCall(port, CHECK, frame(aCheckRequest()), { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
    expect(seen?.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it.each([
    ['an unknown method', '/envoy.service.auth.v2.Authorization/Check', frame(Buffer.alloc(0)), '12'],
    ['no message', CHECK, Buffer.alloc(0), '13'],
    ['a truncated prefix', CHECK, Buffer.from([0, 0, 0]), '13'],
    ['a message shorter than its prefix says', CHECK, frame(aCheckRequest()).subarray(0, 20), '13'],
    ['two messages in a unary call', CHECK, Buffer.concat([frame(aCheckRequest()), frame(aCheckRequest())]), '12'],
    ['a compressed message', CHECK, frame(aCheckRequest(), true), '12'],
    ['bytes that are no CheckRequest', CHECK, frame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])), '13'],
    ['a message over 4 MiB', CHECK, frame(Buffer.alloc(4 * 1024 * 1024 + 1)), '8'],
  ])('refuses %s with a gRPC status, never calling the handler', async (_what, path, body, status) => {
    let called = false;
    const { port } = await listen((_request, _metadata, respond) => {
      called = true;
      respond(OK);
    });
    const answer = await rawCall(port, path, body);
    expect(statusOf(answer)).toBe(status);
    expect(answer.data.length).toBe(0);
    expect(called).toBe(false);
  });

  it('answers a request that is not gRPC with HTTP 415', async () => {
    const { port } = await listen();
    const answer = await rawCall(port, CHECK, Buffer.from('{}'), { 'content-type': 'application/json' });
    expect(answer.headers[':status']).toBe(415);
  });

  it('survives a client that resets its call before the answer', async () => {
    let answerLater: (() => void) | undefined;
    // The first Check is answered only once its caller has gone; later ones at once.
    const { port } = await listen((_request, _metadata, respond) => {
      if (answerLater === undefined) answerLater = () => respond(OK);
      else respond(OK);
    });
    const session = connect(`http://127.0.0.1:${port}`);
    opened.push(session);
    const stream = session.request({ ':method': 'POST', ':path': CHECK, 'content-type': 'application/grpc' });
    stream.on('error', () => undefined);
    stream.end(frame(aCheckRequest()));
    await expect.poll(() => answerLater).toBeDefined();
    stream.close(constants.NGHTTP2_CANCEL);
    await new Promise((resolve) => setTimeout(resolve, 50));
    answerLater!();
    // Still serving.
    const client = sidecarClient(port);
    opened.push(client);
    expect((await client.check(httpCheck('GET', '/v1/things', {}))).status?.code).toBe(0);
  });

  it('lets a Check in flight answer when it shuts down, then refuses new connections', async () => {
    let answerLater: (() => void) | undefined;
    const running = await listen((_request, _metadata, respond) => {
      answerLater = () => respond(OK);
    });
    const client = sidecarClient(running.port);
    opened.push(client);
    const inFlight = client.check(httpCheck('GET', '/v1/things', {}));
    await expect.poll(() => answerLater).toBeDefined();
    const shutdown = running.shutdown(5_000);
    answerLater!();
    expect((await inFlight).status?.code).toBe(0);
    await shutdown;
    listener = undefined;
    await expect(sidecarClient(running.port).check(httpCheck('GET', '/v1/things', {}))).rejects.toThrow();
  });
});

describe('its health service', () => {
  interface HealthClient extends grpc.Client {
    Check(request: { service: string }, callback: (error: grpc.ServiceError | null, response?: { status: string }) => void): void;
    Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
  }
  const Health = (
    grpc.loadPackageDefinition(protoLoader.loadSync(healthProtoPath, { enums: String })) as unknown as {
      grpc: { health: { v1: { Health: new (address: string, credentials: grpc.ChannelCredentials) => HealthClient } } };
    }
  ).grpc.health.v1.Health;
  const healthClient = (port: number): HealthClient => {
    const client = new Health(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    opened.push(client);
    return client;
  };
  const check = (client: HealthClient, service: string): Promise<string> =>
    new Promise((resolve, reject) => client.Check({ service }, (error, response) => (error ? reject(error) : resolve(response?.status ?? ''))));

  it('answers Check for the server and for ext_authz, and NOT_FOUND for another service', async () => {
    const running = await listen();
    const client = healthClient(running.port);
    expect(await check(client, '')).toBe('NOT_SERVING');
    running.setServing(true);
    expect(await check(client, '')).toBe('SERVING');
    expect(await check(client, 'envoy.service.auth.v3.Authorization')).toBe('SERVING');
    await expect(check(client, 'grpc.reflection.v1.ServerReflection')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('streams every change to a Watch, and ends it with UNAVAILABLE on shutdown', async () => {
    const running = await listen();
    const client = healthClient(running.port);
    const seen: string[] = [];
    const watch = client.Watch({ service: '' });
    const ended = new Promise<grpc.StatusObject>((resolve) => watch.on('status', resolve));
    watch.on('error', () => undefined);
    watch.on('data', (message: { status: string }) => seen.push(message.status));
    await expect.poll(() => seen).toEqual(['NOT_SERVING']);
    running.setServing(true);
    running.setServing(false);
    await expect.poll(() => seen).toEqual(['NOT_SERVING', 'SERVING', 'NOT_SERVING']);
    await running.shutdown(2_000);
    listener = undefined;
    expect((await ended).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('tells a Watch of another service SERVICE_UNKNOWN', async () => {
    const running = await listen();
    const watch = healthClient(running.port).Watch({ service: 'other.Service' });
    watch.on('error', () => undefined);
    const first = await new Promise<{ status: string }>((resolve) => watch.once('data', resolve));
    expect(first.status).toBe('SERVICE_UNKNOWN');
    watch.cancel();
  });
});
