/**
 * How long a revoked (or granted) permission keeps its old answer, and what share of checks the
 * cache answers, for the decision cache's `ttl` and `watch` freshness modes (issue 22).
 *
 * Two built sidecars, one per mode, on one real SpiceDB. Rounds take turns (A B B A …), each
 * putting a cached inbound load on one sidecar, as Envoy would: `--rate` Checks per second, evenly
 * spaced, spread over 100 users on 10 clouds (all allowed), and among them a probe Check every 5 ms
 * for one more user on one cloud. Meanwhile a writer makes `--writes` unrelated writes per second
 * (other clouds), and a toggler grants and revokes the probe user's membership. The lag of a toggle
 * is from WriteRelationships returning to the first answer that reflects it, to a probe sent after
 * that (and before the next toggle's write is sent, however late the answer comes). A probe sent after one that reflected the toggle, and answered with the old state, counts as
 * a relapse (a stale refill). (A probe sent earlier may still be answered later with the old state:
 * it reached the cache before the Watch delivered the change.) The stale time of a toggle is from
 * the write returning to the sending of the last probe answered with the old state: unlike the lag,
 * it does not grow when a loaded machine answers slowly. A toggle not reflected by the time the next
 * is due is told apart by its probes: answered with the old state (the sidecar kept a stale
 * answer), or not answered within 2 s, or not sent (the sidecar, or the bench, could not keep up).
 * The share of checks answered without SpiceDB is 1 − SpiceDB checks / Checks, from the sidecar's
 * own metrics over the round.
 *
 *   npm run bench:revocation -- [--rounds=4] [--seconds=30] [--rate=1000] [--writes=10] [--datastore=memory|postgres] [--quick] [--out=DIR]
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { throwawayDatastore } from '../dev/postgres.js';
import { launchSidecar, writeSidecarConfig } from '../dev/sidecar.js';
import type { SidecarProcess } from '../dev/sidecar.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbServer } from '../dev/spicedb.js';
import { envoyAuthProto } from '../src/envoy/protos.js';
import type { CheckRequest } from '../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse__Output } from '../src/generated/envoy/service/auth/v3/CheckResponse.js';
import type { AuthorizationClient } from '../src/generated/envoy/service/auth/v3/Authorization.js';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { makeKeys, SCHEMA, sidecarConfig, signToken } from '../dev/bench/fixtures.js';
import { percentile } from './percentiles.js';
import type { BenchKeys } from '../dev/bench/fixtures.js';

const USAGE = `npm run bench:revocation -- [FLAGS]

  --rounds=N        rounds per mode, interleaved (default 4; quick 1)
  --seconds=S       load per round (default 30; quick 6)
  --rate=R          Checks per second during a round (default 1000)
  --writes=W        unrelated relationship writes per second (default 10)
  --datastore=D     memory (default) or postgres
  --heartbeat=T     SpiceDB's --watch-api-heartbeat (its default 1s; on Postgres, the Watch's poll interval)
  --quick           a short run into a temp dir: does the script still work
  --out=DIR         results directory (default bench/results)
`;

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string' },
    seconds: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    writes: { type: 'string', default: '10' },
    datastore: { type: 'string', default: 'memory' },
    heartbeat: { type: 'string' },
    quick: { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const ROUNDS = Number(flags.rounds ?? (flags.quick ? 1 : 4));
const SECONDS = Number(flags.seconds ?? (flags.quick ? 6 : 30));
const RATE = Number(flags.rate);
const WRITES = Number(flags.writes);
const DATASTORE = flags.datastore === 'postgres' ? 'postgres' : 'memory';
const WARM_UP_SECONDS = flags.quick ? 2 : 10;
const PROBE_EVERY_MS = 5;
/** Longer than the slowest lag expected in the mode, so toggles never overlap. */
const TOGGLE_EVERY_MS = { watch: 1_000, ttl: 8_000 } as const;
type Mode = keyof typeof TOGGLE_EVERY_MS;

const GRPC_OK = 0;
const GRPC_PERMISSION_DENIED = 7;

const USERS = 100;
const CLOUDS = 10;
const PROBE = { user: 'probe', cloud: 'c0' };

const log = (message: string): void => void process.stderr.write(`[revocation] ${message}\n`);

function checkRequest(token: string, cloud: string): CheckRequest {
  return {
    attributes: {
      request: { http: { method: 'GET', path: `/v1/clouds/${cloud}/namespaces`, host: 'api.local', scheme: 'http', protocol: 'HTTP/2', headers: { authorization: `Bearer ${token}` } } },
      context_extensions: { direction: 'inbound' },
    },
  };
}

