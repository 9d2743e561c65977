/**
 * Guarantee: when an issuer's keys cannot be loaded, the log says why in the operator's terms
 * (connection refused, HTTP status, not JSON), says "keeping last good keys" only when there are
 * some, and stays quiet about the first quick retries at start-up (an issuer, or this sidecar's own
 * JWKS endpoint, coming up a moment after us).
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { freePort } from '../../dev/ports.js';
import { waitFor } from '../../dev/processes.js';
import { jwks, makeSigningKey } from '../../dev/jwt-fixtures.js';

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly error?: string;
}

const WARN = 40;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** An HTTP server whose JWKS answer the test controls. */
async function jwksEndpoint(answer: { status: number; body: string }): Promise<{ url: string; answer: typeof answer }> {
  const server: Server = createServer((_, response) => response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}/jwks`, answer };
}

async function verifierLogging(url: string): Promise<LogLine[]> {
  const lines: LogLine[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } });
  const issuers = issuersSchema.parse([{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { url, cooldownSeconds: 5, refreshSeconds: 5 } }]);
  const verifier = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger, baseDir: tmpdir(), fetchTimeoutMs: 1000 });
  closers.push(() => verifier.close());
  return lines;
}

const warnings = (lines: readonly LogLine[]) => lines.filter((line) => line.level >= WARN);

describe('JWKS failures in the log', () => {
  it('a refused connection: quiet for the first retries, then a warning naming it, never "keeping last good keys"', async () => {
    // A port nothing listens on (fetch refuses some low ports outright, as "bad port").
    const lines = await verifierLogging(`http://127.0.0.1:${await freePort()}/jwks`);
    expect(warnings(lines)).toEqual([]);
    expect(lines.some((line) => /connection refused/.test(line.error ?? ''))).toBe(true);
    await waitFor(() => warnings(lines).length > 0, 10_000, () => JSON.stringify(lines));
    const [warning] = warnings(lines);
    expect(warning?.error).toMatch(/cannot fetch the JWKS: connection refused/);
    expect(warning?.msg).toMatch(/no keys yet/);
    expect(lines.some((line) => /keeping last good keys/.test(line.msg))).toBe(false);
  });

  it('an HTTP error status and a body that is not JSON are named as such', async () => {
    const failing = await jwksEndpoint({ status: 503, body: 'busy' });
    const statusLines = await verifierLogging(failing.url);
    expect(statusLines.some((line) => line.error === 'the JWKS endpoint answered HTTP 503')).toBe(true);
    const garbled = await jwksEndpoint({ status: 200, body: '<html>' });
    const jsonLines = await verifierLogging(garbled.url);
    expect(jsonLines.some((line) => /^the JWKS is not JSON/.test(line.error ?? ''))).toBe(true);
  });

  it('a key set without a keys array, without one usable key, or over 1 MiB is named as such', async () => {
    const cases: Array<[string, string]> = [
      ['{"kids":[]}', 'JWKS has no "keys" array'],
      ['null', 'JWKS has no "keys" array'],
      [JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), 'JWKS has no usable keys'],
      [JSON.stringify({ keys: [], pad: 'x'.repeat(1 << 20) }), 'JWKS larger than 1 MiB'],
    ];
    for (const [body, error] of cases) {
      const endpoint = await jwksEndpoint({ status: 200, body });
      const lines = await verifierLogging(endpoint.url);
      expect(lines.map((line) => line.error).filter(Boolean), body.slice(0, 40)).toContain(error);
    }
  });

  it('with keys in hand, a failed refresh warns at once that the last good keys are kept', async () => {
    const endpoint = await jwksEndpoint({ status: 200, body: JSON.stringify(jwks(await makeSigningKey())) });
    const lines = await verifierLogging(endpoint.url);
    expect(warnings(lines)).toEqual([]);
    endpoint.answer.status = 500;
    await waitFor(() => warnings(lines).length > 0, 15_000, () => JSON.stringify(lines));
    expect(warnings(lines)[0]).toMatchObject({ msg: 'JWKS refresh failed; keeping last good keys', error: 'the JWKS endpoint answered HTTP 500' });
  });
});
