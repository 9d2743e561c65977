/**
 * What SpiceDB's Watch costs and how late it delivers, on the real binary (issue 22, items 5 and 7).
 * Three parts, each optional:
 *
 * - `refusal`: SpiceDB on a Postgres cluster with track_commit_timestamp off, then on: what a Watch
 *   call gets from each, and what SpiceDB logs about it at start.
 * - `delay`: one stream, 10 writes/s; the time from WriteRelationships returning to the stream
 *   delivering that write, on memory and on Postgres with default flags and with each flag that
 *   governs it changed alone; and how often an idle stream gets a checkpoint.
 * - `fleet`: 0, 1, 10 and 50 concurrent streams (each a sidecar's: its own connection, two object
 *   types, relationships + checkpoints) on Postgres, idle and under 10 writes/s: SpiceDB's CPU,
 *   the cluster's CPU, Postgres statements and transactions per second, delivery delay.
 *
 * Every configuration runs once per round and the order turns each round, so slow drift on this
 * shared machine (other engineers' tests) falls on every configuration alike; each window records
 * the CPU used outside the processes measured. Results: bench/results/<date>-<host>-<label>.{json,md}.
 *
 *   npm run bench:watch -- [--parts=refusal,delay,fleet] [--rounds=3] [--sizes=1,10,50] [--quick] [--label=watch-fleet] [--out=DIR]
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { status } from '@grpc/grpc-js';
import { startPostgres } from '../dev/postgres.js';
import type { PostgresCluster } from '../dev/postgres.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbServer } from '../dev/spicedb.js';
import { TOOLS_BIN } from '../dev/processes.js';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { median } from './measure.js';
import { loadAverage, sampleMachine, sampleProcess, TICKS_PER_SECOND } from '../dev/proc.js';
import { deliveryDelays, WATCH_SCHEMA, WATCHED_TYPES, WatchFleet, writeOne, writeSteadily } from './watch-streams.js';
import type { DelaySummary } from './watch-streams.js';

const USAGE = `npm run bench:watch -- [FLAGS]   (or node dist/bench/watch-fleet.js FLAGS after npm run build)

  --parts=LIST   which of refusal,delay,fleet to run (default all three)
  --rounds=N     rounds of every delay and fleet configuration (default 3, quick 1)
  --sizes=LIST   fleet sizes besides the 0-stream baseline (default 1,10,50)
  --quick        a few seconds per window, results in a temp dir: does the script still work
  --label=NAME   results file suffix (default watch-fleet)
  --out=DIR      write the results there instead of bench/results
`;

const { values: flags } = parseArgs({
  options: {
    parts: { type: 'string', default: 'refusal,delay,fleet' },
    rounds: { type: 'string' },
    sizes: { type: 'string', default: '1,10,50' },
    quick: { type: 'boolean', default: false },
    label: { type: 'string', default: 'watch-fleet' },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const parts = new Set(flags.parts.split(','));
const rounds = Number(flags.rounds ?? (flags.quick ? 1 : 3));
const sizes = flags.sizes.split(',').map(Number);
if ([...parts].some((part) => !['refusal', 'delay', 'fleet'].includes(part)) || !(Number.isInteger(rounds) && rounds >= 1) || !sizes.every((n) => Number.isInteger(n) && n >= 1)) {
  process.stderr.write(USAGE);
  process.exit(2);
}

/** Writes per second in every loaded window: the issue's "10 unrelated writes/s". */
const WRITES_PER_SECOND = 10;
const WINDOWS = flags.quick ? { idleSeconds: 3, loadSeconds: 4, settleSeconds: 1 } : { idleSeconds: 15, loadSeconds: 20, settleSeconds: 2 };
/** How long a stream may take to deliver a write before it counts as undelivered: past Postgres's poll interval many times over. */
const DRAIN_MS = 10_000;

