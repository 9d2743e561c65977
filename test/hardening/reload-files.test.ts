/**
 * Guarantee: every way a configuration file is replaced in practice reaches the running sidecar,
 * and none of them fails a request. Against the real sidecar process behind the real Envoy, under
 * steady inbound load (alice viewing her clouds, each request a Check answered by a real SpiceDB),
 * the file is changed
 *   - in place (truncate + write, as `echo > file` and most editors do),
 *   - by `cp` of another file over it (the same inode, truncated and rewritten),
 *   - by a rename over it (write a temporary file, rename; twice, so a watch that followed the
 *     first inode would miss the second),
 *   - by kubelet's ConfigMap update: a new timestamped directory and a `..data` symlink swapped
 *     over the old one, the mounted file a symlink through `..data` (twice, for the same reason),
 *   - and during a storm of 20 SIGHUPs while the file is rewritten.
 * Each change must be SEEN: version k of the configuration adds a public route /marker/vk and drops
 * the previous version's, so the new route turning 403 → 200 through Envoy (and the old one
 * turning back) is the new configuration taking effect, not a counter that says so.
 *
 * An empty file and a file cut short (valid YAML, but neither `inbound` nor `outbound`) are
 * refused instead: the old configuration keeps serving, and the failure counter says so.
 *
 * Nothing here times how fast a reload lands; every wait is a bounded poll for a condition.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfigMapVolume } from '../support/configmap-volume.js';
import type { ConfigMapVolume } from '../support/configmap-volume.js';
import { startEnvoy } from '../../dev/envoy.js';
import { userToken } from '../../dev/hardening/fixtures.js';
import { LoadClient, summarize } from '../../dev/hardening/load.js';
import type { LoadResult } from '../../dev/hardening/load.js';
import { http1, receivedIds, startStack } from '../support/hardening/stack.js';
import type { Stack } from '../support/hardening/stack.js';
import { waitFor } from '../../dev/processes.js';
import type { ManagedProcess } from '../../dev/processes.js';
import { scrapeMetrics } from '../../dev/prometheus.js';
import { launchSidecar } from '../../dev/sidecar.js';
import { closeNewestFirst } from '../support/closers.js';

/** alice may view cl0..cl{CLOUDS-1} (the stack's default); the load cycles through them. */
const CLOUDS = 64;
/** Steady load, not as much as the machine can take: each worker pauses between requests. */
const WORKERS = 4;
const PAUSE_MS = 10;
/** The load runs this long before a change and after it took effect, so requests are in flight around it. */
const LOAD_BEFORE_MS = 300;
const LOAD_AFTER_MS = 500;
/** Only says when to call a change lost; a reload takes milliseconds. */
const SEEN_WITHIN_MS = 15_000;
const STORM_SIGNALS = 20;
const STORM_PAUSE_MS = 15;
/** After the storm's last file took effect: several debounce periods (200 ms), for a late reload to show itself. */
const STORM_SETTLE_MS = 1_500;

const RELOAD_SUCCESS = 'jwtauth_config_reloads_total{result="success"}';
const RELOAD_FAILURE = 'jwtauth_config_reloads_total{result="failure"}';

/** A sidecar (one config file) and the Envoy in front of it. */
interface Pod {
  readonly name: string;
  readonly sidecar: { readonly admin: string; readonly configFile: string; readonly process: ManagedProcess };
  readonly ingress: number;
  /** The version of the configuration it serves (0: the stack's own, with no marker route). */
  live: number;
}

let stack: Stack;
let alice: string;
/** Versions are numbered across both pods, so a marker route never means two things. */
let versions = 0;
const closers: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  // info: each reload is logged with its cause, which failure messages show. No allow decisions logged.
  stack = await startStack({ overrides: { log: { level: 'info', allowSampleRate: 0 } } });
  closers.push(() => stack.close());
  alice = await userToken(stack.externalKey, 'alice');
}, 90_000);

afterAll(async () => {
  await closeNewestFirst(closers);
});

const markerPath = (version: number): string => `/marker/v${version}`;

