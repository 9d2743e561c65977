/**
 * The actor of a verified token (RFC 8693 `act`): only `act.sub` as a string names one. The actor
 * header tells the app who acts for the subject, so a token whose act is anything else names none,
 * and is not refused for it.
 */
import { describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { verifiedIdentity } from '../../src/identity/verified-identity.js';

const [issuer] = issuersSchema.parse([
  { name: 'auth', issuer: 'https://auth.example', audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { url: 'https://auth.example/jwks' }, algorithms: ['ES256'] },
]);

const actorOf = (act: unknown) => verifiedIdentity(issuer!, { claims: { sub: 'alice', act }, subject: 'alice', audience: ['gwadmin'], expiresAt: 2e9, fingerprint: 'fp' }).actor;

describe('the actor of a token', () => {
  it('is act.sub when act is an object with a string sub', () => {
    expect(actorOf({ sub: 'saga-runner', act: { sub: 'outer' } })).toBe('saga-runner');
  });

  it('is none for an act that is not such an object, and never a reason to fail', () => {
    for (const act of [null, undefined, 'saga-runner', 7, true, ['saga-runner'], [{ sub: 'saga-runner' }], {}, { sub: 7 }, { sub: null }]) {
      expect(actorOf(act), JSON.stringify(act)).toBeUndefined();
    }
  });
});
