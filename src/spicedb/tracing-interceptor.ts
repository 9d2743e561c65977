/**
 * The span of each call to SpiceDB (SpanKind CLIENT, named after the RPC), and the `traceparent`
 * that lets SpiceDB's own spans join the trace. A gRPC client interceptor, added to a call's
 * options only when the call is made for a traced Check: untraced calls get plain options, so
 * with tracing off nothing is intercepted.
 *
 * A CheckBulkPermissions call carries the checks of every Check that queued while the previous
 * call was in flight (check-batcher.ts). Its span sits in the trace of the first traced Check it
 * carries, says how many checks it carried, and links the permission-check span of every other
 * traced Check in it (OpenTelemetry's pattern for batched work), so a Check that waited for a call
 * started by another can be followed to it.
 */
import { InterceptingCall, status as GrpcStatus } from '@grpc/grpc-js';
import type { CallOptions, Interceptor, Metadata, StatusObject } from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Link } from '@opentelemetry/api';
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

function checksIn(message: unknown): number | undefined {
  const items = (message as { items?: unknown } | null)?.items;
  return Array.isArray(items) ? items.length : undefined;
}

function tracingInterceptor(active: ActiveTrace, links: Link[], endpoint: string): Interceptor {
  const colon = endpoint.lastIndexOf(':');
  const address = { [ATTR_SERVER_ADDRESS]: endpoint.slice(0, colon).replace(/^\[(.*)\]$/, '$1'), [ATTR_SERVER_PORT]: Number(endpoint.slice(colon + 1)) };
  return (options, nextCall) => {
    const method = options.method_definition.path.replace(/^\//, '');
    const span = active.tracer.startSpan(
      method,
      { kind: SpanKind.CLIENT, links, attributes: { [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC, [ATTR_RPC_METHOD]: method, ...address } },
      active.context,
    );
    const context = trace.setSpan(active.context, span);
    return new InterceptingCall(nextCall(options), {
      start(metadata: Metadata, _listener, next) {
        injectContextInto(context, (name, value) => metadata.set(name, value));
        next(metadata, {
          onReceiveStatus(status: StatusObject, nextStatus) {
            span.setAttribute(ATTR_RPC_STATUS_CODE, STATUS_NAMES[status.code] ?? String(status.code));
            // Only the code: SpiceDB's error text may quote the request.
            if (status.code !== GrpcStatus.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: STATUS_NAMES[status.code] });
            span.end();
            nextStatus(status);
          },
        });
      },
      sendMessage(message: unknown, next) {
        const checks = checksIn(message);
        if (checks !== undefined) span.setAttribute('jwtauth.spicedb.checks', checks);
        next(message);
      },
    });
  };
}

/**
 * Options for one SpiceDB call: with the tracing interceptor when it carries a traced Check's
 * check. `traces` are those of the checks it carries (a batched call), else the caller's.
 */
export function spicedbCallOptions(deadline: number, endpoint: string, traces: readonly (ActiveTrace | undefined)[]): CallOptions {
  let parent: ActiveTrace | undefined;
  const links: Link[] = [];
  for (const traced of traces) {
    if (traced === undefined) continue;
    if (parent === undefined) parent = traced;
    else {
      const context = trace.getSpanContext(traced.context);
      if (context !== undefined) links.push({ context });
    }
  }
  return parent === undefined ? { deadline } : { deadline, interceptors: [tracingInterceptor(parent, links, endpoint)] };
}
