/**
 * The result shape every port answers with: a failure names its deny reason, carries a detail only
 * when there is one, and a port that throws or rejects becomes internal_error, never an allow.
 */
import { describe, expect, it } from 'vitest';
import { failure, settled, success, thrown } from '../../src/core/result.js';

describe('port results', () => {
  it('builds failures with a detail only when there is one', () => {
    expect(failure('token_expired')).toStrictEqual({ ok: false, reason: 'token_expired' });
    expect('detail' in failure('token_expired')).toBe(false);
    expect(failure('token_expired', 'exp 5 s ago')).toStrictEqual({ ok: false, reason: 'token_expired', detail: 'exp 5 s ago' });
  });

  it('turns a throw, a rejection or a thrown non-error into internal_error naming the port', async () => {
    expect(thrown(new Error('boom'), 'token source')).toStrictEqual({ ok: false, reason: 'internal_error', detail: 'token source failed unexpectedly: boom' });
    expect(thrown('plain', 'checker')).toStrictEqual({ ok: false, reason: 'internal_error', detail: 'checker failed unexpectedly: plain' });
    expect(await settled(() => Promise.reject(new Error('late')), 'verifier')).toStrictEqual({ ok: false, reason: 'internal_error', detail: 'verifier failed unexpectedly: late' });
    expect(
      await settled(() => {
        throw new Error('early');
      }, 'verifier'),
    ).toStrictEqual({ ok: false, reason: 'internal_error', detail: 'verifier failed unexpectedly: early' });
    expect(await settled(() => Promise.resolve(success(1)), 'verifier')).toStrictEqual({ ok: true, value: 1 });
  });
});
