/**
 * Gets tokens from an OAuth 2.0 token service over mutual TLS:
 *   - service tokens with the client_credentials grant (RFC 6749 section 4.4);
 *   - user tokens with token exchange (RFC 8693);
 * the client authenticated by its certificate (RFC 8705 `tls_client_auth`, client_id in the body).
 * Every failure becomes a TokenResult with its own reason; nothing from the token service's
 * answer reaches a log or a reason detail unsanitized, and no token ever does.
 */
import { request as httpsRequest } from 'node:https';
import type { Agent } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { decodeJwt } from 'jose';
import { B64TOKEN } from '../core/bearer.js';
import type { Closable, TokenRequest, TokenResult, TokenSource } from '../core/ports.js';
import { failure, success } from '../core/result.js';
import type { Failure, Result } from '../core/result.js';
import type { ExchangeSourceConfig } from './config.js';
import { describeNetworkFailure } from '../base/network-error.js';
import { activeTraceHeaders } from '../observability/tracing.js';
import { createClientTlsAgent } from '../base/tls-client-agent.js';

const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_LIKE = /[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*/g;

export interface ExchangeOptions {
  readonly serviceName: string;
  readonly baseDir: string;
  /** Epoch milliseconds. */
  readonly now?: () => number;
}

/** Makes token-service text safe for logs and reason details: printable, short, no token-shaped runs. */
function sanitize(text: unknown, max = 160): string {
  if (typeof text !== 'string') return '';
  const printable = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, ' ').replace(JWT_LIKE, '[token]');
  return printable.length > max ? `${printable.slice(0, max)}...` : printable;
}

export class ExchangeTokenSource implements TokenSource, Closable {
  readonly name = 'exchange';
  private readonly agent: Agent;
  private readonly url: URL;
  private readonly clientId: string;
  private readonly now: () => number;

  constructor(
    private readonly config: ExchangeSourceConfig,
    options: ExchangeOptions,
  ) {
    this.url = new URL(config.tokenEndpoint);
    this.clientId = config.clientId ?? options.serviceName;
    this.now = options.now ?? Date.now;
    this.agent = createClientTlsAgent(config, { baseDir: options.baseDir, keepAlive: true, maxSockets: 16 });
  }

  async issue(request: TokenRequest): Promise<TokenResult> {
    const form = new URLSearchParams();
    switch (request.kind) {
      case 'service':
        form.set('grant_type', 'client_credentials');
        break;
      case 'exchange':
        form.set('grant_type', TOKEN_EXCHANGE_GRANT);
        form.set('subject_token', request.subjectToken);
        form.set('subject_token_type', this.config.subjectTokenType);
        form.set('requested_token_type', this.config.requestedTokenType);
        break;
      case 'on_behalf_of':
        // RFC 8693 needs a subject token to exchange, and a background job has none.
        return failure('token_source_error', 'on-behalf-of tokens need tokens.source.kind: mint');
    }
    form.set('client_id', this.clientId);
    if (this.config.audienceParameter === 'resource') form.set('resource', this.config.resourcePrefix + request.audience);
    else form.set('audience', request.audience);

    const started = this.now();
    const answer = await this.post(form.toString());
    if (!answer.ok) return answer;
    return this.interpret(answer.value.status, answer.value.body, request.kind, started);
  }

  close(): Promise<void> {
    this.agent.destroy();
    return Promise.resolve();
  }

  private interpret(status: number, body: string, kind: TokenRequest['kind'], started: number): TokenResult {
    let json: Record<string, unknown> | undefined;
    try {
      const parsed: unknown = JSON.parse(body);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) json = parsed as Record<string, unknown>;
    } catch {
      json = undefined;
    }
    if (status >= 500) return failure('token_source_unavailable', `token service answered HTTP ${status}`);
    if (status !== 200) {
      const code = typeof json?.error === 'string' ? sanitize(json.error, 64) : '';
      const description = sanitize(json?.error_description);
      const detail = `token service refused the ${kind} request: HTTP ${status} ${code || 'without an error code'}${description ? ` (${description})` : ''}`;
      switch (code) {
        case 'invalid_grant':
        case 'invalid_client':
        case 'unauthorized_client':
        case 'access_denied':
          return failure('token_exchange_rejected', detail);
        case 'invalid_target':
        case 'invalid_scope':
          return failure('token_exchange_invalid_target', detail);
        default:
          return failure('token_source_error', detail);
      }
    }
    if (!json) return failure('token_source_error', 'token service answered 200 without a JSON object');
    const accessToken = json.access_token;
    if (typeof accessToken !== 'string' || accessToken.length === 0 || !B64TOKEN.test(accessToken)) {
      return failure('token_source_error', 'token service answer has no usable access_token');
    }
    const tokenType = typeof json.token_type === 'string' ? json.token_type.toLowerCase() : '';
    // RFC 8693 answers N_A when the issued token is not an access token used as a bearer token.
    if (tokenType !== 'bearer' && !(kind === 'exchange' && tokenType === 'n_a')) {
      return failure('token_source_error', `token service issued token_type "${sanitize(json.token_type, 32)}", not Bearer`);
    }
    const issuedAt = Math.floor(started / 1000);
    let expiresAt = Number.POSITIVE_INFINITY;
    if (typeof json.expires_in === 'number' && Number.isFinite(json.expires_in) && json.expires_in > 0) {
      // Counted from when the request was sent: the answer may have spent time on the wire.
      expiresAt = issuedAt + Math.floor(json.expires_in);
    }
    const jwtExp = jwtExpiry(accessToken);
    if (jwtExp !== undefined) expiresAt = Math.min(expiresAt, jwtExp);
    if (!Number.isFinite(expiresAt)) return failure('token_source_error', 'token service answer says neither expires_in nor exp');
    return success({ token: accessToken, issuedAt, expiresAt });
  }

  private post(body: string): Promise<Result<{ status: number; body: string }>> {
    const { timeoutMs, maxResponseBytes } = this.config;
    return new Promise((settle) => {
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (value: Result<{ status: number; body: string }>): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        settle(value);
      };
      const req = httpsRequest(
        this.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            accept: 'application/json',
            'content-length': Buffer.byteLength(body),
            // The Check's trace, when it is traced, so the token service's spans join it.
            ...activeTraceHeaders(),
          },
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxResponseBytes) {
              req.destroy();
              finish(failure('token_source_error', `token service answer exceeds ${maxResponseBytes} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => finish(success({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })));
          res.on('error', (error) => finish(classifyNetworkError(error)));
        },
      );
      // One deadline for the whole exchange: connect, TLS handshake, request and answer.
      timer = setTimeout(() => {
        finish(failure('token_source_timeout', `token service did not answer within ${timeoutMs} ms`));
        req.destroy();
      }, timeoutMs);
      req.on('error', (error) => finish(classifyNetworkError(error)));
      req.end(body);
    });
  }
}

function classifyNetworkError(error: Error): Failure {
  const described = describeNetworkFailure(error);
  if (described.kind === 'tls') return failure('token_source_tls_error', `token service: ${described.text}`);
  return failure('token_source_unavailable', `token service unreachable: ${described.text}`);
}

function jwtExpiry(token: string): number | undefined {
  if (token.split('.').length !== 3) return undefined;
  try {
    const exp = decodeJwt(token).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}