/** The stack's configuration, plus a public route that exists in this version only. */
function versionText(version: number): string {
  const inbound = stack.config.inbound as { readonly rules: readonly unknown[] };
  const marker = { name: `marker-v${version}`, match: { http: { methods: ['GET'], path: markerPath(version) } }, auth: 'none' };
  return stringify({ ...stack.config, inbound: { ...inbound, rules: [...inbound.rules, marker] } });
}

// --- the ways a file is changed

/** open(O_TRUNC) + write: what `echo > file`, `kubectl cp` and editors that save in place do. */
function writeInPlace(file: string, text: string): void {
  writeFileSync(file, text);
}

/** The real `cp`, from a file elsewhere: it truncates the target and rewrites the same inode. */
function copyOver(file: string, text: string): void {
  const source = join(mkdtempSync(join(tmpdir(), 'jwtauth-cp-')), 'jwtauth.yaml');
  writeFileSync(source, text);
  execFileSync('cp', [source, file]);
}

let temporaries = 0;
/** A complete temporary file in the same directory, renamed over the config: a new inode. */
function renameOver(file: string, text: string): void {
  const temporary = `${file}.${process.pid}.${++temporaries}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, file);
}

// --- observing the pod

async function status(pod: Pod, path: string): Promise<number> {
  return (await http1(pod.ingress, path)).status;
}

interface ReloadState {
  readonly successes: number;
  readonly failures: number;
  /** The `hash` label of jwtauth_config_info: which configuration is serving. */
  readonly hash: string | undefined;
}

async function reloadState(pod: Pod): Promise<ReloadState> {
  const metrics = await scrapeMetrics(`${pod.sidecar.admin}/metrics`);
  return {
    successes: metrics.series.get(RELOAD_SUCCESS) ?? 0,
    failures: metrics.series.get(RELOAD_FAILURE) ?? 0,
    hash: metrics.samples.find((sample) => sample.name === 'jwtauth_config_info')?.labels.hash,
  };
}

const sidecarOutput = (pod: Pod): string => pod.sidecar.process.output().slice(-6000);

/** Inbound requests through Envoy until stopped; each is a Check the sidecar answers with SpiceDB. */
function steadyLoad(pod: Pod, label: string): { stop(): Promise<LoadResult[]> } {
  const client = new LoadClient(pod.ingress, WORKERS);
  const results: LoadResult[] = [];
  let stopping = false;
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (!stopping) {
      const n = sent++;
      const request = { path: `/v1/clouds/cl${n % CLOUDS}/vms`, headers: { authorization: `Bearer ${alice}` }, tag: label };
      results.push({ ...(await client.request(request, `${pod.name}-${label}-${n}`)), tag: label });
      await sleep(PAUSE_MS);
    }
  };
  const workers = Promise.all(Array.from({ length: WORKERS }, worker));
  return {
    async stop() {
      stopping = true;
      await workers;
      client.close();
      return results;
    },
  };
}

/** Between `changedAt` and `settledAt` the change happened: the load must have been there, and nothing may have failed. */
function expectNoFailedRequests(results: readonly LoadResult[], changedAt: number, settledAt: number, detail: string): void {
  const failed = results.filter((r) => r.status !== 200);
  const context = `${detail}\nload: ${JSON.stringify({ total: results.length, byStatus: summarize(results), firstFailed: failed.slice(0, 10) })}`;
  expect(results.length, context).toBeGreaterThan(0);
  expect(results.some((r) => r.start <= settledAt && r.end >= changedAt), `no request in flight during the change\n${context}`).toBe(true);
  expect(summarize(results), context).toEqual({ '200': results.length });
  const delivered = receivedIds(stack.app);
  expect(results.filter((r) => !delivered.has(r.id)).length, `allowed but never reached the app\n${context}`).toBe(0);
}

/**
 * Publishes the next version with `publish` under load and waits for it to take effect: its marker
 * route answers 200, the previous version's no longer does, the config hash changed, and no
 * reload failed and no request failed on the way.
 */
async function expectSeenUnderLoad(pod: Pod, label: string, publish: (text: string) => void): Promise<void> {
  const previous = pod.live;
  const next = ++versions;
  expect(await status(pod, markerPath(next)), `${label}: version ${next}'s route must be refused before it is published`).toBe(403);
  const before = await reloadState(pod);
  const load = steadyLoad(pod, label);
  await sleep(LOAD_BEFORE_MS);
  const changedAt = performance.now();
  publish(versionText(next));
  await waitFor(
    async () => (await status(pod, markerPath(next))) === 200,
    SEEN_WITHIN_MS,
    () => `${label}: version ${next} never took effect; sidecar output:\n${sidecarOutput(pod)}`,
  );
  const seenAt = performance.now();
  pod.live = next;
  await sleep(LOAD_AFTER_MS);
  const results = await load.stop();
  const after = await reloadState(pod);
  const detail = `${label}: ${JSON.stringify({ previous, next, before, after })}\nsidecar output:\n${sidecarOutput(pod)}`;
  // Replaced, not added to: the previous version's route is gone with it.
  if (previous > 0) expect(await status(pod, markerPath(previous)), detail).toBe(403);
  expect(after.hash, detail).not.toBe(before.hash);
  expect(after.successes, detail).toBeGreaterThan(before.successes);
  // Never a half-read file on the way (it would be a refused reload, or worse, a served one).
  expect(after.failures - before.failures, detail).toBe(0);
  expectNoFailedRequests(results, changedAt, seenAt, detail);
}

