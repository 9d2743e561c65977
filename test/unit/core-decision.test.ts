/**
 * The decision values every authorizer builds: a deny carries its reason's HTTP status, and facts
 * never carry an undefined detail (decision logs and metrics read what is there).
 */
import { describe, expect, it } from 'vitest';
import { allow, DENY_REASONS, deny, withDetail } from '../../src/core/decision.js';

describe('decisions', () => {
  it('gives each deny its reason\'s status, and no headers unless asked', () => {
    for (const [reason, { status }] of Object.entries(DENY_REASONS)) {
      expect(deny(reason as keyof typeof DENY_REASONS)).toEqual({ kind: 'deny', reason, status, headers: [], facts: {} });
    }
    expect(deny('missing_token', { rule: 'r' }, [['www-authenticate', 'Bearer']])).toEqual({
      kind: 'deny',
      reason: 'missing_token',
      status: 401,
      headers: [['www-authenticate', 'Bearer']],
      facts: { rule: 'r' },
    });
    expect(allow('allowed')).toEqual({ kind: 'allow', reason: 'allowed', setHeaders: [], removeHeaders: [], facts: {} });
  });

  it('adds a detail only when there is one', () => {
    const facts = { rule: 'r' };
    expect(withDetail(facts, undefined)).toBe(facts);
    expect('detail' in withDetail(facts, undefined)).toBe(false);
    expect(withDetail(facts, 'why')).toEqual({ rule: 'r', detail: 'why' });
    expect(facts).toEqual({ rule: 'r' });
  });
});
