/**
 * Decorator: one span per token verification, as a child of the Check's span. Installed only when
 * tracing is on (lifecycle/runtime.ts), so an untraced sidecar never runs it.
 *
 * Whether the answer came from the verified-token cache is inferred here rather than reported by
 * the verifier: a cache hit returns the very VerifiedToken object it cached, so a token object
 * this decorator has already seen is a hit. The WeakSet holds no token alive past the cache.
 * Attributes name the issuer and subject type, never the token or the subject id.
 */
import { SpanKind } from '@opentelemetry/api';
import type { TokenVerifier, VerifiedToken, VerifyResult } from '../core/ports.js';
import { andThen } from '../core/awaitable.js';
import type { Awaitable } from '../core/awaitable.js';
import { inChildSpan } from '../observability/tracing.js';

export class TracingVerifier implements TokenVerifier {
  readonly #seen = new WeakSet<VerifiedToken>();

  constructor(private readonly inner: TokenVerifier) {}

  ready(): boolean {
    return this.inner.ready();
  }

  verify(token: string, expectedAudience?: string): Awaitable<VerifyResult> {
    return inChildSpan('jwtauth.verify_token', SpanKind.INTERNAL, {}, (span) =>
      andThen(this.inner.verify(token, expectedAudience), (result) => {
        if (result.ok) {
          const verified = result.value;
          span.setAttributes({
            'jwtauth.token.cached': this.#seen.has(verified),
            'jwtauth.token.result': 'ok',
            'jwtauth.issuer': verified.issuer,
            'jwtauth.issuer_kind': verified.issuerKind,
            'jwtauth.subject_type': verified.subjectType,
          });
          this.#seen.add(verified);
        } else {
          span.setAttributes({ 'jwtauth.token.cached': false, 'jwtauth.token.result': result.reason });
        }
        return result;
      }),
    );
  }
}
