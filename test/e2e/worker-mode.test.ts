/**
 * Worker mode (`server.workers: 2`): the built sidecar as one primary and two worker processes,
 * behind a real Envoy with two worker threads, against a real SpiceDB. It must decide exactly as
 * one process does, spread connections over its workers, look like one sidecar to a scrape and a
 * probe, reload and drain every worker, and replace a worker that dies.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childProcesses } from '../../dev/proc.js';
import { waitFor } from '../../dev/processes.js';
import { sidecarClient } from '../support/check-client.js';
import type { SidecarClient } from '../support/check-client.js';
import { httpCheck } from '../support/check-client.js';
import { startPod } from '../support/pod.js';
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import type { Pod } from '../support/pod.js';

let pod: Pod;

beforeAll(async () => {
  pod = await startPod({
    relationships: ['cloud:cl0#admin@user:alice', 'cloud:cl0#member@user:bob'].join('\n'),
    config: { server: { workers: 2, drainSeconds: 1 } },
    envoyConcurrency: 2,
  });
}, 90_000);

afterAll(async () => {
  await pod?.stop();
});

function createNamespace(token: string): Promise<Response> {
  return fetch(`${pod.ingress}/v1/clouds/cl0/namespaces`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{"name":"ns1"}',
  });
}

/** The worker processes: children of the primary. */
const workerPids = (): number[] => childProcesses(pod.sidecar.process.child.pid ?? -1);

/** The `worker` of each decision log line written so far, by decision id. */
function decidingWorkers(): Map<string, number> {
  const byDecision = new Map<string, number>();
  for (const line of pod.sidecar.process.output().split('\n')) {
    if (!line.includes('"decisionId"')) continue;
    const entry = JSON.parse(line) as { decisionId: string; worker?: number };
    if (entry.worker !== undefined) byDecision.set(entry.decisionId, entry.worker);
  }
  return byDecision;
}

/** The workers that answered these Checks, from the decision log (by each answer's decision id). */
async function workersThatDecided(responses: readonly CheckResponse__Output[]): Promise<Set<number | undefined>> {
  const ids = responses.map((response) => {
    const headers = response.ok_response?.headers ?? response.denied_response?.headers ?? [];
    return headers.find((option) => option.header?.key === 'x-jwtauth-decision-id')?.header?.value ?? '';
  });
  for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
  await waitFor(() => ids.every((id) => decidingWorkers().has(id)), 5_000, () => 'decision log lines missing');
  const seen = decidingWorkers();
  return new Set(ids.map((id) => seen.get(id)));
}

async function readyz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${pod.sidecar.admin}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

