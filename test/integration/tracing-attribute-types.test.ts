/**
 * Span attributes keep their types: a number is exported as a number (OTLP intValue), so a trace
 * backend can compare and aggregate it (`jwtauth.http_status >= 500`), not as its text. Runs the
 * real serve() on the embedded SpiceDB, spans kept in memory.
 */
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSidecarConfig } from '../../dev/sidecar.js';
import { loadConfigFile } from '../../src/config/load.js';
import { createLogger } from '../../src/observability/logger.js';
import { serve } from '../../src/serve.js';
import type { RunningSidecar } from '../../src/serve.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';

let sidecar: RunningSidecar | undefined;
afterAll(async () => {
  await sidecar?.close();
});

/** Attributes whose value is a count or a status code. */
const NUMERIC = ['jwtauth.http_status', 'jwtauth.spicedb_checks'];

describe('span attribute types', () => {
  it('exports numeric attributes as numbers, and nothing numeric as text', async () => {
    const exporter = new InMemorySpanExporter();
    const file = writeSidecarConfig({
      server: { grpcAddress: '127.0.0.1:0', adminAddress: '127.0.0.1:0', drainSeconds: 0 },
      tracing: { enabled: true, sampler: 'always_on', serviceName: 'attribute-types' },
      // One public route: an allow (200), and any other path a denial (403).
      inbound: { default: 'deny', rules: [{ name: 'status', match: { http: { path: '/v1/status' } }, auth: 'none' }] },
    });
    sidecar = await serve({ loaded: loadConfigFile(file), logger: createLogger({ level: 'silent' }), spanExporter: exporter });
    const client = sidecarClient(sidecar.grpcPort);
    try {
      await client.check(httpCheck('GET', '/v1/status', {}));
      await client.check(httpCheck('GET', '/v1/nowhere', {}));
    } finally {
      client.close();
    }
    const spans = exporter.getFinishedSpans().filter((span) => span.kind === SpanKind.SERVER);
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(typeof span.attributes['jwtauth.http_status'], JSON.stringify(span.attributes)).toBe('number');
      for (const [key, value] of Object.entries(span.attributes)) {
        if (NUMERIC.includes(key)) expect(typeof value, key).toBe('number');
        // A value that is only digits is a number sent as text.
        else expect(typeof value === 'string' && /^\d+$/.test(value), `${key}: ${String(value)}`).toBe(false);
      }
    }
    expect(spans.map((span) => span.attributes['jwtauth.http_status']).sort()).toEqual([200, 403]);
  });
});
