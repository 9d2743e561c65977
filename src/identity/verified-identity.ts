/**
 * Turns the claims of an accepted token into the VerifiedToken the decision core reads. A verified
 * JWT's payload and an RFC 7662 introspection answer both come through here, so rules, templates
 * and the outbound exchange see the same identity whichever way the token was checked.
 */
import type { VerifiedToken } from '../core/ports.js';
import type { IssuerConfig } from './config.js';

/** `aud` as a list of strings; undefined when it is absent or not strings. */
export function audiencesOf(claims: Readonly<Record<string, unknown>>): string[] | undefined {
  const aud = claims.aud;
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) return aud;
  return undefined;
}

function actorOf(claims: Readonly<Record<string, unknown>>): string | undefined {
  const act = claims.act;
  if (act === null || typeof act !== 'object' || Array.isArray(act)) return undefined;
  const sub = (act as Record<string, unknown>).sub;
  return typeof sub === 'string' ? sub : undefined;
}

/**
 * RFC 9068 section 2.2: a client-credentials token has `sub` equal to its `client_id`; a token
 * issued for a user (on behalf of one, or exchanged from the user's own token) names the user in
 * `sub`. Issuers that mint both kinds set `userSubjectType` to tell them apart.
 */
function subjectTypeOf(config: IssuerConfig, claims: Readonly<Record<string, unknown>>, subject: string): string {
  if (config.userSubjectType === undefined) return config.subjectType;
  return claims.client_id !== undefined && claims.client_id === subject ? config.subjectType : config.userSubjectType;
}

export interface AcceptedClaims {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly subject: string;
  readonly audience: readonly string[];
  /** Seconds since the epoch. */
  readonly expiresAt: number;
  /** SHA-256 of the token, base64url. */
  readonly fingerprint: string;
}

export function verifiedIdentity(config: IssuerConfig, accepted: AcceptedClaims): VerifiedToken {
  return Object.freeze({
    issuer: config.name,
    iss: config.issuer,
    issuerKind: config.kind,
    subjectType: subjectTypeOf(config, accepted.claims, accepted.subject),
    subject: accepted.subject,
    audience: Object.freeze([...accepted.audience]),
    expiresAt: accepted.expiresAt,
    actor: actorOf(accepted.claims),
    claims: Object.freeze({ ...accepted.claims }),
    fingerprint: accepted.fingerprint,
  });
}
