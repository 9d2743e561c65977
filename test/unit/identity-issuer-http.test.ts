/**
 * issuerRequest over node:https with a private CA (the path JWKS, discovery and introspection take
 * with caFile or a client certificate) behaves as the global-fetch path does: the status and body
 * of any answer, a body over the cap is no text (never a truncated one), and one deadline that
 * fails with a TimeoutError.
 */
import { readFileSync } from 'node:fs';
import { createServer as createPlainServer } from 'node:http';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issuerRequest } from '../../src/identity/issuer-http.js';
import { createClientTlsAgent } from '../../src/base/tls-client-agent.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';

let pki: TestPki;
let server: Server;
let base: string;
const received: Array<{ method: string | undefined; body: string; headers: Record<string, string | string[] | undefined> }> = [];

beforeAll(async () => {
  pki = createTestPki([]);
  server = createServer({ cert: readFileSync(pki.server.certFile), key: readFileSync(pki.server.keyFile) }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ method: req.method, body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
      if (req.url === '/big') {
        res.writeHead(200);
        // Two chunks: the cap falls inside the second.
        res.write('a'.repeat(600));
        setTimeout(() => res.end('b'.repeat(600)), 20);
      } else if (req.url === '/slow') {
        setTimeout(() => res.writeHead(200).end('late'), 2000);
      } else {
        res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  pki.remove();
});

const agent = () => createClientTlsAgent({ caFile: pki.caFile }, { baseDir: pki.dir, keepAlive: false });

describe('issuer requests through a TLS agent', () => {
  it('sends the method, headers and form body, and returns any status with its body', async () => {
    expect(await issuerRequest(`${base}/doc`, { method: 'POST', headers: { accept: 'application/json' }, body: 'a=1&b=2', agent: agent(), timeoutMs: 2000, maxBytes: 1024 })).toEqual({
      status: 200,
      text: '{"ok":true}',
    });
    expect(received.at(-1)).toMatchObject({ method: 'POST', body: 'a=1&b=2', headers: { accept: 'application/json', 'content-length': '7' } });
    expect(await issuerRequest(`${base}/missing`, { method: 'GET', headers: {}, agent: agent(), timeoutMs: 2000, maxBytes: 1024 })).toEqual({ status: 404, text: '{"ok":true}' });
  });

  it('answers a body over the cap with no text, and one exactly at the cap in full', async () => {
    expect(await issuerRequest(`${base}/big`, { method: 'GET', headers: {}, agent: agent(), timeoutMs: 2000, maxBytes: 1000 })).toEqual({ status: 200, text: undefined });
    expect(await issuerRequest(`${base}/big`, { method: 'GET', headers: {}, agent: agent(), timeoutMs: 2000, maxBytes: 1200 })).toEqual({
      status: 200,
      text: `${'a'.repeat(600)}${'b'.repeat(600)}`,
    });
  });

  it('gives up after timeoutMs with a TimeoutError', async () => {
    const started = Date.now();
    const error = await issuerRequest(`${base}/slow`, { method: 'GET', headers: {}, agent: agent(), timeoutMs: 200, maxBytes: 1024 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'TimeoutError', message: 'no answer within 200 ms' });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('refuses a server whose certificate the CA did not sign', async () => {
    const stranger = createClientTlsAgent({ caFile: pki.otherCaFile }, { baseDir: pki.dir, keepAlive: false });
    await expect(issuerRequest(`${base}/doc`, { method: 'GET', headers: {}, agent: stranger, timeoutMs: 2000, maxBytes: 1024 })).rejects.toThrow();
  });

  it('without an agent (global fetch), caps the body the same way and sends no body on a GET', async () => {
    const plain = createPlainServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => res.writeHead(200).end(`${req.method} ${Buffer.concat(chunks).length} ${'x'.repeat(100)}`));
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(plain.address() as AddressInfo).port}/`;
      const exact = `GET 0 ${'x'.repeat(100)}`;
      expect(await issuerRequest(url, { method: 'GET', headers: {}, agent: undefined, timeoutMs: 2000, maxBytes: exact.length })).toEqual({ status: 200, text: exact });
      expect(await issuerRequest(url, { method: 'GET', headers: {}, agent: undefined, timeoutMs: 2000, maxBytes: exact.length - 1 })).toEqual({ status: 200, text: undefined });
      expect((await issuerRequest(url, { method: 'POST', headers: {}, body: 'abc', agent: undefined, timeoutMs: 2000, maxBytes: 1024 })).text).toMatch(/^POST 3 /);
    } finally {
      plain.closeAllConnections();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});
