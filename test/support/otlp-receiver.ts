/**
 * An OTLP/gRPC trace receiver for the tracing test, and a way to read back one trace.
 *
 * Jaeger v2 (all-in-one, memory store, on ports of its own), which scripts/install-tools.sh builds;
 * only where that build failed, a stand-in that accepts
 * opentelemetry.proto.collector.trace.v1.TraceService/Export and keeps every span in memory. The
 * stand-in exists because the build depends on the Go module proxy and takes minutes, and one
 * failure there should not cost the whole suite its tracing test. The stand-in
 * declares only the fields the test reads (protobuf skips the rest); field numbers from
 * opentelemetry-proto (opentelemetry/proto/trace/v1/trace.proto, common/v1/common.proto).
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { freePort } from '../../dev/ports.js';
import { TOOLS_BIN, startProcess, waitFor } from '../../dev/processes.js';

const OTLP_TRACES = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  repeated KeyValue attributes = 9;
}
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; }
}
`;

export interface ReceivedSpan {
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  /** Empty for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  /** OTLP SpanKind: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly attributes: Readonly<Record<string, string | number | boolean>>;
}

interface DecodedValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: number | { toNumber(): number };
  double_value?: number;
}
interface DecodedKeyValue {
  key: string;
  value?: DecodedValue;
}
interface DecodedRequest {
  resource_spans?: Array<{
    resource?: { attributes?: DecodedKeyValue[] };
    scope_spans?: Array<{ spans?: Array<{ trace_id: Uint8Array; span_id: Uint8Array; parent_span_id: Uint8Array; name: string; kind: number; attributes?: DecodedKeyValue[] }> }>;
  }>;
}

function valueOf(value: DecodedValue | undefined): string | number | boolean {
  if (value?.string_value !== undefined) return value.string_value;
  if (value?.bool_value !== undefined) return value.bool_value;
  if (value?.double_value !== undefined) return value.double_value;
  const int = value?.int_value;
  return typeof int === 'object' ? int.toNumber() : (int ?? '');
}

function attributesOf(list: DecodedKeyValue[] | undefined): Record<string, string | number | boolean> {
  return Object.fromEntries((list ?? []).map((entry) => [entry.key, valueOf(entry.value)]));
}

export interface OtlpReceiver {
  /** `jaeger`, or `stand-in` when Jaeger is not installed. */
  readonly kind: 'jaeger' | 'stand-in';
  /** host:port of its OTLP gRPC receiver. */
  readonly endpoint: string;
  /** The spans of one trace received so far. */
  spansOf(traceId: string): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

const JAEGER = join(TOOLS_BIN, 'jaeger');

export function startOtlpReceiver(): Promise<OtlpReceiver> {
  return existsSync(JAEGER) ? startJaeger() : startStandIn();
}

async function startStandIn(): Promise<OtlpReceiver> {
  const root = protobuf.parse(OTLP_TRACES, { keepCase: true }).root;
  const requestType = root.lookupType('otlp.ExportTraceServiceRequest');
  const spans: ReceivedSpan[] = [];
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
  const server = new grpc.Server();
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestDeserialize: (bytes: Buffer) => requestType.toObject(requestType.decode(bytes)) as DecodedRequest,
        requestSerialize: () => Buffer.alloc(0),
        responseSerialize: () => Buffer.alloc(0),
        responseDeserialize: () => ({}),
      },
    },
    {
      Export: (call: grpc.ServerUnaryCall<DecodedRequest, object>, callback: grpc.sendUnaryData<object>) => {
        for (const resourceSpans of call.request.resource_spans ?? []) {
          const service = String(attributesOf(resourceSpans.resource?.attributes)['service.name'] ?? '');
          for (const scope of resourceSpans.scope_spans ?? []) {
            for (const span of scope.spans ?? []) {
              spans.push({
                service,
                traceId: hex(span.trace_id),
                spanId: hex(span.span_id),
                parentSpanId: hex(span.parent_span_id ?? new Uint8Array()),
                name: span.name,
                kind: span.kind,
                attributes: attributesOf(span.attributes),
              });
            }
          }
        }
        callback(null, {});
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    kind: 'stand-in',
    endpoint: `127.0.0.1:${port}`,
    spansOf: (traceId) => Promise.resolve(spans.filter((span) => span.traceId === traceId)),
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** Jaeger's api_v3 answer: OTLP JSON, ids in hex, enums as numbers. */
interface JaegerTrace {
  result?: {
    resourceSpans?: Array<{
      resource?: { attributes?: JsonKeyValue[] };
      scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind?: number | string; attributes?: JsonKeyValue[] }> }>;
    }>;
  };
}
interface JsonKeyValue {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
}

