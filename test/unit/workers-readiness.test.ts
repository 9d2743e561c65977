/**
 * Worker mode's readiness: one sidecar is ready only when every configured worker runs and is
 * ready, so a pod missing a worker (crashed, still starting) takes no new traffic.
 */
import { describe, expect, it } from 'vitest';
import type { SidecarStatus } from '../../src/lifecycle/readiness.js';
import { combineReadiness } from '../../src/workers/combined-status.js';

const status = (overrides: Partial<SidecarStatus['detail']> & { ready?: boolean; hash?: string } = {}): SidecarStatus => {
  const { ready = true, hash = 'h1', ...detail } = overrides;
  return { ready, hash, publicKeys: undefined, detail: { keys: true, permissions: true, schema: 'conforms', draining: false, ...detail } };
};

describe('readiness of a sidecar with workers', () => {
  it('is ready when every configured worker is', () => {
    expect(combineReadiness([status(), status()], 2, false)).toEqual({
      ready: true,
      detail: { keys: true, permissions: true, schema: 'conforms', draining: false, workers: 2, workersReady: 2, configHashes: 1 },
    });
  });

  it('is not ready with a worker missing, still starting, or not ready', () => {
    expect(combineReadiness([status()], 2, false).ready).toBe(false);
    expect(combineReadiness([status(), undefined], 2, false)).toMatchObject({ ready: false, detail: { workersReady: 1 } });
    expect(combineReadiness([status(), status({ ready: false, permissions: false })], 2, false)).toMatchObject({ ready: false, detail: { permissions: false } });
    expect(combineReadiness([], 2, false)).toMatchObject({ ready: false, detail: { keys: false, permissions: false, workersReady: 0 } });
  });

  it('is not ready while draining, even with every worker ready', () => {
    expect(combineReadiness([status(), status()], 2, true)).toMatchObject({ ready: false, detail: { draining: true } });
  });

  it('reports the worst schema state and how many configurations are serving', () => {
    const combined = combineReadiness([status({ schema: 'unchecked' }), status({ schema: 'mismatch', ready: false, hash: 'h2' }), status()], 3, false);
    expect(combined.detail).toMatchObject({ schema: 'mismatch', configHashes: 2, workersReady: 2 });
    expect(combineReadiness([status({ schema: 'unchecked' }), status()], 2, false).detail.schema).toBe('unchecked');
  });
});
