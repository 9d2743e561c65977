/**
 * Requests a scenario sends through the run's Envoy: the paths and token headers the load tools
 * take, and the answers a scenario expects before it is measured.
 */
import { waitFor } from '../dev/processes.js';
import { frameMessage } from '../src/body/grpc-frame.js';
import { createNamespaceMessage, GRPC_HEADERS, methodPath, unaryCall } from '../dev/bench/grpc-call.js';
import type { GrpcOutcome } from '../dev/bench/grpc-call.js';
import type { Run } from './run-state.js';
import type { Expectation, GrpcCall, Port } from '../dev/bench/scenarios.js';

export const PATHS: Readonly<Record<Port, string>> = { ingress: '/v1/clouds/cl0/items', egress: '/v1/items' };
export const urlOf = (run: Run, port: Port, path = PATHS[port]): string => `http://127.0.0.1:${run.ports[port]}${path}`;
export const authorization = (run: Run): Record<string, string> => ({ authorization: `Bearer ${run.token}` });
/** The same header as h2load and vegeta take it. */
export const headerLines = (run: Run): string[] => [`authorization: Bearer ${run.token}`];
export const grpcHeaderLines = (): string[] => Object.entries(GRPC_HEADERS).map(([name, value]) => `${name}: ${value}`);

/** How long an `eventually` expectation waits for its answer. */
const EVENTUALLY_MS = 15_000;

async function expectGrpcAnswer(run: Run, expectation: Expectation, call: GrpcCall, grpcStatus: number): Promise<void> {
  const origin = `http://127.0.0.1:${run.ports[expectation.port]}`;
  const path = methodPath(call.method);
  const headers = { ...GRPC_HEADERS, ...(expectation.withToken ? authorization(run) : {}) };
  const body = frameMessage(createNamespaceMessage(call.messageCloud));
  const matches = (got: GrpcOutcome): boolean => got.httpStatus === expectation.status && got.grpcStatus === grpcStatus;
  const describe = (got: GrpcOutcome | undefined): string =>
    `${expectation.what}: expected HTTP ${expectation.status} grpc-status ${grpcStatus} from ${path} (message cloud ${call.messageCloud}), got ` +
    (got ? `HTTP ${got.httpStatus} grpc-status ${got.grpcStatus ?? 'none'}${got.reason ? ` (${got.reason})` : ''}` : 'nothing');
  let last: GrpcOutcome | undefined;
  if (expectation.eventually) {
    await waitFor(async () => matches((last = await unaryCall(origin, path, headers, body))), EVENTUALLY_MS, () => describe(last));
    return;
  }
  last = await unaryCall(origin, path, headers, body);
  if (!matches(last)) throw new Error(describe(last));
}

/** Fails unless the run's Envoy answers `expectation`'s request as it says (at once, or eventually). */
export async function expectAnswer(run: Run, expectation: Expectation): Promise<void> {
  if (expectation.grpc !== undefined) return expectGrpcAnswer(run, expectation, expectation.grpc.call, expectation.grpc.grpcStatus);
  const url = urlOf(run, expectation.port, expectation.path);
  const headers = expectation.withToken ? authorization(run) : {};
  const { status, what } = expectation;
  if (expectation.eventually) {
    let last = 0;
    await waitFor(async () => (last = (await fetch(url, { headers })).status) === status, EVENTUALLY_MS, () => `${what}: expected ${status} from ${url}, last answer ${last}`);
    return;
  }
  const response = await fetch(url, { headers });
  const body = await response.text();
  if (response.status !== status) throw new Error(`${what}: expected ${status} from ${url}, got ${response.status} ${body.slice(0, 200)}`);
}
