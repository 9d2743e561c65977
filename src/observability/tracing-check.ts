/**
 * The span of one ext_authz Check (SpanKind SERVER, named after the RPC as the semantic
 * conventions ask). Its parent, in order:
 *   1. the `traceparent` in the Check call's gRPC metadata: Envoy's ext_authz span, sent when
 *      Envoy traces the request;
 *   2. the `traceparent` the client sent, among the request headers in the CheckRequest;
 *   3. none: the span starts a trace.
 * Its trace id is the decision id. Attributes describe the decision, never a credential: the
 * subject's type and issuer name are recorded, the subject id is not (it is personal data; the
 * decision log, found by decision id, has it), and no header value is ever copied except the
 * method, path and authority.
 */
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Attributes, Context, Span } from '@opentelemetry/api';
import type { IncomingHttpHeaders } from 'node:http2';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_RPC_METHOD,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM_NAME,
  ATTR_SERVER_ADDRESS,
  ATTR_URL_PATH,
  RPC_SYSTEM_NAME_VALUE_GRPC,
} from '@opentelemetry/semantic-conventions';
import type { DecisionEvent } from '../core/decision-event.js';
import type { RequestContext } from '../core/request-context.js';
import { extractContext, runInSpan } from './tracing.js';
import type { Tracing } from './tracing.js';

const CHECK_METHOD = 'envoy.service.auth.v3.Authorization/Check';

/** One Check's span, from the moment its request was read to its answer. */
export interface CheckSpan {
  /** The span's trace id: the decision id of this Check. */
  readonly decisionId: string;
  /** Runs the decision inside the span, so the decorators' spans and outgoing calls join its trace. */
  run<T>(work: () => T): T;
  end(event: DecisionEvent): void;
}

function firstText(metadata: IncomingHttpHeaders, name: string): string | undefined {
  const value = metadata[name];
  return typeof value === 'string' ? value : value?.[0];
}

function parentOf(metadata: IncomingHttpHeaders, request: RequestContext | undefined): Context {
  if (metadata.traceparent !== undefined) return extractContext((name) => firstText(metadata, name));
  const headers = request?.headers;
  return extractContext((name) => headers?.get(name));
}

/** The request being authorized; `server.address` without the port, as the conventions define it. */
function requestAttributes(request: RequestContext | undefined): Attributes {
  if (request === undefined) return {};
  const host = request.authority.replace(/:\d+$/, '');
  return {
    [ATTR_HTTP_REQUEST_METHOD]: request.method,
    [ATTR_URL_PATH]: request.path,
    ...(host === '' ? {} : { [ATTR_SERVER_ADDRESS]: host }),
    'jwtauth.direction': request.direction,
  };
}

function decisionAttributes(event: DecisionEvent, span: Span): void {
  const { decision } = event;
  const facts = decision.facts;
  const attributes: Attributes = {
    // The Check RPC itself always answers OK; the decision travels inside the CheckResponse.
    [ATTR_RPC_STATUS_CODE]: 'OK',
    'jwtauth.direction': event.direction,
    'jwtauth.decision': decision.kind,
    'jwtauth.reason': decision.reason,
    'jwtauth.http_status': decision.kind === 'deny' ? decision.status : 200,
  };
  if (facts.rule !== undefined) attributes['jwtauth.rule'] = facts.rule;
  if (facts.subjectType !== undefined) attributes['jwtauth.subject_type'] = facts.subjectType;
  if (facts.issuer !== undefined) attributes['jwtauth.issuer'] = facts.issuer;
  if (facts.tokenKind !== undefined) attributes['jwtauth.token_kind'] = facts.tokenKind;
  if (facts.checks !== undefined) attributes['jwtauth.spicedb_checks'] = facts.checks.length;
  if (facts.dryRun === true) attributes['jwtauth.dry_run'] = true;
  span.setAttributes(attributes);
  // A denial is the sidecar doing its job; only failures to decide (5xx) mark the span as an error.
  if (decision.kind === 'deny' && decision.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
}

/**
 * Starts the span of a Check whose request was read at `startedAt` (performance.now() time) and
 * parsed into `request` (undefined when it could not be).
 */
export function startCheckSpan(tracing: Tracing, metadata: IncomingHttpHeaders, request: RequestContext | undefined, startedAt: number): CheckSpan {
  // No sampler here reads attributes, so they are built only for a span that records.
  const span = tracing.tracer.startSpan(CHECK_METHOD, { kind: SpanKind.SERVER, startTime: performance.timeOrigin + startedAt }, parentOf(metadata, request));
  const recording = span.isRecording();
  if (recording) span.setAttributes({ [ATTR_RPC_SYSTEM_NAME]: RPC_SYSTEM_NAME_VALUE_GRPC, [ATTR_RPC_METHOD]: CHECK_METHOD, ...requestAttributes(request) });
  return {
    decisionId: span.spanContext().traceId,
    // A Check the sampler dropped runs outside any trace context: its decorators record nothing
    // and nothing is propagated. Entering the context would cost far more than the span: the first
    // AsyncLocalStorage.run() turns on Node 20's promise hooks for every promise from then on.
    run: (work) => (recording ? runInSpan(tracing.tracer, span, work) : work()),
    end(event) {
      if (!recording) return;
      decisionAttributes(event, span);
      span.end();
    },
  };
}