describe('worker mode', () => {
  it('runs two workers that decide through Envoy exactly as one process does', async () => {
    expect(workerPids()).toHaveLength(2);
    const [allowed, denied] = await Promise.all([createNamespace(await pod.userToken('alice')), createNamespace(await pod.userToken('bob'))]);
    expect(allowed.status).toBe(200);
    expect(pod.app.received.at(-1)?.headers['x-jwtauth-subject']).toBe('alice');
    expect(denied.status).toBe(403);
    expect(denied.headers.get('x-jwtauth-reason')).toBe('permission_denied');
  });

  it('hands each new connection to the next worker, so Envoy threads spread over them', async () => {
    const clients: SidecarClient[] = [sidecarClient(pod.sidecar.grpcPort, { ownConnection: true }), sidecarClient(pod.sidecar.grpcPort, { ownConnection: true })];
    try {
      const token = await pod.userToken('alice');
      const request = httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` });
      const responses = [];
      for (const client of clients) responses.push(await client.check(request));
      for (const response of responses) expect(response.status?.code).toBe(0);
      expect((await workersThatDecided(responses)).size).toBe(2);
    } finally {
      for (const client of clients) client.close();
    }
  });

  it('is one sidecar to a probe and a scrape', async () => {
    const { status, body } = await readyz();
    expect(status).toBe(200);
    expect(body).toMatchObject({ ready: true, workers: 2, workersReady: 2, configHashes: 1, keys: true, permissions: true });
    const before = await pod.sidecar.scrape();
    const checksBefore = [...before].filter(([name]) => name.startsWith('jwtauth_checks_total{')).reduce((sum, [, value]) => sum + value, 0);
    const token = await pod.userToken('alice');
    await Promise.all(Array.from({ length: 10 }, () => createNamespace(token)));
    const after = await pod.sidecar.scrape();
    const checksAfter = [...after].filter(([name]) => name.startsWith('jwtauth_checks_total{')).reduce((sum, [, value]) => sum + value, 0);
    // Summed over both workers: every Check counted once.
    expect(checksAfter - checksBefore).toBe(10);
    // Not summed: one sidecar is ready (1, not 2), and serves one configuration.
    expect(after.get('jwtauth_ready')).toBe(1);
    expect([...after].filter(([name]) => name.startsWith('jwtauth_config_info{')).map(([, value]) => value)).toEqual([1]);
    expect(after.get('jwtauth_workers{state="running"}')).toBe(2);
    // The JWKS of the tokens the workers mint, served by the primary.
    const jwks = (await (await fetch(`${pod.sidecar.admin}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(1);
  });

  it('still answers a scrape when a worker does not: that worker left out and reported, the rest and the primary in it', async () => {
    const [stuck, answering] = workerPids() as [number, number];
    const series = (all: Map<string, number>, prefix: string) => [...all].filter(([name]) => name.startsWith(prefix));
    // SIGSTOP: the worker is there but answers nothing, as a worker stuck in a long pause would.
    process.kill(stuck, 'SIGSTOP');
    try {
      const started = performance.now();
      const scraped = await pod.sidecar.scrape();
      expect(performance.now() - started).toBeLessThan(5_000);
      const up = series(scraped, 'jwtauth_worker_scrape_up{').map(([, value]) => value).sort();
      expect(up).toEqual([0, 1]);
      // The answering worker's metrics are there, and so are the primary's own process metrics.
      expect(series(scraped, 'jwtauth_checks_total{').length).toBeGreaterThan(0);
      expect(scraped.get('jwtauth_primary_process_resident_memory_bytes')).toBeGreaterThan(0);
      expect(answering).not.toBe(stuck);
    } finally {
      process.kill(stuck, 'SIGCONT');
    }
    await waitFor(async () => series(await pod.sidecar.scrape(), 'jwtauth_worker_scrape_up{').every(([, value]) => value === 1), 10_000, () => 'the resumed worker never answered a scrape again');
  });

  it('runs one SpiceDB Watch, in the primary, and every worker drops what a change affects', async () => {
    const clients = [sidecarClient(pod.sidecar.grpcPort, { ownConnection: true }), sidecarClient(pod.sidecar.grpcPort, { ownConnection: true })];
    const sumOf = (scrape: Map<string, number>, prefix: string): number => [...scrape].filter(([name]) => name.startsWith(prefix)).reduce((sum, [, value]) => sum + value, 0);
    try {
      await waitFor(async () => (await pod.sidecar.metric('jwtauth_spicedb_watch{state="live"}')) === 1, 10_000, () => 'the Watch never went live');
      // The primary's log, not a worker's (their lines carry `worker`), says the Watch is live, once.
      const watchLines = pod.sidecar.process.output().split('\n').filter((line) => line.includes('SpiceDB Watch is live'));
      expect(watchLines).toHaveLength(1);
      expect(JSON.parse(watchLines[0]!)).not.toHaveProperty('worker');

      const request = httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${await pod.userToken('carol')}` });
      const answers = async (): Promise<CheckResponse__Output[]> => Promise.all(clients.map((client) => client.check(request)));
      const denied = await answers();
      for (const response of denied) expect(response.status?.code).toBe(7);
      expect((await workersThatDecided(denied)).size).toBe(2);
      const before = await pod.sidecar.scrape();

      await pod.spicedb.write('cloud:cl0#admin@user:carol');
      await waitFor(async () => (await answers()).every((response) => response.status?.code === 0), 10_000, () => 'a worker kept the cached deny');
      const granted = await pod.sidecar.scrape();
      // Each worker dropped its own cached deny when the relayed change arrived.
      expect(sumOf(granted, 'jwtauth_decision_cache_invalidations_total{scope="change"}') - sumOf(before, 'jwtauth_decision_cache_invalidations_total{scope="change"}')).toBeGreaterThanOrEqual(2);

      await pod.spicedb.write('cloud:cl0#admin@user:carol', 'delete');
      await waitFor(async () => (await answers()).every((response) => response.status?.code === 7), 10_000, () => 'a worker kept the cached allow after the revocation');
    } finally {
      for (const client of clients) client.close();
    }
  });

  it('reloads every worker when the file changes', async () => {
    const config = parse(readFileSync(pod.sidecar.configFile, 'utf8')) as { inbound: { rules: Array<{ name: string; checks?: Array<{ permission: string }> }> } };
    const rule = config.inbound.rules.find((each) => each.name === 'create-namespace')!;
    // bob is a member: allowed to view, not to create namespaces.
    rule.checks = [{ ...rule.checks![0]!, permission: 'view' }];
    writeFileSync(pod.sidecar.configFile, stringify(config));
    const clients = [sidecarClient(pod.sidecar.grpcPort, { ownConnection: true }), sidecarClient(pod.sidecar.grpcPort, { ownConnection: true })];
    try {
      const token = await pod.userToken('bob');
      const request = httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` });
      // Each client is one connection, so one worker: both must come to allow.
      let responses: CheckResponse__Output[] = [];
      await waitFor(
        async () => {
          responses = await Promise.all(clients.map((client) => client.check(request)));
          return responses.every((response) => response.status?.code === 0);
        },
        10_000,
        () => 'a worker kept the old rule',
      );
      expect((await workersThatDecided(responses)).size).toBe(2);
      expect(await pod.sidecar.metric('jwtauth_config_reloads_total{result="success"}')).toBe(1);
      expect((await readyz()).body).toMatchObject({ ready: true, configHashes: 1 });
    } finally {
      for (const client of clients) client.close();
    }
  });

  it('replaces a worker that dies, and is not ready until it is back', async () => {
    const [victim, survivor] = workerPids();
    process.kill(victim!, 'SIGKILL');
    await waitFor(async () => (await readyz()).status === 503, 5_000, () => 'still ready with a worker missing');
    // The other worker still answers meanwhile.
    const client = sidecarClient(pod.sidecar.grpcPort);
    try {
      const token = await pod.userToken('alice');
      expect((await client.check(httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${token}` }))).status?.code).toBe(0);
    } finally {
      client.close();
    }
    await waitFor(async () => (await readyz()).status === 200, 15_000, () => 'the worker was not replaced');
    const pids = workerPids();
    expect(pids).toHaveLength(2);
    expect(pids).toContain(survivor);
    expect(pids).not.toContain(victim);
    expect(await pod.sidecar.metric('jwtauth_worker_restarts_total')).toBe(1);
  });

  it('drains every worker on SIGTERM and exits 0', async () => {
    const pids = workerPids();
    const client = sidecarClient(pod.sidecar.grpcPort);
    try {
      const started = Date.now();
      pod.sidecar.process.child.kill('SIGTERM');
      await waitFor(async () => (await client.health()) === 'NOT_SERVING', 2_000, () => 'health stayed SERVING');
      expect(await pod.sidecar.process.exited).toBe(0);
      // drainSeconds (1 s) and the close, well within the pod's grace period.
      expect(Date.now() - started).toBeLessThan(8_000);
      for (const pid of pids) expect(isRunning(pid)).toBe(false);
    } finally {
      client.close();
    }
  });
});

describe('worker mode when the primary dies', () => {
  it('takes its workers with it, so none serves on without readiness or reload', async () => {
    await pod.sidecar.restart();
    const pids = workerPids();
    expect(pids).toHaveLength(2);
    pod.sidecar.process.child.kill('SIGKILL');
    // Each worker sees its channel to the primary close and exits.
    await waitFor(() => pids.every((pid) => !isRunning(pid)), 5_000, () => 'a worker outlived its primary');
  });
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
