/**
 * `npm run bench`: the sidecar against its peers and against the floor, all behind the same Envoy.
 * See docs/benchmarks.md for the method. `--quick` is the CI smoke mode: every scenario for a few
 * seconds, results in a temp dir, non-zero exit if any scenario produced no numbers.
 *
 * Flags: see USAGE below (`--help`).
 *
 * What runs is the list in scenarios.ts; this file runs it and writes the results.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:http2';
import { freePort } from '../dev/ports.js';
import { TOOLS_BIN, waitFor } from '../dev/processes.js';
import type { Exposition } from '../dev/prometheus.js';
import type { SidecarProcess } from '../dev/sidecar.js';
import { startPostgres } from '../dev/postgres.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbDatastore, SpicedbServer } from '../dev/spicedb.js';
import { PACKAGE_ROOT } from '../src/package-root.js';
import { startAuthorizer } from './authorizers.js';
import type { RunningAuthorizer, Workspace } from './authorizers.js';
import { benchEnvoyConfig, startBenchEnvoy } from './envoy-config.js';
import type { BenchEnvoy, BenchListener } from './envoy-config.js';
import { AUDIENCE, ISSUER, makeKeys, SCHEMA, signToken, UPSTREAM } from './fixtures.js';
import type { BenchKeys } from './fixtures.js';
import { checkRequestJson, runGhz } from './ghz.js';
import type { CheckedRequest } from './ghz.js';
import { frameMessage } from '../src/body/grpc-frame.js';
import { createNamespaceMessage, GRPC_HEADERS, methodPath, unaryCall, writeRequestBody } from './grpc-call.js';
import type { GrpcOutcome } from './grpc-call.js';
import { combineMeasurements, fmt, FULL, measureScenario, median, QUICK } from './measure.js';
import type { Budget, ScenarioMeasurement, Watched } from './measure.js';
import { FRONT_CPUS, PIN, pin } from './pinning.js';
import { loadAverage, sampleProcess, TICKS_PER_SECOND } from '../dev/proc.js';
import { summarizeProfile } from './profile.js';
import { renderMarkdown, renderSvg } from './report.js';
import type { BenchResults, DirectResult, ScalingResults, ScenarioResult } from './report.js';
import { SATURATION, SCENARIO_GROUPS, UNCACHED_SATURATION, WORKER_ROWS_NOTE } from './scenarios.js';
import type { DirectChecks, Expectation, GrpcCall, Listener, Port, RowReport, Scenario, ScenarioGroup, ThroughEnvoy, TokenScaling } from './scenarios.js';

const USAGE = `npm run bench [-- FLAGS]   (or node dist/bench/run.js FLAGS after npm run build)

  --quick            CI smoke: every scenario for a few seconds, results in a temp dir,
                     exit 1 if any scenario produced no numbers
  --only=ID,ID       only scenarios whose id starts with one of these (ids: bench/scenarios.ts);
                     a Node flag variant (*_v8gc) or floor_http2 runs only when named here or in --compare exactly
  --compare=A,B[,C,D…]
                     pairs of scenario ids through Envoy, baseline first: only these run, every
                     authorizer and Envoy started once, their rounds interleaved (A B, B A, …, one
                     round each); each pair is reported as the median of its per-round differences
                     (p99 at the offered rate among them) with their min–max. Not with --only.
  --rounds=N         measured rounds per scenario (default 3, quick 1)
  --label=NAME       results file suffix: bench/results/<date>-<host>-NAME.{json,md,svg}
  --out=DIR          write the results there instead
  --noisy=CORES      rerun a round (once) when processes outside the bench used more than this
  --profile          run the sidecar under node --cpu-prof (profiles in the work dir printed at
                     start; the main sidecar's hottest functions go into the results JSON)
  --help             this text

Environment: BENCH_SIDECAR_CLI (another build of the sidecar), BENCH_BASELINE_SIDECAR_CLI (the
build the *_baseline scenarios run, e.g. a worktree at an older commit), BENCH_SIDECAR_NODE_ARGS,
BENCH_SIDECAR_OUTPUT (keep what the sidecar printed). Method and results: docs/benchmarks.md.
`;

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const hit = args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (hit === undefined) return undefined;
  return hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : '';
};
const FLAGS = ['quick', 'only', 'compare', 'rounds', 'label', 'out', 'noisy', 'profile', 'help'];
// A mistyped flag would otherwise be ignored and start the full run (~12 minutes).
const unknown = args.filter((arg) => !FLAGS.some((name) => arg === `--${name}` || arg.startsWith(`--${name}=`)));
if (unknown.length > 0) {
  process.stderr.write(`unknown argument(s): ${unknown.join(' ')}\n\n${USAGE}`);
  process.exit(2);
}
if (flag('help') !== undefined) {
  const ids = SCENARIO_GROUPS.flatMap((group) => group.scenarios.map((scenario) => `${scenario.id}${group.onlyWhenNamed ? '   (only when named)' : ''}`));
  process.stdout.write(`${USAGE}\nScenarios, in the order they run:\n  ${ids.join('\n  ')}\n`);
  process.exit(0);
}
const quick = flag('quick') !== undefined;
const noisy = flag('noisy');
const roundsFlag = flag('rounds');
if (roundsFlag !== undefined && !(Number.isInteger(Number(roundsFlag)) && Number(roundsFlag) >= 1)) {
  process.stderr.write(`--rounds takes a whole number of at least 1, not ${JSON.stringify(roundsFlag)}\n`);
  process.exit(2);
}
/**
 * The quick or full budget; --noisy=CORES sets the outside CPU above which a round is rerun (once),
 * --rounds=N the number of measured rounds.
 */
