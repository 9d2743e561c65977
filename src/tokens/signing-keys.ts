/**
 * The minting key set and its rotation schedule.
 *
 * Model (docs/outbound.md, "Key rotation"): keys are ordered by `notBefore` (a key without one is
 * the oldest). Key k
 *   - is published from `notBefore(k) - publishBeforeUse`, so verifiers can fetch it before it signs;
 *   - signs from `notBefore(k)` until the next key's `notBefore`;
 *   - stays published until the next key's `notBefore + lifetime + clockSkew`, when the last token
 *     it signed has expired everywhere.
 * The schedule is a pure function of the configuration and the clock: every replica holding the
 * same key files publishes and signs alike, and a restart changes nothing.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import type { JWK } from 'jose';
import type { SigningAlgorithm } from './config.js';
import { resolveConfigPath } from '../base/paths.js';

export interface SigningKey {
  /** RFC 7638 JWK thumbprint (SHA-256) of the public key. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: KeyObject;
  /** What is published: public members plus kid, alg, use. */
  readonly publicJwk: Readonly<JWK>;
  /** Epoch ms; -Infinity when the key has no notBefore. */
  readonly notBefore: number;
  /** Where it came from, for log lines. */
  readonly origin: string;
}

class SigningKeyError extends Error {
  override readonly name = 'SigningKeyError';
}

interface ScheduledKey {
  readonly key: SigningKey;
  readonly publishFrom: number;
  /** Next key's notBefore (Infinity for the newest key). */
  readonly signsUntil: number;
  readonly retireAt: number;
}

export class SigningKeySet {
  private readonly schedule: readonly ScheduledKey[];

  constructor(
    keys: readonly SigningKey[],
    options: { readonly publishBeforeUseSeconds: number; readonly maxTokenLifetimeSeconds: number; readonly clockSkewSeconds: number },
  ) {
    if (keys.length === 0) throw new SigningKeyError('no signing keys');
    const sorted = [...keys].sort((a, b) => a.notBefore - b.notBefore);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as SigningKey;
      const cur = sorted[i] as SigningKey;
      if (prev.notBefore === cur.notBefore) {
        throw new SigningKeyError(`keys ${prev.origin} and ${cur.origin} have the same notBefore; give each key its own`);
      }
      if (prev.kid === cur.kid) throw new SigningKeyError(`${prev.origin} and ${cur.origin} are the same key`);
    }
    const publishBefore = options.publishBeforeUseSeconds * 1000;
    const tail = (options.maxTokenLifetimeSeconds + options.clockSkewSeconds) * 1000;
    this.schedule = sorted.map((key, i) => {
      const next = sorted[i + 1];
      const signsUntil = next ? next.notBefore : Infinity;
      return { key, publishFrom: key.notBefore - publishBefore, signsUntil, retireAt: signsUntil + tail };
    });
  }

  /** The key that signs at `nowMs`, or undefined before the first key's notBefore. */
  signingKey(nowMs: number): SigningKey | undefined {
    for (let i = this.schedule.length - 1; i >= 0; i--) {
      const entry = this.schedule[i] as ScheduledKey;
      if (entry.key.notBefore <= nowMs) return entry.key;
    }
    return undefined;
  }

  /** Keys a verifier must be able to find at `nowMs`: upcoming, current, and not yet retired. */
  published(nowMs: number): SigningKey[] {
    const out: SigningKey[] = [];
    for (const entry of this.schedule) {
      if (entry.publishFrom <= nowMs && nowMs < entry.retireAt) out.push(entry.key);
    }
    return out;
  }

  /** Every key with its schedule, for start-up logging. */
  describe(): Array<{ kid: string; alg: SigningAlgorithm; origin: string; publishFrom: number; signsFrom: number; retireAt: number }> {
    return this.schedule.map((e) => ({
      kid: e.key.kid,
      alg: e.key.alg,
      origin: e.key.origin,
      publishFrom: e.publishFrom,
      signsFrom: e.key.notBefore,
      retireAt: e.retireAt,
    }));
  }
}

