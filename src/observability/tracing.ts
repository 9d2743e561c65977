/**
 * The tracer of one `tracing` configuration, and the trace context of the Check being decided.
 *
 * A `Tracing` owns an OpenTelemetry tracer provider (sampler, OTLP gRPC exporter, batching). It is
 * an adapter like the token verifier (lifecycle/adapters.ts): built only when tracing is enabled,
 * kept across reloads that leave the section alone, and closed (flushing what it holds) once the
 * Checks of the configuration it served have finished.
 *
 * Nothing here is global: no OpenTelemetry global tracer provider, context manager or propagator
 * is registered, so a reload that changes or removes `tracing` swaps or drops everything at once
 * and a library that registers globals of its own is not affected. The context of the running
 * Check travels in this module's AsyncLocalStorage, which Node only starts tracking the first time
 * a traced Check runs: with tracing off it costs nothing.
 */
import type { Awaitable } from '../core/awaitable.js';
import { AsyncLocalStorage } from 'node:async_hooks';
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, Context, Span, TextMapGetter, TextMapSetter, Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import type { Sampler, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Closable } from '../core/ports.js';
import { WatchedSpanExporter } from './export-watch.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import type { TracingSettings } from './tracing-config.js';

const TRACER_NAME = 'jwtauth-sidecar';

function samplerFor(settings: TracingSettings): Sampler {
  switch (settings.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(settings.ratio);
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.ratio) });
  }
}

export interface TracingOptions {
  /**
   * Where finished spans go instead of OTLP, each exported as it ends (tests: the SDK's
   * InMemorySpanExporter; the bench: an exporter that drops them).
   */
  readonly exporter?: SpanExporter;
  /** Where failed exports are counted and told (export-watch.ts); a sidecar always gives them. */
  readonly watch?: { readonly metrics: Metrics; readonly logger: Logger };
}

export class Tracing implements Closable {
  readonly tracer: Tracer;
  // Never register()ed: no global provider, context manager or propagator (see above).
  readonly #provider: NodeTracerProvider;

  constructor(readonly settings: TracingSettings, options: TracingOptions = {}) {
    const otlp = (): SpanExporter => {
      const exporter = new OTLPTraceExporter({ url: settings.endpoint });
      return options.watch ? new WatchedSpanExporter(exporter, settings.endpoint, options.watch) : exporter;
    };
    const processor = options.exporter ? new SimpleSpanProcessor(options.exporter) : new BatchSpanProcessor(otlp());
    this.#provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: settings.serviceName }),
      sampler: samplerFor(settings),
      spanProcessors: [processor],
    });
    this.tracer = this.#provider.getTracer(TRACER_NAME);
  }

  /** Exports what is still buffered, then stops the exporter. */
  close(): Promise<void> {
    return this.#provider.shutdown();
  }
}

// ---------------------------------------------------------------- the running Check's context

/** The trace a piece of work belongs to: its context (parent span) and the tracer of its configuration. */
export interface ActiveTrace {
  readonly context: Context;
  readonly tracer: Tracer;
}

const activeTraces = new AsyncLocalStorage<ActiveTrace>();

/** Runs `work` (and everything it awaits or schedules) as part of `span`'s trace. */
export function runInSpan<T>(tracer: Tracer, span: Span, work: () => T): T {
  return activeTraces.run({ context: trace.setSpan(ROOT_CONTEXT, span), tracer }, work);
}

/** The trace of the Check this code runs for; undefined when tracing is off or outside a Check. */
export function activeTrace(): ActiveTrace | undefined {
  return activeTraces.getStore();
}

const NOT_RECORDING: Span = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

/**
 * Runs `work` in a child span of the active trace, ending the span when `work` settles: at once
 * when it answers synchronously (a cache hit), else when its promise does, so a traced Check
 * whose answers are cached stays synchronous like an untraced one. `work` sets the attributes it
 * learns. Outside a traced Check it runs `work` with a span that records nothing.
 */
export function inChildSpan<T>(name: string, kind: SpanKind, attributes: Attributes, work: (span: Span) => Awaitable<T>): Awaitable<T> {
  const active = activeTraces.getStore();
  if (active === undefined) return work(NOT_RECORDING);
  const span = active.tracer.startSpan(name, { kind, attributes }, active.context);
  const failed = (error: unknown): never => {
    // Ports answer failures as results; a throw is a bug, recorded without its message (it may quote input).
    span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.name : 'thrown' });
    span.end();
    throw error;
  };
  let result: Awaitable<T>;
  try {
    result = activeTraces.run({ context: trace.setSpan(active.context, span), tracer: active.tracer }, () => work(span));
  } catch (error) {
    return failed(error);
  }
  if (!(result instanceof Promise)) {
    span.end();
    return result;
  }
  return result.then((value) => {
    span.end();
    return value;
  }, failed);
}

/** inChildSpan for synchronous work (nothing awaited inside, so no context to carry). */
export function inChildSpanSync<T>(name: string, kind: SpanKind, work: (span: Span) => T): T {
  const active = activeTraces.getStore();
  if (active === undefined) return work(NOT_RECORDING);
  const span = active.tracer.startSpan(name, { kind }, active.context);
  try {
    return work(span);
  } finally {
    span.end();
  }
}

// ---------------------------------------------------------------- W3C trace context on the wire

const propagator = new W3CTraceContextPropagator();

/** Reads `traceparent`/`tracestate` from a lookup such as gRPC metadata or a header map. */
export function extractContext(read: (name: string) => string | undefined): Context {
  const getter: TextMapGetter<undefined> = {
    get: (_carrier, key) => read(key),
    keys: () => ['traceparent', 'tracestate'],
  };
  return propagator.extract(ROOT_CONTEXT, undefined, getter);
}

/** Writes `context`'s `traceparent` (and `tracestate`) with `write`. */
export function injectContextInto(context: Context, write: (name: string, value: string) => void): void {
  const setter: TextMapSetter<undefined> = { set: (_carrier, key, value) => write(key, value) };
  propagator.inject(context, undefined, setter);
}

/**
 * The headers that carry the active trace to a service this Check calls (the token service);
 * none outside a traced Check.
 */
export function activeTraceHeaders(): Record<string, string> {
  const active = activeTraces.getStore();
  if (active === undefined) return NO_HEADERS;
  const headers: Record<string, string> = {};
  injectContextInto(active.context, (name, value) => {
    headers[name] = value;
  });
  return headers;
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