const budget: Budget = {
  ...(quick ? QUICK : FULL),
  ...(noisy ? { noisyCores: Number(noisy), maxReruns: 1 } : {}),
  ...(roundsFlag ? { rounds: Number(roundsFlag) } : {}),
};
const only = flag('only')?.split(',').filter(Boolean);
const wants = (id: string): boolean => !only || only.some((prefix) => id.startsWith(prefix));
/** --compare: [baseline, variant] pairs of through-Envoy scenario ids. */
const comparePairs = ((): Array<readonly [string, string]> | undefined => {
  const ids = flag('compare')?.split(',').filter(Boolean);
  if (ids === undefined) return undefined;
  const throughEnvoy = new Set(SCENARIO_GROUPS.flatMap((group) => group.scenarios.filter((scenario) => isThroughEnvoy(scenario)).map((scenario) => scenario.id)));
  const bad = ids.filter((id) => !throughEnvoy.has(id));
  const problem =
    only !== undefined ? '--compare takes no --only'
    : ids.length < 2 || ids.length % 2 !== 0 ? '--compare takes pairs of scenario ids: BASELINE,VARIANT[,BASELINE,VARIANT…]'
    : bad.length > 0 ? `--compare takes ids of scenarios through Envoy (see --help); not ${bad.join(', ')}`
    : undefined;
  if (problem !== undefined) {
    process.stderr.write(`${problem}\n`);
    process.exit(2);
  }
  return Array.from({ length: ids.length / 2 }, (_, i) => [ids[2 * i] as string, ids[2 * i + 1] as string] as const);
})();
const compared = comparePairs && new Set(comparePairs.flat());
/** Whether the run includes this scenario of `group`. */
const runs = (group: ScenarioGroup, id: string): boolean =>
  compared ? compared.has(id) : wants(id) && (!group.onlyWhenNamed || (only?.includes(id) ?? false));
const profile = flag('profile') !== undefined;
const started = Date.now();
const log = (line: string): void => {
  process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
};

function versionOf(command: string, versionArgs: string[], pattern: RegExp): string {
  const out = spawnSync(command, versionArgs, { encoding: 'utf8' });
  const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
  return pattern.exec(text)?.[1] ?? text.trim().split('\n')[0] ?? 'unknown';
}

function machineDescription(): BenchResults['machine'] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    host: hostname(),
    cpuModel: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    ramMb: Math.round(totalmem() / 2 ** 20),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.version,
    envoy: versionOf(join(TOOLS_BIN, 'envoy'), ['--version'], /version: \S+?\/([\d.]+)\//),
    opaEnvoy: versionOf(join(TOOLS_BIN, 'opa-envoy-plugin'), ['version'], /Version: (\S+)/),
    spicedb: versionOf(join(TOOLS_BIN, 'spicedb'), ['version'], /(v[\d.]+)/),
    h2load: versionOf('h2load', ['--version'], /nghttp2\/([\d.]+)/),
    vegeta: versionOf('go', ['version', '-m', join(TOOLS_BIN, 'vegeta')], /tsenart\/vegeta\/v12\s+(v\S+)/),
    ghz: versionOf(join(TOOLS_BIN, 'ghz'), ['--version'], /(\S+)/),
  };
}

