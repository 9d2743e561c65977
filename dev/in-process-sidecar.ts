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
import { openDecisionRuntime } from '../src/serve.js';

export interface InProcessSidecar {
  /** One Check: CheckRequest bytes in, the framed CheckResponse out. */
  check(request: Buffer): Promise<Buffer>;
  ready(): boolean;
  close(): Promise<void>;
}

export function encodeCheckRequest(request: CheckRequest): Buffer {
  return envoyAuthProto().envoy.service.auth.v3.Authorization.service.Check.requestSerialize(request);
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
