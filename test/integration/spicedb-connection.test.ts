/**
 * The SpiceDB checker's connection, against a real SpiceDB (memory datastore): it keeps answering
 * while SpiceDB recycles connections (GOAWAY every 30 s by default), sends the preshared key, retries
 * a call whose connection failed exactly once within the deadline, and replaces a connection that
 * stopped answering. Connection faults are made by a TCP proxy in front of the real server that drops
 * or stalls chosen connections; what answers is always SpiceDB.
 */
import { createServer, connect } from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PermissionAnswer, PermissionQuery } from '../../src/core/ports.js';
import { GrpcChecker } from '../../src/spicedb/grpc-checker.js';
import type { GrpcCheckerOptions } from '../../src/spicedb/grpc-checker.js';
import { waitFor } from '../../dev/processes.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';

const SCHEMA = `
definition user {}
definition doc {
    relation viewer: user
    permission view = viewer
}
`;

let spicedb: SpicedbServer;

beforeAll(async () => {
  spicedb = await startSpicedb({ schema: SCHEMA, relationships: ['d1', 'd2', 'd3'].map((doc) => `doc:${doc}#viewer@user:alice`).join('\n') });
});
afterAll(async () => {
  await spicedb?.stop();
});

const view = (doc: string, user = 'alice'): PermissionQuery => ({
  resource: { type: 'doc', id: doc },
  permission: 'view',
  subject: { type: 'user', id: user },
  consistency: { kind: 'minimize_latency' },
});

const permissionship = (answer: PermissionAnswer): string => (answer.ok ? answer.value.permissionship : answer.reason);

function checker(overrides: Partial<GrpcCheckerOptions> = {}): GrpcChecker {
  return new GrpcChecker({
    endpoint: spicedb.endpoint,
    presharedKey: spicedb.presharedKey,
    tls: false,
    deadlineMs: 1000,
    baseDir: '/',
    batch: { maxItems: 100, maxConcurrentCalls: 4 },
    ...overrides,
  });
}

type ConnectionFate = 'pass' | 'drop' | 'stall';

/**
 * A TCP proxy to the real SpiceDB whose n-th connection (from 0) is passed through, dropped as soon
 * as the client has sent something (a call in flight on it fails), or stalled (accepted, never
 * forwarded: a peer that stopped answering without closing).
 */
async function faultyProxy(fate: (connection: number) => ConnectionFate): Promise<{ endpoint: string; connections(): number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('error', () => undefined);
    const chosen = fate(accepted++);
    if (chosen === 'stall') return;
    if (chosen === 'drop') {
      client.once('data', () => client.destroy());
      return;
    }
    const upstream = connect(spicedb.port, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    connections: () => accepted,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the SpiceDB checker connection', () => {
  it(
    'keeps answering every check correctly while SpiceDB ends its connection every 30 s (GOAWAY)',
    async () => {
      // SpiceDB's --grpc-max-conn-age is 30 s by default (dev/spicedb.ts leaves it so): 36 s of
      // checks cross at least one GOAWAY, and whatever call it races must still be answered.
      const subject = checker();
      const wrong: string[] = [];
      let answered = 0;
      try {
        const until = Date.now() + 36_000;
        while (Date.now() < until) {
          const answers = await Promise.all([subject.check(view('d1')), subject.check(view('d2', 'bob')), subject.check(view('d3'))]);
          const got = answers.map(permissionship);
          if (got.join() !== 'allowed,denied,allowed') wrong.push(got.join());
          answered += answers.length;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      } finally {
        await subject.close();
      }
      expect(answered).toBeGreaterThan(1000);
      expect(wrong).toEqual([]);
    },
    60_000,
  );

  it('sends the preshared key as its bearer token: with another key SpiceDB refuses the check, which fails closed', async () => {
    const subject = checker({ presharedKey: 'not-the-key' });
    try {
      const answer = await subject.check(view('d1'));
      expect(answer).toMatchObject({ ok: false, reason: 'permission_backend_unavailable' });
      expect(!answer.ok && answer.detail).toMatch(/^PERMISSION_DENIED: invalid preshared key/);
      expect(JSON.stringify(answer)).not.toContain('not-the-key');
    } finally {
      await subject.close();
    }
  });

  it('retries a call whose connection failed once, on a new connection, within the deadline', async () => {
    const proxy = await faultyProxy((connection) => (connection === 0 ? 'drop' : 'pass'));
    const subject = checker({ endpoint: proxy.endpoint });
    try {
      expect(permissionship(await subject.check(view('d1')))).toBe('allowed');
      expect(proxy.connections()).toBe(2);
      expect(subject.ready()).toBe(true);
    } finally {
      await subject.close();
      await proxy.close();
    }
  });

  it('retries only once: when every connection fails, the check fails closed after two attempts and the checker is not ready', async () => {
    const proxy = await faultyProxy(() => 'drop');
    const subject = checker({ endpoint: proxy.endpoint });
    try {
      const answer = await subject.check(view('d1'));
      expect(answer).toMatchObject({ ok: false, reason: 'permission_backend_unavailable' });
      expect(proxy.connections()).toBe(2);
      expect(subject.ready()).toBe(false);
    } finally {
      await subject.close();
      await proxy.close();
    }
  });

  it('replaces a connection that stopped answering: after a check times out on it, later checks go over a new one', async () => {
    const proxy = await faultyProxy((connection) => (connection === 0 ? 'stall' : 'pass'));
    const subject = checker({ endpoint: proxy.endpoint, deadlineMs: 300 });
    try {
      expect(await subject.check(view('d1'))).toMatchObject({ ok: false, reason: 'permission_backend_timeout' });
      // The stalled connection does not answer a ping either; within about a second it is given up.
      await waitFor(async () => permissionship(await subject.check(view('d1'))) === 'allowed', 5000, () => 'checks never left the stalled connection');
      expect(proxy.connections()).toBe(2);
    } finally {
      await subject.close();
      await proxy.close();
    }
  });
});