function installTools(): void {
  log('installing peers: bash scripts/install-tools.sh bench (cached after the first run)');
  const result = spawnSync('bash', [join(PACKAGE_ROOT, 'scripts/install-tools.sh'), 'bench'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error('scripts/install-tools.sh bench failed');
}

/** What every scenario of a run shares. */
interface Run extends Workspace {
  readonly token: string;
  readonly spicedbPid: number | undefined;
  readonly ports: Readonly<Record<Port, number>>;
}

/** What the run reports, filled in scenario by scenario. */
interface Findings {
  readonly scenarios: ScenarioResult[];
  readonly direct: DirectResult[];
  readonly scaling: ScalingResults;
  readonly profiles: Record<string, unknown>;
  readonly failures: string[];
}

/** What a group has started so far: each is started when a scenario first needs it. */
interface GroupProcesses {
  authorizer(): Promise<RunningAuthorizer>;
  envoy(): Promise<BenchEnvoy>;
}

const PATHS: Readonly<Record<Port, string>> = { ingress: '/v1/clouds/cl0/items', egress: '/v1/items' };
const urlOf = (run: Run, port: Port, path = PATHS[port]): string => `http://127.0.0.1:${run.ports[port]}${path}`;
const authorization = (run: Run): Record<string, string> => ({ authorization: `Bearer ${run.token}` });
/** The same header as h2load and vegeta take it. */
const headerLines = (run: Run): string[] => [`authorization: Bearer ${run.token}`];
const grpcHeaderLines = (): string[] => Object.entries(GRPC_HEADERS).map(([name, value]) => `${name}: ${value}`);

/** The framed request file for each cloud a load names, written once per run. */
const requestBodies = new Map<string, string>();
function requestBodyFile(run: Run, cloud: string): string {
  let file = requestBodies.get(cloud);
  if (file === undefined) requestBodies.set(cloud, (file = writeRequestBody(run.dir, cloud)));
  return file;
}

async function expectGrpcAnswer(run: Run, expectation: Expectation, call: GrpcCall, grpcStatus: number): Promise<void> {
  const origin = `http://127.0.0.1:${run.ports[expectation.port]}`;
  const path = methodPath(call.method);
  const headers = { ...GRPC_HEADERS, ...(expectation.withToken ? authorization(run) : {}) };
  const body = frameMessage(createNamespaceMessage(call.messageCloud));
  const matches = (got: GrpcOutcome): boolean => got.httpStatus === expectation.status && got.grpcStatus === grpcStatus;
  const describe = (got: GrpcOutcome | undefined): string =>
    `${expectation.what}: expected HTTP ${expectation.status} grpc-status ${grpcStatus} from ${path} (message cloud ${call.messageCloud}), got ` +
    (got ? `HTTP ${got.httpStatus} grpc-status ${got.grpcStatus ?? 'none'}${got.reason ? ` (${got.reason})` : ''}` : 'nothing');
  let last: GrpcOutcome | undefined;
  if (expectation.eventually) {
    await waitFor(async () => matches((last = await unaryCall(origin, path, headers, body))), 15_000, () => describe(last));
    return;
  }
  last = await unaryCall(origin, path, headers, body);
  if (!matches(last)) throw new Error(describe(last));
}

async function expectAnswer(run: Run, expectation: Expectation): Promise<void> {
  if (expectation.grpc !== undefined) return expectGrpcAnswer(run, expectation, expectation.grpc.call, expectation.grpc.grpcStatus);
  const url = urlOf(run, expectation.port, expectation.path);
  const headers = expectation.withToken ? authorization(run) : {};
  const { status, what } = expectation;
  if (expectation.eventually) {
    let last = 0;
    await waitFor(async () => (last = (await fetch(url, { headers })).status) === status, 15_000, () => `${what}: expected ${status} from ${url}, last answer ${last}`);
    return;
  }
  const response = await fetch(url, { headers });
  const body = await response.text();
  if (response.status !== status) throw new Error(`${what}: expected ${status} from ${url}, got ${response.status} ${body.slice(0, 200)}`);
}

function benchListener(listener: Listener, run: Run): BenchListener {
  const { name, filter } = listener;
  const port = run.ports[listener.port];
  switch (filter.kind) {
    case 'bare':
      return { name, port, filter };
    case 'jwt_authn':
      return { name, port, filter: { kind: 'jwt_authn', issuer: ISSUER, audience: AUDIENCE, jwks: run.keys.jwks } };
    case 'ext_authz': {
      const contextExtensions: Record<string, string> = filter.direction === 'inbound' ? { direction: 'inbound' } : { direction: 'outbound', audience: UPSTREAM };
      const grpcRoutes = (filter.grpcRoutes ?? []).map((route) => ({ path: methodPath(route.method), buffersBody: route.buffersBody }));
      return { name, port, filter: { kind: 'ext_authz', contextExtensions, grpcRoutes, ...(filter.encodeRawHeaders === undefined ? {} : { encodeRawHeaders: filter.encodeRawHeaders }) } };
    }
  }
}

async function startEnvoy(listeners: readonly Listener[], authzPort: number | undefined, run: Run, concurrency?: number): Promise<BenchEnvoy> {
  const adminPort = await freePort();
  return startBenchEnvoy(benchEnvoyConfig(listeners.map((l) => benchListener(l, run)), adminPort, authzPort), adminPort, FRONT_CPUS, concurrency);
}

function failed(id: string, error: unknown, findings: Findings, summary: (message: string) => string): void {
  const message = (error as Error).message;
  findings.failures.push(`${id}: ${summary(message)}`);
  log(`scenario ${id} FAILED: ${message.slice(0, 1500)}`);
}
const firstLines = (message: string): string => message.split('\n').slice(0, 6).join('\n');
const first500 = (message: string): string => message.slice(0, 500);

function sidecarOf(authorizer: RunningAuthorizer): SidecarProcess {
  if (authorizer.sidecar === undefined) throw new Error('only the sidecar has the metrics this scenario reports');
  return authorizer.sidecar;
}

/** How much each series of the sidecar's metrics grew between two scrapes. */
function growth(before: Exposition, after: Exposition): Map<string, number> {
  return new Map(after.samples.map((sample) => [sample.series, sample.value - (before.series.get(sample.series) ?? 0)]));
}

/** The row's figures beside the measurement; logs the growth the scenario wants to see. */
function extraFigures(reports: RowReport, grew: ReadonlyMap<string, number>): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const [name, series] of Object.entries(reports.counts ?? {})) extra[name] = grew.get(series) ?? 0;
  Object.assign(extra, reports.constants);
  const logged = reports.logsGrowth;
  if (logged !== undefined) {
    for (const [series, delta] of grew) {
      const ofMetric = logged.of.some((metric) => series === metric || series.startsWith(`${metric}{`));
      if (ofMetric && delta > 0 && !logged.except.some((part) => series.includes(part))) log(`    ${series} +${delta}`);
    }
  }
  if (reports.summary) log(`    ${reports.summary(extra)}`);
  return extra;
}

/**
 * A scenario whose expectations held, ready to measure. Its rounds are taken all at once, or in
 * turns with other scenarios' (scenarios.ts, `alternatesRounds`); `finish` adds its result.
 */
interface Measurable {
  readonly id: string;
  measureRounds(rounds: number): Promise<void>;
  finish(): void;
}

/** One measurement of a scenario, and how much each sidecar series grew during it (and only it). */
interface Pass {
  readonly measurement: ScenarioMeasurement;
  readonly grew: ReadonlyMap<string, number>;
}

