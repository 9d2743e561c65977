/**
 * Property fuzzers for the parsers that read attacker- or operator-supplied text:
 *   - peekJwt (unverified header/payload read) and readBearer: random and mutated tokens;
 *   - the real token verifier: mutated and forged tokens never verify unless they decode to a
 *     genuinely signed token, and it never throws or rejects;
 *   - the config loader (parseConfigText): random and mutated YAML either loads a config that
 *     keeps the security invariants or fails with a ConfigError — never another exception.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { readBearer } from '../../src/core/bearer.js';
import type { RequestContext } from '../../src/core/request-context.js';
import type { TokenVerifier } from '../../src/core/ports.js';
import { ALGORITHMS } from '../../src/identity/config.js';
import { peekJwt } from '../../src/identity/jwt-peek.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { serviceToken, sidecarConfig, userToken } from '../../dev/hardening/fixtures.js';
import { hs256WithPublicKey, jwks, makeSigningKey, nowSeconds, unsignedToken } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PEEK_RUNS = 40_000;
export const BEARER_RUNS = 25_000;
export const VERIFY_RUNS = 10_000;
export const CONFIG_RUNS = 2_500;
const SEED = Number(process.env.FUZZ_SEED ?? 20261123);

let ext: SigningKey;
let mesh: SigningKey;
let valid: string[];
let verifier: TokenVerifier & { close(): void };
let validYaml: string;

beforeAll(async () => {
  ext = await makeSigningKey('ES256', 'ext-1');
  mesh = await makeSigningKey('RS256', 'mesh-1');
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-fuzz-'));
  writeFileSync(join(dir, 'ext.json'), JSON.stringify(jwks(ext)));
  writeFileSync(join(dir, 'mesh.json'), JSON.stringify(jwks(mesh)));
  const raw = sidecarConfig({ spicedbEndpoint: '127.0.0.1:50051', spicedbKeyEnv: 'K', externalJwksUrl: 'http://127.0.0.1:1/jwks', internalJwksUrl: 'http://127.0.0.1:1/jwks' });
  validYaml = stringify(raw);
  const issuers = (raw.issuers as Array<Record<string, unknown>>).map((issuer, i) => ({ ...issuer, jwks: { file: i === 0 ? 'ext.json' : 'mesh.json' } }));
  const loaded = parseConfigText(stringify({ ...raw, issuers }), 'fuzz', dir);
  verifier = await createTokenVerifier(loaded.config.issuers, { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: dir });
  valid = [await userToken(ext, 'alice'), await userToken(ext, 'bob'), await serviceToken(mesh, 'vmcontroller')];
});
afterAll(() => verifier?.close());

function canonical(token: string): string | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((s) => /^[A-Za-z0-9_-]*$/.test(s))) return undefined;
  return parts.map((s) => Buffer.from(s, 'base64url').toString('hex')).join('.');
}

function mutated(): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 3 }), fc.string({ minLength: 1, maxLength: 4 })), { minLength: 1, maxLength: 3 })).map(([token, edits]) => {
    let t = token;
    for (const [at, op, s] of edits) {
      const i = at % (t.length + 1);
      if (op === 0) t = t.slice(0, i) + s + t.slice(i + 1);
      else if (op === 1) t = t.slice(0, i) + t.slice(i + s.length);
      else if (op === 2) t = t.slice(0, i) + s + t.slice(i);
      else t = t.slice(0, i);
    }
    return t;
  });
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** Well-formed JWS shapes with hostile headers and claims (valid signature segment never). */
function forged(): fc.Arbitrary<string> {
  const header = fc.record(
    {
      alg: fc.oneof(fc.constantFrom('none', 'None', 'HS256', 'ES256', 'RS256', 'PS256', 'EdDSA', ''), fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })),
      kid: fc.oneof(fc.constantFrom('ext-1', 'mesh-1', '../../etc/passwd', "x' OR '1'='1", '\u0000'), fc.string(), fc.jsonValue({ maxDepth: 2 })),
      typ: fc.oneof(fc.constant('at+jwt'), fc.string({ maxLength: 10 })),
      jku: fc.constant('https://attacker.example/jwks.json'),
      jwk: fc.constant(ext.publicJwk),
      crit: fc.array(fc.string({ maxLength: 5 }), { maxLength: 2 }),
    },
    { requiredKeys: ['alg'] },
  );
  const claims = fc.record(
    {
      iss: fc.oneof(fc.constantFrom('https://idp.example.test', 'https://mesh.example.test'), fc.jsonValue({ maxDepth: 2 })),
      sub: fc.oneof(fc.constantFrom('alice', ''), fc.jsonValue({ maxDepth: 2 })),
      aud: fc.oneof(fc.constantFrom('gwadmin', 'vmcontroller'), fc.array(fc.string()), fc.jsonValue({ maxDepth: 2 })),
      exp: fc.oneof(fc.constant(nowSeconds() + 600), fc.double(), fc.jsonValue({ maxDepth: 2 })),
      nbf: fc.oneof(fc.integer(), fc.jsonValue({ maxDepth: 2 })),
      iat: fc.oneof(fc.integer(), fc.jsonValue({ maxDepth: 2 })),
    },
    { requiredKeys: [] },
  );
  return fc.tuple(header, claims, fc.string({ maxLength: 90 })).map(([h, c, sig]) => `${b64(h)}.${b64(c)}.${Buffer.from(sig).toString('base64url')}`);
}

