/**
 * A bug the sidecar did not catch leaves it in a state nobody reasoned about, so it must stop
 * deciding rather than go on (docs/security.md, "Crash policy"): log it as fatal, drain (health
 * NOT_SERVING, Checks in flight answered) and exit 70 for the orchestrator to restart it. The bug
 * is injected by a preloaded module (test/fixtures/crash/inject-fault.mjs) from a timer or an
 * unhandled promise, where no code of the sidecar's could catch it: nothing in the sidecar throws
 * on purpose, and a real bug cannot be ordered on demand.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { launchSidecar, writeSidecarConfig } from '../../dev/sidecar.js';
import type { SidecarProcess } from '../../dev/sidecar.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { CRASH_EXIT_CODE } from '../../src/lifecycle/process-control.js';
import { sidecarClient, httpCheck } from '../support/check-client.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';

const INJECT = join(PACKAGE_ROOT, 'test', 'fixtures', 'crash', 'inject-fault.mjs');
const DRAIN_SECONDS = 1;

let sidecar: SidecarProcess | undefined;
afterEach(async () => {
  await sidecar?.stop('SIGKILL');
  sidecar = undefined;
});

async function start(lines: string[]): Promise<{ sidecar: SidecarProcess; token: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-crash-'));
  const key = await makeSigningKey('ES256', 'corp-1');
  writeFileSync(join(dir, 'corp.json'), JSON.stringify(jwks(key)));
  const configFile = writeSidecarConfig(
    {
      server: { drainSeconds: DRAIN_SECONDS },
      issuers: [{ name: 'corp', issuer: 'https://corp.example', audience: 'gwadmin', kind: 'internal', subjectType: 'user', jwks: { file: 'corp.json' } }],
      inbound: {
        default: 'deny',
        rules: [{ name: 'view-cloud', match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}/**' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }] }],
      },
    },
    dir,
  );
  const started = await launchSidecar({ configFile, nodeArgs: ['--import', INJECT], onLine: (line) => lines.push(line), name: 'crashing-sidecar' });
  const token = await signToken(key, { iss: 'https://corp.example', sub: 'alice', aud: 'gwadmin', iat: nowSeconds(), exp: nowSeconds() + 600 });
  return { sidecar: started, token };
}

function exited(process: SidecarProcess['process']): Promise<number | null> {
  const { child } = process;
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('crash policy', () => {
  it.each([
    ['an uncaught exception', 'SIGUSR2', 'uncaught exception'],
    ['an unhandled rejection', 'SIGWINCH', 'unhandled rejection'],
  ] as const)('%s: logged as fatal, drained, exit 70', async (_what, signal, kind) => {
    const lines: string[] = [];
    const running = await start(lines);
    sidecar = running.sidecar;
    const client = sidecarClient(sidecar.grpcPort);
    try {
      // Deciding before the fault: alice may view cl0 (examples/relationships.txt).
      expect((await client.check(httpCheck('GET', '/v1/clouds/cl0/vms', { authorization: `Bearer ${running.token}` }))).status?.code).toBe(0);
      const startedAt = performance.now();
      const exit = exited(sidecar.process);
      sidecar.process.child.kill(signal);
      // Draining: not ready any more while it still holds its listeners for drainSeconds.
      await expect.poll(async () => (await fetch(`${sidecar?.admin}/readyz`).catch(() => undefined))?.status ?? 'closed', { timeout: 5_000 }).not.toBe(200);
      expect(await exit).toBe(CRASH_EXIT_CODE);
      // It drained rather than dying at once, and did not outlive the drain by much.
      const seconds = (performance.now() - startedAt) / 1000;
      expect(seconds).toBeGreaterThanOrEqual(DRAIN_SECONDS * 0.9);
      const fatal = lines
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message?: string } })
        .filter((entry) => entry.level === 60);
      expect(fatal.map((entry) => entry.msg)).toEqual([`${kind}: stopping, since the sidecar's state is unknown`]);
      expect(fatal[0]?.err?.message).toContain('injected');
    } finally {
      client.close();
    }
  });
});
