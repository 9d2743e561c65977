/**
 * The ext_authz Check handler: parse, ask the decision core, render. Deliberately thin. It never
 * throws and never answers with a gRPC error for bad input (Envoy would turn that into
 * status_on_error and lose the reason); unexpected failures become an `internal_error` denial.
 */
import type { IncomingHttpHeaders } from 'node:http2';
import { deny, withDetail } from '../core/decision.js';
import type { Awaitable } from '../core/awaitable.js';
import type { Decision } from '../core/decision.js';
import type { DecisionObserver } from '../core/decision-event.js';
import type { Authorizer } from '../core/ports.js';
import type { Direction, RequestContext } from '../core/request-context.js';
import type { CheckRequestView } from './check-request-decoder.js';
import type { Tracing } from '../observability/tracing.js';
import { startCheckSpan } from '../observability/tracing-check.js';
import type { CheckSpan } from '../observability/tracing-check.js';
import { newDecisionId } from '../observability/tracing-ids.js';
import { AnswerEncoder } from './answer-encoder.js';
import { parseCheckRequest, routeDirection } from './request-context-parser.js';
import type { ParserLimits } from './request-context-parser.js';

/** What a Check needs from the live configuration; swapped as a whole on reload. */
export interface CheckPipeline {
  readonly authorizer: Authorizer;
  readonly limits: ParserLimits;
  /** Present only when the configuration enables tracing: without it a Check creates no span. */
  readonly tracing?: Tracing;
}

/** A pipeline held for one Check: the configuration it was built from stays open until release(). */
export interface PipelineLease {
  readonly pipeline: CheckPipeline;
  release(): void;
}

export interface CheckHandlerOptions {
  /** Called once per request, so a reload never mixes two configurations in one decision. */
  readonly acquire: () => PipelineLease;
  readonly observe: DecisionObserver;
  readonly onUnexpectedError: (error: unknown) => void;
  /**
   * The direction of every Check this handler serves (`server.listeners[].direction`), bound once
   * per listener; undefined on `server.grpcAddress`, where each route's context_extensions say.
   */
  readonly listenerDirection?: Direction;
}

/**
 * One Check as the listener (grpc-server.ts) hands it over: the decoded request, the call's gRPC
 * metadata (its HTTP/2 request headers, where Envoy puts its own trace context), and where the
 * answer goes: the CheckResponse message, framed. `respond` is called exactly once.
 */
export type CheckHandler = (request: CheckRequestView, metadata: IncomingHttpHeaders, respond: (framed: Buffer) => void) => void;

export function createCheckHandler(options: CheckHandlerOptions): CheckHandler {
  const { observe, onUnexpectedError, listenerDirection } = options;
  const answers = new AnswerEncoder();
  return (checkRequest, metadata, respond) => {
    // performance.now(): a double, where hrtime.bigint() allocates two BigInts per Check.
    const started = performance.now();
    let request: RequestContext | undefined;
    let direction: Direction | 'unknown' = 'unknown';
    let lease: PipelineLease | undefined;
    let span: CheckSpan | undefined;
    const finish = (decision: Decision): void => {
      // Released once, before anything that could throw, so a retired configuration can close.
      const held = lease;
      lease = undefined;
      held?.release();
      const seconds = (performance.now() - started) / 1000;
      const decisionId = span?.decisionId ?? newDecisionId();
      try {
        const event = { request, direction, decision, decisionId, seconds };
        span?.end(event);
        observe(event);
      } catch (error) {
        onUnexpectedError(error);
      }
      respond(answers.encode(decision, decisionId, request?.grpc !== undefined));
    };
    const failed = (error: unknown): void => {
      onUnexpectedError(error);
      finish(deny('internal_error'));
    };

    // Only deciding is guarded: an answer that fails to go out must not be answered twice.
    let decided: Awaitable<Decision>;
    try {
      lease = options.acquire();
      const pipeline = lease.pipeline;
      const parsed = parseCheckRequest(checkRequest, pipeline.limits, listenerDirection);
      if (pipeline.tracing !== undefined) span = startCheckSpan(pipeline.tracing, metadata, parsed.ok ? parsed.value : undefined, started);
      if (parsed.ok) {
        const parsedRequest = parsed.value;
        request = parsedRequest;
        direction = parsedRequest.direction;
        decided = span === undefined ? pipeline.authorizer.decide(parsedRequest) : span.run(() => pipeline.authorizer.decide(parsedRequest));
      } else {
        // Counted under the direction it goes, when that much could be read.
        const routed = routeDirection(checkRequest, listenerDirection);
        direction = routed.ok ? routed.value : (listenerDirection ?? 'unknown');
        decided = deny(parsed.reason, withDetail({}, parsed.detail));
      }
    } catch (error) {
      onUnexpectedError(error);
      decided = deny('internal_error');
    }
    // Decided from cached answers, the decision is here already: answered without a microtask.
    if (decided instanceof Promise) decided.then(finish, failed);
    else finish(decided);
  };
}
