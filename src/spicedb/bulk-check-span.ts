/**
 * The span of each CheckBulkPermissions call (SpanKind CLIENT, named after the RPC), and the
 * `traceparent` that lets SpiceDB's own spans join the trace. Started only when the call carries
 * a traced Check's check: for an untraced call nothing is made, not even the links array.
 *
 * A call carries the checks of every Check that queued while the previous calls were in flight
 * (check-batcher.ts). Its span sits in the trace of the first traced Check it carries, says how
 * many checks it carried, and links the permission-check span of every other traced Check in it
 * (OpenTelemetry's pattern for batched work), so a Check that waited for a call started by another
 * can be followed to it. Each attempt of a retried call is a span of its own.
 */
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Attributes, Link } from '@opentelemetry/api';
import { status as GrpcStatus } from '@grpc/grpc-js';
import {
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
import { injectContextInto } from '../observability/tracing.js';
import type { ActiveTrace } from '../observability/tracing.js';

const STATUS_NAMES: Readonly<Record<number, string>> = Object.fromEntries(Object.entries(GrpcStatus).map(([name, code]) => [code, name]));

/** A started call span: the headers that carry it to the server, and its end with the call's gRPC status. */
export interface CallSpan {
  readonly headers: Readonly<Record<string, string>>;
  end(code: number): void;
}

/** The attributes every span of calls to `method` at `endpoint` (`host:port`) has; made once per client. */
export function callSpanAttributes(method: string, endpoint: string): Attributes {
  const colon = endpoint.lastIndexOf(':');
  return {
    [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC,
    [ATTR_RPC_METHOD]: method,
    [ATTR_SERVER_ADDRESS]: endpoint.slice(0, colon).replace(/^\[(.*)\]$/, '$1'),
    [ATTR_SERVER_PORT]: Number(endpoint.slice(colon + 1)),
  };
}

/**
 * The span of a call carrying `checks` checks whose Checks' traces are `traces` (undefined for an
 * untraced one); undefined when none is traced.
 */
export function startCallSpan(method: string, attributes: Attributes, checks: number, traces: readonly (ActiveTrace | undefined)[]): CallSpan | undefined {
  let parent: ActiveTrace | undefined;
  let links: Link[] | undefined;
  for (const traced of traces) {
    if (traced === undefined) continue;
    if (parent === undefined) {
      parent = traced;
      continue;
    }
    const context = trace.getSpanContext(traced.context);
    if (context !== undefined) (links ??= []).push({ context });
  }
  if (parent === undefined) return undefined;
  const span = parent.tracer.startSpan(
    method,
    { kind: SpanKind.CLIENT, attributes: { ...attributes, 'jwtauth.spicedb.checks': checks }, ...(links ? { links } : {}) },
    parent.context,
  );
  const headers: Record<string, string> = {};
  injectContextInto(trace.setSpan(parent.context, span), (name, value) => {
    headers[name] = value;
  });
  return {
    headers,
    end(code) {
      span.setAttribute(ATTR_RPC_STATUS_CODE, STATUS_NAMES[code] ?? String(code));
      // Only the code: SpiceDB's error text may quote the request.
      if (code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: STATUS_NAMES[code] });
      span.end();
    },
  };
}