/** Writes `text` in place under load and waits for the refusal: counted, and the old version still serving. */
async function expectRefusedUnderLoad(pod: Pod, label: string, text: string): Promise<void> {
  const before = await reloadState(pod);
  const load = steadyLoad(pod, label);
  await sleep(LOAD_BEFORE_MS);
  const changedAt = performance.now();
  writeInPlace(pod.sidecar.configFile, text);
  await waitFor(
    async () => (await reloadState(pod)).failures > before.failures,
    SEEN_WITHIN_MS,
    () => `${label}: the reload was not refused (or never happened); sidecar output:\n${sidecarOutput(pod)}`,
  );
  const refusedAt = performance.now();
  await sleep(LOAD_AFTER_MS);
  const results = await load.stop();
  const after = await reloadState(pod);
  const detail = `${label}: ${JSON.stringify({ live: pod.live, before, after })}\nsidecar output:\n${sidecarOutput(pod)}`;
  expect(after.hash, detail).toBe(before.hash);
  expect(after.successes, detail).toBe(before.successes);
  expect(await status(pod, markerPath(pod.live)), `the old configuration must keep serving\n${detail}`).toBe(200);
  expectNoFailedRequests(results, changedAt, refusedAt, detail);
}

describe('reloading a plain config file, under load through Envoy', () => {
  let pod: Pod;
  beforeAll(() => {
    pod = { name: 'plain', sidecar: stack.sidecar, ingress: stack.envoy.ports.ingress, live: 0 };
  });

  it('sees an in-place write (truncate + write)', async () => {
    await expectSeenUnderLoad(pod, 'in-place', (text) => writeInPlace(pod.sidecar.configFile, text));
  }, 60_000);

  it('sees `cp` of another file over it', async () => {
    await expectSeenUnderLoad(pod, 'cp', (text) => copyOver(pod.sidecar.configFile, text));
  }, 60_000);

  it('sees a rename over it, and the next one too (a new inode each time)', async () => {
    await expectSeenUnderLoad(pod, 'rename-1', (text) => renameOver(pod.sidecar.configFile, text));
    await expectSeenUnderLoad(pod, 'rename-2', (text) => renameOver(pod.sidecar.configFile, text));
    // And an in-place write after a rename: the file is still watched by its path.
    await expectSeenUnderLoad(pod, 'in-place-after-rename', (text) => writeInPlace(pod.sidecar.configFile, text));
  }, 90_000);

  it('ends a storm of 20 SIGHUPs during rewrites on the last file written, failing no request', async () => {
    const first = versions + 1;
    const before = await reloadState(pod);
    const load = steadyLoad(pod, 'storm');
    await sleep(LOAD_BEFORE_MS);
    const changedAt = performance.now();
    let last = pod.live;
    for (let signal = 0; signal < STORM_SIGNALS; signal++) {
      // A new version every other signal, written in place and renamed over by turns.
      if (signal % 2 === 0) {
        last = ++versions;
        (signal % 4 === 0 ? writeInPlace : renameOver)(pod.sidecar.configFile, versionText(last));
      }
      pod.sidecar.process.child.kill('SIGHUP');
      await sleep(STORM_PAUSE_MS);
    }
    await waitFor(
      async () => (await status(pod, markerPath(last))) === 200,
      SEEN_WITHIN_MS,
      () => `the storm's last version ${last} never took effect; sidecar output:\n${sidecarOutput(pod)}`,
    );
    const seenAt = performance.now();
    const hashWhenSeen = (await reloadState(pod)).hash;
    pod.live = last;
    // A reload still queued behind the storm must not bring back an older file.
    await sleep(STORM_SETTLE_MS);
    const results = await load.stop();
    const after = await reloadState(pod);
    const detail = `storm: ${JSON.stringify({ first, last, before, after, hashWhenSeen })}\nsidecar output:\n${sidecarOutput(pod)}`;
    expect(await status(pod, markerPath(last)), detail).toBe(200);
    for (let version = first; version < last; version++) expect(await status(pod, markerPath(version)), `version ${version}\n${detail}`).toBe(403);
    expect(after.hash, detail).toBe(hashWhenSeen);
    expect(after.successes, detail).toBeGreaterThan(before.successes);
    expect(after.failures - before.failures, detail).toBe(0);
    expectNoFailedRequests(results, changedAt, seenAt, detail);
  }, 60_000);

  it('refuses an empty file and keeps serving the old configuration', async () => {
    await expectRefusedUnderLoad(pod, 'empty', '');
  }, 60_000);

  it('refuses a file cut short (valid YAML, no inbound or outbound) and keeps serving the old configuration', async () => {
    const whole = versionText(versions + 1);
    const lines = whole.split('\n');
    const cut = lines.findIndex((line) => line.startsWith('inbound:'));
    const truncated = lines.slice(0, cut).join('\n');
    // What makes this case: the cut is valid YAML with sections in it, and without the serving ones.
    const parsed = parse(truncated) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(expect.arrayContaining(['server', 'issuers', 'spicedb']));
    expect(parsed.inbound ?? parsed.outbound).toBeUndefined();
    await expectRefusedUnderLoad(pod, 'truncated', truncated);
  }, 60_000);
});