const started = Date.now();
const log = (line: string): void => {
  process.stdout.write(`[watch ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
};

/** SpiceDB flags as `serve` spells them (`--watch-api-heartbeat`), with their values. */
type SpicedbFlags = Readonly<Record<string, string>>;

/**
 * startSpicedb (dev/spicedb.ts) passes this process's environment on to SpiceDB, which reads any
 * flag from SPICEDB_<FLAG> as well (how it already gets its preshared key): the flags go there for
 * the start, and are taken out again so the next SpiceDB starts with the defaults.
 */
async function startSpicedbWith(name: string, flagValues: SpicedbFlags, postgres: PostgresCluster | undefined): Promise<SpicedbServer> {
  const variables = Object.entries(flagValues).map(([flag, value]) => [`SPICEDB_${flag.replace(/^--/, '').replace(/-/g, '_').toUpperCase()}`, value] as const);
  for (const [variable, value] of variables) process.env[variable] = value;
  try {
    return await startSpicedb({ schema: WATCH_SCHEMA, datastore: postgres ? { engine: 'postgres', uri: postgres.uri } : { engine: 'memory' }, name });
  } finally {
    for (const [variable] of variables) delete process.env[variable];
  }
}

/** pg_stat_statements counts every statement (BEGIN and COMMIT too) by its normalised text. */
const STATEMENT_TRACKING = { shared_preload_libraries: 'pg_stat_statements' };
/** SpiceDB's Watch poll (internal/datastore/postgres/watch.go, newRevisionsQuery) is the only statement with this call. */
const WATCH_POLL_MARK = 'pg_snapshot_xmax';

interface PostgresCounters {
  readonly transactions: number;
  readonly statements: number;
  readonly watchPolls: number;
  readonly execMs: number;
}

async function postgresCounters(cluster: PostgresCluster): Promise<PostgresCounters> {
  const row = await cluster.query(`SELECT
      (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()),
      (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements),
      (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%${WATCH_POLL_MARK}%'),
      (SELECT coalesce(sum(total_exec_time), 0) FROM pg_stat_statements)`);
  const [transactions = Number.NaN, statements = Number.NaN, watchPolls = Number.NaN, execMs = Number.NaN] = row.split('|').map(Number);
  return { transactions, statements, watchPolls, execMs };
}

/** What one window cost, per second of it. CPU in cores; `outside` is what the rest of the machine used meanwhile. */
interface WindowCost {
  readonly seconds: number;
  readonly spicedbCores: number;
  readonly postgresCores: number | undefined;
  readonly benchCores: number;
  readonly outsideCores: number;
  readonly transactionsPerSecond: number | undefined;
  readonly statementsPerSecond: number | undefined;
  readonly watchPollsPerSecond: number | undefined;
  /** Postgres executor time per second, summed over backends (pg_stat_statements total_exec_time). */
  readonly postgresExecMsPerSecond: number | undefined;
  readonly loadAverage1m: number;
}

/** Runs `during` and reports what SpiceDB, the cluster, this process and everything else spent meanwhile. */
async function measureWindow<T>(spicedb: SpicedbServer, cluster: PostgresCluster | undefined, during: () => Promise<T>): Promise<{ cost: WindowCost; result: T }> {
  const spicedbPid = spicedb.process.child.pid as number;
  const counters = cluster && (await postgresCounters(cluster));
  const before = { at: performance.now(), spicedb: sampleProcess(spicedbPid), postgres: cluster && sampleProcess(cluster.pid), bench: process.cpuUsage(), machine: sampleMachine() };
  const result = await during();
  const after = { at: performance.now(), spicedb: sampleProcess(spicedbPid), postgres: cluster && sampleProcess(cluster.pid), bench: process.cpuUsage(before.bench), machine: sampleMachine() };
  const countersAfter = cluster && (await postgresCounters(cluster));
  const seconds = (after.at - before.at) / 1000;
  const cores = (ticks: number): number => ticks / TICKS_PER_SECOND / seconds;
  const spicedbCores = cores((after.spicedb?.cpuTicks ?? Number.NaN) - (before.spicedb?.cpuTicks ?? Number.NaN));
  const postgresCores = before.postgres && after.postgres ? cores(after.postgres.cpuTicks - before.postgres.cpuTicks) : undefined;
  const benchCores = (after.bench.user + after.bench.system) / 1e6 / seconds;
  const machineCores = cores(after.machine.busy - before.machine.busy);
  const perSecond = (key: keyof PostgresCounters): number | undefined => (counters && countersAfter ? (countersAfter[key] - counters[key]) / seconds : undefined);
  return {
    result,
    cost: {
      seconds,
      spicedbCores,
      postgresCores,
      benchCores,
      outsideCores: Math.max(0, machineCores - spicedbCores - (postgresCores ?? 0) - benchCores),
      transactionsPerSecond: perSecond('transactions'),
      statementsPerSecond: perSecond('statements'),
      watchPollsPerSecond: perSecond('watchPolls'),
      postgresExecMsPerSecond: perSecond('execMs'),
      loadAverage1m: loadAverage()[0],
    },
  };
}

/**
 * Opens `size` streams and waits until each has delivered one write: from then on every stream is
 * live and past its start-up replay. A stream opened without a cursor starts wherever SpiceDB puts
 * it when the call arrives, which may be after a write made while its connection was still being
 * set up (seen on memory): so the barrier is written again until every stream has delivered one.
 */
async function openFleet(spicedb: SpicedbServer, size: number, label: string): Promise<WatchFleet> {
  const fleet = new WatchFleet(spicedb, size, { checkpoints: true });
  if (size === 0) return fleet;
  const deadline = Date.now() + 30_000;
  for (let delivered = 0; delivered < size; ) {
    if (Date.now() > deadline || fleet.failures().length > 0) {
      fleet.close();
      throw new Error(`${label}: only ${delivered} of ${size} streams delivered a barrier write; failures: ${fleet.failures().join('; ') || 'none'}`);
    }
    const barrier = await writeOne(spicedb, `${label}-barrier`);
    if (barrier.error !== undefined) throw new Error(`${label}: barrier write failed: ${barrier.error}`);
    // Past Postgres's default poll interval (1 s), so a live stream has had its chance.
    delivered = await fleet.deliveredBy(barrier.key, 2500);
  }
  await sleep(WINDOWS.settleSeconds * 1000);
  return fleet;
}

// ---------------------------------------------------------------------------------------------
// refusal

interface RefusalResult {
  readonly trackCommitTimestamp: 'off' | 'on';
  /** The Watch call's outcome: `delivered`, or its gRPC status name, code and message. */
  readonly watch: string;
  /** What SpiceDB logged about Watch while starting (its log level is warn). */
  readonly startupLog: readonly string[];
}

async function refusal(): Promise<RefusalResult[]> {
  const results: RefusalResult[] = [];
  for (const setting of ['off', 'on'] as const) {
    log(`refusal: Postgres with track_commit_timestamp=${setting}, SpiceDB on it, one Watch`);
    const cluster = await startPostgres({ name: `postgres-commit-ts-${setting}`, settings: { track_commit_timestamp: setting } });
    try {
      const spicedb = await startSpicedbWith(`spicedb-commit-ts-${setting}`, {}, cluster);
      try {
        const fleet = new WatchFleet(spicedb, 1, { checkpoints: true });
        const write = await writeOne(spicedb, `refusal-${setting}`);
        const delivered = (await fleet.deliveredBy(write.key, 10_000)) === 1;
        const failure = fleet.streams[0]?.failure;
        fleet.close();
        const watch = delivered ? 'delivered' : failure ? `${status[failure.code]} (${failure.code}): ${failure.details}` : 'nothing within 10 s';
        const startupLog = spicedb.process.output().split('\n').filter((line) => /watch/i.test(line));
        log(`refusal: track_commit_timestamp=${setting}: ${watch}`);
        results.push({ trackCommitTimestamp: setting, watch, startupLog });
      } finally {
        await spicedb.stop();
      }
    } finally {
      await cluster.stop();
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// delay

interface DelayConfig {
  readonly id: string;
  readonly datastore: 'memory' | 'postgres';
  readonly flags: SpicedbFlags;
}

/** Default flags on each datastore, then each Postgres flag that could govern delivery, changed alone. */
const DELAY_CONFIGS: readonly DelayConfig[] = [
  { id: 'memory', datastore: 'memory', flags: {} },
  { id: 'postgres', datastore: 'postgres', flags: {} },
  { id: 'postgres --watch-api-heartbeat=100ms', datastore: 'postgres', flags: { '--watch-api-heartbeat': '100ms' } },
  { id: 'postgres --enable-revision-heartbeat=false', datastore: 'postgres', flags: { '--enable-revision-heartbeat': 'false' } },
  { id: 'postgres --datastore-revision-quantization-interval=1s', datastore: 'postgres', flags: { '--datastore-revision-quantization-interval': '1s' } },
];

interface DelayResult {
  readonly round: number;
  readonly config: string;
  /** Checkpoints an idle stream got per second (Postgres: one per new transaction batch, the revision heartbeat's included). */
  readonly idleCheckpointsPerSecond: number;
  readonly delays: DelaySummary;
  readonly idle: WindowCost;
  readonly load: WindowCost;
}

async function delay(cluster: PostgresCluster): Promise<DelayResult[]> {
  const results: DelayResult[] = [];
  for (let round = 1; round <= rounds; round++) {
    const order = rotate(DELAY_CONFIGS, round - 1);
    for (const config of order) {
      log(`delay round ${round}/${rounds}: ${config.id}`);
      const postgres = config.datastore === 'postgres' ? cluster : undefined;
      const spicedb = await startSpicedbWith(`spicedb-delay`, config.flags, postgres);
      try {
        const fleet = await openFleet(spicedb, 1, `delay-${round}`);
        const checkpointsBefore = fleet.checkpoints();
        const idle = await measureWindow(spicedb, postgres, () => sleep(WINDOWS.idleSeconds * 1000));
        const idleCheckpointsPerSecond = (fleet.checkpoints() - checkpointsBefore) / idle.cost.seconds;
        const load = await measureWindow(spicedb, postgres, () => writeSteadily(spicedb, WRITES_PER_SECOND, WINDOWS.loadSeconds, `delay-${round}`));
        const delays = await deliveryDelays(fleet, load.result, DRAIN_MS);
        fleet.close();
        log(`  delay p50 ${fmtMs(delays.p50Ms)}, p99 ${fmtMs(delays.p99Ms)}, max ${fmtMs(delays.maxMs)} ms; idle checkpoints ${idleCheckpointsPerSecond.toFixed(2)}/s`);
        results.push({ round, config: config.id, idleCheckpointsPerSecond, delays, idle: idle.cost, load: load.cost });
      } finally {
        await spicedb.stop();
      }
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// fleet

/** The poll interval a Postgres Watch sleeps between empty polls: SpiceDB's default, and the lowest it allows. */
const FLEET_HEARTBEATS: readonly string[] = ['1s', '100ms'];

interface FleetResult {
  readonly round: number;
  readonly watchApiHeartbeat: string;
  readonly streams: number;
  readonly idle: WindowCost;
  readonly load: WindowCost;
  readonly delays: DelaySummary | undefined;
  readonly failedStreams: readonly string[];
}

async function fleetCosts(cluster: PostgresCluster): Promise<FleetResult[]> {
  const results: FleetResult[] = [];
  const fleetSizes = [0, ...sizes];
  for (let round = 1; round <= rounds; round++) {
    for (const heartbeat of rotate(FLEET_HEARTBEATS, round - 1)) {
      const spicedb = await startSpicedbWith('spicedb-fleet', { '--watch-api-heartbeat': heartbeat }, cluster);
      try {
        // Alternating direction: a size measured first in one round is measured last in the next.
        const order = round % 2 === 1 ? fleetSizes : [...fleetSizes].reverse();
        for (const size of order) {
          log(`fleet round ${round}/${rounds}, --watch-api-heartbeat=${heartbeat}: ${size} streams`);
          const label = `fleet-${round}-${heartbeat}-${size}`;
          const fleet = await openFleet(spicedb, size, label);
          const idle = await measureWindow(spicedb, cluster, () => sleep(WINDOWS.idleSeconds * 1000));
          const load = await measureWindow(spicedb, cluster, () => writeSteadily(spicedb, WRITES_PER_SECOND, WINDOWS.loadSeconds, label));
          const delays = size > 0 ? await deliveryDelays(fleet, load.result, DRAIN_MS) : undefined;
          const failedStreams = fleet.failures();
          fleet.close();
          log(
            `  SpiceDB ${idle.cost.spicedbCores.toFixed(3)} / ${load.cost.spicedbCores.toFixed(3)} cores idle / loaded; Postgres ${fmt(idle.cost.statementsPerSecond)} / ${fmt(load.cost.statementsPerSecond)} statements/s` +
              (delays ? `; delay p50 ${fmtMs(delays.p50Ms)} p99 ${fmtMs(delays.p99Ms)} ms` : '') +
              `; outside ${load.cost.outsideCores.toFixed(2)} cores`,
          );
          results.push({ round, watchApiHeartbeat: heartbeat, streams: size, idle: idle.cost, load: load.cost, delays, failedStreams });
          // Closed streams end their datastore polls at their next wake-up.
          await sleep(1500);
        }
      } finally {
        await spicedb.stop();
      }
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// report

function rotate<T>(items: readonly T[], by: number): T[] {
  const shift = by % items.length;
  return [...items.slice(shift), ...items.slice(0, shift)];
}
const fmt = (value: number | undefined, digits = 0): string => (value === undefined || Number.isNaN(value) ? '–' : value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }));
const fmtMs = (value: number): string => fmt(value, value < 10 ? 1 : 0);

/** "median (min–max)" of the rounds' values. */
function spread(values: ReadonlyArray<number | undefined>, digits: number): string {
  const kept = values.filter((value): value is number => value !== undefined && !Number.isNaN(value));
  if (kept.length === 0) return '–';
  const low = Math.min(...kept);
  const high = Math.max(...kept);
  const mid = fmt(median(kept), digits);
  return kept.length === 1 || low === high ? mid : `${mid} (${fmt(low, digits)}–${fmt(high, digits)})`;
}

interface Machine {
  readonly host: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly ramGb: number;
  readonly node: string;
  readonly spicedb: string;
  readonly postgres: string;
}

function machine(): Machine {
  const firstLine = (command: string, args: string[]): string => (spawnSync(command, args, { encoding: 'utf8' }).stdout ?? '').trim().split('\n')[0] ?? 'unknown';
  return {
    host: hostname(),
    cpuModel: /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    ramGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    spicedb: firstLine(join(TOOLS_BIN, 'spicedb'), ['version']),
    postgres: firstLine(join(TOOLS_BIN, 'postgres'), ['--version']),
  };
}

interface Results {
  readonly date: string;
  readonly machine: Machine;
  readonly settings: { readonly rounds: number; readonly writesPerSecond: number; readonly idleSeconds: number; readonly loadSeconds: number; readonly sizes: readonly number[] };
  readonly loadAverageAtStart: readonly number[];
  readonly loadAverageAtEnd: readonly number[];
  readonly refusal?: readonly RefusalResult[];
  readonly delay?: readonly DelayResult[];
  readonly fleet?: readonly FleetResult[];
}

function renderMarkdown(results: Results): string {
  const m = results.machine;
  const lines = [
    `### Watch delivery and fleet cost, ${results.date.slice(0, 16).replace('T', ' ')} UTC on ${m.host}`,
    '',
    `${m.cpuModel}, ${m.cores} cores, ${m.ramGb} GiB; Node ${m.node}, ${m.spicedb}, ${m.postgres}. Nothing pinned; SpiceDB, Postgres and this load generator share the cores with whatever else ran (the "outside" column). ` +
      `${results.settings.rounds} round(s); windows: ${results.settings.idleSeconds} s idle, ${results.settings.loadSeconds} s at ${results.settings.writesPerSecond} writes/s. ` +
      `Load average (1 min) ${results.loadAverageAtStart[0]?.toFixed(2)} at start, ${results.loadAverageAtEnd[0]?.toFixed(2)} at end. Figures: median of rounds (min–max).`,
    '',
  ];
  if (results.refusal) {
    lines.push('**Watch with track_commit_timestamp off and on** (Postgres datastore):', '', '| track_commit_timestamp | Watch call | SpiceDB log at start |', '|---|---|---|');
    for (const r of results.refusal) lines.push(`| ${r.trackCommitTimestamp} | ${r.watch.replace(/\|/g, '\\|')} | ${r.startupLog.map((line) => `\`${line.replace(/\|/g, '\\|')}\``).join('<br>') || '–'} |`);
    lines.push('');
  }
  if (results.delay) {
    lines.push(
      '**Delivery delay, one stream** (WriteRelationships returned → the stream delivered it; ms):',
      '',
      '| SpiceDB | p50 | p90 | p99 | max | samples | undelivered | idle checkpoints/s | SpiceDB cores idle / loaded | write p50 |',
      '|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
    );
    for (const config of DELAY_CONFIGS) {
      const runs = results.delay.filter((r) => r.config === config.id);
      if (runs.length === 0) continue;
      lines.push(
        `| ${config.id} | ${spread(runs.map((r) => r.delays.p50Ms), 1)} | ${spread(runs.map((r) => r.delays.p90Ms), 1)} | ${spread(runs.map((r) => r.delays.p99Ms), 1)} | ${spread(runs.map((r) => r.delays.maxMs), 1)} | ` +
          `${runs.reduce((sum, r) => sum + r.delays.samples, 0)} | ${runs.reduce((sum, r) => sum + r.delays.undelivered, 0)} | ${spread(runs.map((r) => r.idleCheckpointsPerSecond), 2)} | ` +
          `${spread(runs.map((r) => r.idle.spicedbCores), 3)} / ${spread(runs.map((r) => r.load.spicedbCores), 3)} | ${spread(runs.map((r) => r.delays.writeP50Ms), 1)} |`,
      );
    }
    lines.push('');
  }
  if (results.fleet) {
    for (const heartbeat of FLEET_HEARTBEATS) {
      const rows = results.fleet.filter((r) => r.watchApiHeartbeat === heartbeat);
      if (rows.length === 0) continue;
      lines.push(
        `**N concurrent streams on Postgres, --watch-api-heartbeat=${heartbeat}** (each stream: own connection, object types ${WATCHED_TYPES.join(' + ')}, relationships + checkpoints):`,
        '',
        '| streams | SpiceDB cores idle | SpiceDB cores at 10 writes/s | Postgres cores idle | Postgres cores loaded | statements/s idle | statements/s loaded | Watch polls/s loaded | Postgres exec ms/s loaded | delay p50 ms | p99 ms | max ms | undelivered | outside cores |',
        '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
      );
      for (const size of [0, ...results.settings.sizes]) {
        const runs = rows.filter((r) => r.streams === size);
        if (runs.length === 0) continue;
        lines.push(
          `| ${size} | ${spread(runs.map((r) => r.idle.spicedbCores), 3)} | ${spread(runs.map((r) => r.load.spicedbCores), 3)} | ${spread(runs.map((r) => r.idle.postgresCores), 3)} | ${spread(runs.map((r) => r.load.postgresCores), 3)} | ` +
            `${spread(runs.map((r) => r.idle.statementsPerSecond), 0)} | ${spread(runs.map((r) => r.load.statementsPerSecond), 0)} | ${spread(runs.map((r) => r.load.watchPollsPerSecond), 0)} | ${spread(runs.map((r) => r.load.postgresExecMsPerSecond), 1)} | ` +
            `${spread(runs.map((r) => r.delays?.p50Ms), 0)} | ${spread(runs.map((r) => r.delays?.p99Ms), 0)} | ${spread(runs.map((r) => r.delays?.maxMs), 0)} | ${runs.reduce((sum, r) => sum + (r.delays?.undelivered ?? 0), 0)} | ` +
            `${spread(runs.map((r) => Math.max(r.idle.outsideCores, r.load.outsideCores)), 2)} |`,
        );
      }
      const failed = rows.flatMap((r) => r.failedStreams);
      if (failed.length > 0) lines.push('', `Streams that failed: ${failed.join('; ')}`);
      lines.push('');
    }
    lines.push('"outside cores": the larger of the idle and loaded windows\' CPU used by processes other than SpiceDB, the Postgres cluster and this bench.', '');
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const loadAverageAtStart = loadAverage();
  const date = new Date().toISOString();
  let refusalResults: RefusalResult[] | undefined;
  let delayResults: DelayResult[] | undefined;
  let fleetResults: FleetResult[] | undefined;
  if (parts.has('refusal')) refusalResults = await refusal();
  if (parts.has('delay') || parts.has('fleet')) {
    // One cluster for every SpiceDB that follows, one SpiceDB at a time.
    const cluster = await startPostgres({ name: 'watch-postgres', settings: STATEMENT_TRACKING });
    try {
      await cluster.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      if (parts.has('delay')) delayResults = await delay(cluster);
      if (parts.has('fleet')) fleetResults = await fleetCosts(cluster);
    } finally {
      await cluster.stop();
    }
  }
  const results: Results = {
    date,
    machine: machine(),
    settings: { rounds, writesPerSecond: WRITES_PER_SECOND, idleSeconds: WINDOWS.idleSeconds, loadSeconds: WINDOWS.loadSeconds, sizes },
    loadAverageAtStart,
    loadAverageAtEnd: loadAverage(),
    ...(refusalResults ? { refusal: refusalResults } : {}),
    ...(delayResults ? { delay: delayResults } : {}),
    ...(fleetResults ? { fleet: fleetResults } : {}),
  };
  const outDir = flags.out ?? (flags.quick ? mkdtempSync(join(tmpdir(), 'jwtauth-watch-bench-')) : join(PACKAGE_ROOT, 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const base = join(outDir, `${date.slice(0, 10)}-${hostname()}-${flags.label}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${base}.md`, renderMarkdown(results));
  log(`results: ${base}.{json,md}`);
  process.stdout.write(`\n${renderMarkdown(results)}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
