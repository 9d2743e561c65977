/**
 * Guarantee: under steady load through the real Envoy, a storm of reloads that rebuild the SpiceDB
 * permission checker and the outbound token source fails zero requests. A Check that read the old
 * pipeline keeps its old adapters until it has finished: a reload never closes a SpiceDB channel or
 * a token-service connection under a decision that is still using it.
 *
 * Both paths that use the rebuilt adapters are under load at once:
 *   - inbound: alice views a cloud; spicedb.decisionCache.ttlMs is 0, so every request is a
 *     SpiceDB check (nothing can be answered from a cache the reload threw away);
 *   - outbound: calls to vmcontroller, half with no token (a service token, client_credentials) and
 *     half with an external user token to exchange (RFC 8693). The token cache holds one entry, so
 *     nearly every call goes to the token service.
 * The token source is the exchange source (a real OAuth token service over mTLS), not mint: closing
 * a mint source only drops its cache, so a premature close would go unnoticed there, while closing
 * an exchange source destroys the connections its in-flight token requests are using.
 *
 * Meanwhile the config file is replaced (write + rename) and the sidecar sent SIGHUP every ~150-200 ms,
 * each time with a different spicedb.deadlineMs and tokens.lifetimeSeconds, so every reload builds
 * a new checker and a new token source (serve.ts fingerprints those sections) and the old ones are
 * released. The test checks that the reloads really happened and really rebuilt both adapters,
 * so it cannot pass by reloading nothing.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { startEchoUpstream } from '../../dev/echo-upstream.js';
import type { EchoUpstream } from '../../dev/echo-upstream.js';
import { startEnvoy } from '../../dev/envoy.js';
import type { RunningEnvoy } from '../../dev/envoy.js';
import { JwksServer, jwks, makeSigningKey } from '../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../dev/jwt-fixtures.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';
import { startSidecar } from '../support/sidecar.js';
import type { RunningSidecar } from '../support/sidecar.js';
import { relationships, SCHEMA, sidecarConfig, userToken } from '../../dev/hardening/fixtures.js';
import { LoadClient, summarize } from '../../dev/hardening/load.js';
import type { LoadRequest, LoadResult } from '../../dev/hardening/load.js';
import { http1, receivedIds } from '../support/hardening/stack.js';
import { startSpicedb } from '../../dev/spicedb.js';
import type { SpicedbServer } from '../../dev/spicedb.js';
import { waitFor } from '../../dev/processes.js';
import { exchangeSource } from '../support/exchange-source.js';
import { closeNewestFirst } from '../support/closers.js';

/** alice may view cl0..cl{CLOUDS-1}; requests cycle through them so concurrent checks rarely coalesce. */
const CLOUDS = 64;
/**
 * Reloads in the storm. Counted, not timed: on a 2-core machine shared with other test files a
 * reload can take several times longer to land, and the storm must still have this many.
 */
const RELOADS = 30;
/**
 * Workers per direction: enough to have checks mid-way at every reload. Fewer outbound: each
 * outbound request is a call to the token service, which runs in this process, and on a busy
 * 2-core machine eight of them queued there took longer than Envoy's per-try timeout for a
 * Check (see sidecarDiagnostics): requests then failed for the machine, not for the reload.
 */
const INBOUND_WORKERS = 8;
const OUTBOUND_WORKERS = 4;
/** Each worker's pause between requests: steady load, not as much as the machine can take. */
const PAUSE_MS = 10;
/** Pause after a reload has landed before the next file is written: a reload every ~150-200 ms. */
const RELOAD_PAUSE_MS = 100;
/** A reload takes milliseconds; this only says when to call one lost. */
const RELOAD_LANDS_WITHIN_MS = 3000;
/** The load runs this long before the first reload and after the last, so every reload has checks in flight around it. */
const LOAD_BEFORE_MS = 300;
const LOAD_AFTER_MS = 700;
/** Distinct external user tokens for the exchange half; with a one-entry token cache nearly each call is a miss. */
const USER_TOKENS = 64;
/** Far over any answer on this machine: a request failing here fails for the reload, not a deadline. */
const BASE_DEADLINE_MS = 2000;
const BASE_LIFETIME_S = 300;

let pki: TestPki;
let tokenService: OAuthServer;
let spicedb: SpicedbServer;
let externalKey: SigningKey;
let externalJwks: JwksServer;
let internalJwks: JwksServer;
let app: EchoUpstream;
let vmcontroller: EchoUpstream;
let sidecar: RunningSidecar;
let envoy: RunningEnvoy;
let alice: string;
const exchangeTokens: string[] = [];
/** The configuration of reload number `k` (0: the one the sidecar starts with). */
let configFor: (k: number) => Record<string, unknown>;
const closers: Array<() => Promise<unknown> | unknown> = [];