describe('reloading a ConfigMap volume (kubelet ..data symlink swap), under load through Envoy', () => {
  let pod: Pod;
  let volume: ConfigMapVolume;
  beforeAll(async () => {
    const initial = ++versions;
    volume = createConfigMapVolume({ 'config.yaml': versionText(initial) });
    const keyEnv = (stack.config.spicedb as { readonly presharedKey: { readonly env: string } }).presharedKey.env;
    const sidecar = await launchSidecar({ name: 'sidecar-configmap', configFile: volume.path('config.yaml'), env: { [keyEnv]: stack.spicedb.presharedKey } });
    closers.push(() => sidecar.stop('SIGKILL'));
    const envoy = await startEnvoy({ sidecar: sidecar.grpcPort, app: stack.app.port, vmcontroller: stack.vmcontroller.port });
    closers.push(() => envoy.stop());
    pod = { name: 'configmap', sidecar, ingress: envoy.ports.ingress, live: initial };
  }, 60_000);

  it('sees each ConfigMap update, though the mounted file itself is never written', async () => {
    // Twice: after the first swap, the directory the file first resolved to is gone.
    await expectSeenUnderLoad(pod, 'configmap-1', (text) => volume.update({ 'config.yaml': text }));
    await expectSeenUnderLoad(pod, 'configmap-2', (text) => volume.update({ 'config.yaml': text }));
  }, 90_000);
});