function anyToken(): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: mutated() },
    { weight: 3, arbitrary: forged() },
    { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
    { weight: 1, arbitrary: fc.constant(unsignedToken({ kid: 'ext-1' }, { iss: 'https://idp.example.test', sub: 'alice', aud: 'gwadmin', exp: nowSeconds() + 600 })) },
    { weight: 1, arbitrary: fc.constant(hs256WithPublicKey(ext, { iss: 'https://idp.example.test', sub: 'alice', aud: 'gwadmin', exp: nowSeconds() + 600 })) },
    { weight: 1, arbitrary: fc.constantFrom(...valid) },
  );
}

function requestWith(values: readonly string[]): RequestContext {
  const headers = new Map<string, string>();
  const duplicates = new Set<string>();
  for (const v of values) {
    if (headers.has('authorization')) duplicates.add('authorization');
    headers.set('authorization', headers.has('authorization') ? `${headers.get('authorization')},${v}` : v);
  }
  return { direction: 'inbound', requestId: '', authority: '', method: 'GET', path: '/', query: '', grpc: undefined, headers, duplicateHeaders: duplicates, peerPrincipal: undefined, contextExtensions: {}, body: undefined };
}

describe('token parsing under hostile input', () => {
  it(`peekJwt never throws and only reports what is there (${PEEK_RUNS} cases)`, () => {
    fc.assert(
      fc.property(anyToken(), (token) => {
        const peeked = peekJwt(token);
        if (!peeked.ok) return;
        expect(typeof peeked.value.alg).toBe('string');
        expect(token.split('.')).toHaveLength(3);
        if (peeked.value.kid !== undefined) expect(typeof peeked.value.kid).toBe('string');
        if (peeked.value.iss !== undefined) expect(typeof peeked.value.iss).toBe('string');
      }),
      { numRuns: PEEK_RUNS, seed: SEED },
    );
  });

  it(`readBearer refuses duplicates, oversize and non-b64token values (${BEARER_RUNS} cases)`, () => {
    const value = fc.oneof(anyToken().map((t) => `Bearer ${t}`), fc.string({ maxLength: 40 }), fc.nat({ max: 9000 }).map((n) => `Bearer ${'a'.repeat(n)}`));
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 3 }), (values) => {
        const result = readBearer(requestWith(values), 4096);
        if (values.length > 1) expect(result).toEqual({ ok: false, reason: 'duplicate_authorization' });
        if (result.ok && result.value !== undefined) {
          expect(values).toHaveLength(1);
          expect(result.value.length).toBeLessThanOrEqual(4096);
          expect(result.value).toMatch(/^[A-Za-z0-9\-._~+/]+=*$/);
          expect(values[0]!.toLowerCase().startsWith('bearer ')).toBe(true);
        }
      }),
      { numRuns: BEARER_RUNS, seed: SEED },
    );
  });

  it(`the verifier never accepts a forged or altered token and never throws (${VERIFY_RUNS} cases)`, async () => {
    const validCanon = new Set(valid.map(canonical));
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(anyToken(), fc.constantFrom(undefined, 'gwadmin', 'vmcontroller'), async (token, audience) => {
        const result = await verifier.verify(token, audience);
        if (!result.ok) {
          expect(typeof result.reason).toBe('string');
          return;
        }
        accepted++;
        // Only a token that decodes to exactly a genuinely signed one verifies.
        expect(validCanon.has(canonical(token))).toBe(true);
        expect(result.value.audience).toContain(audience ?? 'gwadmin');
      }),
      { numRuns: VERIFY_RUNS, seed: SEED },
    );
    expect(accepted).toBeGreaterThan(0);
  });
});