beforeAll(async () => {
  pki = createTestPki(['gwadmin']);
  closers.push(() => pki.remove());
  tokenService = await startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller'] });
  closers.push(() => tokenService.close());
  spicedb = await startSpicedb({ schema: SCHEMA, relationships: relationships(CLOUDS) });
  closers.push(() => spicedb.stop());
  externalKey = await makeSigningKey('ES256', 'ext-1');
  const internalKey = await makeSigningKey('RS256', 'mesh-1');
  externalJwks = await new JwksServer().start(jwks(externalKey));
  internalJwks = await new JwksServer().start(jwks(internalKey));
  closers.push(() => externalJwks.stop(), () => internalJwks.stop());
  app = await startEchoUpstream();
  vmcontroller = await startEchoUpstream();
  closers.push(() => app.close(), () => vmcontroller.close());

  // The token service exchanges only tokens of its own "public" issuer: the sidecar must trust that
  // issuer as external to accept such a token outbound and ask for the exchange.
  const publicJwksFile = join(pki.dir, 'token-service-public-jwks.json');
  writeFileSync(publicJwksFile, JSON.stringify(await tokenService.externalJwks()));
  const keyEnv = `RELOAD_STORM_SPICEDB_KEY_${process.pid}`;
  configFor = (k) => {
    const config = sidecarConfig({
      spicedbEndpoint: spicedb.endpoint,
      spicedbKeyEnv: keyEnv,
      externalJwksUrl: externalJwks.url,
      internalJwksUrl: internalJwks.url,
      overrides: {
        // info: the sidecar logs each checker and exchange source it builds, which proves the
        // rebuilds below; allowSampleRate 0 keeps the allow decisions (all of them) out of the log.
        log: { level: 'info', allowSampleRate: 0 },
        spicedb: {
          // Changes on every reload: a new checker (new gRPC channel) each time.
          deadlineMs: BASE_DEADLINE_MS + k,
          // 0: no decision cache, so every inbound request is a SpiceDB check.
          decisionCache: { ttlMs: 0, maxEntries: 1000 },
        },
        tokens: {
          source: exchangeSource(pki, tokenService.tokenEndpoint, { extra: { audienceParameter: 'resource' } }),
          // Changes on every reload: a new token source (new mTLS agent) each time. The exchange
          // source does not use it, but it is part of the section the sidecar fingerprints.
          lifetimeSeconds: BASE_LIFETIME_S + k,
          // The smallest cache the schema allows: service and exchange requests keep evicting each
          // other, so the token source is called on nearly every outbound request.
          cache: { maxEntries: 1 },
        },
        // With a token service as the source, on-behalf-of callers are refused at load.
        outbound: { onBehalfOf: {} },
      },
    });
    const issuers = config.issuers as Array<Record<string, unknown>>;
    issuers.push({
      name: 'public',
      issuer: tokenService.externalIssuer,
      audience: 'public-api',
      kind: 'external',
      subjectType: 'user',
      jwks: { file: publicJwksFile },
      algorithms: ['ES256'],
      typ: 'at+jwt',
    });
    return config;
  };
  sidecar = await startSidecar(configFor(0), { env: { [keyEnv]: spicedb.presharedKey } });
  closers.push(() => sidecar.stop('SIGKILL'));
  // The sidecar logs to stderr (pino, fd 2); attached after start, so only deltas of these counts mean anything.
  if (sidecar.process.child.stderr) countLogLines(sidecar.process.child.stderr);
  envoy = await startEnvoy({ sidecar: sidecar.grpcPort, app: app.port, vmcontroller: vmcontroller.port });
  closers.push(() => envoy.stop());

  alice = await userToken(externalKey, 'alice');
  for (let n = 0; n < USER_TOKENS; n++) exchangeTokens.push(await tokenService.externalUserToken(`user-${n}`));
}, 90_000);

afterAll(async () => {
  await closeNewestFirst(closers);
});

/** Replaces the config file the way a config-management tool should: never a half-written file. */
function replaceConfig(file: string, config: Record<string, unknown>, k: number): void {
  const temporary = `${file}.${process.pid}.${k}.tmp`;
  writeFileSync(temporary, stringify(config));
  renameSync(temporary, file);
}

