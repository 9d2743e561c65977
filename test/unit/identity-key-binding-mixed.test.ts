/**
 * A key published without `alg` is bound to the one allowed algorithm its type and curve fit, also
 * when the issuer allows algorithms of every other key type beside it: an RSA key is never taken
 * as a fit for ES256 or EdDSA, an Ed25519 key never for RS256, and so on. A key type counted as
 * fitting an algorithm it does not would leave the key unbound ("fits two"), or bound to the wrong one.
 */
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { JwksServer, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';

const ISS = 'https://auth.example';
let server: JwksServer;
const closers: Array<() => Promise<void>> = [];

beforeEach(async () => {
  server = await new JwksServer().start({ keys: [] });
});
afterEach(async () => {
  while (closers.length > 0) await closers.pop()!();
  await server.stop();
});

describe('a key without alg among every allowed key type', () => {
  it('is bound to the one allowed algorithm that fits it', async () => {
    const keys = await Promise.all([
      makeSigningKey('RS256', 'rsa', false),
      makeSigningKey('ES384', 'p384', false),
      makeSigningKey('EdDSA', 'ed', false),
    ]);
    server.setKeys({ keys: keys.map((key) => key.publicJwk) });
    const issuers = issuersSchema.parse([
      { name: 'auth', issuer: ISS, audience: 'gw', kind: 'external', jwks: { url: server.url }, algorithms: ['ES256', 'ES384', 'RS256', 'EdDSA'] },
    ]);
    const v = await createTokenVerifier(issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: tmpdir(), fetchTimeoutMs: 1000 });
    closers.push(() => v.close());
    for (const key of keys) {
      const result = await v.verify(await signToken(key, { iss: ISS, aud: 'gw', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 }));
      expect(result, key.alg).toMatchObject({ ok: true });
    }
  });
});
