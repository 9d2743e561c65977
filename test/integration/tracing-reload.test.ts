/**
 * Tracing follows reloads like the rest of the configuration: a reload that turns it on starts a
 * tracer provider (Checks get spans, and their decision id is the trace id), one that turns it
 * off closes it, flushing what it held, and Checks then carry random decision ids and make no
 * span. Runs the real serve() on the embedded SpiceDB, with spans kept in memory.
 */
import { writeFileSync } from 'node:fs';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { writeSidecarConfig } from '../../dev/sidecar.js';
import { loadConfigFile } from '../../src/config/load.js';
import { DECISION_ID_HEADER } from '../../src/envoy/check-response.js';
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import { createLogger } from '../../src/observability/logger.js';
import { serve } from '../../src/serve.js';
import type { RunningSidecar } from '../../src/serve.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';

const running: RunningSidecar[] = [];
afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((sidecar) => sidecar.close()));
});

const BASE = {
  server: { grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', drainSeconds: 0 },
  inbound: { default: 'allow' },
};
const TRACED = { ...BASE, tracing: { enabled: true, sampler: 'always_on', serviceName: 'reload-test' } };

function decisionIdOf(response: CheckResponse__Output): string | undefined {
  return response.ok_response?.headers?.find((option) => option.header?.key === DECISION_ID_HEADER)?.header?.value;
}

describe('a reload that changes tracing', () => {
  it('starts and stops the tracer provider, and the decision id follows', async () => {
    const exporter = new InMemorySpanExporter();
    const file = writeSidecarConfig(BASE);
    const sidecar = await serve({ loaded: loadConfigFile(file), logger: createLogger({ level: 'silent' }), spanExporter: exporter });
    running.push(sidecar);
    const client = sidecarClient(sidecar.grpcPort);
    try {
      const untraced = decisionIdOf(await client.check(httpCheck('GET', '/v1/status', {})));
      expect(untraced).toMatch(/^[0-9a-f]{32}$/);
      expect(exporter.getFinishedSpans()).toHaveLength(0);

      writeFileSync(file, JSON.stringify(TRACED));
      await sidecar.reload('test');
      const traced = decisionIdOf(await client.check(httpCheck('GET', '/v1/status', {})));
      const [span] = exporter.getFinishedSpans().filter((finished) => finished.kind === SpanKind.SERVER);
      expect(span?.spanContext().traceId).toBe(traced);
      expect(span?.resource.attributes['service.name']).toBe('reload-test');

      writeFileSync(file, JSON.stringify(BASE));
      await sidecar.reload('test');
      const after = decisionIdOf(await client.check(httpCheck('GET', '/v1/status', {})));
      expect(after).toMatch(/^[0-9a-f]{32}$/);
      // The provider of the traced configuration was shut down (its exporter with it), and the
      // untraced configuration made no span.
      await expect.poll(() => exporter.getFinishedSpans().length).toBe(0);
    } finally {
      client.close();
    }
  });
});