/** Every sidecar series' growth over several passes. */
function summedGrowth(passes: ReadonlyArray<{ readonly grew: ReadonlyMap<string, number> }>): Map<string, number> {
  const sum = new Map<string, number>();
  for (const pass of passes) for (const [series, delta] of pass.grew) sum.set(series, (sum.get(series) ?? 0) + delta);
  return sum;
}

/**
 * The load tools cannot see a denial the scenario did not expect: h2load and vegeta count a gRPC
 * one (HTTP 200, grpc-status 7) as a success, ghz a denying CheckResponse as an OK call. The
 * sidecar's own count decides.
 */
function requireNoDenials(grew: ReadonlyMap<string, number>): void {
  const denials = [...grew].filter(([series, delta]) => series.startsWith('jwtauth_checks_total{') && series.includes('decision="deny"') && delta > 0);
  if (denials.length > 0) throw new Error(`the sidecar denied requests the load sent: ${denials.map(([series, delta]) => `${series} +${delta}`).join(', ')}`);
}

async function prepareThroughEnvoy(scenario: ThroughEnvoy, processes: GroupProcesses, run: Run, findings: Findings): Promise<Measurable> {
  const { id, load, reports } = scenario;
  const loadAverageAtStart = loadAverage();
  log(`scenario ${id} (load average ${loadAverageAtStart.join(' ')})`);
  const authorizer = await processes.authorizer();
  const envoy = await processes.envoy();
  for (const expectation of scenario.expects) await expectAnswer(run, expectation);
  const sendsCalls = load.kind === 'one-url' && load.call !== undefined;
  const sidecar = reports.counts !== undefined || reports.logsGrowth !== undefined || sendsCalls ? sidecarOf(authorizer) : undefined;
  const backends: Record<string, number> = run.spicedbPid === undefined ? {} : { spicedb: run.spicedbPid };
  const watched: Watched = { envoy: envoy.process.child.pid as number, authorizer: authorizer.pid, ...(load.kind === 'distinct-resources' || load.watchesSpicedb ? { backends } : {}) };
  const passes: Pass[] = [];
  return {
    id,
    async measureRounds(rounds) {
      const before = await sidecar?.metrics();
      const measurement = load.kind === 'one-url' ? await measureOneUrl(load, watched, run, { ...budget, rounds }) : await measureDistinctResources(load, watched, run, { ...budget, rounds });
      passes.push({ measurement, grew: sidecar && before ? growth(before, await sidecar.metrics()) : new Map() });
    },
    finish() {
      const measurement = combineMeasurements(passes.map((pass) => pass.measurement));
      const grew = summedGrowth(passes);
      if (sendsCalls) requireNoDenials(grew);
      if (reports.scalingRules !== undefined) {
        const { p50, p90, p99 } = measurement;
        findings.scaling.rules.push({ rules: reports.scalingRules, p50, p90, p99, rssKb: measurement.rssKb.authorizer });
      }
      const extra = extraFigures(reports, grew);
      if (!Number.isFinite(measurement.p99) || (!Number.isFinite(measurement.rps) && measurement.saturation.length > 0)) throw new Error('no numbers');
      const row = { label: reports.label, authorizer: reports.authorizer, measurement, ...(Object.keys(extra).length > 0 ? { extra } : {}), ...(reports.comparedWith ? { comparedWith: reports.comparedWith } : {}) };
      findings.scenarios.push({ id, load: loadAverageAtStart, ...row });
    },
  };
}

/** Prepares, measures every round, finishes; a failure is reported and the run goes on. */
async function measureAlone(id: string, prepare: () => Promise<Measurable>, findings: Findings, summary: (message: string) => string): Promise<void> {
  try {
    const scenario = await prepare();
    await scenario.measureRounds(budget.rounds);
    scenario.finish();
  } catch (error) {
    failed(id, error, findings, summary);
  }
}

/**
 * Scenarios in turns, one round each, every one prepared first. The order flips every round
 * (A B, B A, A B …), so neither always goes first after the other has warmed or cooled the
 * machine, and a steady drift in outside load cancels over each pair of rounds. One that fails
 * drops out; the others go on.
 */
async function measureTakingTurns(
  preparers: ReadonlyArray<{ readonly id: string; readonly prepare: () => Promise<Measurable> }>,
  findings: Findings,
  summary: (message: string) => string,
): Promise<void> {
  const taking: Measurable[] = [];
  for (const { id, prepare } of preparers) {
    try {
      taking.push(await prepare());
    } catch (error) {
      failed(id, error, findings, summary);
    }
  }
  const dropped = new Set<Measurable>();
  for (let round = 0; round < budget.rounds; round++) {
    const order = round % 2 === 0 ? taking : [...taking].reverse();
    for (const scenario of order.filter((entry) => !dropped.has(entry))) {
      log(`  ${scenario.id}: round ${round + 1} of ${budget.rounds}, taking turns (load average ${loadAverage().join(' ')})`);
      try {
        await scenario.measureRounds(1);
      } catch (error) {
        dropped.add(scenario);
        failed(scenario.id, error, findings, summary);
      }
    }
  }
  for (const scenario of taking.filter((entry) => !dropped.has(entry))) {
    try {
      scenario.finish();
    } catch (error) {
      failed(scenario.id, error, findings, summary);
    }
  }
}

