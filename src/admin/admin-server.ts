/**
 * The admin HTTP listener: liveness, readiness, Prometheus metrics and, when this sidecar mints
 * tokens, the public keys that verifiers fetch. Nothing here reveals a secret.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PublicKeyDocuments } from '../core/ports.js';
import { parseListenAddress } from '../base/listen-address.js';

/** One Prometheus scrape: this process's registry, or its workers' aggregated (workers/primary.ts). */
type MetricsExposition = () => Promise<{ readonly contentType: string; readonly body: string }>;

export interface AdminState {
  /** Ready to decide: config loaded, keys present, permission backend reachable, rules fit the schema, not draining. */
  ready(): { ready: boolean; detail: object };
  readonly metrics: MetricsExposition;
  /** Read per request, so a reload that changes keys is served at once. */
  publicKeys(): PublicKeyDocuments | undefined;
}

export interface AdminListener {
  readonly port: number;
  close(): Promise<void>;
}

function send(response: ServerResponse, status: number, contentType: string, body: string, cacheSeconds = 0): void {
  response.writeHead(status, {
    'content-type': contentType,
    'cache-control': cacheSeconds > 0 ? `public, max-age=${cacheSeconds}` : 'no-store',
  });
  response.end(body);
}

export async function startAdminListener(address: string, state: AdminState): Promise<AdminListener> {
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      send(response, 405, 'text/plain', 'method not allowed\n');
      return;
    }
    const path = (request.url ?? '/').split('?', 1)[0] ?? '/';
    switch (path) {
      case '/healthz':
        send(response, 200, 'text/plain', 'ok\n');
        return;
      case '/readyz': {
        const { ready, detail } = state.ready();
        send(response, ready ? 200 : 503, 'application/json', `${JSON.stringify({ ready, ...detail })}\n`);
        return;
      }
      case '/metrics': {
        const { contentType, body } = await state.metrics();
        send(response, 200, contentType, body);
        return;
      }
      case '/.well-known/jwks.json': {
        const keys = state.publicKeys();
        if (!keys) break;
        // Short max-age: verifiers must see a newly published key well before it signs.
        send(response, 200, 'application/jwk-set+json', JSON.stringify(keys.jwks()), 60);
        return;
      }
      case '/.well-known/openid-configuration': {
        const keys = state.publicKeys();
        if (!keys) break;
        send(response, 200, 'application/json', JSON.stringify(keys.openidConfiguration()), 300);
        return;
      }
    }
    send(response, 404, 'text/plain', 'not found\n');
  };

  const server = createServer((request, response) => {
    handle(request, response).catch(() => {
      if (!response.headersSent) send(response, 500, 'text/plain', 'internal error\n');
      else response.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  const { host, port } = parseListenAddress(address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