const SAMPLES = {
  reloads: 'jwtauth_config_reloads_total{result="success"}',
  failedReloads: 'jwtauth_config_reloads_total{result="failure"}',
  spicedbAllowed: 'jwtauth_spicedb_checks_total{result="allowed"}',
  decisionCacheHits: 'jwtauth_decision_cache_events_total{event="hit"}',
  serviceTokens: 'jwtauth_tokens_issued_total{source="exchange",kind="service",result="ok"}',
  exchangedTokens: 'jwtauth_tokens_issued_total{source="exchange",kind="exchange",result="ok"}',
} as const;
type Counts = Record<keyof typeof SAMPLES, number>;

async function readCounts(): Promise<Counts> {
  const samples = await sidecar.scrape();
  return Object.fromEntries(Object.entries(SAMPLES).map(([key, sample]) => [key, samples.get(sample) ?? 0])) as Counts;
}

interface LoadSpec {
  readonly port: number;
  readonly workers: number;
  readonly idPrefix: string;
  readonly next: (i: number) => LoadRequest;
}

/**
 * Closed-loop load like runLoad's, but running until `done()` says so instead of for a fixed time,
 * so that it always spans the whole storm however long the storm takes.
 */
async function loadUntil(done: () => boolean, { port, workers, idPrefix, next }: LoadSpec): Promise<LoadResult[]> {
  const client = new LoadClient(port, workers);
  const results: LoadResult[] = [];
  let i = 0;
  const worker = async (): Promise<void> => {
    while (!done()) {
      const n = i++;
      const request = next(n);
      results.push({ ...(await client.request(request, `${idPrefix}-${n}`)), tag: request.tag ?? '' });
      if (PAUSE_MS > 0) await sleep(PAUSE_MS);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  client.close();
  return results;
}

/** When a reload was signalled and when the counter showed it done (performance.now()): it happened in between. */
interface ReloadWindow {
  readonly sent: number;
  readonly counted: number;
}

/**
 * Rewrites the file and sends SIGHUP `RELOADS` times, each time waiting for the success counter to
 * count that reload before writing the next file. POSIX keeps at most one SIGHUP pending, so
 * signals sent faster than a CPU-starved sidecar takes them would merge into one reload; waiting
 * makes one file one reload, and the count below exact. (The sidecar's file watcher may load a
 * file before its SIGHUP does; every file differs, so it is still one success per file.)
 */
async function reloadStorm(reloadsBefore: number): Promise<ReloadWindow[]> {
  const windows: ReloadWindow[] = [];
  for (let k = 1; k <= RELOADS; k++) {
    replaceConfig(sidecar.configFile, configFor(k), k);
    sidecar.process.child.kill('SIGHUP');
    const sent = performance.now();
    await waitFor(
      async () => (await sidecar.metric(SAMPLES.reloads)) >= reloadsBefore + k,
      RELOAD_LANDS_WITHIN_MS,
      () => `reload ${k} was not counted; sidecar output:\n${sidecar.process.output().slice(-5000)}`,
    );
    windows.push({ sent, counted: performance.now() });
    await sleep(RELOAD_PAUSE_MS);
  }
  return windows;
}

/** Messages counted in the sidecar's log: each is written once per adapter built. */
const BUILT_CHECKER = 'using SpiceDB';
const BUILT_TOKEN_SOURCE = 'outbound tokens from the token service';
const logged = new Map<string, number>([
  [BUILT_CHECKER, 0],
  [BUILT_TOKEN_SOURCE, 0],
]);

/**
 * Counts log lines (pino JSON) by message as they arrive. output() keeps only the last ~100 KB,
 * and a failing run logs every denial, so counting there could miss rebuilds and hide the real
 * failure behind a wrong count.
 */
function countLogLines(stream: Readable): void {
  let partial = '';
  stream.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      for (const [message, count] of logged) if (line.includes(`"msg":${JSON.stringify(message)}`)) logged.set(message, count + 1);
    }
  });
}
const logLines = (message: string): number => logged.get(message) ?? 0;

/**
 * For a failure message, what the sidecar saw: checks it took over 1 s to answer, and token
 * requests that failed, by reason. envoy/envoy.yaml's ext_authz retry_policy has max_interval
 * 1s, and Envoy uses a core RetryPolicy's max_interval as the per-try timeout: an attempt slower
 * than 1 s is reset and retried, and if attempts keep being that slow the request ends as a 503
 * without x-jwtauth-reason when the 3 s timeout runs out (upstream_rq_per_try_timeout in the
 * Envoy stats below).
 */
