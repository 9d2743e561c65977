/**
 * A token endpoint that authenticates its clients by certificate only (mutual TLS, the chain
 * checked against the test CA by node:tls) and records the serial of the certificate each token
 * request came with: what a rotation test needs to see which client certificate a sidecar presents.
 * Every request gets a fresh opaque Bearer token; the grant is not checked, since the token
 * service's OAuth behaviour is oauth-server.ts's business.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { TestPki } from './certs.js';

export interface MtlsTokenService {
  readonly tokenEndpoint: string;
  /** The client certificate serial of each token request, in order of arrival. */
  readonly serials: readonly string[];
  close(): Promise<void>;
}

export async function startMtlsTokenService(pki: TestPki, options: { readonly expiresInSeconds?: number } = {}): Promise<MtlsTokenService> {
  const serials: string[] = [];
  let issued = 0;
  const server = createServer(
    {
      cert: readFileSync(pki.server.certFile),
      key: readFileSync(pki.server.keyFile),
      ca: readFileSync(pki.caFile),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      req.resume();
      req.on('end', () => {
        serials.push((req.socket as TLSSocket).getPeerCertificate().serialNumber);
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            access_token: `service-token-${++issued}`,
            token_type: 'Bearer',
            issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
            expires_in: options.expiresInSeconds ?? 300,
          }),
        );
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    tokenEndpoint: `https://127.0.0.1:${(server.address() as AddressInfo).port}/token`,
    serials,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
