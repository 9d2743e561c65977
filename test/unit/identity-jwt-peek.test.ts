/**
 * Reading a token's header and payload before verification, only to pick its issuer and key: the
 * shape that makes a token a JWT (else it is opaque and can only be introspected), and every
 * malformation as a value with its own detail, never a throw.
 */
import { describe, expect, it } from 'vitest';
import { hasCompactJwsShape, peekJwt } from '../../src/identity/jwt-peek.js';

const part = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const jwt = (header: unknown, payload: unknown): string => `${part(header)}.${part(payload)}.c2ln`;

describe('peeking at a JWT', () => {
  it('takes three dot-separated parts with a non-empty first as a JWT, anything else as opaque', () => {
    for (const token of ['a.b.c', 'a..', 'a.b.', 'a..c']) expect(hasCompactJwsShape(token), token).toBe(true);
    for (const token of ['', 'abc', 'a.b', '.b.c', 'a.b.c.d', 'a.b.c.', '..', '...']) expect(hasCompactJwsShape(token), token).toBe(false);
  });

  it('reads alg, kid and iss', () => {
    expect(peekJwt(jwt({ alg: 'ES256', kid: 'k1' }, { iss: 'https://auth.example', sub: 'alice' }))).toEqual({
      ok: true,
      value: { alg: 'ES256', kid: 'k1', iss: 'https://auth.example' },
    });
    expect(peekJwt(jwt({ alg: 'RS256' }, {}))).toEqual({ ok: true, value: { alg: 'RS256', kid: undefined, iss: undefined } });
  });

  it('names each malformation', () => {
    expect(peekJwt('opaque')).toEqual({ ok: false, reason: 'malformed_token', detail: 'not a compact JWS' });
    expect(peekJwt(`${part({ alg: 'ES256' })}.${part({})}.sig.extra`)).toEqual({ ok: false, reason: 'malformed_token', detail: 'not a compact JWS' });
    // Characters outside base64url would be skipped by a lenient decoder, which would then read the rest.
    for (const header of ['!!!', `${part({ alg: 'ES256' })}!`, `${part({ alg: 'ES256' })}=`, `+${part({ alg: 'ES256' })}`, part('not json'), part('[1]'), part('null'), part('"ES256"')]) {
      expect(peekJwt(`${header}.${part({})}.sig`), header).toEqual({ ok: false, reason: 'malformed_token', detail: 'header is not base64url JSON' });
    }
    for (const payload of ['', '%%', part('{'), part('[]'), part('7')]) {
      expect(peekJwt(`${part({ alg: 'ES256' })}.${payload}.sig`), payload).toEqual({ ok: false, reason: 'malformed_token', detail: 'payload is not base64url JSON' });
    }
    expect(peekJwt(jwt({ kid: 'k1' }, {}))).toEqual({ ok: false, reason: 'malformed_token', detail: 'header has no alg' });
    expect(peekJwt(jwt({ alg: 256 }, {}))).toEqual({ ok: false, reason: 'malformed_token', detail: 'header has no alg' });
    expect(peekJwt(jwt({ alg: 'ES256', kid: 7 }, {}))).toEqual({ ok: false, reason: 'malformed_token', detail: 'kid is not a string' });
    expect(peekJwt(jwt({ alg: 'ES256', kid: null }, {}))).toEqual({ ok: false, reason: 'malformed_token', detail: 'kid is not a string' });
    expect(peekJwt(jwt({ alg: 'ES256' }, { iss: ['https://auth.example'] }))).toEqual({ ok: false, reason: 'malformed_token', detail: 'iss is not a string' });
  });
});
