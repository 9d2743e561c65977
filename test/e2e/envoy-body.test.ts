/**
 * Rules that read the request message (`{body.…}`), through a real Envoy running envoy/envoy.yaml
 * as shipped (ports rewritten, nothing else), the built sidecar as its own process, a real SpiceDB
 * and the app. The attack: a caller allowed on cloud cl0 asks to create a namespace in cl1 and
 * puts `x-cloud-id: cl0` in a header; only the cloud the message names may be checked.
 *
 * envoy.yaml buffers the body (filter-level with_request_body, pack_as_bytes) on two routes,
 * /demo.vmcontroller.v1.VmController/CreateNamespace and /v1/namespaces, and opts every other
 * route out with disable_request_body_buffering. The rules below are written against that.
 * The unit-level version of the attack is test/unit/message-rules.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../dev/processes.js';
import { frameMessage } from '../../src/body/grpc-frame.js';
import { gzipFrame, rawGrpcCall, snappyBlock } from '../support/body-grpc.js';
import type { RawGrpcOutcome } from '../support/body-grpc.js';
import { grpcCall, httpRequest, startPod } from '../support/pod.js';
import type { PlainResponse, Pod } from '../support/pod.js';

const DEMO_PROTO = fileURLToPath(new URL('../../examples/demo/vmcontroller.proto', import.meta.url));
const SERVICE = 'demo.vmcontroller.v1.VmController';
/** Buffered by envoy.yaml. */
const CREATE_NAMESPACE = `/${SERVICE}/CreateNamespace`;
/** Not buffered by envoy.yaml: it falls to the catch-all route, which opts out. */
const GET_NAMESPACE = `/${SERVICE}/GetNamespace`;
/** envoy.yaml's with_request_body.max_request_bytes. */
const MAX_REQUEST_BYTES = 65_536;

// keepCase: field names as the .proto writes them, as the sidecar's descriptors keep them.
const proto = new protobuf.Root().loadSync(DEMO_PROTO, { keepCase: true });
const CreateNamespaceRequest = proto.lookupType('demo.vmcontroller.v1.CreateNamespaceRequest');
const GetNamespaceRequest = proto.lookupType('demo.vmcontroller.v1.GetNamespaceRequest');

function createNamespaceMessage(cloudId: string, namespaceId = 'ns1'): Uint8Array {
  return CreateNamespaceRequest.encode(CreateNamespaceRequest.fromObject({ cloud_id: cloudId, namespace_id: namespaceId })).finish();
}

let pod: Pod;

beforeAll(async () => {
  pod = await startPod({
    // alice may create namespaces in cl0 only; cl1 exists and belongs to someone else.
    relationships: ['cloud:cl0#admin@user:alice', 'cloud:cl1#admin@user:bob'].join('\n'),
    config: {
      body: { protoFiles: [DEMO_PROTO] },
      inbound: {
        rules: [
          {
            name: 'create-namespace-grpc',
            match: { grpc: { service: SERVICE, method: 'CreateNamespace' } },
            checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }],
          },
          {
            name: 'create-namespace-json',
            match: { http: { methods: ['POST'], path: '/v1/namespaces' } },
            checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }],
          },
          {
            // Reads the body on a route envoy.yaml does not buffer: must fail closed.
            name: 'get-namespace-grpc',
            match: { grpc: { service: SERVICE, method: 'GetNamespace' } },
            checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'view' }],
          },
          {
            // Reads no body, on the catch-all route that opts out of buffering.
            name: 'create-namespace-by-path',
            match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } },
            checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }],
          },
        ],
      },
    },
  });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
});

/** Every decision the sidecar has made: Envoy asking it is what moves this. */
async function decisionsMade(): Promise<number> {
  let total = 0;
  for (const [name, value] of await pod.sidecar.scrape()) if (name.startsWith('jwtauth_checks_total{')) total += value;
  return total;
}

interface DecisionLine {
  readonly requestId?: string;
  readonly decision?: string;
  readonly reason?: string;
  readonly detail?: string;
  readonly checks?: readonly { resource: string; permission: string; result: string }[];
}

/** The sidecar's decision log line for one request (the id is the x-request-id the test sent). */
async function decisionLine(requestId: string): Promise<DecisionLine> {
  let found: DecisionLine | undefined;
  await waitFor(
    () => {
      for (const line of pod.sidecar.process.output().split('\n')) {
        if (!line.startsWith('{') || !line.includes(requestId)) continue;
        const parsed = JSON.parse(line) as DecisionLine & { msg?: string };
        if (parsed.msg === 'decision' && parsed.requestId === requestId) found = parsed;
      }
      return found !== undefined;
    },
    3000,
    () => `no decision logged for ${requestId}`,
  );
  return found as DecisionLine;
}