/** Checks that a private key is of the kind the algorithm needs (one algorithm per key, RFC 8725). */
function assertKeyFits(key: KeyObject, alg: SigningAlgorithm, origin: string): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  const fits =
    (alg === 'ES256' && type === 'ec' && details?.namedCurve === 'prime256v1') ||
    (alg === 'EdDSA' && type === 'ed25519') ||
    (alg === 'RS256' && type === 'rsa' && (details?.modulusLength ?? 0) >= 2048);
  if (!fits) {
    const curve = details?.namedCurve ? ` (${details.namedCurve})` : '';
    throw new SigningKeyError(`${origin}: a ${type ?? 'unknown'}${curve} key cannot sign ${alg} (ES256: P-256, EdDSA: Ed25519, RS256: RSA >= 2048 bits)`);
  }
}

/** Parses a PEM private key or a private JWK; never echoes key material in errors. */
function parsePrivateKey(text: string, origin: string): { key: KeyObject; jwkAlg: string | undefined } {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) {
      const jwk = JSON.parse(trimmed) as JWK;
      if (typeof jwk !== 'object' || jwk === null || typeof jwk.d !== 'string') {
        throw new SigningKeyError(`${origin}: the JWK is not a private key (no "d")`);
      }
      const key = createPrivateKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' });
      return { key, jwkAlg: typeof jwk.alg === 'string' ? jwk.alg : undefined };
    }
    return { key: createPrivateKey(trimmed), jwkAlg: undefined };
  } catch (error) {
    if (error instanceof SigningKeyError) throw error;
    throw new SigningKeyError(`${origin}: not a PEM private key or private JWK`);
  }
}

export async function toSigningKey(key: KeyObject, alg: SigningAlgorithm, notBefore: number, origin: string): Promise<SigningKey> {
  if (key.type !== 'private') throw new SigningKeyError(`${origin}: expected a private key`);
  assertKeyFits(key, alg, origin);
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  const publicJwk: JWK = Object.freeze({ ...jwk, kid, alg, use: 'sig' });
  return { kid, alg, privateKey: key, publicJwk, notBefore, origin };
}

export async function loadSigningKeyFile(
  path: string,
  alg: SigningAlgorithm,
  notBefore: number,
): Promise<SigningKey> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SigningKeyError(`cannot read signing key ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const { key, jwkAlg } = parsePrivateKey(text, path);
  if (jwkAlg !== undefined && jwkAlg !== alg) throw new SigningKeyError(`${path}: the JWK says alg ${jwkAlg}, the config says ${alg}`);
  return toSigningKey(key, alg, notBefore, path);
}

export function generatePrivateKey(alg: SigningAlgorithm): KeyObject {
  if (alg === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  if (alg === 'EdDSA') return generateKeyPairSync('ed25519').privateKey;
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/**
 * The development key: generated on first use and kept in a file, so `serve` and the `token` CLI
 * (separate processes) sign with the same key and a restart does not invalidate issued tokens.
 * Creation is atomic (write a temp file, hard-link it into place): when two processes race, one
 * wins and the other reads the winner's key.
 */
export async function loadOrCreateDevKey(
  file: string,
  baseDir: string,
  alg: SigningAlgorithm,
): Promise<{ key: SigningKey; created: boolean; path: string }> {
  const path = resolveConfigPath(baseDir, file);
  let created = false;
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new SigningKeyError(`cannot read development key ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
  if (text === undefined) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const jwk = { ...(generatePrivateKey(alg).export({ format: 'jwk' }) as JWK), alg };
    const temp = `${path}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(temp, `${JSON.stringify(jwk)}\n`, { mode: 0o600 });
    try {
      linkSync(temp, path);
      created = true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(temp);
    }
    text = readFileSync(path, 'utf8');
  }
  const { key, jwkAlg } = parsePrivateKey(text, path);
  if (jwkAlg !== undefined && jwkAlg !== alg) {
    throw new SigningKeyError(`${path} holds an ${jwkAlg} key but tokens.source.algorithm is ${alg}; delete the file to generate a new one`);
  }
  return { key: await toSigningKey(key, alg, -Infinity, path), created, path };
}