const SPAN_KINDS: Readonly<Record<string, number>> = { SPAN_KIND_INTERNAL: 1, SPAN_KIND_SERVER: 2, SPAN_KIND_CLIENT: 3, SPAN_KIND_PRODUCER: 4, SPAN_KIND_CONSUMER: 5 };

function jsonValue(value: JsonKeyValue['value']): string | number | boolean {
  if (value?.stringValue !== undefined) return value.stringValue;
  if (value?.boolValue !== undefined) return value.boolValue;
  if (value?.doubleValue !== undefined) return value.doubleValue;
  return value?.intValue === undefined ? '' : Number(value.intValue);
}

const jsonAttributes = (list: JsonKeyValue[] | undefined): Record<string, string | number | boolean> =>
  Object.fromEntries((list ?? []).map((entry) => [entry.key, jsonValue(entry.value)]));

/** Jaeger v2 all-in-one on free loopback ports: OTLP gRPC in, memory store, query API out. */
async function startJaeger(): Promise<OtlpReceiver> {
  const [otlp, query, queryGrpc, health] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const config = join(mkdtempSync(join(tmpdir(), 'jwtauth-jaeger-')), 'jaeger.yaml');
  writeFileSync(
    config,
    `service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter] }
  telemetry:
    metrics: { level: none }
extensions:
  healthcheckv2: { use_v2: true, http: { endpoint: "127.0.0.1:${health}" } }
  jaeger_storage: { backends: { memstore: { memory: { max_traces: 10000 } } } }
  jaeger_query:
    storage: { traces: memstore }
    http: { endpoint: "127.0.0.1:${query}" }
    grpc: { endpoint: "127.0.0.1:${queryGrpc}" }
receivers:
  otlp: { protocols: { grpc: { endpoint: "127.0.0.1:${otlp}" } } }
processors:
  batch: { timeout: 100ms }
exporters:
  jaeger_storage_exporter: { trace_storage: memstore }
`,
  );
  const jaeger = startProcess(JAEGER, ['--config', config], { name: 'jaeger' });
  const queryUrl = `http://127.0.0.1:${query}`;
  await waitFor(
    async () => (await fetch(`http://127.0.0.1:${health}/status`).catch(() => undefined))?.status === 200,
    30_000,
    () => `Jaeger did not become healthy:\n${jaeger.output()}`,
  );
  return {
    kind: 'jaeger',
    endpoint: `127.0.0.1:${otlp}`,
    async spansOf(traceId) {
      const response = await fetch(`${queryUrl}/api/v3/traces/${traceId}`);
      if (response.status !== 200) return [];
      const trace = (await response.json()) as JaegerTrace;
      return (trace.result?.resourceSpans ?? []).flatMap((resourceSpans) => {
        const service = String(jsonAttributes(resourceSpans.resource?.attributes)['service.name'] ?? '');
        return (resourceSpans.scopeSpans ?? []).flatMap((scope) =>
          (scope.spans ?? []).map((span) => ({
            service,
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: span.parentSpanId ?? '',
            name: span.name,
            kind: typeof span.kind === 'number' ? span.kind : (SPAN_KINDS[span.kind ?? ''] ?? 0),
            attributes: jsonAttributes(span.attributes),
          })),
        );
      });
    },
    close: () => jaeger.stop('SIGTERM', 5000),
  };
}