function sidecarDiagnostics(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  const delta = (series: string): number => (after.get(series) ?? 0) - (before.get(series) ?? 0);
  for (const direction of ['inbound', 'outbound']) {
    let slow = 0;
    for (const decision of ['allow', 'deny']) {
      const labels = `direction="${direction}",decision="${decision}"`;
      slow += delta(`jwtauth_check_duration_seconds_count{${labels}}`) - delta(`jwtauth_check_duration_seconds_bucket{le="1",${labels}}`);
    }
    out[`${direction}ChecksOver1s`] = slow;
  }
  // Compared with Envoy's cluster.jwtauth_sidecar.upstream_rq_total: a check Envoy sent and the
  // sidecar never answered would show as a difference.
  out.checksAnswered = [...after.keys()].filter((series) => series.startsWith('jwtauth_checks_total{')).reduce((sum, series) => sum + delta(series), 0);
  for (const series of after.keys()) {
    if (series.startsWith('jwtauth_tokens_issued_total{') && !series.includes('result="ok"') && delta(series) > 0) out[series] = delta(series);
  }
  return out;
}

/** How many reloads had at least one of `results` in flight while they happened. */
function inFlightDuring(results: readonly LoadResult[], windows: readonly ReloadWindow[]): number {
  return windows.filter((w) => results.some((r) => r.start <= w.counted && w.sent <= r.end)).length;
}

const ENVOY_STATS = [
  'http.ingress.ext_authz.error',
  'http.egress.ext_authz.error',
  'cluster.jwtauth_sidecar.upstream_rq_total',
  'cluster.jwtauth_sidecar.upstream_rq_timeout',
  'cluster.jwtauth_sidecar.upstream_rq_per_try_timeout',
  'cluster.jwtauth_sidecar.upstream_rq_retry',
  'cluster.local_app.upstream_cx_connect_fail',
  'cluster.vmcontroller.upstream_cx_connect_fail',
] as const;

async function envoyStats(): Promise<Record<string, number>> {
  return Object.fromEntries(await Promise.all(ENVOY_STATS.map(async (name) => [name, await envoy.stat(name)] as const)));
}

async function envoyStatsSince(before: Record<string, number>): Promise<Record<string, number>> {
  const now = await envoyStats();
  return Object.fromEntries(ENVOY_STATS.map((name) => [name, (now[name] ?? 0) - (before[name] ?? 0)]));
}

/** For a failure message: what failed, and how long after the latest reload signal it ended. */
function failureDetail(results: readonly LoadResult[], reloads: readonly ReloadWindow[]): Record<string, unknown> {
  const failed = results.filter((r) => r.status !== 200);
  const sinceReload = failed.map((r) => {
    const latest = reloads.filter((w) => w.sent <= r.end).at(-1);
    return latest === undefined ? null : Math.round(r.end - latest.sent);
  });
  // A failure without x-jwtauth-reason was not the sidecar's answer; how long it took tells a
  // timeout (Envoy's ext_authz timeout is 3 s) from a reset.
  const unexplainedMs = failed.filter((r) => r.reason === undefined).map((r) => Math.round(r.end - r.start));
  return {
    total: results.length,
    byStatus: summarize(results),
    failed: failed.length,
    firstFailedMsAfterReload: sinceReload.slice(0, 20),
    unexplainedMs: unexplainedMs.slice(0, 20),
  };
}

