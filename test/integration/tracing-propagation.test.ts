/**
 * Trace context leaves the sidecar with the calls a traced Check makes: the token service gets a
 * `traceparent` HTTP header naming the token span (over real mutual TLS), and a call made outside
 * any traced Check carries none. SpiceDB's `traceparent` is shown through a real SpiceDB in
 * test/e2e/tracing-envoy.test.ts.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { Tracing, inChildSpan, runInSpan } from '../../src/observability/tracing.js';
import { createTokenSource } from '../../src/tokens/token-source.js';
import type { OutboundTokenSource } from '../../src/tokens/token-source.js';
import { TracingTokenSource } from '../../src/tokens/tracing-token-source.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { exchangeTokensConfig } from '../support/exchange-source.js';

let pki: TestPki;
let server: Server;
let source: OutboundTokenSource;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  pki = createTestPki(['gwadmin']);
  server = createServer(
    { cert: readFileSync(pki.server.certFile), key: readFileSync(pki.server.keyFile), ca: readFileSync(pki.caFile), requestCert: true, rejectUnauthorized: true },
    (request, response) => {
      seen.push(request.headers);
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ access_token: 'opaque-service-token-value', token_type: 'Bearer', expires_in: 300 }));
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const config = exchangeTokensConfig(pki, `https://127.0.0.1:${(server.address() as AddressInfo).port}/token`);
  source = await createTokenSource(config, { serviceName: 'gwadmin', metrics: new Metrics({ processMetrics: false }), logger: pino({ level: 'silent' }), baseDir: pki.dir, uncached: true });
});

afterAll(async () => {
  await source?.close();
  await new Promise((resolve) => server?.close(resolve));
  pki?.remove();
});

describe('trace context toward the token service', () => {
  it('is the traceparent of the token span, when a traced Check asks for a token', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = new Tracing({ endpoint: 'http://127.0.0.1:1', sampler: 'always_on', ratio: 1, serviceName: 'test' }, { exporter });
    const traced = new TracingTokenSource(source);
    const check = tracing.tracer.startSpan('check', { kind: SpanKind.SERVER });
    const result = await runInSpan(tracing.tracer, check, () => traced.issue({ kind: 'service', audience: 'vmcontroller' }));
    check.end();
    expect(result.ok).toBe(true);
    const tokenSpan = exporter.getFinishedSpans().find((span) => span.name === 'jwtauth.issue_token');
    expect(tokenSpan?.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    expect(seen.at(-1)?.traceparent).toBe(`00-${check.spanContext().traceId}-${tokenSpan?.spanContext().spanId}-01`);
    expect(JSON.stringify(tokenSpan?.attributes)).not.toContain('opaque-service-token-value');
    await tracing.close();
  });

  it('is absent outside a traced Check', async () => {
    await inChildSpan('not traced', SpanKind.INTERNAL, {}, async () => source.issue({ kind: 'service', audience: 'vmcontroller' }));
    expect(seen.at(-1)?.traceparent).toBeUndefined();
  });
});
