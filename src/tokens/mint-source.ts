/**
 * Mints RFC 9068 JWT access tokens locally: `typ: at+jwt`, exactly one audience, short life, a
 * fresh `jti`, `kid` = the key's JWK thumbprint. On-behalf-of tokens carry the user as `sub` and
 * this service as `act.sub` (RFC 8693 section 4.1).
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { JWTPayload } from 'jose';
import type { PublicKeyDocuments, TokenRequest, TokenResult, TokenSource } from '../core/ports.js';
import type { SigningKeySet } from './signing-keys.js';
import { failure, success } from '../core/result.js';

export interface MintOptions {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly serviceName: string;
  readonly lifetimeSeconds: number;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

export class MintTokenSource implements TokenSource {
  readonly name = 'mint';
  readonly publicKeys: PublicKeyDocuments;

  constructor(
    private readonly keys: SigningKeySet,
    private readonly options: MintOptions,
  ) {
    this.publicKeys = {
      jwks: () => ({ keys: this.keys.published(this.options.now()).map((k) => ({ ...k.publicJwk })) }),
      openidConfiguration: () => {
        const algs = [...new Set(this.keys.published(this.options.now()).map((k) => k.alg))];
        return {
          issuer: this.options.issuer,
          jwks_uri: this.options.jwksUri,
          id_token_signing_alg_values_supported: algs,
          // Not an authorization server: it only publishes keys for the tokens it mints.
          grant_types_supported: [],
          response_types_supported: [],
        };
      },
    };
  }

  async issue(request: TokenRequest): Promise<TokenResult> {
    const nowMs = this.options.now();
    const key = this.keys.signingKey(nowMs);
    if (!key) return failure('token_source_error', 'no signing key is active yet (every key has a future notBefore)');

    const service = this.options.serviceName;
    const claims: JWTPayload = { client_id: service };
    let subject: string;
    switch (request.kind) {
      case 'service':
        subject = service;
        break;
      case 'on_behalf_of':
        subject = request.user;
        claims.act = { sub: service };
        break;
      case 'exchange':
        // Minting is a local exchange: the user stays the subject, as the verifier accepted it.
        subject = request.subject;
        break;
    }

    const iat = Math.floor(nowMs / 1000);
    const exp = iat + this.options.lifetimeSeconds;
    try {
      const token = await new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
        .setIssuer(this.options.issuer)
        .setSubject(subject)
        .setAudience(request.audience)
        .setIssuedAt(iat)
        .setExpirationTime(exp)
        .setJti(randomUUID())
        .sign(key.privateKey);
      return success({ token, issuedAt: iat, expiresAt: exp });
    } catch (error) {
      return failure('token_source_error', `signing with ${key.kid} failed: ${(error as Error).name}`);
    }
  }
}