describe('reload storm under load', () => {
  it('rebuilds the SpiceDB checker and the token source on each of 30 reloads and fails no request', async () => {
    // Both paths answer before the storm (a failure here is a setup problem, not the reload).
    expect((await http1(envoy.ports.ingress, '/v1/clouds/cl0/vms', { authorization: `Bearer ${alice}` })).status, sidecar.process.output()).toBe(200);
    expect((await http1(envoy.ports.egress, '/vm.v1/List', { host: 'vmcontroller' })).status, sidecar.process.output()).toBe(200);
    const exchanged = await http1(envoy.ports.egress, '/vm.v1/List', { host: 'vmcontroller', authorization: `Bearer ${exchangeTokens[0]!}` });
    expect(exchanged.status, sidecar.process.output()).toBe(200);

    const before = await readCounts();
    const scrapeBefore = await sidecar.scrape();
    const checkersBefore = logLines(BUILT_CHECKER);
    const sourcesBefore = logLines(BUILT_TOKEN_SOURCE);
    const tokenRequestsBefore = tokenService.requests;
    const envoyBefore = await envoyStats();

    let stopAt = Number.POSITIVE_INFINITY;
    const done = (): boolean => performance.now() >= stopAt;
    const inbound = loadUntil(done, {
      port: envoy.ports.ingress,
      workers: INBOUND_WORKERS,
      idPrefix: 'in',
      next: (i) => ({ path: `/v1/clouds/cl${i % CLOUDS}/vms`, headers: { authorization: `Bearer ${alice}` }, tag: 'inbound' }),
    });
    const outbound = loadUntil(done, {
      port: envoy.ports.egress,
      workers: OUTBOUND_WORKERS,
      idPrefix: 'out',
      next: (i) =>
        i % 2 === 0
          ? { path: '/vm.v1/List', authority: 'vmcontroller', tag: 'service' }
          : { path: '/vm.v1/List', authority: 'vmcontroller', headers: { authorization: `Bearer ${exchangeTokens[i % USER_TOKENS]!}` }, tag: 'exchange' },
    });
    await sleep(LOAD_BEFORE_MS);
    // Even if a reload is lost (the storm throws), the load stops, so nothing outlives the test.
    const storm = await reloadStorm(before.reloads).finally(() => {
      stopAt = performance.now() + LOAD_AFTER_MS;
    });
    const [inResults, outResults] = await Promise.all([inbound, outbound]);

    const after = await readCounts();
    const reloads = after.reloads - before.reloads;
    const detail = JSON.stringify({
      reloadsSent: storm.length,
      reloads,
      reloadsWithRequestsInFlight: { inbound: inFlightDuring(inResults, storm), outbound: inFlightDuring(outResults, storm) },
      inbound: failureDetail(inResults, storm),
      outbound: failureDetail(outResults, storm),
      // Where a status without x-jwtauth-reason came from: Envoy failing to ask the sidecar, or to reach an upstream.
      envoy: await envoyStatsSince(envoyBefore),
      sidecar: sidecarDiagnostics(scrapeBefore, await sidecar.scrape()),
    });
    // The reloads happened: one success per file written, none rejected...
    expect(storm.length, detail).toBe(RELOADS);
    expect(reloads, detail).toBe(RELOADS);
    expect(after.failedReloads - before.failedReloads, detail).toBe(0);
    // ...and each one built a new checker and a new token source (one log line each per build;
    // the log travels through a pipe, the counter over HTTP, so the lines may trail the counter).
    await waitFor(
      () => logLines(BUILT_CHECKER) - checkersBefore >= reloads && logLines(BUILT_TOKEN_SOURCE) - sourcesBefore >= reloads,
      3000,
      () => `fewer rebuilds logged than reloads: ${detail}`,
    );
    expect(logLines(BUILT_CHECKER) - checkersBefore, detail).toBe(reloads);
    expect(logLines(BUILT_TOKEN_SOURCE) - sourcesBefore, detail).toBe(reloads);

    // The load was there when the reloads came: requests of both directions in flight during
    // every reload. (How many requests that makes depends on how busy the machine is.)
    expect(inFlightDuring(inResults, storm), detail).toBe(RELOADS);
    expect(inFlightDuring(outResults, storm), detail).toBe(RELOADS);
    // The load really went through the rebuilt adapters: every inbound request was a SpiceDB check
    // (no cached decision), and most outbound requests were a call to the token service.
    expect(after.decisionCacheHits - before.decisionCacheHits, detail).toBe(0);
    expect(after.spicedbAllowed - before.spicedbAllowed, detail).toBeGreaterThanOrEqual(inResults.length / 2);
    expect(after.serviceTokens - before.serviceTokens, detail).toBeGreaterThan(0);
    expect(after.exchangedTokens - before.exchangedTokens, detail).toBeGreaterThanOrEqual(outResults.length / 4);
    expect(tokenService.requests - tokenRequestsBefore, detail).toBeGreaterThanOrEqual(outResults.length / 2);

    // The guarantee: every request allowed and delivered, on both paths; no 503, nothing else.
    expect(summarize(inResults), detail).toEqual({ '200': inResults.length });
    expect(summarize(outResults), detail).toEqual({ '200': outResults.length });
    const appIds = receivedIds(app);
    const vmIds = receivedIds(vmcontroller);
    expect(inResults.filter((r) => !appIds.has(r.id)).length, detail).toBe(0);
    expect(outResults.filter((r) => !vmIds.has(r.id)).length, detail).toBe(0);
    // And every outbound call left with a token the sidecar attached, never the user's own.
    const userTokens = new Set(exchangeTokens.map((t) => `Bearer ${t}`));
    const outIds = new Set(outResults.map((r) => r.id));
    const sentOut = vmcontroller.received.filter((x) => typeof x.headers['x-load-id'] === 'string' && outIds.has(x.headers['x-load-id']));
    expect(sentOut.filter((x) => !/^Bearer /.test(String(x.headers.authorization ?? '')) || userTokens.has(String(x.headers.authorization))).length, detail).toBe(0);
  }, 60_000);
});
