/**
 * Decorator: one span per outbound token the decision asks for (service token, exchange,
 * on-behalf-of), as a child of the Check's span, cache hits included. A token service request
 * made for it is sent from inside this span and carries its `traceparent` (exchange-source.ts),
 * so the token service's own spans join the trace. Installed only when tracing is on (lifecycle/runtime.ts).
 * Attributes name the kind, source and audience, never a token, a user or a subject.
 */
import { SpanKind } from '@opentelemetry/api';
import type { TokenRequest, TokenResult, TokenSource } from '../core/ports.js';
import { andThen } from '../core/awaitable.js';
import type { Awaitable } from '../core/awaitable.js';
import { inChildSpan } from '../observability/tracing.js';

export class TracingTokenSource implements TokenSource {
  readonly name: string;

  constructor(private readonly inner: TokenSource) {
    this.name = inner.name;
  }

  issue(request: TokenRequest): Awaitable<TokenResult> {
    const attributes = { 'jwtauth.token.kind': request.kind, 'jwtauth.token.source': this.name, 'jwtauth.token.audience': request.audience };
    return inChildSpan('jwtauth.issue_token', SpanKind.INTERNAL, attributes, (span) =>
      andThen(this.inner.issue(request), (result) => {
        span.setAttribute('jwtauth.token.result', result.ok ? 'ok' : result.reason);
        return result;
      }),
    );
  }
}