interface Toggle {
  readonly grants: boolean;
  readonly returnedAt: number;
  /** When the next toggle's write was sent: a probe sent after that may already see the next state. */
  nextSentAt?: number;
  reflectedAt?: number;
  /** When the first probe that reflected it was sent: one sent later that does not is a relapse. */
  reflectingSentAt?: number;
  /** When the bench's own Watch stream received it: tells SpiceDB's delivery from the sidecar's cache. */
  deliveredAt?: number;
  relapses: number;
  /** Probes sent after the write returned, before one reflected it: answered with the old state, or not answered (an error or a timeout). */
  oldAnswers: number;
  failedProbes: number;
  /** When the last probe answered with the old state was sent. */
  lastOldSentAt?: number;
}

interface RoundResult {
  readonly mode: Mode;
  readonly round: number;
  readonly lagsMs: number[];
  /**
   * For every toggle, how long after the write returned a probe could still be sent and answered
   * with the old state (0: none was). Unlike the lag, it does not grow when answers are slow.
   */
  readonly staleMs: number[];
  /** Toggles whose answer had not changed when the next one was due. */
  readonly unreflected: number;
  /** When each of those was written, in ms since the round started. */
  readonly unreflectedAtMs: number[];
  /** For each of those, how long the bench's own Watch took to receive it (ms; null: not received). */
  readonly unreflectedDeliveryMs: Array<number | null>;
  /**
   * For each of those, the probes sent after it answered with the old state, and those not answered:
   * a toggle left stale by the sidecar has the first; one unreflected only because the sidecar
   * could not answer (an overloaded machine) has the second.
   */
  readonly unreflectedOldAnswers: number[];
  readonly unreflectedFailedProbes: number[];
  /** For every toggle, how long the bench's own Watch took to receive it (ms). */
  readonly deliveryMs: number[];
  readonly relapses: number;
  readonly checks: number;
  readonly spicedbChecks: number;
  /** Watch mode: relationship updates received, and cached answers they dropped. */
  readonly watchUpdates: number;
  readonly invalidated: number;
  readonly achievedRate: number;
  readonly achievedWrites: number;
  /** Wall-clock start, to line the round up with the Watch log. */
  readonly startedAt: string;
  /** Checks that failed, timed out (2 s), or were answered neither allow nor deny. */
  readonly errors: number;
}

