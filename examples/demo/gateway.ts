/**
 * The gateway (gwadmin) of the seed, reduced to what the scenario needs. It has no JWT or
 * SpiceDB code: its Envoy and sidecar checked each request before it arrived, and hand it the
 * verified caller in `x-jwtauth-subject`.
 *
 * - `POST /v1/clouds/{cloud}/namespaces` does no work itself: like the seed's CreateNamespace it
 *   adds a saga whose state carries the user ID, and answers 202.
 * - `POST /v1/clouds/{cloud}/namespace-requests` files the same saga; the gateway's own rule for
 *   it is looser (any cloud member may file one), which is what makes the saga's on-behalf-of
 *   check matter.
 * - `GET /v1/clouds/{cloud}/namespaces/{ns}` asks vmcontroller synchronously, passing the user's
 *   `authorization` header along unchanged (its sidecar exchanges the token on the way out).
 *
 * The saga executor lives in this process, as in the seed. It runs each step later, from the saga
 * state alone (no request, no token), and calls vmcontroller through this pod's Envoy egress
 * listener, naming the user in `x-jwtauth-on-behalf-of`. The `native` client reproduces the seed's
 * failure: it dials vmcontroller directly, the way the seed's hand-built gRPC clients did, so no
 * sidecar gets the chance to attach a token.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { VmControllerClient } from './vmcontroller-api.js';
import type { CallFailure } from './vmcontroller-api.js';

type SagaClient = 'egress' | 'native';

/** What the seed's `CreateNSTaskState` held: the user ID, but not the request context. */
interface CreateNamespaceState {
  readonly step: 'CreateNamespace';
  readonly userId: string;
  readonly cloudId: string;
  readonly namespaceId: string;
  readonly client: SagaClient;
}

export interface Saga {
  readonly id: string;
  readonly state: CreateNamespaceState;
  status: 'pending' | 'running' | 'done' | 'failed';
  attempts: number;
  error?: CallFailure;
}

export interface GatewayOptions {
  readonly port: number;
  /** This pod's Envoy egress listener. */
  readonly egress: string;
  /** vmcontroller's network address (its Envoy ingress), used only by the `native` client. */
  readonly vmcontrollerDirect: string;
  /** How long a saga waits in the queue before it runs: it runs later, not inside the request. */
  readonly sagaDelayMs?: number;
}

export interface RunningGateway {
  readonly port: number;
  readonly sagas: ReadonlyMap<string, Saga>;
  stop(): Promise<void>;
}

const SAGA_CLIENT_HEADER = 'x-demo-saga-client';
const MAX_ATTEMPTS = 3;

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(body));
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

const GRPC_TO_HTTP: Readonly<Record<string, number>> = { UNAUTHENTICATED: 401, PERMISSION_DENIED: 403, NOT_FOUND: 404, INVALID_ARGUMENT: 400, UNAVAILABLE: 503 };

export async function startGateway(options: GatewayOptions): Promise<RunningGateway> {
  const sagas = new Map<string, Saga>();
  const viaEgress = new VmControllerClient(options.egress);
  const native = new VmControllerClient(options.vmcontrollerDirect);
  const timers = new Set<NodeJS.Timeout>();
  let nextSaga = 1;
  let nextNamespace = 1;

  const schedule = (saga: Saga, delayMs: number): void => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      void execute(saga);
    }, delayMs);
    timers.add(timer);
  };

  /** The saga executor: everything it knows comes from `saga.state`. */
  const execute = async (saga: Saga): Promise<void> => {
    const { state } = saga;
    saga.status = 'running';
    saga.attempts += 1;
    const client = state.client === 'native' ? native : viaEgress;
    const result = await client.call(
      'CreateNamespace',
      { cloud_id: state.cloudId, namespace_id: state.namespaceId },
      {
        // Who the call is for. Which cloud it acts on is the message's cloud_id: the sidecars read it there.
        'x-jwtauth-on-behalf-of': state.userId,
        // A trace id of the saga's own: the request that created it is long gone.
        'x-request-id': saga.id,
      },
    );
    if (result.ok) {
      saga.status = 'done';
      delete saga.error;
      return;
    }
    saga.error = result.failure;
    // A denial does not change by asking again (the seed's executor retried it forever);
    // only an outage is worth a retry.
    if (result.failure.code === 'UNAVAILABLE' && saga.attempts < MAX_ATTEMPTS) {
      saga.status = 'pending';
      schedule(saga, 200 * saga.attempts);
    } else {
      saga.status = 'failed';
    }
  };

  const addSaga = (request: IncomingMessage, response: ServerResponse, cloudId: string): void => {
    const userId = header(request, 'x-jwtauth-subject');
    if (userId === undefined) return send(response, 500, { error: 'no verified caller: the gateway must only be reached through its Envoy' });
    const client: SagaClient = header(request, SAGA_CLIENT_HEADER) === 'native' ? 'native' : 'egress';
    const saga: Saga = {
      id: `saga-${nextSaga++}`,
      state: { step: 'CreateNamespace', userId, cloudId, namespaceId: `ns-${nextNamespace++}-${Date.now().toString(36)}`, client },
      status: 'pending',
      attempts: 0,
    };
    sagas.set(saga.id, saga);
    schedule(saga, options.sagaDelayMs ?? 50);
    send(response, 202, { sagaId: saga.id, namespaceId: saga.state.namespaceId });
  };

  const getNamespace = async (request: IncomingMessage, response: ServerResponse, cloudId: string, namespaceId: string): Promise<void> => {
    const headers: Record<string, string> = {};
    const authorization = header(request, 'authorization');
    if (authorization !== undefined) headers.authorization = authorization;
    const requestId = header(request, 'x-request-id');
    if (requestId !== undefined) headers['x-request-id'] = requestId;
    const result = await viaEgress.call('GetNamespace', { cloud_id: cloudId, namespace_id: namespaceId }, headers);
    if (result.ok) return send(response, 200, { cloudId: result.value.cloud_id, namespaceId: result.value.namespace_id, writtenAt: result.value.written_at });
    send(response, GRPC_TO_HTTP[result.failure.code] ?? 502, { error: result.failure });
  };

  const server = createServer((request, response) => {
    request.resume();
    const path = (request.url ?? '').split('?')[0] ?? '';
    const method = request.method ?? '';
    if (path === '/healthz') return send(response, 200, { ok: true });
    let m = /^\/v1\/clouds\/([^/]+)\/(namespaces|namespace-requests)$/.exec(path);
    if (m && method === 'POST') return addSaga(request, response, decodeURIComponent(m[1] as string));
    m = /^\/v1\/clouds\/([^/]+)\/namespaces\/([^/]+)$/.exec(path);
    if (m && method === 'GET') {
      getNamespace(request, response, decodeURIComponent(m[1] as string), decodeURIComponent(m[2] as string)).catch((error: unknown) =>
        send(response, 500, { error: String(error) }),
      );
      return;
    }
    send(response, 404, { error: 'not found' });
  });
  await new Promise<void>((resolve) => server.listen(options.port, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    sagas,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const timer of timers) clearTimeout(timer);
        viaEgress.close();
        native.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