describe('config loader under hostile input', () => {
  const lineEdits = (text: string): fc.Arbitrary<string> =>
    fc.array(fc.tuple(fc.nat(), fc.nat({ max: 4 }), fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom(': ', '- ', '&a ', '*a', '<<: *a', '!!binary', '{', '[', '"', '\t', '\n  ', 'none', 'HS256', '-1', '1e309', 'null', '~'))), { minLength: 1, maxLength: 4 }).map((edits) => {
      let t = text;
      for (const [at, op, s] of edits) {
        const i = at % (t.length + 1);
        if (op === 0) t = t.slice(0, i) + s + t.slice(i + 1);
        else if (op === 1) t = t.slice(0, i) + t.slice(i + s.length + 1);
        else if (op === 2) t = t.slice(0, i) + s + t.slice(i);
        else if (op === 3) t = t.slice(0, i) + t.slice(i).replace(/\d+/, s);
        else t = t.slice(0, i);
      }
      return t;
    });

  it(`parseConfigText loads a safe config or throws ConfigError, nothing else (${CONFIG_RUNS} cases)`, () => {
    let loadedCount = 0;
    const yamlText = fc.oneof(
      { weight: 6, arbitrary: lineEdits(validYaml) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((v) => stringify(v)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
      { weight: 1, arbitrary: fc.constantFrom('a: &a [*a]', 'x: &a\n  - *a\n  - *a', `${'a: '.repeat(500)}1`, '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', '{"issuers": [{"algorithms": ["none"]}]}') },
    );
    fc.assert(
      fc.property(yamlText, (text) => {
        let loaded;
        try {
          loaded = parseConfigText(text, 'fuzz.yaml', '/nonexistent');
        } catch (error) {
          if (!(error instanceof ConfigError)) throw new Error(`not a ConfigError: ${String(error)}`, { cause: error });
          expect(error.problems.length).toBeGreaterThan(0);
          return;
        }
        loadedCount++;
        const { config } = loaded;
        for (const issuer of config.issuers) {
          for (const alg of issuer.algorithms) expect(ALGORITHMS as readonly string[]).toContain(alg);
        }
        expect(config.limits.maxTokenBytes).toBeGreaterThanOrEqual(256);
        expect(config.limits.maxHeaderBytes).toBeGreaterThanOrEqual(1024);
        expect(config.spicedb.maxInflight).toBeGreaterThanOrEqual(1);
        if (config.outbound) expect(config.service?.name).toBeTruthy();
      }),
      { numRuns: CONFIG_RUNS, seed: SEED },
    );
    expect(loadedCount).toBeGreaterThan(0);
  });

  // yaml's Document.toJS throws for an alias without an anchor (`a: *b`) or past maxAliasCount,
  // after parsing succeeded; serve and validate must still answer with one sentence.
  it('an unresolved or excessive YAML alias is reported as a ConfigError', () => {
    for (const text of ['a: *b', `a: &x [1]\nb: [${'*x, '.repeat(200)}*x]`]) {
      expect(() => parseConfigText(text, 'alias.yaml', '/')).toThrow(ConfigError);
    }
  });
});
