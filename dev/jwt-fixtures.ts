/**
 * Real keys, real signatures and a real JWKS HTTP server for the identity tests and the soak.
 * Nothing here is a fake of jose: tokens are signed with jose and served over node:http on 127.0.0.1.
 */
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, importJWK, SignJWT } from 'jose';
import type { CryptoKey, JWK, JWTPayload } from 'jose';

export interface SigningKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function makeSigningKey(alg = 'ES256', kid = `k-${alg}-${Math.random().toString(36).slice(2, 8)}`, withAlg = true): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return { alg, kid, privateKey, publicJwk: { ...jwk, kid, use: 'sig', ...(withAlg ? { alg } : {}) } };
}

/** The same key material re-imported for another algorithm (e.g. RS256 → PS256), to test key/alg binding. */
export async function sameKeyForAlg(key: SigningKey, alg: string): Promise<SigningKey> {
  const privateJwk = await exportJWK(key.privateKey);
  const privateKey = (await importJWK({ ...privateJwk, alg }, alg)) as CryptoKey;
  return { ...key, alg, privateKey };
}

export function jwks(...keys: SigningKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.publicJwk) };
}

export interface TokenOptions {
  readonly typ?: string;
  readonly kid?: string | null;
  readonly alg?: string;
  /** Extra protected header members, e.g. jku. */
  readonly header?: Record<string, unknown>;
}

export async function signToken(key: SigningKey, claims: JWTPayload, options: TokenOptions = {}): Promise<string> {
  const header: Record<string, unknown> = { alg: options.alg ?? key.alg, ...(options.header ?? {}) };
  if (options.kid !== null) header.kid = options.kid ?? key.kid;
  if (options.typ !== undefined) header.typ = options.typ;
  return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(key.privateKey);
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An unsigned token (`alg: none`), as an attacker would send it. */
export function unsignedToken(header: Record<string, unknown>, claims: JWTPayload): string {
  return `${b64({ alg: 'none', ...header })}.${b64(claims)}.`;
}

/** HS256 "signed" with the issuer's public key bytes: the classic key-confusion attack. */
export function hs256WithPublicKey(key: SigningKey, claims: JWTPayload): string {
  const signingInput = `${b64({ alg: 'HS256', kid: key.kid })}.${b64(claims)}`;
  const secret = JSON.stringify(key.publicJwk);
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** A JWKS endpoint on 127.0.0.1 that can be switched to failing, to test issuer outages. */
export class JwksServer {
  private server: Server | undefined;
  private body: string = JSON.stringify({ keys: [] });
  private down = false;
  private stalled = false;
  /** Requests served so far (including failed ones). */
  hits = 0;
  url = '';

  async start(initial: { keys: JWK[] }): Promise<this> {
    this.body = JSON.stringify(initial);
    this.server = createServer((req, res) => {
      this.hits++;
      if (this.down) {
        res.writeHead(503).end('down');
        return;
      }
      if (this.stalled) return; // accepted, never answered; stop() closes the connection
      res.writeHead(200, { 'content-type': 'application/json' }).end(this.body);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}/jwks.json`;
    return this;
  }

  setKeys(value: { keys: JWK[] }): void {
    this.body = JSON.stringify(value);
  }

  setDown(down: boolean): void {
    this.down = down;
  }

  setStalled(stalled: boolean): void {
    this.stalled = stalled;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.server = undefined;
  }
}