function measureOneUrl(load: Extract<Scenario['load'], { kind: 'one-url' }>, watched: Watched, run: Run, passBudget: Budget): Promise<ScenarioMeasurement> {
  const tokenLines = load.withToken ? headerLines(run) : [];
  const target =
    load.call === undefined
      ? { url: urlOf(run, load.port), headers: tokenLines }
      : { url: urlOf(run, load.port, methodPath(load.call.method)), headers: [...grpcHeaderLines(), ...tokenLines], body: requestBodyFile(run, load.call.messageCloud) };
  return measureScenario({ target, watched, budget: passBudget, saturation: SATURATION, loadCpus: FRONT_CPUS, latencyOnly: load.latencyOnly ?? false, log });
}

function measureDistinctResources(load: Extract<Scenario['load'], { kind: 'distinct-resources' }>, watched: Watched, run: Run, passBudget: Budget): Promise<ScenarioMeasurement> {
  // Each load run (warm-up, saturation and rate rounds) gets its own slice of the resources.
  const runsPerScenario = 1 + 2 * passBudget.rounds;
  const slice = Math.floor((load.resources - 1) / runsPerScenario);
  const uriFiles = Array.from({ length: runsPerScenario }, (_, runIndex) => {
    const file = join(run.dir, `uncached-uris-${runIndex}.txt`);
    writeFileSync(file, Array.from({ length: slice }, (_, i) => urlOf(run, 'ingress', `/v1/clouds/c${runIndex * slice + i}/items`)).join('\n') + '\n');
    return file;
  });
  const target = { url: urlOf(run, 'ingress', '/'), headers: headerLines(run) };
  return measureScenario({
    target,
    targetForRun: (runIndex) => ({ ...target, uriFile: uriFiles[runIndex % uriFiles.length] as string }),
    rateCapFraction: load.rateCapFraction,
    watched,
    budget: passBudget,
    saturation: UNCACHED_SATURATION,
    loadCpus: FRONT_CPUS,
    log,
  });
}

/** What Envoy puts in the Check for the scenario's request: the ingress GET, or a gRPC call. */
function directRequest(run: Run, request: DirectChecks['load']['request']): CheckedRequest {
  if (request === undefined) return { method: 'GET', path: PATHS.ingress, headers: authorization(run) };
  const { call, bodyInCheck } = request;
  const frame = frameMessage(createNamespaceMessage(call.messageCloud));
  const headers = { ...GRPC_HEADERS, ...authorization(run), 'content-length': String(frame.length) };
  return { method: 'POST', path: methodPath(call.method), headers, ...(bodyInCheck ? { rawBody: frame } : {}) };
}

/**
 * Rounds of a fixed number of Checks, each reporting throughput, latency and the authorizer's CPU
 * time per Check (the least noise-sensitive figure on a shared machine, and the one the hot-path
 * before/after compares).
 */
async function prepareDirectChecks(scenario: DirectChecks, processes: GroupProcesses, run: Run, findings: Findings): Promise<Measurable> {
  const { id, load } = scenario;
  const authorizerName = scenario.reports.direct;
  log(`scenario ${id} (ghz → ${authorizerName} directly, load average ${loadAverage().join(' ')})`);
  const { pid, grpcPort, sidecar } = await processes.authorizer();
  if (pid === undefined || grpcPort === undefined) throw new Error('no authorizer process to call');
  const data = checkRequestJson(directRequest(run, load.request), { direction: 'inbound' });
  const total = quick ? load.checks.quick : load.checks.full;
  const warmUpBefore = await sidecar?.metrics();
  const connections = load.connections ?? 1;
  await runGhz(grpcPort, data, { total: Math.min(total, 5_000), concurrency: load.concurrency, connections, cpus: FRONT_CPUS });
  // ghz sees an OK call whether the CheckResponse allows or denies: the sidecar's count tells.
  if (sidecar && warmUpBefore) requireNoDenials(growth(warmUpBefore, await sidecar.metrics()));
  const rounds: Array<DirectResult['rounds'][number]> = [];
  return {
    id,
    async measureRounds(count) {
      for (let round = 0; round < count; round++) {
        const before = sampleProcess(pid);
        const result = await runGhz(grpcPort, data, { total, concurrency: load.concurrency, connections, cpus: FRONT_CPUS });
        const after = sampleProcess(pid);
        const cpuUsPerCheck = before && after ? (((after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND) * 1e6) / total : Number.NaN;
        if (result.okCount < result.count * 0.99) throw new Error(`only ${result.okCount} of ${result.count} Checks answered OK`);
        log(`    round ${rounds.length + 1}: ${result.rps.toFixed(0)} Checks/s, p50 ${result.p50.toFixed(3)} p99 ${result.p99.toFixed(3)} ms, ${cpuUsPerCheck.toFixed(0)} µs CPU per Check`);
        rounds.push({ rps: result.rps, p50: result.p50, p99: result.p99, cpuUsPerCheck });
      }
    },
    finish() {
      const medianOf = (key: keyof DirectResult['rounds'][number]): number => median(rounds.map((r) => r[key]));
      const { comparedWith } = scenario.reports;
      findings.direct.push({
        id,
        authorizer: authorizerName,
        rounds,
        rps: medianOf('rps'),
        p50: medianOf('p50'),
        p99: medianOf('p99'),
        cpuUsPerCheck: medianOf('cpuUsPerCheck'),
        ...(comparedWith ? { comparedWith } : {}),
      });
    },
  };
}

/** Sends `count` requests with distinct tokens through Envoy (HTTP/2, 64 in flight); returns the non-200 count. */
async function sendDistinctTokens(port: number, keys: BenchKeys, count: number): Promise<number> {
  const session = connect(`http://127.0.0.1:${port}`);
  let next = 0;
  let bad = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const stream = session.request({ ':path': PATHS.ingress, ':method': 'GET', authorization: `Bearer ${signToken(keys)}` });
      stream.on('response', (headers) => {
        if (headers[':status'] !== 200) bad++;
      });
      stream.on('error', () => {
        bad++;
        resolve();
      });
      stream.resume();
      stream.on('close', () => resolve());
    });
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
  session.close();
  return bad;
}

