/**
 * A CheckBulkPermissions call that carries the checks of several traced Checks: its span sits in
 * the first one's trace and links every other's permission-check span, so a Check that waited for
 * a call another Check sent can be followed to it. Against a real SpiceDB (memory datastore).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PermissionQuery } from '../../src/core/ports.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Tracing, runInSpan } from '../../src/observability/tracing.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { createPermissionChecker } from '../../src/spicedb/permission-checker.js';
import { TracingChecker } from '../../src/spicedb/tracing-checker.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';

const SCHEMA = `
definition user {}
definition cloud {
    relation admin: user
    permission view = admin
}
`;

let server: SpicedbServer;

beforeAll(async () => {
  server = await startSpicedb({ schema: SCHEMA, relationships: ['c1', 'c2', 'c3'].map((cloud) => `cloud:${cloud}#admin@user:alice`).join('\n') });
});
afterAll(async () => {
  await server?.stop();
});

const view = (cloud: string): PermissionQuery => ({
  resource: { type: 'cloud', id: cloud },
  permission: 'view',
  subject: { type: 'user', id: 'alice' },
  consistency: { kind: 'minimize_latency' },
});

describe('the span of a batched SpiceDB call', () => {
  it('is a child of the first traced Check it carries and links the other traced ones', async () => {
    process.env.IT_BATCH_SPICEDB_KEY = server.presharedKey;
    // Checks asked in one turn of the event loop leave in one call.
    const config = spicedbSchema.parse({
      endpoint: server.endpoint,
      tls: false,
      presharedKey: { env: 'IT_BATCH_SPICEDB_KEY' },
      decisionCache: { ttlMs: 0 },
      batch: { maxConcurrentCalls: 1, maxItems: 10 },
    });
    const backend = await createPermissionChecker(config, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: mkdtempSync(join(tmpdir(), 'batch-')) });
    const checker = new TracingChecker(backend);
    const exporter = new InMemorySpanExporter();
    const tracing = new Tracing({ endpoint: 'http://127.0.0.1:1', sampler: 'always_on', ratio: 1, serviceName: 'test' }, { exporter });
    try {
      const traced = (cloud: string) => {
        const span = tracing.tracer.startSpan(`Check ${cloud}`, { kind: SpanKind.SERVER });
        return { span, answer: runInSpan(tracing.tracer, span, () => checker.check(view(cloud))) };
      };
      const first = traced('c1');
      const untraced = checker.check(view('c2'));
      const third = traced('c3');
      for (const answer of [first.answer, untraced, third.answer]) expect(await answer).toMatchObject({ ok: true, value: { permissionship: 'allowed' } });
      first.span.end();
      third.span.end();

      const spans = exporter.getFinishedSpans();
      const permissionSpanOf = (check: { span: { spanContext(): { spanId: string } } }): ReadableSpan => {
        const found = spans.find((span) => span.name === 'jwtauth.check_permission' && span.parentSpanContext?.spanId === check.span.spanContext().spanId);
        expect(found).toBeDefined();
        return found!;
      };
      const calls = spans.filter((span) => span.name === 'authzed.api.v1.PermissionsService/CheckBulkPermissions');
      expect(calls).toHaveLength(1);
      const call = calls[0]!;
      expect(call.attributes['jwtauth.spicedb.checks']).toBe(3);
      // Below the first Check's permission check; a link to the third's, in its own trace; none for the untraced one.
      expect(call.parentSpanContext?.spanId).toBe(permissionSpanOf(first).spanContext().spanId);
      expect(call.links.map((link) => link.context.spanId)).toEqual([permissionSpanOf(third).spanContext().spanId]);
      expect(call.links[0]!.context.traceId).toBe(third.span.spanContext().traceId);
      expect(third.span.spanContext().traceId).not.toBe(first.span.spanContext().traceId);
    } finally {
      await backend.close();
      await tracing.close();
    }
  });
});
