import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, jwtVerify, SignJWT, generateKeyPair } from 'jose';
import type { JWK } from 'jose';
import { pino } from 'pino';
import type { TokenResult } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import { outboundSchema, defaultOutboundConfig } from '../../src/outbound/config.js';
import { issueServiceTokenForCli } from '../../src/tokens/cli-token.js';
import { defaultTokensConfig, tokensSchema } from '../../src/tokens/config.js';
import type { TokensConfig } from '../../src/tokens/config.js';
import { createTokenSource } from '../../src/tokens/token-source.js';

const dir = mkdtempSync(join(tmpdir(), 'jwtauth-mint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const logger = pino({ level: 'silent' });
const T = Date.parse('2030-01-01T00:00:00Z');

function writeKey(name: string, kind: 'ec' | 'ed25519' | 'rsa', format: 'pem' | 'jwk' = 'pem'): string {
  const { privateKey } =
    kind === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : kind === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  const path = join(dir, name);
  writeFileSync(path, format === 'pem' ? (privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) : JSON.stringify(privateKey.export({ format: 'jwk' })));
  return path;
}

function parse(input: unknown): NonNullable<TokensConfig> {
  const parsed = tokensSchema.parse(input);
  if (!parsed) throw new Error('tokens config missing');
  return parsed;
}

async function mint(input: unknown, clock: { now: number } = { now: T }, baseDir = dir) {
  return createTokenSource(parse(input), {
    serviceName: 'gwadmin',
    metrics: new Metrics({ processMetrics: false }),
    logger,
    baseDir,
    now: () => clock.now,
  });
}

function tokenOf(result: TokenResult): string {
  if (!result.ok) throw new Error(`expected a token, got ${result.reason}: ${result.detail ?? ''}`);
  return result.value.token;
}

async function verifyWith(jwks: { keys: object[] }, token: string, at: number, audience = 'vmcontroller') {
  return jwtVerify(token, createLocalJWKSet(jwks as { keys: JWK[] }), {
    issuer: 'https://mesh.example',
    audience,
    typ: 'at+jwt',
    algorithms: ['ES256', 'EdDSA', 'RS256'],
    currentDate: new Date(at),
  });
}

describe('minted tokens', () => {
  it('carry RFC 9068 claims, one audience, typ at+jwt and a thumbprint kid', async () => {
    const source = await mint({ source: { kind: 'mint', issuer: 'https://mesh.example', keys: [{ file: writeKey('es.pem', 'ec') }] } });
    const token = tokenOf(await source.issue({ kind: 'service', audience: 'vmcontroller' }));
    const jwks = source.publicKeys?.jwks();
    expect(jwks?.keys).toHaveLength(1);
    const { payload, protectedHeader } = await verifyWith(jwks ?? { keys: [] }, token, T);
    expect(protectedHeader).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    const published = jwks?.keys[0] as JWK;
    expect(protectedHeader.kid).toBe(await calculateJwkThumbprint(published, 'sha256'));
    expect(published).not.toHaveProperty('d');
    expect(payload).toMatchObject({ iss: 'https://mesh.example', sub: 'gwadmin', aud: 'vmcontroller', client_id: 'gwadmin', iat: T / 1000, exp: T / 1000 + 300 });
    expect(typeof payload.aud).toBe('string');
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    const second = tokenOf(await source.issue({ kind: 'service', audience: 'gwadmin' }));
    expect((await verifyWith(jwks ?? { keys: [] }, second, T, 'gwadmin')).payload.jti).not.toBe(payload.jti);
    await expect(verifyWith(jwks ?? { keys: [] }, token, T, 'gwadmin')).rejects.toThrow();
    await source.close();
  });

  it('name the user as sub and this service as act.sub on behalf of a user', async () => {
    const source = await mint({ source: { kind: 'mint', issuer: 'https://mesh.example', keys: [{ file: writeKey('es2.pem', 'ec') }] } });
    const token = tokenOf(await source.issue({ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'cloud-teleport-a.b', userType: 'user' }));
    const { payload } = await verifyWith(source.publicKeys?.jwks() ?? { keys: [] }, token, T);
    expect(payload).toMatchObject({ sub: 'cloud-teleport-a.b', act: { sub: 'gwadmin' }, client_id: 'gwadmin' });
    await source.close();
  });

  it('carry the verified external subject when exchanging a user token', async () => {
    const source = await mint({ source: { kind: 'mint', issuer: 'https://mesh.example', keys: [{ file: writeKey('es3.pem', 'ec') }] } });
    const { privateKey } = await generateKeyPair('ES256');
    const external = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey);
    const token = tokenOf(await source.issue({ kind: 'exchange', audience: 'vmcontroller', subjectToken: external, subjectTokenFingerprint: 'h', subject: 'alice' }));
    const { payload } = await verifyWith(source.publicKeys?.jwks() ?? { keys: [] }, token, T);
    expect(payload.sub).toBe('alice');
    expect(payload.act).toBeUndefined();
    await source.close();
  });

  it.each([
    ['EdDSA', 'ed25519', 'pem'],
    ['RS256', 'rsa', 'pem'],
    ['ES256', 'ec', 'jwk'],
  ] as const)('sign with %s keys from %s files', async (algorithm, kind, format) => {
    const source = await mint({ source: { kind: 'mint', issuer: 'https://mesh.example', algorithm, keys: [{ file: writeKey(`${kind}.${format}`, kind, format) }] } });
    const token = tokenOf(await source.issue({ kind: 'service', audience: 'vmcontroller' }));
    expect(decodeProtectedHeader(token).alg).toBe(algorithm);
    await expect(verifyWith(source.publicKeys?.jwks() ?? { keys: [] }, token, T)).resolves.toBeTruthy();
    expect(source.publicKeys?.jwks().keys[0]).toMatchObject({ alg: algorithm, use: 'sig' });
    await source.close();
  });

  it('refuse a key that does not fit its algorithm', async () => {
    await expect(
      mint({ source: { kind: 'mint', algorithm: 'RS256', keys: [{ file: writeKey('wrong.pem', 'ec') }] } }),
    ).rejects.toThrow(/cannot sign RS256/);
  });

  it('publish an openid-configuration pointing at the JWKS', async () => {
    const source = await mint({ source: { kind: 'mint', issuer: 'https://mesh.example/', keys: [{ file: writeKey('oc.pem', 'ec') }] } });
    expect(source.publicKeys?.openidConfiguration()).toMatchObject({
      issuer: 'https://mesh.example/',
      jwks_uri: 'https://mesh.example/.well-known/jwks.json',
      id_token_signing_alg_values_supported: ['ES256'],
    });
    await source.close();
  });
});

describe('key rotation', () => {
  const kids = (jwks: { keys: object[] } | undefined) => (jwks?.keys ?? []).map((k) => (k as JWK).kid);

  it('publishes the next key before it signs and retires the old key after its last token expired', async () => {
    const clock = { now: T - 400_000 };
    const source = await mint(
      {
        source: {
          kind: 'mint',
          issuer: 'https://mesh.example',
          publishBeforeUseSeconds: 300,
          keys: [{ file: writeKey('old.pem', 'ec') }, { file: writeKey('new.pem', 'ec'), notBefore: new Date(T).toISOString() }],
        },
        lifetimeSeconds: 300,
        clockSkewSeconds: 30,
      },
      clock,
    );
    const signer = async () => decodeProtectedHeader(tokenOf(await source.issue({ kind: 'service', audience: 'vmcontroller' }))).kid;
    const oldKid = await signer();
    expect(kids(source.publicKeys?.jwks())).toEqual([oldKid]); // T-400 s: new key not yet published

    clock.now = T - 300_000;
    const published = kids(source.publicKeys?.jwks());
    expect(published).toHaveLength(2); // T-300 s: new key published...
    expect(await signer()).toBe(oldKid); // ...but the old one still signs
    const newKid = published.find((k) => k !== oldKid);

    clock.now = T - 1;
    const lastOldToken = tokenOf(await source.issue({ kind: 'on_behalf_of', audience: 'vmcontroller', user: 'u', userType: 'user' }));
    expect(decodeProtectedHeader(lastOldToken).kid).toBe(oldKid);

    clock.now = T;
    expect(await signer()).toBe(newKid); // T: new key signs

    clock.now = T + 329_000; // the old key's last token (exp T+299 s) may still be in use, with skew
    expect(kids(source.publicKeys?.jwks())).toEqual([oldKid, newKid]);
    await expect(verifyWith(source.publicKeys?.jwks() ?? { keys: [] }, lastOldToken, T + 290_000)).resolves.toBeTruthy();

    clock.now = T + 330_000;
    expect(kids(source.publicKeys?.jwks())).toEqual([newKid]);
    await source.close();
  });

  it('refuses to mint before any key is active, instead of signing early', async () => {
    const source = await mint(
      { source: { kind: 'mint', keys: [{ file: writeKey('future.pem', 'ec'), notBefore: new Date(T + 60_000).toISOString() }] } },
      { now: T },
    );
    expect(await source.issue({ kind: 'service', audience: 'vmcontroller' })).toMatchObject({ ok: false, reason: 'token_source_error' });
    await source.close();
  });

  it('refuses two keys with the same notBefore', async () => {
    await expect(
      mint({ source: { kind: 'mint', keys: [{ file: writeKey('d1.pem', 'ec') }, { file: writeKey('d2.pem', 'ec') }] } }),
    ).rejects.toThrow(/same notBefore/);
  });
});

describe('development key', () => {
  it('is generated once under .jwtauth/, private to the user, and shared by serve and the token CLI', async () => {
    const work = mkdtempSync(join(dir, 'work-'));
    const serve = await mint(defaultTokensConfig, { now: Date.now() }, work);
    const keyFile = join(work, '.jwtauth/dev-signing-key.json');
    expect(statSync(keyFile).mode & 0o077).toBe(0);
    const before = readFileSync(keyFile, 'utf8');

    const outbound = outboundSchema.parse(defaultOutboundConfig);
    const cli = await issueServiceTokenForCli({
      tokens: parse(defaultTokensConfig),
      outbound,
      serviceName: 'gwadmin',
      audience: 'vmcontroller',
      baseDir: work,
      logger,
    });
    expect(readFileSync(keyFile, 'utf8')).toBe(before);
    const { payload } = await jwtVerify(tokenOf(cli), createLocalJWKSet((serve.publicKeys?.jwks() ?? { keys: [] }) as { keys: JWK[] }), {
      issuer: 'http://127.0.0.1:9190',
      audience: 'vmcontroller',
      typ: 'at+jwt',
      algorithms: ['ES256'],
    });
    expect(payload.sub).toBe('gwadmin');
    await serve.close();
  });

  it('the token CLI refuses an audience that is not on the upstream list', async () => {
    const result = await issueServiceTokenForCli({
      tokens: parse(defaultTokensConfig),
      outbound: outboundSchema.parse(defaultOutboundConfig),
      serviceName: 'gwadmin',
      audience: 'somewhere-else',
      baseDir: mkdtempSync(join(dir, 'work-')),
      logger,
    });
    expect(result).toMatchObject({ ok: false, reason: 'unknown_upstream' });
  });
});

describe('tokens config', () => {
  it('defaults to ES256 minting, 5-minute tokens, 30 s skew and a bounded cache', () => {
    expect(parse({ source: { kind: 'mint' } })).toMatchObject({
      source: { kind: 'mint', algorithm: 'ES256', keys: [], publishBeforeUseSeconds: 300, devKeyFile: '.jwtauth/dev-signing-key.json' },
      lifetimeSeconds: 300,
      clockSkewSeconds: 30,
      cache: { maxEntries: 10000, refreshAtFraction: 0.5, jitterFraction: 0.1 },
    });
  });

  it('rejects a lifetime too short for the skew allowance and a plain-http token endpoint', () => {
    expect(tokensSchema.safeParse({ source: { kind: 'mint' }, lifetimeSeconds: 60, clockSkewSeconds: 30 }).success).toBe(false);
    expect(
      tokensSchema.safeParse({
        source: { kind: 'exchange', tokenEndpoint: 'http://ts/token', clientCertFile: 'c', clientKey: { file: 'k' }, caFile: 'ca' },
      }).success,
    ).toBe(false);
  });
});