async function runRound(mode: Mode, round: number, sidecar: SidecarProcess, spicedb: SpicedbServer, keys: BenchKeys, seconds = SECONDS): Promise<RoundResult> {
  const Authorization = envoyAuthProto().envoy.service.auth.v3.Authorization;
  const client: AuthorizationClient = new Authorization(`127.0.0.1:${sidecar.grpcPort}`, grpc.credentials.createInsecure());
  const call = (request: CheckRequest): Promise<CheckResponse__Output | undefined> =>
    new Promise((resolve) => client.Check(request, { deadline: Date.now() + 2_000 }, (error, response) => resolve(error ? undefined : response)));
  const load = Array.from({ length: USERS }, (_, i) => checkRequest(signToken(keys, `u${i}`), `c${i % CLOUDS}`));
  const probe = checkRequest(signToken(keys, PROBE.user), PROBE.cloud);
  // Start each round from the same state: the probe user is not a member.
  await spicedb.write(`cloud:${PROBE.cloud}#member@user:${PROBE.user}`, 'delete');
  let granted = false;
  await Promise.all(load.map(call));

  const before = await sidecar.metrics();
  const startedAt = new Date().toISOString();
  const started = performance.now();
  const until = started + seconds * 1000;
  let checks = 0;
  let errors = 0;
  const toggles: Toggle[] = [];
  let running = true;

  const loadLoop = (async () => {
    const interval = 1000 / RATE;
    const inflight = new Set<Promise<unknown>>();
    let next = performance.now();
    let i = 0;
    let nextProbe = next;
    while (performance.now() < until) {
      const now = performance.now();
      if (now < next) {
        await sleep(Math.max(0, next - now));
        continue;
      }
      next += interval;
      const isProbe = now >= nextProbe;
      if (isProbe) nextProbe += PROBE_EVERY_MS;
      const sentAt = performance.now();
      // The toggle a probe is about is the newest when it is sent, even if the answer comes after the next.
      const toggle = isProbe ? toggles.at(-1) : undefined;
      const pending = call(isProbe ? probe : load[i++ % load.length]!).then((response) => {
        checks++;
        // OK is an allow and PERMISSION_DENIED a deny; anything else (UNAVAILABLE when SpiceDB did not
        // answer in time) says nothing about the toggle, and must not pass for a deny that reflects a revoke.
        const code = response?.status?.code ?? 0;
        const answered = response !== undefined && (code === GRPC_OK || code === GRPC_PERMISSION_DENIED);
        if (!answered) errors++;
        if (toggle === undefined || (toggle.nextSentAt !== undefined && sentAt >= toggle.nextSentAt)) return;
        if (!answered) {
          if (toggle.reflectingSentAt === undefined) toggle.failedProbes++;
          return;
        }
        const allowed = code === GRPC_OK;
        // Once the next toggle's write is sent, an answer with the old state may be the next toggle's
        // own (a probe queued in this process before the write reaches the sidecar after it): it
        // proves nothing about this toggle, neither stale nor a relapse.
        if (allowed !== toggle.grants && toggle.nextSentAt !== undefined) return;
        if (allowed !== toggle.grants && toggle.reflectingSentAt === undefined) {
          toggle.oldAnswers++;
          toggle.lastOldSentAt = Math.max(toggle.lastOldSentAt ?? sentAt, sentAt);
        }
        if (allowed === toggle.grants) {
          if (toggle.reflectedAt === undefined) {
            toggle.reflectedAt = performance.now();
            toggle.reflectingSentAt = sentAt;
          }
        } else if (toggle.reflectingSentAt !== undefined && sentAt > toggle.reflectingSentAt) toggle.relapses++;
      });
      inflight.add(pending);
      void pending.finally(() => inflight.delete(pending));
    }
    await Promise.all(inflight);
  })();

  let writes = 0;
  const writerLoop = (async () => {
    // Evenly spaced, whatever each write takes.
    let next = performance.now();
    while (running) {
      await spicedb.write(`cloud:x${writes % 100}#member@user:w${writes % 50}`, writes % 200 < 100 ? 'touch' : 'delete');
      writes++;
      next += 1000 / WRITES;
      await sleep(Math.max(0, next - performance.now()));
    }
  })();

  // A Watch of the bench's own on the probe's relationship, beside the sidecar's.
  const PROBE_RELATIONSHIP = `cloud:${PROBE.cloud}#member@user:${PROBE.user}`;
  const probeWatch = spicedb.client.watch(v1.WatchRequest.create({ optionalObjectTypes: ['cloud'] }));
  probeWatch.on('data', (response: v1.WatchResponse) => {
    for (const update of response.updates) {
      const r = update.relationship;
      if (`${r?.resource?.objectType}:${r?.resource?.objectId}#${r?.relation}@${r?.subject?.object?.objectType}:${r?.subject?.object?.objectId}` !== PROBE_RELATIONSHIP) continue;
      const grants = update.operation !== v1.RelationshipUpdate_Operation.DELETE;
      const toggle = toggles.findLast((each) => each.grants === grants && each.deliveredAt === undefined);
      if (toggle !== undefined) toggle.deliveredAt = performance.now();
    }
  });
  probeWatch.on('error', () => undefined);

  const togglerLoop = (async () => {
    await sleep(500);
    while (performance.now() + TOGGLE_EVERY_MS[mode] < until) {
      granted = !granted;
      const previous = toggles.at(-1);
      if (previous !== undefined) previous.nextSentAt = performance.now();
      await spicedb.write(`cloud:${PROBE.cloud}#member@user:${PROBE.user}`, granted ? 'touch' : 'delete');
      toggles.push({ grants: granted, returnedAt: performance.now(), relapses: 0, oldAnswers: 0, failedProbes: 0 });
      await sleep(TOGGLE_EVERY_MS[mode] * (0.8 + Math.random() * 0.4));
    }
  })();

  await Promise.all([loadLoop, togglerLoop]);
  probeWatch.cancel();
  running = false;
  await writerLoop;
  const elapsed = (performance.now() - started) / 1000;
  const after = await sidecar.metrics();
  client.close();
  const delta = (name: string): number => (after.total(name) ?? 0) - (before.total(name) ?? 0);
  const reflected = toggles.filter((toggle) => toggle.reflectedAt !== undefined);
  return {
    mode,
    round,
    lagsMs: reflected.map((toggle) => toggle.reflectedAt! - toggle.returnedAt),
    staleMs: toggles.map((toggle) => (toggle.lastOldSentAt === undefined ? 0 : Math.round(toggle.lastOldSentAt - toggle.returnedAt))),
    unreflected: toggles.length - reflected.length,
    unreflectedAtMs: toggles.filter((toggle) => toggle.reflectedAt === undefined).map((toggle) => Math.round(toggle.returnedAt - started)),
    unreflectedDeliveryMs: toggles.filter((toggle) => toggle.reflectedAt === undefined).map((toggle) => (toggle.deliveredAt === undefined ? null : Math.round(toggle.deliveredAt - toggle.returnedAt))),
    unreflectedOldAnswers: toggles.filter((toggle) => toggle.reflectedAt === undefined).map((toggle) => toggle.oldAnswers),
    unreflectedFailedProbes: toggles.filter((toggle) => toggle.reflectedAt === undefined).map((toggle) => toggle.failedProbes),
    deliveryMs: toggles.flatMap((toggle) => (toggle.deliveredAt === undefined ? [] : [Math.round(toggle.deliveredAt - toggle.returnedAt)])),
    relapses: toggles.reduce((sum, toggle) => sum + toggle.relapses, 0),
    checks: delta('jwtauth_checks_total'),
    spicedbChecks: delta('jwtauth_spicedb_checks_total'),
    watchUpdates: delta('jwtauth_spicedb_watch_updates_total'),
    invalidated: (after.series.get('jwtauth_decision_cache_invalidations_total{scope="change"}') ?? 0) - (before.series.get('jwtauth_decision_cache_invalidations_total{scope="change"}') ?? 0),
    achievedRate: checks / elapsed,
    achievedWrites: writes / elapsed,
    startedAt,
    errors,
  };
}