/**
 * Runs `send` and reports what it changed: how many requests reached the app and how many
 * decisions the sidecar made.
 */
async function observe<T>(send: () => Promise<T>): Promise<{ outcome: T; reachedApp: number; decisions: number }> {
  const appBefore = pod.app.received.length;
  const decisionsBefore = await decisionsMade();
  const outcome = await send();
  return { outcome, reachedApp: pod.app.received.length - appBefore, decisions: (await decisionsMade()) - decisionsBefore };
}

async function grpcAs(user: string, path: string, body: Uint8Array, extra: Record<string, string> = {}): Promise<RawGrpcOutcome & { requestId: string }> {
  const requestId = randomUUID();
  const outcome = await rawGrpcCall(
    `http://127.0.0.1:${pod.envoy.ports.ingress}`,
    path,
    { authorization: `Bearer ${await pod.userToken(user)}`, 'x-request-id': requestId, ...extra },
    body,
  );
  return { ...outcome, requestId };
}

async function jsonAs(user: string, path: string, body: string, extra: Record<string, string> = {}): Promise<PlainResponse & { requestId: string }> {
  const requestId = randomUUID();
  const response = await httpRequest(`${pod.ingress}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await pod.userToken(user)}`, 'content-type': 'application/json', 'x-request-id': requestId, ...extra },
    body,
  });
  return { ...response, requestId };
}

describe('gRPC: the cloud a call acts on is read from its message', () => {
  it.each([
    ['without a header', {}],
    ['with a forged x-cloud-id: cl0', { 'x-cloud-id': 'cl0' }],
  ])('denies CreateNamespace{cloud_id: cl1} for a caller allowed on cl0 only, %s; the app never sees it', async (_name, headers) => {
    const { outcome, reachedApp } = await observe(() => grpcAs('alice', CREATE_NAMESPACE, frameMessage(createNamespaceMessage('cl1')), headers));
    expect(outcome.grpcStatus).toBe(status.PERMISSION_DENIED);
    expect(outcome.metadata['x-jwtauth-reason']).toBe('permission_denied');
    expect(outcome.grpcMessage).toBe('permission_denied: permission denied');
    expect(reachedApp).toBe(0);
    // The one check made was on the cloud in the message, not the one in the header.
    const logged = await decisionLine(outcome.requestId);
    expect(logged.checks?.map((check) => check.resource)).toEqual(['cloud:cl1']);
  });

  it('allows CreateNamespace{cloud_id: cl0} and the call reaches the app as alice', async () => {
    const { outcome, reachedApp } = await observe(() => grpcAs('alice', CREATE_NAMESPACE, frameMessage(createNamespaceMessage('cl0'))));
    expect(outcome.grpcStatus).toBe(status.OK);
    expect(reachedApp).toBe(1);
    expect(pod.app.received.at(-1)?.path).toBe(CREATE_NAMESPACE);
    expect(outcome.metadata['x-seen-subject']).toBe('alice');
    const logged = await decisionLine(outcome.requestId);
    expect(logged.checks).toEqual([expect.objectContaining({ resource: 'cloud:cl0', permission: 'create_namespace', result: 'allowed' })]);
  });

  it('decodes gzip-compressed messages: cl0 allowed and reaches the app, cl1 denied even with a forged header', async () => {
    const gzip = { 'grpc-encoding': 'gzip' };
    const allowed = await observe(() => grpcAs('alice', CREATE_NAMESPACE, gzipFrame(createNamespaceMessage('cl0')), gzip));
    expect(allowed.outcome.grpcStatus).toBe(status.OK);
    expect(allowed.reachedApp).toBe(1);

    const denied = await observe(() => grpcAs('alice', CREATE_NAMESPACE, gzipFrame(createNamespaceMessage('cl1')), { ...gzip, 'x-cloud-id': 'cl0' }));
    expect(denied.outcome.grpcStatus).toBe(status.PERMISSION_DENIED);
    expect(denied.outcome.metadata['x-jwtauth-reason']).toBe('permission_denied');
    expect(denied.reachedApp).toBe(0);
    expect((await decisionLine(denied.outcome.requestId)).checks?.map((check) => check.resource)).toEqual(['cloud:cl1']);
  });
});

