/**
 * The public auth service of the demo: the issuer of the tokens users hold (in the seed, the
 * public auth service whose tokens the team wanted to exchange). It is only a key pair: tokens are
 * signed with jose, and its public key is published as a JWKS file that the gateway's sidecar reads
 * (`issuers[].jwks.file`, kind external). Nothing inside the mesh accepts these tokens directly;
 * the gateway's sidecar exchanges them on the way out.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { CryptoKey } from 'jose';
import { ISSUER, PUBLIC_API_AUDIENCE } from './topology.js';

const AUTH_SERVICE_JWKS_FILE = 'auth-service.jwks.json';

export interface AuthService {
  /** A user access token for the public API, valid for `ttlSeconds`. */
  issue(user: string, ttlSeconds?: number): Promise<string>;
}

/** Creates the key pair and writes its JWKS into `dir` (beside the rendered sidecar configs). */
export async function startAuthService(dir: string): Promise<AuthService> {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `auth-${randomUUID().slice(0, 8)}`;
  const jwk = await exportJWK(publicKey);
  writeFileSync(join(dir, AUTH_SERVICE_JWKS_FILE), JSON.stringify({ keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }, null, 2));
  const key: CryptoKey = privateKey;
  return {
    async issue(user, ttlSeconds = 600) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ client_id: 'cloud-console' })
        .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
        .setIssuer(ISSUER.authService)
        .setSubject(user)
        .setAudience(PUBLIC_API_AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + ttlSeconds)
        .setJti(randomUUID())
        .sign(key);
    },
  };
}