interface ModeSummary {
  readonly toggles: number;
  readonly lagMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly staleMs: { readonly p99: number; readonly max: number };
  readonly unreflected: number;
  /** Of those, the ones some of whose probes went unanswered: not reflected for want of an answer, perhaps not stale. */
  readonly unreflectedWithFailedProbes: number;
  readonly relapses: number;
  /** Checks that failed, timed out (2 s), or were answered neither allow nor deny (the sidecar's 503 when SpiceDB did not answer). */
  readonly errors: number;
  readonly answeredWithoutSpicedb: number;
  /** Cached answers dropped per relationship update received (watch mode). */
  readonly droppedPerUpdate: number;
  readonly achievedRate: number;
}

function summarize(results: readonly RoundResult[]): ModeSummary {
  const lags = results.flatMap((result) => result.lagsMs).sort((a, b) => a - b);
  const stale = results.flatMap((result) => result.staleMs).sort((a, b) => a - b);
  const checks = results.reduce((sum, result) => sum + result.checks, 0);
  const spicedbChecks = results.reduce((sum, result) => sum + result.spicedbChecks, 0);
  return {
    toggles: lags.length + results.reduce((sum, result) => sum + result.unreflected, 0),
    lagMs: { p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags.at(-1) ?? Number.NaN },
    staleMs: { p99: percentile(stale, 99), max: stale.at(-1) ?? Number.NaN },
    unreflected: results.reduce((sum, result) => sum + result.unreflected, 0),
    unreflectedWithFailedProbes: results.reduce((sum, result) => sum + result.unreflectedFailedProbes.filter((failed) => failed > 0).length, 0),
    relapses: results.reduce((sum, result) => sum + result.relapses, 0),
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    answeredWithoutSpicedb: checks === 0 ? Number.NaN : 1 - spicedbChecks / checks,
    droppedPerUpdate: results.reduce((sum, result) => sum + result.invalidated, 0) / Math.max(1, results.reduce((sum, result) => sum + result.watchUpdates, 0)),
    achievedRate: results.reduce((sum, result) => sum + result.achievedRate, 0) / results.length,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-revocation-'));
  const keys = makeKeys(dir);
  const store = await throwawayDatastore(DATASTORE);
  // SpiceDB reads every flag from SPICEDB_<FLAG> too.
  if (flags.heartbeat !== undefined) process.env.SPICEDB_WATCH_API_HEARTBEAT = flags.heartbeat;
  const relationships = Array.from({ length: USERS }, (_, i) => `cloud:c${i % CLOUDS}#member@user:u${i}`).join('\n');
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships, datastore: store.datastore, name: `spicedb-${DATASTORE}` });
  const sidecars = new Map<Mode, SidecarProcess>();
  const watchLog: string[] = [];
  try {
    for (const mode of ['watch', 'ttl'] as const) {
      const configFile = writeSidecarConfig(sidecarConfig(keys, spicedb.endpoint, 'SPICEDB_KEY', { freshness: mode }), mkdtempSync(join(dir, `${mode}-`)));
      sidecars.set(
        mode,
        await launchSidecar({
          configFile,
          name: `sidecar-${mode}`,
          env: { SPICEDB_KEY: spicedb.presharedKey },
          nodeArgs: ['--single-threaded-gc'],
          // Watch state changes, kept with the results: a toggle slow to show may be one of them.
          onLine: (line) => {
            if (line.includes('Watch')) watchLog.push(`${mode} ${new Date().toISOString()} ${line}`);
          },
        }),
      );
    }
    // Unmeasured first: a fresh SpiceDB (Postgres above all) and fresh sidecars answer their first
    // seconds of load slowly and with errors, which would land in the first round only.
    for (const mode of ['watch', 'ttl'] as const) {
      log(`warm-up: ${mode}, ${WARM_UP_SECONDS} s`);
      await runRound(mode, -1, sidecars.get(mode)!, spicedb, keys, WARM_UP_SECONDS);
    }
    const results: RoundResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // A B, B A, …: drift on a shared machine falls on both alike.
      const order: Mode[] = round % 2 === 0 ? ['watch', 'ttl'] : ['ttl', 'watch'];
      for (const mode of order) {
        log(`round ${round + 1}/${ROUNDS}: ${mode}, ${SECONDS} s at ${RATE} Checks/s with ${WRITES} unrelated writes/s`);
        const result = await runRound(mode, round, sidecars.get(mode)!, spicedb, keys);
        log(`  ${result.lagsMs.length} toggles reflected (${result.unreflected} not), lag max ${Math.round(Math.max(...result.lagsMs, 0))} ms, ${result.relapses} relapses, ${(100 * (1 - result.spicedbChecks / result.checks)).toFixed(2)} % without SpiceDB, ${Math.round(result.achievedRate)} Checks/s, ${result.achievedWrites.toFixed(1)} writes/s, ${result.errors} errors`);
        results.push(result);
      }
    }
    const summary = { watch: summarize(results.filter((r) => r.mode === 'watch')), ttl: summarize(results.filter((r) => r.mode === 'ttl')) };
    const stamp = new Date().toISOString().slice(0, 10);
    const out = flags.out ?? (flags.quick ? mkdtempSync(join(tmpdir(), 'jwtauth-revocation-out-')) : join(PACKAGE_ROOT, 'bench', 'results'));
    mkdirSync(out, { recursive: true });
    const roundStarts = results.map((result) => `${result.mode} round ${result.round}: ${result.startedAt}`);
    const name = `${stamp}-${hostname().split('.')[0]}-revocation-lag-${DATASTORE}${flags.heartbeat ? `-heartbeat-${flags.heartbeat}` : ''}`;
    const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node ${process.version}`;
    writeFileSync(join(out, `${name}.json`), `${JSON.stringify({ machine, datastore: DATASTORE, watchApiHeartbeat: flags.heartbeat ?? 'default (1s)', rounds: ROUNDS, seconds: SECONDS, rate: RATE, writes: WRITES, summary, results, roundStarts, watchLog }, null, 2)}\n`);
    const row = (mode: Mode): string => {
      const s = summary[mode];
      const ms = (value: number): string => (Number.isNaN(value) ? '–' : `${Math.round(value)}`);
      const dropped = mode === 'watch' ? s.droppedPerUpdate.toFixed(2) : '–';
      const unreflected = s.unreflectedWithFailedProbes > 0 ? `${s.unreflected} (${s.unreflectedWithFailedProbes} with unanswered probes)` : `${s.unreflected}`;
      return `| ${mode} | ${s.toggles} | ${ms(s.lagMs.p50)} | ${ms(s.lagMs.p99)} | ${ms(s.lagMs.max)} | ${ms(s.staleMs.p99)} | ${ms(s.staleMs.max)} | ${unreflected} | ${s.relapses} | ${(100 * s.answeredWithoutSpicedb).toFixed(2)} % | ${dropped} | ${Math.round(s.achievedRate)} | ${s.errors} |`;
    };
    const table = [
      `Revocation lag, SpiceDB on ${DATASTORE} (--watch-api-heartbeat ${flags.heartbeat ?? 'default, 1s'}): ${ROUNDS} interleaved rounds per mode of ${SECONDS} s at ${RATE} Checks/s, ${WRITES} unrelated writes/s; ${machine}.`,
      '',
      '| freshness | toggles | lag p50 ms | lag p99 ms | lag max ms | stale p99 ms | stale max ms | not reflected | relapses | answered without SpiceDB | answers dropped per change | Checks/s | failed Checks |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
      row('watch'),
      row('ttl'),
      '',
    ].join('\n');
    writeFileSync(join(out, `${name}.md`), `${table}\n`);
    process.stdout.write(`${table}\nresults: ${join(out, name)}.{json,md}\n`);
  } finally {
    await Promise.allSettled([...sidecars.values()].map((sidecar) => sidecar.stop()));
    await spicedb.stop();
    await store.stop();
  }
}

await main();
