/**
 * The batching scheduler in front of CheckBulkPermissions, with a scripted bulk call in place of
 * SpiceDB (the real call is covered against a real SpiceDB in test/integration/spicedb-checker).
 */
import { describe, expect, it } from 'vitest';
import type { Consistency, PermissionAnswer, PermissionQuery } from '../../src/core/ports.js';
import { PermissionCheckBatcher } from '../../src/spicedb/permission-check-batcher.js';

interface Call {
  readonly queries: readonly PermissionQuery[];
  readonly consistency: Consistency;
  readonly deadline: number;
  answer(answers?: readonly PermissionAnswer[]): void;
}

const ALLOWED: PermissionAnswer = { ok: true, value: { permissionship: 'allowed', cached: false } };
const DENIED: PermissionAnswer = { ok: true, value: { permissionship: 'denied', cached: false } };
const LATEST: Consistency = { kind: 'minimize_latency' };

function scripted(limits = { maxItems: 100, maxConcurrentCalls: 2 }, now = () => 1000) {
  const calls: Call[] = [];
  const batcher = new PermissionCheckBatcher(
    (queries, consistency, deadline) =>
      new Promise((resolve) => {
        // By default each check is allowed when its resource id starts with "ok".
        calls.push({ queries, consistency, deadline, answer: (answers) => resolve(answers ?? queries.map((q) => (q.resource.id.startsWith('ok') ? ALLOWED : DENIED))) });
      }),
    limits,
    now,
  );
  return { batcher, calls };
}

const query = (id: string, consistency: Consistency = LATEST): PermissionQuery => ({
  resource: { type: 'cloud', id },
  permission: 'view',
  subject: { type: 'user', id: 'alice' },
  consistency,
});

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('check batcher', () => {
  it('sends a lone check at once, and checks arriving together in one call', async () => {
    const { batcher, calls } = scripted();
    const lone = batcher.check(query('ok-1'), 5000);
    await turn();
    expect(calls.map((c) => c.queries.length)).toEqual([1]);
    calls[0]!.answer();
    expect(await lone).toEqual(ALLOWED);

    const together = [batcher.check(query('ok-2'), 5000), batcher.check(query('no-3'), 5000), batcher.check(query('ok-4'), 5000)];
    await turn();
    expect(calls.map((c) => c.queries.length)).toEqual([1, 3]);
    calls[1]!.answer();
    expect(await Promise.all(together)).toEqual([ALLOWED, DENIED, ALLOWED]);
  });

  it('with every call slot busy, queues checks and sends them together when a call ends', async () => {
    const { batcher, calls } = scripted({ maxItems: 100, maxConcurrentCalls: 2 });
    const first = batcher.check(query('ok-a'), 5000);
    await turn();
    const second = batcher.check(query('ok-b'), 5000);
    await turn();
    expect(calls).toHaveLength(2);
    const queued = Array.from({ length: 5 }, (_, i) => batcher.check(query(`ok-q${i}`), 5000));
    await turn();
    expect(calls).toHaveLength(2); // both slots busy: nothing else leaves
    calls[0]!.answer();
    await first;
    await turn();
    expect(calls.map((c) => c.queries.length)).toEqual([1, 1, 5]);
    calls[1]!.answer();
    calls[2]!.answer();
    expect(await second).toEqual(ALLOWED);
    expect(await Promise.all(queued)).toEqual(Array(5).fill(ALLOWED));
  });

  it('caps a call at maxItems and keeps checks of another consistency for a call of their own', async () => {
    const { batcher, calls } = scripted({ maxItems: 2, maxConcurrentCalls: 4 });
    const fresh: Consistency = { kind: 'at_least_as_fresh', zedToken: 'zt-1' };
    const answers = [
      batcher.check(query('ok-1'), 5000),
      batcher.check(query('ok-2', fresh), 5000),
      batcher.check(query('ok-3'), 5000),
      batcher.check(query('ok-4'), 5000),
      batcher.check(query('ok-5', { kind: 'at_least_as_fresh', zedToken: 'zt-2' }), 5000),
    ];
    await turn();
    expect(calls.map((c) => [c.consistency, c.queries.map((q) => q.resource.id)])).toEqual([
      [LATEST, ['ok-1', 'ok-3']],
      [fresh, ['ok-2']],
      [LATEST, ['ok-4']],
      [{ kind: 'at_least_as_fresh', zedToken: 'zt-2' }, ['ok-5']],
    ]);
    for (const call of calls) call.answer();
    expect(await Promise.all(answers)).toEqual(Array(5).fill(ALLOWED));
  });

  it("gives a call its earliest check's deadline, and times out a check whose deadline passed in the queue without sending it", async () => {
    let now = 1000;
    const { batcher, calls } = scripted({ maxItems: 100, maxConcurrentCalls: 1 }, () => now);
    const busy = batcher.check(query('ok-busy'), 1300);
    await turn();
    const expiring = batcher.check(query('ok-expiring'), 1200);
    const later = batcher.check(query('ok-later'), 1500);
    const latest = batcher.check(query('ok-latest'), 1600);
    now = 1250; // the busy call ends after `expiring`'s deadline
    calls[0]!.answer();
    await busy;
    await turn();
    expect(await expiring).toMatchObject({ ok: false, reason: 'permission_backend_timeout' });
    expect(calls[1]!.queries.map((q) => q.resource.id)).toEqual(['ok-later', 'ok-latest']);
    expect(calls[1]!.deadline).toBe(1500);
    calls[1]!.answer();
    expect(await Promise.all([later, latest])).toEqual([ALLOWED, ALLOWED]);
  });

  it('never allows when the bulk call answers short or throws', async () => {
    const { batcher, calls } = scripted();
    const short = [batcher.check(query('ok-1'), 5000), batcher.check(query('ok-2'), 5000)];
    await turn();
    calls[0]!.answer([ALLOWED]);
    expect(await Promise.all(short)).toEqual([ALLOWED, expect.objectContaining({ ok: false, reason: 'permission_backend_unavailable' })]);

    // A bulk call that throws is a bug, answered like every port that throws: internal_error.
    const throwing = new PermissionCheckBatcher(() => Promise.reject(new Error('bug')), { maxItems: 10, maxConcurrentCalls: 1 });
    expect(await throwing.check(query('ok-1'), Date.now() + 5000)).toMatchObject({ ok: false, reason: 'internal_error' });
    // The slot came back: the next check is sent and answered too.
    expect(await throwing.check(query('ok-2'), Date.now() + 5000)).toMatchObject({ ok: false, reason: 'internal_error' });
  });
});