async function tokenScaling(scenario: TokenScaling, processes: GroupProcesses, run: Run, findings: Findings): Promise<void> {
  const steps = quick ? scenario.load.steps.quick : scenario.load.steps.full;
  const rows = findings.scaling.tokens;
  log(`scenario ${scenario.id}: RSS after ${steps.join(' and ')} distinct tokens`);
  try {
    const { pid } = await processes.authorizer();
    await processes.envoy();
    if (pid === undefined) throw new Error('no authorizer process to measure');
    for (const expectation of scenario.expects) await expectAnswer(run, expectation);
    rows.push({ tokens: 1, rssKb: sampleProcess(pid)?.rssKb, hwmKb: sampleProcess(pid)?.hwmKb, seconds: 0 });
    let sent = 1;
    for (const step of steps) {
      const t0 = performance.now();
      const bad = await sendDistinctTokens(run.ports.ingress, run.keys, step - sent);
      if (bad > 0) throw new Error(`${bad} of ${step - sent} distinct-token requests were not 200`);
      const seconds = (performance.now() - t0) / 1000;
      sent = step;
      const sample = sampleProcess(pid);
      rows.push({ tokens: step, rssKb: sample?.rssKb, hwmKb: sample?.hwmKb, seconds });
      log(`    after ${step} distinct tokens: RSS ${fmt((sample?.rssKb ?? NaN) / 1024, 1)} MB (peak ${fmt((sample?.hwmKb ?? NaN) / 1024, 1)} MB), ${((step - (rows.at(-2)?.tokens ?? 0)) / seconds).toFixed(0)} new tokens/s`);
    }
  } catch (error) {
    failed(scenario.id, error, findings, first500);
  }
}

function isDirect(scenario: Scenario): scenario is DirectChecks {
  return scenario.load.kind === 'direct-checks';
}
function isTokenScaling(scenario: Scenario): scenario is TokenScaling {
  return scenario.load.kind === 'distinct-tokens';
}
function isThroughEnvoy(scenario: Scenario): scenario is ThroughEnvoy {
  return !isDirect(scenario) && !isTokenScaling(scenario);
}

/** What the cached scenarios' checks need; every SpiceDB of the run starts with it. */
const SEED_RELATIONSHIPS = 'cloud:cl0#admin@user:alice';

/** The run as a group sees it, with the SpiceDB its authorizer asks; stop() stops what the group started. */
interface GroupSpicedb {
  readonly run: Run;
  stop(): Promise<void>;
}

/**
 * The shared SpiceDB, or (scenarios.ts, `spicedbDatastore`) one of the group's own: on the memory
 * datastore, or on a throwaway PostgreSQL cluster. Each runs on the front core, as the shared one
 * does, every Postgres process included (they inherit the cluster's CPU list).
 */
async function startGroupSpicedb(group: ScenarioGroup, run: Run): Promise<GroupSpicedb> {
  const own = async (datastore: SpicedbDatastore, name: string): Promise<SpicedbServer> => {
    const spicedb = await startSpicedb({ schema: SCHEMA, relationships: SEED_RELATIONSHIPS, datastore, name });
    pin(spicedb.process.child.pid, FRONT_CPUS);
    return spicedb;
  };
  switch (group.spicedbDatastore) {
    case undefined:
      return { run, stop: () => Promise.resolve() };
    case 'memory': {
      log('starting a SpiceDB of its own on the memory datastore for this group');
      const spicedb = await own({ engine: 'memory' }, 'spicedb-memory');
      return { run: { ...run, spicedb, spicedbPid: spicedb.process.child.pid }, stop: () => spicedb.stop() };
    }
    case 'postgres': {
      log('starting PostgreSQL (a throwaway cluster) and a SpiceDB of its own on it for this group');
      const postgres = await startPostgres({ name: 'bench-postgres', cpus: FRONT_CPUS });
      try {
        const spicedb = await own({ engine: 'postgres', uri: postgres.uri }, 'spicedb-postgres');
        const stop = async (): Promise<void> => {
          await spicedb.stop();
          await postgres.stop();
        };
        return { run: { ...run, spicedb, spicedbPid: spicedb.process.child.pid }, stop };
      } catch (error) {
        await postgres.stop();
        throw error;
      }
    }
  }
}

/** A group's processes, started when its scenarios first need them; close() stops them all. */
interface OpenGroup {
  readonly processes: GroupProcesses;
  readonly run: Run;
  preparer(scenario: ThroughEnvoy | DirectChecks): { readonly id: string; readonly prepare: () => Promise<Measurable> };
  close(): Promise<void>;
}

/**
 * The group's SpiceDB (and relationships) for `scenarios`, and its authorizer and Envoy on first
 * use. Each group gets listener ports of its own, so groups compared with --compare run side by side.
 */
