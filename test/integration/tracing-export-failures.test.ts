/**
 * A collector that is down must not lose spans in silence: what fails to export is counted in
 * jwtauth_tracing_spans_dropped_total and said once in the log until exports work again. The
 * failing export is real (OTLP/gRPC to a port nothing listens on); the recovery is an exporter
 * that fails and then succeeds on demand, since one OTLP exporter cannot be pointed elsewhere.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../dev/ports.js';
import { WatchedSpanExporter } from '../../src/observability/export-watch.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

function finishedSpans(count: number): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(memory)] }).getTracer('test');
  for (let i = 0; i < count; i++) tracer.startSpan(`span ${i}`).end();
  return memory.getFinishedSpans();
}

function watch(inner: SpanExporter) {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = createLogger({ level: 'info', destination: { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) } });
  const metrics = new Metrics({ processMetrics: false });
  const dropped = async (): Promise<number> => (await metrics.tracingSpansDropped.get()).values[0]?.value ?? 0;
  return { exporter: new WatchedSpanExporter(inner, 'http://collector:4317', { metrics, logger }), lines, dropped };
}

const exported = (exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportResult> => new Promise((resolve) => exporter.export(spans, resolve));

describe('span export failures', () => {
  it('counts the spans a down collector dropped, and warns once, not per batch', async () => {
    const otlp = new OTLPTraceExporter({ url: `http://127.0.0.1:${await freePort()}`, timeoutMillis: 2_000 });
    const { exporter, lines, dropped } = watch(otlp);
    try {
      expect((await exported(exporter, finishedSpans(3))).code).toBe(ExportResultCode.FAILED);
      expect((await exported(exporter, finishedSpans(2))).code).toBe(ExportResultCode.FAILED);
      expect(await dropped()).toBe(5);
      expect(lines.filter((line) => line.level === 40).map((line) => line.msg)).toEqual([expect.stringMatching(/^span export failed/)]);
    } finally {
      await exporter.shutdown();
    }
  });

  it('says when exports work again, and warns again at the next failure', async () => {
    let failing = true;
    const inner: SpanExporter = {
      export: (_spans, done) => done(failing ? { code: ExportResultCode.FAILED, error: new Error('14 UNAVAILABLE') } : { code: ExportResultCode.SUCCESS }),
      shutdown: () => Promise.resolve(),
    };
    const { exporter, lines, dropped } = watch(inner);
    await exported(exporter, finishedSpans(1));
    failing = false;
    await exported(exporter, finishedSpans(4));
    failing = true;
    await exported(exporter, finishedSpans(1));
    expect(await dropped()).toBe(2);
    expect(lines.map((line) => line.msg.split(';')[0])).toEqual(['span export failed', 'span export works again', 'span export failed']);
  });
});
