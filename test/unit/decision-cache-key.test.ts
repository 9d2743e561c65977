/**
 * A cached permission answer is only ever served for the very check it answered: same resource,
 * permission, subject and subject relation. Each check below differs from a cached one in one part.
 */
import { describe, expect, it } from 'vitest';
import type { Closable, PermissionAnswer, PermissionChecker, PermissionQuery } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import { spicedbSchema } from '../../src/spicedb/config.js';
import { CachingChecker } from '../../src/spicedb/decision-cache.js';

/** Allows exactly the checks in `allowed` (by their text), denies the rest. */
class TableBackend implements PermissionChecker, Closable {
  calls = 0;
  constructor(private readonly allowed: ReadonlySet<string>) {}
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.calls++;
    const permissionship = this.allowed.has(text(query)) ? 'allowed' : 'denied';
    return Promise.resolve({ ok: true, value: { permissionship, cached: false } });
  }
  ready(): boolean {
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const text = (q: PermissionQuery): string => `${q.resource.type}:${q.resource.id}#${q.permission}@${q.subject.type}:${q.subject.id}${q.subject.relation ? `#${q.subject.relation}` : ''}`;

function query(resource: string, permission: string, subject: string): PermissionQuery {
  const [type = '', id = ''] = resource.split(':');
  const [subjectObject = '', relation] = subject.split('#');
  const [subjectType = '', subjectId = ''] = subjectObject.split(':');
  return { resource: { type, id }, permission, subject: { type: subjectType, id: subjectId, ...(relation ? { relation } : {}) }, consistency: { kind: 'minimize_latency' } };
}

describe('decision cache keys', () => {
  it('never answers a check with the cached answer of one that differs in any part, the subject relation included', async () => {
    const backend = new TableBackend(new Set(['cloud:cl0#view@group:eng#member', 'cloud:cl0#view@user:alice']));
    const options = spicedbSchema.parse({ decisionCache: { freshness: 'ttl', ttlMs: 60_000 } }).decisionCache;
    const checker = new CachingChecker(backend, options, new Metrics({ processMetrics: false }));
    const ask = async (resource: string, permission: string, subject: string) => {
      const answer = await checker.check(query(resource, permission, subject));
      return answer.ok ? answer.value.permissionship : answer.reason;
    };
    // Fill the cache with the two allowed checks first.
    expect(await ask('cloud:cl0', 'view', 'group:eng#member')).toBe('allowed');
    expect(await ask('cloud:cl0', 'view', 'user:alice')).toBe('allowed');
    for (const [resource, permission, subject] of [
      ['cloud:cl0', 'view', 'group:eng#admin'],
      ['cloud:cl0', 'view', 'group:eng'],
      ['cloud:cl0', 'view', 'group:engineering#member'],
      ['cloud:cl0', 'view', 'team:eng#member'],
      ['cloud:cl1', 'view', 'group:eng#member'],
      ['cloud:cl0', 'edit', 'group:eng#member'],
      ['cluster:cl0', 'view', 'group:eng#member'],
      ['cloud:cl1', 'view', 'user:alice'],
      ['cloud:cl0', 'view', 'user:bob'],
      ['cloud:cl0', 'view', 'user:alice#member'],
    ] as const) {
      expect(await ask(resource, permission, subject), `${resource}#${permission}@${subject}`).toBe('denied');
    }
    expect(backend.calls).toBe(12);
    expect(await ask('cloud:cl0', 'view', 'group:eng#member')).toBe('allowed');
    expect(backend.calls).toBe(12);
  });

  it('keys a check with caveat context on that context: another context, or none, is another check', async () => {
    const backend = new TableBackend(new Set());
    const options = spicedbSchema.parse({ decisionCache: { freshness: 'ttl', ttlMs: 60_000 } }).decisionCache;
    const checker = new CachingChecker(backend, options, new Metrics({ processMetrics: false }));
    const withContext = (context?: Record<string, unknown>) => ({ ...query('cloud:cl0', 'view', 'user:alice'), ...(context ? { context } : {}) });
    const cached = async (context?: Record<string, unknown>) => {
      const answer = await checker.check(withContext(context));
      return answer.ok && answer.value.cached;
    };
    expect(await cached({ ip: '10.0.0.1' })).toBe(false);
    expect(await cached({ ip: '10.0.0.2' })).toBe(false);
    expect(await cached()).toBe(false);
    expect(await cached({ ip: '10.0.0.1' })).toBe(true);
    expect(await cached()).toBe(true);
    expect(backend.calls).toBe(3);
  });
});