describe('gRPC bodies the sidecar refuses rather than guesses at', () => {
  // Envoy turns the sidecar's HTTP status into the gRPC status of its local reply (400 → 13
  // INTERNAL, 413 and 415 → 2 UNKNOWN); the reason itself travels in x-jwtauth-reason and grpc-message.

  it('refuses two messages on the unary CreateNamespace (cl0 then cl1): body_multiple_messages, app not reached', async () => {
    // A reader taking the first message would allow this; a service reading the last would act on cl1.
    const body = Buffer.concat([frameMessage(createNamespaceMessage('cl0')), frameMessage(createNamespaceMessage('cl1'))]);
    const { outcome, reachedApp, decisions } = await observe(() => grpcAs('alice', CREATE_NAMESPACE, body));
    expect(outcome.grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect(outcome.metadata['x-jwtauth-reason']).toBe('body_multiple_messages');
    expect(outcome.grpcMessage).toBe('body_multiple_messages: a unary call carried more than one message');
    expect(reachedApp).toBe(0);
    expect(decisions).toBe(1);
  });

  it('gives a grpc-js client the gRPC status of a body refusal, INVALID_ARGUMENT (3), not Envoy\'s mapping of 400 (13 INTERNAL)', async () => {
    // An empty CreateNamespaceRequest: no cloud_id, so body_field_missing (400). Envoy maps a denied
    // gRPC call's HTTP status unless the denial carries grpc-status, which the sidecar's does.
    const before = pod.app.received.length;
    const outcome = await grpcCall(`127.0.0.1:${pod.envoy.ports.ingress}`, CREATE_NAMESPACE, { authorization: `Bearer ${await pod.userToken('alice')}` });
    expect(outcome.code).toBe(status.INVALID_ARGUMENT);
    expect(outcome.details).toBe('body_field_missing: the message lacks a field the rule reads');
    expect(outcome.trailers['x-jwtauth-reason']).toBe('body_field_missing');
    expect(pod.app.received.length).toBe(before);
  });

  it('refuses a snappy-compressed message (grpc-encoding: snappy): body_unsupported_encoding, app not reached', async () => {
    const body = frameMessage(snappyBlock(createNamespaceMessage('cl0')), 1);
    const { outcome, reachedApp } = await observe(() => grpcAs('alice', CREATE_NAMESPACE, body, { 'grpc-encoding': 'snappy' }));
    expect(outcome.grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect(outcome.metadata['x-jwtauth-reason']).toBe('body_unsupported_encoding');
    expect(outcome.grpcMessage).toBe('body_unsupported_encoding: the message compression is not supported');
    expect(reachedApp).toBe(0);
  });

  it('a body well over max_request_bytes is answered 413 by Envoy itself: no Check, app not reached', async () => {
    // cl0, which alice may use: only the size stops it. Frames of 16 KiB without END_STREAM
    // overflow Envoy's buffer long before the last one.
    const message = createNamespaceMessage('cl0', 'n'.repeat(2 * MAX_REQUEST_BYTES));
    const { outcome, reachedApp, decisions } = await observe(() => grpcAs('alice', CREATE_NAMESPACE, frameMessage(message)));
    // Envoy's 413 as a gRPC local reply.
    expect(outcome.grpcStatus).toBe(status.UNKNOWN);
    expect(outcome.grpcMessage).toBe('Payload Too Large');
    expect(outcome.metadata['x-jwtauth-reason']).toBeUndefined();
    expect(decisions).toBe(0);
    expect(reachedApp).toBe(0);
  });

  it('a body whose last HTTP/2 frame crosses max_request_bytes reaches the sidecar cut, and is refused as body_truncated', async () => {
    // Envoy adds the DATA frame that carries END_STREAM to its buffer without the size check, so
    // with allow_partial_message: false it still asks ext_authz, sending the first max_request_bytes
    // bytes and x-envoy-auth-partial-body: true. A body 1000 bytes over the limit puts the crossing
    // inside that last frame (frames are at most 16 KiB). The sidecar must not decode the part.
    // 5 bytes of frame prefix, 9 of field tags and lengths, then the padding.
    const frame = frameMessage(createNamespaceMessage('cl0', 'n'.repeat(MAX_REQUEST_BYTES + 1000 - 14)));
    expect(frame.length).toBe(MAX_REQUEST_BYTES + 1000);
    const { outcome, reachedApp, decisions } = await observe(() => grpcAs('alice', CREATE_NAMESPACE, frame));
    expect(outcome.grpcStatus).toBe(status.RESOURCE_EXHAUSTED);
    expect(outcome.metadata['x-jwtauth-reason']).toBe('body_truncated');
    expect(outcome.grpcMessage).toBe('body_truncated: the request body was cut short');
    expect(decisions).toBe(1);
    expect(reachedApp).toBe(0);
    expect((await decisionLine(outcome.requestId)).detail).toMatch(/x-envoy-auth-partial-body: true/);
  });
});

describe('HTTP JSON: the same rule over a JSON body', () => {
  it('allows {"cloud_id":"cl0"} and the request reaches the app', async () => {
    const { outcome, reachedApp } = await observe(() => jsonAs('alice', '/v1/namespaces', '{"cloud_id":"cl0","namespace_id":"ns1"}'));
    expect(outcome.status).toBe(200);
    expect(reachedApp).toBe(1);
    expect(pod.app.received.at(-1)?.headers['x-jwtauth-subject']).toBe('alice');
  });

  it('denies {"cloud_id":"cl1"} with 403 even with a forged x-cloud-id: cl0, app not reached', async () => {
    const { outcome, reachedApp } = await observe(() => jsonAs('alice', '/v1/namespaces', '{"cloud_id":"cl1","namespace_id":"ns1"}', { 'x-cloud-id': 'cl0' }));
    expect(outcome.status).toBe(403);
    expect(outcome.headers['x-jwtauth-reason']).toBe('permission_denied');
    expect(reachedApp).toBe(0);
    expect((await decisionLine(outcome.requestId)).checks?.map((check) => check.resource)).toEqual(['cloud:cl1']);
  });

  it('refuses malformed JSON with 400 body_malformed, app not reached', async () => {
    const { outcome, reachedApp } = await observe(() => jsonAs('alice', '/v1/namespaces', '{"cloud_id":"cl0",'));
    expect(outcome.status).toBe(400);
    expect(outcome.headers['x-jwtauth-reason']).toBe('body_malformed');
    expect(outcome.body).toBe('body_malformed: the request body cannot be decoded');
    expect(reachedApp).toBe(0);
  });

  /** A JSON object of exactly `bytes` bytes naming cl0. */
  function paddedJson(bytes: number): string {
    const head = '{"cloud_id":"cl0","pad":"';
    const tail = '"}';
    return `${head}${'p'.repeat(bytes - head.length - tail.length)}${tail}`;
  }

  it('a body of exactly max_request_bytes is buffered whole and decided', async () => {
    const { outcome, reachedApp, decisions } = await observe(() => jsonAs('alice', '/v1/namespaces', paddedJson(MAX_REQUEST_BYTES)));
    expect(outcome.status).toBe(200);
    expect(decisions).toBe(1);
    expect(reachedApp).toBe(1);
  });

  it('one byte more is answered 413 by Envoy itself: no Check, app not reached', async () => {
    const { outcome, reachedApp, decisions } = await observe(() => jsonAs('alice', '/v1/namespaces', paddedJson(MAX_REQUEST_BYTES + 1)));
    expect(outcome.status).toBe(413);
    expect(outcome.headers['x-jwtauth-reason']).toBeUndefined();
    expect(decisions).toBe(0);
    expect(reachedApp).toBe(0);
  });
});

describe('routes that do not read the body do not buffer it', () => {
  it('sends no body in the Check: a body rule on an opted-out route denies with body_missing, app not reached', async () => {
    // alice may view cl0: had the body arrived, this would be allowed.
    const message = GetNamespaceRequest.encode(GetNamespaceRequest.fromObject({ cloud_id: 'cl0', namespace_id: 'ns1' })).finish();
    const { outcome, reachedApp, decisions } = await observe(() => grpcAs('alice', GET_NAMESPACE, frameMessage(message)));
    expect(outcome.grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect(outcome.metadata['x-jwtauth-reason']).toBe('body_missing');
    expect(decisions).toBe(1);
    expect(reachedApp).toBe(0);
    // "no body at all", not "an empty one": the CheckRequest carried neither raw_body nor body.
    expect((await decisionLine(outcome.requestId)).detail).toMatch(/^the request carried no body/);
  });

  it('passes a body far over max_request_bytes on an opted-out route: Envoy never held it', async () => {
    const body = JSON.stringify({ name: 'ns1', pad: 'p'.repeat(4 * MAX_REQUEST_BYTES) });
    const { outcome, reachedApp, decisions } = await observe(() => jsonAs('alice', '/v1/clouds/cl0/namespaces', body));
    expect(outcome.status).toBe(200);
    expect(decisions).toBe(1);
    expect(reachedApp).toBe(1);
  });
});
