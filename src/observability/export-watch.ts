/**
 * Decorator around a span exporter: what fails to export is counted
 * (`jwtauth_tracing_spans_dropped_total`) and said once in the log, not once per batch, until an
 * export succeeds again, which is said too. Without it a collector that is down loses every span
 * in silence: the SDK drops a failed batch and tells no one.
 */
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export class WatchedSpanExporter implements SpanExporter {
  #failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly endpoint: string,
    private readonly deps: { readonly metrics: Metrics; readonly logger: Logger },
  ) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.#failing) this.deps.logger.info({ endpoint: this.endpoint }, 'span export works again');
        this.#failing = false;
      } else {
        this.deps.metrics.tracingSpansDropped.inc(spans.length);
        if (!this.#failing) {
          this.deps.logger.warn({ endpoint: this.endpoint, err: result.error, spans: spans.length }, 'span export failed; spans are dropped until the collector answers (counted in jwtauth_tracing_spans_dropped_total)');
        }
        this.#failing = true;
      }
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
