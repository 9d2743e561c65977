/**
 * The life cycle's two rules, without I/O: an adapter closes only once no check can still use it
 * (generations), and everything registered closes once, newest first, even when a part fails
 * (teardown). The same behaviour under real load is test/hardening/reload-storm.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { Closable, PermissionAnswer, PermissionChecker, TokenVerifier, VerifyResult } from '../../src/core/ports.js';
import type { CheckPipeline } from '../../src/envoy/authorization-service.js';
import type { AdapterSet } from '../../src/lifecycle/adapters.js';
import { Generation, Generations } from '../../src/lifecycle/generations.js';
import { Teardown } from '../../src/lifecycle/teardown.js';
import type { LoadedConfig } from '../../src/config/load.js';

class Part implements Closable {
  closed = 0;
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

class Verifier extends Part implements TokenVerifier {
  verify(): Promise<VerifyResult> {
    return Promise.resolve({ ok: false, reason: 'unknown_issuer' });
  }
  ready(): boolean {
    return true;
  }
  issuersWithoutKeys(): [] {
    return [];
  }
  keysFor(): undefined {
    return undefined;
  }
}

class Checker extends Part implements PermissionChecker {
  check(): Promise<PermissionAnswer> {
    return Promise.resolve({ ok: false, reason: 'permission_backend_unavailable' });
  }
  ready(): boolean {
    return true;
  }
}

const pipeline = {} as CheckPipeline;
const loaded = {} as LoadedConfig;
const generation = (verifier: Verifier, checker: Checker): Generation =>
  new Generation(loaded, pipeline, { verifier, checker, tokens: undefined, sections: { verifier: '', checker: '', tokens: '' } } satisfies AdapterSet, {
    id: loaded.hash,
    files: [],
  });
const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('generations', () => {
  it('closes a replaced adapter only after the checks running on it have finished', async () => {
    const verifier = new Verifier();
    const [first, second] = [new Checker(), new Checker()];
    const errors: unknown[] = [];
    const generations = new Generations(generation(verifier, first), (error) => errors.push(error));

    const running = generations.acquire();
    generations.replace(generation(verifier, second));
    await turn();
    expect(first.closed).toBe(0);
    expect(generations.acquire().adapters.checker).toBe(second);

    running.release();
    await turn();
    expect(first.closed).toBe(1);
    // Reused by the new configuration: stays open.
    expect(verifier.closed).toBe(0);
    expect(errors).toEqual([]);
  });

  it('keeps an adapter reused across several reloads open until every generation holding it is gone', async () => {
    const verifier = new Verifier();
    const [c1, c2, c3] = [new Checker(), new Checker(), new Checker()];
    const generations = new Generations(generation(verifier, c1), () => undefined);
    const onFirst = generations.acquire();
    generations.replace(generation(verifier, c2));
    // The third configuration replaces the verifier; the first generation still has a check using it.
    generations.replace(generation(new Verifier(), c3));
    await turn();
    expect(c2.closed).toBe(1);
    expect(verifier.closed).toBe(0);
    onFirst.release();
    await turn();
    expect(verifier.closed).toBe(1);
    expect(c1.closed).toBe(1);
    expect(c3.closed).toBe(0);
    await generations.close();
    expect(c3.closed).toBe(1);
  });

  it('does not wait past the bound for a check that never finishes', async () => {
    const checker = new Checker();
    const generations = new Generations(generation(new Verifier(), checker), () => undefined, 30);
    generations.acquire();
    generations.replace(generation(new Verifier(), new Checker()));
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(checker.closed).toBe(1);
  });
});

describe('teardown', () => {
  it('closes every part once, newest first, and goes on past a part that fails', async () => {
    const order: string[] = [];
    const failures: string[] = [];
    const teardown = new Teardown((name) => failures.push(name));
    teardown.add('adapters', async () => void order.push('adapters'));
    teardown.add('admin', () => Promise.reject(new Error('boom')));
    teardown.add('grpc', async () => void order.push('grpc'));
    await Promise.all([teardown.close(), teardown.close()]);
    expect(order).toEqual(['grpc', 'adapters']);
    expect(failures).toEqual(['admin']);
    expect(() => teardown.add('late', () => Promise.resolve())).toThrow(/already closing/);
  });
});
