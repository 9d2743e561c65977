/**
 * Decision → CheckResponse. Allow carries headers to set (always overwrite) and remove; deny
 * carries the HTTP status, a short body and `x-jwtauth-reason`, and for a gRPC call its
 * `grpc-status`, which Envoy puts on the reply its client reads.
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { DENY_REASONS } from '../core/decision.js';
import type { Allow, Decision, Deny, DenyStatus, HeaderList } from '../core/decision.js';
import type { CheckResponse } from '../generated/envoy/service/auth/v3/CheckResponse.js';
import type { HeaderValueOption } from '../generated/envoy/config/core/v3/HeaderValueOption.js';

export const REASON_HEADER = 'x-jwtauth-reason';
/**
 * Names this decision in logs and traces: set on every allow (toward the app) and every denial
 * (toward the caller). Set with overwrite on allows, so a value a client sent never survives.
 */
export const DECISION_ID_HEADER = 'x-jwtauth-decision-id';

/**
 * `append: false` on every header: append_action support on OkHttpResponse was merged and then
 * reverted upstream, so the deprecated BoolValue is the only spelling every Envoy honours.
 */
const OVERWRITE = Object.freeze({ value: false });

/** The decision id goes last, where answer-encoder.ts writes each Check's own id over a placeholder. */
function headerOptions(headers: HeaderList, decisionId?: string): HeaderValueOption[] {
  const options: HeaderValueOption[] = new Array(headers.length + (decisionId === undefined ? 0 : 1));
  for (let i = 0; i < headers.length; i++) {
    const [key, value] = headers[i] as readonly [string, string];
    options[i] = { header: { key, value }, append: OVERWRITE };
  }
  if (decisionId !== undefined) options[headers.length] = { header: { key: DECISION_ID_HEADER, value: decisionId }, append: OVERWRITE };
  return options;
}

/**
 * The gRPC status of a denial, by its HTTP status: on CheckResponse.status (where Envoy only tells
 * OK from not-OK) and, for a gRPC call, the status its client receives. Unauthenticated 16,
 * permission 7, the request itself 3 (8 when too large), outages 14.
 */
function grpcCodeFor(status: DenyStatus): number {
  switch (status) {
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 503:
      return GrpcStatus.UNAVAILABLE;
    case 400:
    case 415:
    case 431:
      return GrpcStatus.INVALID_ARGUMENT;
    case 413:
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 500:
      return GrpcStatus.INTERNAL;
    default:
      return GrpcStatus.PERMISSION_DENIED;
  }
}

function renderDeny(decision: Deny, decisionId: string | undefined, grpc: boolean): CheckResponse {
  const headers: HeaderList = [
    [REASON_HEADER, decision.reason],
    ['content-type', 'text/plain; charset=utf-8'],
    // Envoy answers a denied gRPC call with this status when the denial sets it; left to itself it
    // maps the HTTP status (400 → 13 INTERNAL, 413/415 → 2 UNKNOWN), which tells a client to retry
    // or not for the wrong reasons. Its grpc-message stays the body.
    ...(grpc ? ([['grpc-status', String(grpcCodeFor(decision.status))]] as const) : []),
    ...decision.headers,
  ];
  return {
    status: { code: grpcCodeFor(decision.status), message: decision.reason },
    denied_response: {
      status: { code: decision.status },
      headers: headerOptions(headers, decisionId),
      // No trailing newline: gRPC callers receive the body as grpc-message.
      body: `${decision.reason}: ${DENY_REASONS[decision.reason].text}`,
    },
  };
}

/**
 * Envoy applies `headers_to_remove` after the headers it sets, so a name in both lists would lose
 * the value just set. Decisions list every identity header for removal (so a forged one never
 * survives) and set some of them; the set, with append=false, already replaces a forged value.
 */
function removalsNotSet(decision: Allow, decisionId: string | undefined): string[] {
  const { setHeaders, removeHeaders } = decision;
  if ((setHeaders.length === 0 && decisionId === undefined) || removeHeaders.length === 0) return removeHeaders as string[];
  return removeHeaders.filter((name) => !(decisionId !== undefined && name === DECISION_ID_HEADER) && !setHeaders.some(([set]) => set === name));
}

/**
 * `decisionId` is left out only by callers that render a decision outside a Check (tests,
 * tools); every answer the Check handler sends carries one. `grpc`: the request denied is a gRPC
 * call, whose client reads the denial's gRPC status. The Check path renders an answer once per
 * distinct decision (answer-encoder.ts memoizes its bytes), so this builds it plainly.
 */
export function renderCheckResponse(decision: Decision, decisionId?: string, grpc = false): CheckResponse {
  if (decision.kind === 'deny') return renderDeny(decision, decisionId, grpc);
  return {
    status: { code: GrpcStatus.OK },
    ok_response: {
      headers: headerOptions(decision.setHeaders, decisionId),
      headers_to_remove: removalsNotSet(decision, decisionId),
    },
  };
}