async function openGroup(group: ScenarioGroup, sharedRun: Run, scenarios: readonly Scenario[], findings: Findings): Promise<OpenGroup> {
  const groupSpicedb = await startGroupSpicedb(group, { ...sharedRun, ports: { ingress: await freePort(), egress: await freePort() } });
  try {
    await writeDistinctResources(groupSpicedb.run.spicedb, scenarios);
  } catch (error) {
    await groupSpicedb.stop();
    throw error;
  }
  const run = groupSpicedb.run;
  let authorizer: Promise<RunningAuthorizer> | undefined;
  let envoy: Promise<BenchEnvoy> | undefined;
  const processes: GroupProcesses = {
    authorizer: () => (authorizer ??= startAuthorizer(group.starts, run)),
    envoy: () => (envoy ??= processes.authorizer().then((started) => startEnvoy(group.envoy, started.grpcPort, run, group.envoyConcurrency))),
  };
  return {
    processes,
    run,
    preparer: (scenario) => ({
      id: scenario.id,
      prepare: (): Promise<Measurable> => (isDirect(scenario) ? prepareDirectChecks(scenario, processes, run, findings) : prepareThroughEnvoy(scenario, processes, run, findings)),
    }),
    async close() {
      // A start that failed has been reported by the scenario that needed it.
      await envoy?.then((started) => started.stop(), () => undefined);
      const stopped = await authorizer?.then(
        async (started) => {
          await started.stop();
          return started;
        },
        () => undefined,
      );
      if (group.starts.kind === 'sidecar' && group.starts.profileInResults && stopped?.cpuProfile !== undefined) {
        findings.profiles[group.starts.name] = summarizeProfile(stopped.cpuProfile);
      }
      await groupSpicedb.stop();
    },
  };
}

async function runGroup(group: ScenarioGroup, sharedRun: Run, findings: Findings): Promise<void> {
  const scenarios = group.scenarios.filter((scenario) => runs(group, scenario.id));
  if (scenarios.length === 0) return;
  let open: OpenGroup;
  try {
    open = await openGroup(group, sharedRun, scenarios, findings);
  } catch (error) {
    for (const scenario of scenarios) failed(scenario.id, error, findings, firstLines);
    return;
  }
  const summaryOf = (scenario: Scenario): ((message: string) => string) => (isDirect(scenario) ? first500 : firstLines);
  try {
    if (group.alternatesRounds) {
      // Through Envoy in turns, then the direct Checks in turns: each kind against its own kind.
      await measureTakingTurns(scenarios.filter(isThroughEnvoy).map(open.preparer), findings, firstLines);
      await measureTakingTurns(scenarios.filter(isDirect).map(open.preparer), findings, first500);
    }
    for (const scenario of scenarios) {
      if (isTokenScaling(scenario)) await tokenScaling(scenario, open.processes, open.run, findings);
      else if (!group.alternatesRounds) await measureAlone(scenario.id, open.preparer(scenario).prepare, findings, summaryOf(scenario));
    }
  } finally {
    await open.close();
  }
}

/**
 * --compare: every group holding a compared scenario opened at once (each its own authorizer on
 * the authorizer's core, its own Envoy and ports; the idle ones wait), then all compared scenarios
 * in turns, one round each, in the order --compare names them (reversed every other round). Each
 * variant's result names its baseline, so the results show the pair side by side.
 */
async function runCompared(pairs: ReadonlyArray<readonly [string, string]>, sharedRun: Run, findings: Findings): Promise<void> {
  const order = [...new Set(pairs.flat())];
  const opened: OpenGroup[] = [];
  const preparers = new Map<string, ReturnType<OpenGroup['preparer']>>();
  try {
    for (const group of SCENARIO_GROUPS) {
      const scenarios = group.scenarios.filter((scenario) => compared?.has(scenario.id));
      if (scenarios.length === 0) continue;
      try {
        const open = await openGroup(group, sharedRun, scenarios, findings);
        opened.push(open);
        for (const scenario of scenarios.filter(isThroughEnvoy)) preparers.set(scenario.id, open.preparer(scenario));
      } catch (error) {
        for (const scenario of scenarios) failed(scenario.id, error, findings, firstLines);
      }
    }
    await measureTakingTurns(order.flatMap((id) => preparers.get(id) ?? []), findings, firstLines);
  } finally {
    for (const open of opened) await open.close();
  }
  for (const [baseline, variant] of pairs) {
    const index = findings.scenarios.findIndex((result) => result.id === variant);
    const result = findings.scenarios[index];
    if (result !== undefined) findings.scenarios[index] = { ...result, comparedWith: baseline };
  }
}

/**
 * Written into the group's SpiceDB before its scenarios start; minimize_latency checks read a
 * revision quantized to 5 s, so the scenario's expectation waits for the last one to be visible.
 */
async function writeDistinctResources(spicedb: SpicedbServer, scenarios: readonly Scenario[]): Promise<void> {
  for (const scenario of scenarios) {
    const load = scenario.load;
    if (load.kind !== 'distinct-resources') continue;
    log(`writing ${load.resources} relationships (cloud:c<i>#member@user:alice) for the uncached scenario`);
    // SpiceDB takes at most 1,000 updates per WriteRelationships call by default.
    for (let from = 0; from < load.resources; from += 1000) {
      const lines: string[] = [];
      for (let i = from; i < Math.min(load.resources, from + 1000); i++) lines.push(`cloud:c${i}#member@user:alice`);
      await spicedb.write(lines.join('\n'));
    }
  }
}

