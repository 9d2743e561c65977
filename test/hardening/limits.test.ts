/**
 * Every limit is configurable, and hitting it gives a clear reason in a well-formed CheckResponse
 * (never a crash, never an allow): limits.maxHeaderBytes, limits.maxTokenBytes,
 * spicedb.maxInflight, spicedb.decisionCache (size and TTL), spicedb.deadlineMs, and the outbound
 * token cache size. Out-of-range values are refused at load with the key named.
 */
import { createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import type { CheckRequest__Output } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { PermissionAnswer, PermissionQuery, TokenRequest, TokenResult, TokenSource } from '../../src/core/ports.js';
import { Metrics } from '../../src/observability/metrics.js';
import type { Closable, PermissionChecker } from '../../src/core/ports.js';
import { GrpcChecker } from '../../src/spicedb/grpc-checker.js';
import { decorate } from '../../src/spicedb/permission-checker.js';
import { CachingTokenSource } from '../../src/tokens/token-cache.js';
import { stringify } from 'yaml';
import { sidecarConfig, userToken } from '../../dev/hardening/fixtures.js';
import { malformation, openInProcessPipeline, reasonOf } from '../support/hardening/pipeline.js';

function inbound(path: string, headers: Array<[string, string]>): CheckRequest__Output {
  return {
    attributes: {
      context_extensions: { direction: 'inbound' },
      request: { http: { method: 'GET', path, header_map: { headers: headers.map(([key, value]) => ({ key, value })) } } },
    },
  } as unknown as CheckRequest__Output;
}

/** A raw SpiceDB stand-in whose calls stay in flight until released. */
class HeldBackend implements PermissionChecker, Closable {
  calls = 0;
  private held: Array<() => void> = [];
  hold = true;
  check(_query: PermissionQuery): Promise<PermissionAnswer> {
    this.calls++;
    if (!this.hold) return Promise.resolve({ ok: true, value: { permissionship: 'allowed', cached: false } });
    return new Promise((resolve) => this.held.push(() => resolve({ ok: true, value: { permissionship: 'allowed', cached: false } })));
  }
  release(): void {
    for (const fn of this.held.splice(0)) fn();
  }
  ready(): boolean {
    return true;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('limits', () => {
  it('limits.maxHeaderBytes: over the limit is 431 headers_too_large; at the limit passes', async () => {
    const p = await openInProcessPipeline({ limits: { maxHeaderBytes: 2048, maxTokenBytes: 1024 } });
    try {
      const token = await userToken(p.externalKey, 'alice');
      const auth: [string, string] = ['authorization', `Bearer ${token}`];
      const used = 'authorization'.length + auth[1].length;
      const fill = (n: number): [string, string] => ['x-fill', 'f'.repeat(n - 'x-fill'.length)];
      const at = await p.check(inbound('/v1/clouds/cl0/x', [auth, fill(2048 - used)]));
      expect(reasonOf(at)).toBe('allowed');
      const over = await p.check(inbound('/v1/clouds/cl0/x', [auth, fill(2049 - used)]));
      expect(malformation(over)).toBeUndefined();
      expect([reasonOf(over), over.denied_response?.status?.code]).toEqual(['headers_too_large', 'RequestHeaderFieldsTooLarge']);
      // A single enormous header is refused the same way, not truncated.
      expect(reasonOf(await p.check(inbound('/public', [['x-big', 'b'.repeat(5_000_000)]])))).toBe('headers_too_large');
    } finally {
      await p.close();
    }
  });

  it('limits.maxTokenBytes: a longer bearer token is 401 token_too_large, before any parsing', async () => {
    const p = await openInProcessPipeline({ limits: { maxHeaderBytes: 65536, maxTokenBytes: 512 } });
    try {
      const small = await userToken(p.externalKey, 'alice');
      expect(small.length).toBeLessThanOrEqual(512);
      expect(reasonOf(await p.check(inbound('/v1/clouds/cl0/x', [['authorization', `Bearer ${small}`]])))).toBe('allowed');
      const big = await userToken(p.externalKey, 'alice', { extra: { pad: 'p'.repeat(400) } });
      const response = await p.check(inbound('/v1/clouds/cl0/x', [['authorization', `Bearer ${big}`]]));
      expect([reasonOf(response), response.denied_response?.status?.code]).toEqual(['token_too_large', 'Unauthorized']);
    } finally {
      await p.close();
    }
  });

  it('spicedb.maxInflight: past the bound a check is 503 permission_backend_overloaded at once', async () => {
    const backend = new HeldBackend();
    const p = await openInProcessPipeline({ spicedb: { maxInflight: 3, decisionCache: { freshness: 'ttl', ttlMs: 0, maxEntries: 10 } } }, (config, metrics) =>
      decorate(backend, config.spicedb, metrics),
    );
    try {
      const token = await userToken(p.externalKey, 'alice');
      const auth: [string, string] = ['authorization', `Bearer ${token}`];
      const pending = [0, 1, 2].map((i) => p.check(inbound(`/v1/clouds/c${i}0/x`, [auth])));
      await new Promise((r) => setTimeout(r, 20));
      expect(backend.calls).toBe(3);
      const shed = await p.check(inbound('/v1/clouds/c99/x', [auth]));
      expect([reasonOf(shed), shed.denied_response?.status?.code]).toEqual(['permission_backend_overloaded', 'ServiceUnavailable']);
      expect(backend.calls).toBe(3);
      backend.release();
      for (const response of await Promise.all(pending)) expect(reasonOf(response)).toBe('allowed');
      // Slots are given back.
      backend.hold = false;
      expect(reasonOf(await p.check(inbound('/v1/clouds/c99/x', [auth])))).toBe('allowed');
    } finally {
      await p.close();
    }
  });

  it('spicedb.decisionCache: maxEntries bounds it (LRU) and ttlMs expires entries', async () => {
    const backend = new HeldBackend();
    backend.hold = false;
    const p = await openInProcessPipeline({ spicedb: { decisionCache: { freshness: 'ttl', ttlMs: 300, maxEntries: 2 } } }, (config, metrics) => decorate(backend, config.spicedb, metrics));
    try {
      const auth: [string, string] = ['authorization', `Bearer ${await userToken(p.externalKey, 'alice')}`];
      const ask = async (cloud: string) => expect(reasonOf(await p.check(inbound(`/v1/clouds/${cloud}/x`, [auth])))).toBe('allowed');
      await ask('a1');
      await ask('a1');
      expect(backend.calls).toBe(1); // cached
      await ask('a2');
      await ask('a3'); // evicts a1 (LRU, 2 entries)
      await ask('a1');
      expect(backend.calls).toBe(4);
      await new Promise((r) => setTimeout(r, 350));
      await ask('a1'); // expired
      expect(backend.calls).toBe(5);
    } finally {
      await p.close();
    }
  });

  it('spicedb.deadlineMs: a SpiceDB that accepts and never answers is permission_backend_timeout at the deadline', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const raw = new GrpcChecker({ endpoint: `127.0.0.1:${port}`, presharedKey: 'k', tls: false, deadlineMs: 150, baseDir: '/', batch: { maxItems: 100, maxConcurrentCalls: 4 } });
    const checker = decorate(raw, { deadlineMs: 150, maxInflight: 10, decisionCache: { ttlMs: 0, maxEntries: 1 } } as Parameters<typeof decorate>[1], new Metrics({ processMetrics: false }));
    try {
      const started = performance.now();
      const answer = await checker.check({ resource: { type: 'cloud', id: 'cl0' }, permission: 'view', subject: { type: 'user', id: 'alice' }, consistency: { kind: 'minimize_latency' } });
      const took = performance.now() - started;
      expect(answer).toMatchObject({ ok: false, reason: 'permission_backend_timeout' });
      expect(took).toBeGreaterThanOrEqual(140);
      expect(took).toBeLessThan(600);
    } finally {
      await checker.close();
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('tokens.cache.maxEntries: the outbound token cache is bounded (LRU)', async () => {
    let issued = 0;
    const inner: TokenSource = {
      name: 'counting',
      issue: (_request: TokenRequest): Promise<TokenResult> => {
        issued++;
        const now = Math.floor(Date.now() / 1000);
        return Promise.resolve({ ok: true, value: { token: `t${issued}`, issuedAt: now, expiresAt: now + 300 } });
      },
    };
    const cache = new CachingTokenSource(inner, { maxEntries: 2, refreshAtFraction: 0.5, jitterFraction: 0, retrySeconds: 1, clockSkewSeconds: 30, metrics: new Metrics({ processMetrics: false }), sweepIntervalMs: 0 });
    try {
      for (const audience of ['a', 'b', 'c', 'a']) await cache.issue({ kind: 'service', audience });
      expect(cache.size).toBe(2);
      expect(issued).toBe(4); // 'a' was evicted by 'c'
    } finally {
      await cache.close();
    }
  });

  it('out-of-range limits are refused at load, naming the key', () => {
    const base = sidecarConfig({ spicedbEndpoint: '127.0.0.1:1', spicedbKeyEnv: 'K', externalJwksUrl: 'http://127.0.0.1/j', internalJwksUrl: 'http://127.0.0.1/j' });
    const cases: Array<[string, Record<string, unknown>]> = [
      ['limits.maxHeaderBytes', { limits: { maxHeaderBytes: 10 } }],
      ['limits.maxTokenBytes', { limits: { maxTokenBytes: 1 << 20 } }],
      ['spicedb.maxInflight', { spicedb: { ...(base.spicedb as object), maxInflight: 0 } }],
      ['spicedb.deadlineMs', { spicedb: { ...(base.spicedb as object), deadlineMs: 5 } }],
      ['spicedb.decisionCache.maxEntries', { spicedb: { ...(base.spicedb as object), decisionCache: { maxEntries: 0 } } }],
      ['tokens.cache.maxEntries', { tokens: { ...(base.tokens as object), cache: { maxEntries: 0 } } }],
    ];
    for (const [key, patch] of cases) {
      let problems: readonly string[] = [];
      try {
        parseConfigText(stringify({ ...base, ...patch }), 'limits.yaml', '/');
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        problems = error.problems;
      }
      expect(problems.some((line) => line.startsWith(`${key}:`)), `${key}: ${problems.join(' | ')}`).toBe(true);
    }
  });
});
