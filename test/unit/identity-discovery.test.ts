/**
 * OpenID discovery: a document is trusted for its jwks_uri only when it is a JSON object naming
 * exactly the configured issuer, and its jwks_uri is a URL no weaker than the document's own.
 * Against a plain-HTTP server on 127.0.0.1 serving what each test scripts (the TLS path with a
 * real oidc-provider is in test/integration/oidc-discovery.test.ts).
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverJwksUri, discoveryUrlOf } from '../../src/identity/discovery.js';

const ISS = 'https://auth.example';
let answer: { status: number; body: string } = { status: 200, body: '{}' };
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((_req, res) => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/openid-configuration`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** The jwks_uri discovery returns for a served document, or the message it refuses it with. */
async function discover(body: unknown, status = 200): Promise<string> {
  answer = { status, body: typeof body === 'string' ? body : JSON.stringify(body) };
  try {
    return await discoverJwksUri(url, ISS, { agent: undefined, timeoutMs: 2000 });
  } catch (error) {
    return `refused: ${(error as Error).message}`;
  }
}

describe('OpenID discovery', () => {
  it('returns the jwks_uri of a document that names the configured issuer', async () => {
    expect(await discover({ issuer: ISS, jwks_uri: 'https://auth.example/jwks' })).toBe('https://auth.example/jwks');
    // A plaintext document may point at plaintext keys (a dev setup); the URL comes back normalised.
    expect(await discover({ issuer: ISS, jwks_uri: 'http://auth.example:80/keys' })).toBe('http://auth.example/keys');
  });

  it('refuses a document for another issuer, or naming none: it would hand over someone else\'s keys', async () => {
    expect(await discover({ issuer: `${ISS}/`, jwks_uri: 'https://auth.example/jwks' })).toBe(
      `refused: the discovery document names "${ISS}/", not the configured issuer "${ISS}"; it must match exactly, so its keys are refused`,
    );
    expect(await discover({ jwks_uri: 'https://auth.example/jwks' })).toMatch(/^refused: the discovery document names no issuer, not the configured issuer/);
    expect(await discover({ issuer: 7, jwks_uri: 'https://auth.example/jwks' })).toMatch(/^refused: the discovery document names no issuer,/);
    expect(await discover({ issuer: 'x'.repeat(300), jwks_uri: 'https://auth.example/jwks' })).toContain(`names "${'x'.repeat(200)}", not`);
  });

  it('refuses a jwks_uri that is missing, not a URL, or of another scheme', async () => {
    expect(await discover({ issuer: ISS })).toBe('refused: the discovery document has no jwks_uri');
    expect(await discover({ issuer: ISS, jwks_uri: 42 })).toBe('refused: the discovery document has no jwks_uri');
    expect(await discover({ issuer: ISS, jwks_uri: 'not a url' })).toBe("refused: the discovery document's jwks_uri is not a URL");
    expect(await discover({ issuer: ISS, jwks_uri: 'ftp://auth.example/jwks' })).toBe("refused: the discovery document's jwks_uri must be https: or http:, not ftp:");
  });

  it('refuses what is not a JSON object, an HTTP error and an oversized document', async () => {
    expect(await discover('{"issuer":')).toMatch(/^refused: the discovery document is not JSON: \S/);
    expect(await discover(`{"issuer": "${'y'.repeat(500)}`)).toMatch(/^refused: the discovery document is not JSON: .{1,120}$/);
    for (const body of ['[1]', 'null', '"text"', '3']) expect(await discover(body)).toBe('refused: the discovery document is not a JSON object');
    expect(await discover({ issuer: ISS, jwks_uri: 'https://auth.example/jwks' }, 404)).toBe('refused: the discovery endpoint answered HTTP 404');
    expect(await discover({ issuer: ISS, jwks_uri: 'https://auth.example/jwks' }, 503)).toBe('refused: the discovery endpoint answered HTTP 503');
    expect(await discover({ issuer: ISS, jwks_uri: 'https://auth.example/jwks' }, 299)).toBe('https://auth.example/jwks');
    expect(await discover({ issuer: ISS, jwks_uri: 'https://auth.example/jwks' }, 204)).toMatch(/^refused: the discovery document is not JSON/);
    expect(await discover({ issuer: ISS, jwks_uri: 'https://auth.example/jwks', pad: 'z'.repeat(256 * 1024) })).toBe('refused: discovery document larger than 256 KiB');
  });

  it('says when the endpoint cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(discoverJwksUri(`http://127.0.0.1:${port}/`, ISS, { agent: undefined, timeoutMs: 2000 })).rejects.toThrow(/^cannot fetch the discovery document: /);
  });

  it('derives the well-known URL from the issuer without doubling slashes, or takes the given URL', () => {
    expect(discoveryUrlOf('https://auth.example', true)).toBe('https://auth.example/.well-known/openid-configuration');
    expect(discoveryUrlOf('https://auth.example/realms/x//', true)).toBe('https://auth.example/realms/x/.well-known/openid-configuration');
    expect(discoveryUrlOf('https://auth.example', 'https://elsewhere.example/doc')).toBe('https://elsewhere.example/doc');
  });
});
