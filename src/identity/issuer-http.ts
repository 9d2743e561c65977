/**
 * The one way the identity adapters talk to an issuer over HTTP: JWKS, discovery documents and
 * token introspection all go through issuerRequest. Without an agent it uses global fetch, which
 * trusts only the system roots; with one (a private CA, a client certificate) it uses node:https,
 * whose agent holds them. Both behave alike: one deadline for connect, handshake and body (failing
 * with a TimeoutError), no redirects followed, and a size cap on the body.
 */
import { request as httpsRequest } from 'node:https';
import type { Agent } from 'node:https';
import type { IncomingMessage } from 'node:http';

export interface IssuerAnswer {
  readonly status: number;
  /** Undefined when the body is larger than `maxBytes`. */
  readonly text: string | undefined;
}

export interface IssuerRequest {
  readonly method: 'GET' | 'POST';
  readonly headers: Readonly<Record<string, string>>;
  /** A form body for POST. */
  readonly body?: string;
  readonly agent: Agent | undefined;
  readonly timeoutMs: number;
  readonly maxBytes: number;
}

async function requestWithFetch(url: string, request: IssuerRequest): Promise<IssuerAnswer> {
  const response = await fetch(url, {
    method: request.method,
    headers: request.headers,
    ...(request.body !== undefined ? { body: request.body } : {}),
    signal: AbortSignal.timeout(request.timeoutMs),
    redirect: 'error',
  });
  const text = await response.text();
  return { status: response.status, text: Buffer.byteLength(text) > request.maxBytes ? undefined : text };
}

/** What requestWithFetch does, over node:https with the agent's TLS material; reading stops once the body passes the cap. */
function requestWithAgent(url: string, agent: Agent, request: IssuerRequest): Promise<IssuerAnswer> {
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const headers = request.body === undefined ? request.headers : { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) };
    const outgoing = httpsRequest(url, { method: request.method, agent, headers }, (response: IncomingMessage) => {
      const status = response.statusCode ?? 0;
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= request.maxBytes) {
          chunks.push(chunk);
          return;
        }
        settle(() => resolve({ status, text: undefined }));
        outgoing.destroy();
      });
      response.on('end', () => settle(() => resolve({ status, text: Buffer.concat(chunks).toString('utf8') })));
      response.on('error', (error) => settle(() => reject(error)));
    });
    timer = setTimeout(() => {
      settle(() => reject(Object.assign(new Error(`no answer within ${request.timeoutMs} ms`), { name: 'TimeoutError' })));
      outgoing.destroy();
    }, request.timeoutMs);
    outgoing.on('error', (error) => settle(() => reject(error)));
    outgoing.end(request.body);
  });
}

/** Rejects only when no answer arrived (network, TLS, timeout); any HTTP status is an answer. */
export function issuerRequest(url: string, request: IssuerRequest): Promise<IssuerAnswer> {
  return request.agent ? requestWithAgent(url, request.agent, request) : requestWithFetch(url, request);
}
