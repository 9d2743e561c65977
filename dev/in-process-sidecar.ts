/**
 * The sidecar's Check path in this process, from CheckRequest bytes to the framed CheckResponse
 * the listener writes: the pipeline serve builds (real adapters: JWKS, SpiceDB client, decision
 * cache), the decision log and metrics, the request decoder and the answer encoder. Without the
 * HTTP/2 listener, so what a Check allocates and costs can be measured alone (the allocation test,
 * `npm run bench -- --allocation`).
 */
import type { LoadedConfig } from '../src/config/load.js';
import { createCheckHandler } from '../src/envoy/authorization-service.js';
import { createCheckExchange } from '../src/envoy/check-exchange.js';
import type { CheckRequest } from '../src/generated/envoy/service/auth/v3/CheckRequest.js';
import { envoyAuthProto } from '../src/envoy/protos.js';
import { createDecisionObserver } from '../src/observability/decision-log.js';
import type { Logger } from '../src/observability/logger.js';
import { Metrics } from '../src/observability/metrics.js';
import { openDecisionRuntime } from '../src/lifecycle/runtime.js';
import { measureAllocation } from './heap-allocation.js';

export interface InProcessSidecar {
  /** One Check: CheckRequest bytes in, the framed CheckResponse out. */
  check(request: Buffer): Promise<Buffer>;
  ready(): boolean;
  close(): Promise<void>;
}

export function encodeCheckRequest(request: CheckRequest): Buffer {
  return envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.requestSerialize(request);
}

/** The shape of the CheckRequest Envoy sends for an HTTP/2 call (headers as the ext_authz filter lists them). */
export function envoyShapedCheckRequest(path: string, headers: Readonly<Record<string, string>>, contextExtensions: Readonly<Record<string, string>>): CheckRequest {
  const all: Record<string, string> = {
    ':authority': 'bench.local',
    ':path': path,
    ':method': 'GET',
    ':scheme': 'http',
    'user-agent': 'h2load nghttp2/1.64.0',
    'x-forwarded-proto': 'http',
    'x-request-id': '6f0c1a52-3f4e-4b8e-9d0a-2c1f3e4d5a6b',
    ...headers,
  };
  return {
    attributes: {
      source: { address: { socket_address: { address: '127.0.0.1', port_value: 51234 } } },
      destination: { address: { socket_address: { address: '127.0.0.1', port_value: 10000 } } },
      request: {
        time: { seconds: String(Math.floor(Date.now() / 1000)), nanos: 0 },
        http: {
          id: '14512862301342457891',
          method: 'GET',
          path,
          host: 'bench.local',
          scheme: 'http',
          protocol: 'HTTP/2',
          header_map: { headers: Object.entries(all).map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
        },
      },
      context_extensions: contextExtensions,
    },
  };
}

export async function openInProcessSidecar(loaded: LoadedConfig, logger: Logger): Promise<InProcessSidecar> {
  const metrics = new Metrics({ processMetrics: false });
  const runtime = await openDecisionRuntime(loaded, metrics, logger);
  const lease = { pipeline: runtime.pipeline, release: () => undefined };
  const handler = createCheckHandler({
    acquire: () => lease,
    observe: createDecisionObserver(metrics, logger, () => ({ allowSampleRate: loaded.config.log.allowSampleRate })),
    onUnexpectedError: (error) => logger.error({ err: error }, 'unexpected error while deciding; denied'),
  });
  const exchange = createCheckExchange(handler);
  const noMetadata = {};
  return {
    check: (request) =>
      new Promise((resolve, reject) => {
        exchange(request, noMetadata, resolve, (_status, reason) => reject(new Error(reason)));
      }),
    ready: () => runtime.ready(),
    close: () => runtime.close(),
  };
}

export async function waitUntilReady(sidecar: InProcessSidecar, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!sidecar.ready()) {
    if (Date.now() > deadline) throw new Error(`the in-process sidecar was not ready within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export interface CheckAllocation {
  readonly bytesPerCheck: number;
  readonly scavengesPer10k: number;
  readonly markCompactsPer10k: number;
  /** CPU time of this whole process per Check (user + system), which includes what it collects. */
  readonly cpuMicrosPerCheck: number;
}

/** What `request` allocates (and costs) per Check once warm: its answers cached and its code optimized. */
export async function allocationPerCheck(sidecar: InProcessSidecar, request: Buffer, checks: number): Promise<CheckAllocation> {
  const run = async (times: number): Promise<void> => {
    for (let i = 0; i < times; i++) await sidecar.check(request);
  };
  await run(2_000);
  const cpu = process.cpuUsage();
  const sample = await measureAllocation(() => run(checks));
  const used = process.cpuUsage(cpu);
  return {
    bytesPerCheck: Math.round(sample.bytes / checks),
    scavengesPer10k: (sample.scavenges * 10_000) / checks,
    markCompactsPer10k: (sample.markCompacts * 10_000) / checks,
    cpuMicrosPerCheck: (used.user + used.system) / checks,
  };
}
