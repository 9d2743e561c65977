/**
 * Network failures in an operator's terms: connection refused, a TLS problem, a timeout. Shared by
 * the adapters that call out over HTTP (JWKS fetches, the token service), so the same cause reads
 * the same way in every log line.
 */

/** OpenSSL and Node error codes of a failed TLS handshake or certificate check. */
const TLS_ERROR_CODE = /^(ERR_SSL_|ERR_TLS_|CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH|EPROTO)/;

/** Words of a failed TLS handshake in error texts that carry no code (grpc-js, OpenSSL reasons). */
const TLS_ERROR_TEXT = /certificate|handshake|ssl|tls alert|wrong version number/i;

/** Whether an error text with no usable code describes a TLS failure. */
export function mentionsTlsFailure(message: string): boolean {
  return TLS_ERROR_TEXT.test(message);
}

export interface NetworkFailure {
  readonly kind: 'tls' | 'timeout' | 'unreachable';
  /** e.g. `connection refused (ECONNREFUSED 127.0.0.1:1)`; never holds a response body. */
  readonly text: string;
}

function printable(text: string, max = 120): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}

/**
 * Describes why a request failed before it got an answer. fetch() wraps the real cause in
 * `TypeError: fetch failed`; the innermost cause is the one that names what went wrong.
 */
export function describeNetworkFailure(error: unknown): NetworkFailure {
  let cause: unknown = error;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  const failure = cause instanceof Error ? cause : new Error(String(cause));
  // Only string codes name a cause (ECONNREFUSED); fetch's DOMException carries a numeric legacy code.
  const rawCode: unknown = (failure as { code?: unknown }).code;
  const code = typeof rawCode === 'string' ? rawCode : '';
  const message = printable(failure.message);
  if (failure.name === 'TimeoutError' || failure.name === 'AbortError' || code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return { kind: 'timeout', text: `no answer in time (${code || failure.name})` };
  }
  if (TLS_ERROR_CODE.test(code) || mentionsTlsFailure(failure.message)) {
    return { kind: 'tls', text: `TLS failed: ${code || 'error'} ${message}`.trim() };
  }
  if (code === 'ECONNREFUSED') return { kind: 'unreachable', text: `connection refused (${message})` };
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { kind: 'unreachable', text: `host name does not resolve (${message})` };
  return { kind: 'unreachable', text: `${code || 'error'} ${message}`.trim() };
}