function writeResults(results: BenchResults, outDir: string, base: string): void {
  const json = join(outDir, `${base}.json`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  const markdown = renderMarkdown(results, `${base}.svg`);
  writeFileSync(join(outDir, `${base}.md`), markdown);
  writeFileSync(join(outDir, `${base}.svg`), renderSvg(results));
  process.stdout.write(`\n${markdown}\n`);
  log(`results: ${json} (+ .md, .svg); wall time ${results.wallSeconds.toFixed(0)} s`);
}

async function main(): Promise<void> {
  installTools();
  if (PIN) pin(process.pid, FRONT_CPUS);
  const machine = machineDescription();
  const date = new Date().toISOString().slice(0, 10);
  const label = flag('label');
  const base = `${date}-${machine.host}${label ? `-${label}` : ''}`;
  // Quick (CI) runs never write into the tree.
  const outDir = flag('out') ?? (quick ? mkdtempSync(join(tmpdir(), 'jwtauth-bench-results-')) : join(PACKAGE_ROOT, 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-bench-'));
  log(`${quick ? 'quick' : 'full'} run; ${machine.cores} cores (${machine.cpuModel}); pinning ${PIN ? 'Envoy+load generator+SpiceDB→cpu0, authorizer→cpu1' : 'off'}; work dir ${dir}`);

  const keys = makeKeys(dir);
  log('starting SpiceDB (real `spicedb serve`, memory datastore)');
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: SEED_RELATIONSHIPS });
  const spicedbPid = spicedb.process.child.pid;
  // SpiceDB gets the front core: there it competes only with Envoy and the load generator. The
  // cached scenarios ask it only on a miss; the uncached one has its own, also on the front core,
  // where Envoy and the load generator take below 0.2 cores at its rate.
  pin(spicedbPid, FRONT_CPUS);
  const ports = { ingress: await freePort(), egress: await freePort() };
  const run: Run = { dir, keys, token: signToken(keys), spicedb, spicedbPid, keyEnv: 'BENCH_SPICEDB_KEY', profile, ports };

  const findings: Findings = { scenarios: [], direct: [], scaling: { rules: [], tokens: [], workers: { supported: false, note: '' } }, profiles: {}, failures: [] };
  if (comparePairs) await runCompared(comparePairs, run, findings);
  else for (const group of SCENARIO_GROUPS) await runGroup(group, run, findings);
  findings.scaling.workers = {
    supported: true,
    note: WORKER_ROWS_NOTE,
  };

  await spicedb.stop();

  writeResults(
    {
      schema: 1,
      date: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      label: label ?? null,
      machine,
      method: {
        envoy: 'one Envoy per scenario, --concurrency 1 (2 for worker mode), routes answered by direct_response; ext_authz filter, HCM settings and authorizer cluster read from envoy/envoy.yaml',
        cores: PIN ? 'cpu0: Envoy + load generator (h2load or vegeta) + orchestrator + SpiceDB; cpu1: the authorizer (sidecar, OPA-Envoy, the Node or the Go floor). jwt_authn and bare Envoy use cpu0 only.' : 'not pinned',
        saturation: `h2load -t1 -c${SATURATION.clients} -m${SATURATION.streams} (uncached: -c${UNCACHED_SATURATION.clients} -m${UNCACHED_SATURATION.streams}), ${budget.rounds} × ${budget.saturationSeconds}s after a ${budget.warmUpSeconds}s warm-up; median reported`,
        latency: `vegeta attack -h2c, ${budget.offeredRps} req/s offered open-loop and evenly spaced (uncached: a quarter of its saturation throughput; near saturation the figure is queueing, not latency), ${budget.rounds} × ${budget.rateSeconds}s, first second dropped, percentiles per round from every request's sample; median of rounds reported`,
        turns: `${comparePairs ? `--compare ${comparePairs.map((pair) => pair.join(' vs ')).join(', ')}: those scenarios only, all started at once, ` : ''}scenarios compared with each other (a group with alternatesRounds: the gRPC message-field pair; --compare) take turns (A B, B A, A B …), one round each after its own ${budget.warmUpSeconds}s warm-up; the difference reported is the median of the per-round differences`,
        noise: `a round is rerun (up to ${budget.maxReruns}×) when processes outside the benchmark used more than ${budget.noisyCores} cores; other engineers run tests on this machine concurrently`,
        spicedb: `real \`spicedb serve\` (pinned build from scripts/install-tools.sh), plaintext gRPC on loopback; memory datastore, except the uncached scenario's SpiceDB of its own on PostgreSQL ${versionOf(join(TOOLS_BIN, 'postgres'), ['--version'], /\(PostgreSQL\) (\S+)/)} (a throwaway cluster beside SpiceDB${PIN ? ' on cpu0' : ''}, durability off: the load only reads); its *_memory variants have a SpiceDB of their own on the memory datastore`,
        sidecarLogging: 'log.level warn (decision logs off), as OPA-Envoy runs with decision_logs.console=false',
      },
      ...findings,
      ...(comparePairs ? { comparisons: comparePairs } : {}),
      wallSeconds: (Date.now() - started) / 1000,
    },
    outDir,
    base,
  );
  if (findings.failures.length > 0) {
    process.stderr.write(`bench: ${findings.failures.length} scenario(s) produced no numbers:\n  ${findings.failures.join('\n  ')}\n`);
    process.exitCode = 1;
  }
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
