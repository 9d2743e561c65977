/**
 * `npm run bench`: the sidecar against its peers and against the floor, all behind the same Envoy.
 * See docs/benchmarks.md for the method. `--quick` is the CI smoke mode: every scenario for a few
 * seconds, results in a temp dir, non-zero exit if any scenario produced no numbers.
 *
 * Flags: --quick, --only=id,id (scenario ids, prefix match), --label=NAME (results file suffix),
 * --out=DIR, --profile (run the sidecar under `node --cpu-prof`: profiles are written to the work dir
 * printed at start, and the main sidecar's hottest functions go into the results JSON).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:http2';
import type { ClientHttp2Session } from 'node:http2';
import { freePort } from '../dev/ports.js';
import { startProcess, waitFor } from '../dev/processes.js';
import type { ManagedProcess } from '../dev/processes.js';
import { benchEnvoyConfig, startBenchEnvoy } from './envoy-config.js';
import type { BenchEnvoy, BenchListener } from './envoy-config.js';
import { AUDIENCE, ISSUER, makeKeys, opaPolicy, SCHEMA, sidecarConfig, signToken, UPSTREAM } from './fixtures.js';
import type { BenchKeys, SidecarVariant } from './fixtures.js';
import { checkRequestJson, runGhz } from './ghz.js';
import { fmt, FULL, measureScenario, median, QUICK } from './measure.js';
import type { Budget, ScenarioMeasurement, ShapeSpec, Watched } from './measure.js';
import { loadAverage, sampleProcess, TICKS_PER_SECOND } from './proc.js';
import { summarizeProfile } from './profile.js';
import { renderMarkdown, renderSvg } from './report.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbServer } from '../dev/spicedb.js';
import { ROOT, startBenchSidecar, TOOLS } from './services.js';
import type { BenchSidecar } from './services.js';
import type { BenchResults, DirectResult, ScenarioResult, ScalingResults } from './report.js';

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const hit = args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (hit === undefined) return undefined;
  return hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : '';
};
const quick = flag('quick') !== undefined;
const noisy = flag('noisy');
/** --noisy=CORES: outside CPU above which a round is rerun (once); default from the budget. */
const budget: Budget = noisy ? { ...(quick ? QUICK : FULL), noisyCores: Number(noisy), maxReruns: 1 } : quick ? QUICK : FULL;
const only = flag('only')?.split(',').filter(Boolean);
const wants = (id: string): boolean => !only || only.some((prefix) => id.startsWith(prefix));
const profile = flag('profile') !== undefined;
const started = Date.now();
const log = (line: string): void => {
  process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
};

/**
 * Core sharing on this 2-core machine: core 0 runs Envoy (one worker), the load generator, this
 * orchestrator and SpiceDB (busy only in the uncached scenario, where Envoy's share is small);
 * core 1 runs the authorizer under test alone. Every authorizer thus gets exactly one core, and
 * nothing it does can steal Envoy's or the load generator's time. With fewer than 2 CPUs nothing
 * is pinned.
 */
const PIN = cpus().length >= 2;
const FRONT_CPUS = PIN ? '0' : undefined;
const AUTHZ_CPUS = PIN ? '1' : undefined;

function pin(pid: number | undefined, cpuList: string | undefined): void {
  if (pid === undefined || cpuList === undefined) return;
  // -a: every thread (Node's libuv pool and GC helpers, Go's Ms), not just the main one.
  execFileSync('taskset', ['-a', '-pc', cpuList, String(pid)], { stdio: 'ignore' });
}

const SATURATION: ShapeSpec = { clients: 8, streams: 16 };
/** h2load clients each walk `-i` lists from the top, so "every request distinct" needs one client. */
const UNCACHED_SATURATION: ShapeSpec = { clients: 1, streams: 32 };

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
    envoy: versionOf(join(TOOLS, 'envoy'), ['--version'], /version: \S+?\/([\d.]+)\//),
    opaEnvoy: versionOf(join(TOOLS, 'opa-envoy-plugin'), ['version'], /Version: (\S+)/),
    spicedb: versionOf(join(TOOLS, 'spicedb'), ['version'], /(v[\d.]+)/),
    h2load: versionOf('h2load', ['--version'], /nghttp2\/([\d.]+)/),
    vegeta: versionOf('go', ['version', '-m', join(TOOLS, 'vegeta')], /tsenart\/vegeta\/v12\s+(v\S+)/),
    ghz: versionOf(join(TOOLS, 'ghz'), ['--version'], /(\S+)/),
  };
}

function installTools(): void {
  log('installing peers: bash scripts/install-tools.sh bench (cached after the first run)');
  const result = spawnSync('bash', [join(ROOT, 'scripts/install-tools.sh'), 'bench'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error('scripts/install-tools.sh bench failed');
}

/**
 * Like expectStatus, but keeps asking for a while: Envoy's first calls to an authorizer that has
 * just started can fail before its cluster connects.
 */
async function expectEventually(url: string, headers: Record<string, string>, status: number, what: string): Promise<void> {
  let last = 0;
  await waitFor(async () => (last = (await fetch(url, { headers })).status) === status, 15_000, () => `${what}: expected ${status} from ${url}, last answer ${last}`);
}

async function expectStatus(url: string, headers: Record<string, string>, status: number, what: string): Promise<void> {
  const response = await fetch(url, { headers });
  const body = await response.text();
  if (response.status !== status) throw new Error(`${what}: expected ${status} from ${url}, got ${response.status} ${body.slice(0, 200)}`);
}

interface Context {
  readonly dir: string;
  readonly keys: BenchKeys;
  readonly token: string;
  readonly spicedb: SpicedbServer;
  readonly spicedbPid: number | undefined;
  readonly keyEnv: string;
}

async function withEnvoy<T>(listeners: readonly BenchListener[], authzPort: number | undefined, body: (envoy: BenchEnvoy) => Promise<T>): Promise<T> {
  const adminPort = await freePort();
  const envoy = await startBenchEnvoy(benchEnvoyConfig(listeners, adminPort, authzPort), adminPort, FRONT_CPUS);
  try {
    return await body(envoy);
  } finally {
    await envoy.stop();
  }
}

async function launchSidecar(ctx: Context, variant: SidecarVariant, label: string): Promise<BenchSidecar> {
  const env: NodeJS.ProcessEnv = { [ctx.keyEnv]: ctx.spicedb.presharedKey };
  // BENCH_SIDECAR_NODE_ARGS (e.g. --trace-gc) for investigations; BENCH_SIDECAR_OUTPUT keeps what it printed.
  const nodeArgs: string[] = (process.env.BENCH_SIDECAR_NODE_ARGS ?? '').split(' ').filter(Boolean);
  if (profile) {
    const profDir = join(ctx.dir, 'profiles');
    mkdirSync(profDir, { recursive: true });
    nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${label}.cpuprofile`);
  }
  const sidecar = await startBenchSidecar(sidecarConfig(ctx.keys, ctx.spicedb.endpoint, ctx.keyEnv, variant), { env, cwd: ctx.dir, nodeArgs });
  pin(sidecar.process.child.pid, AUTHZ_CPUS);
  const keep = process.env.BENCH_SIDECAR_OUTPUT;
  if (keep) sidecar.process.exited.then(() => writeFileSync(`${keep}.${label}.log`, sidecar.process.output()), () => undefined);
  return sidecar;
}

async function scenario(
  id: string,
  results: ScenarioResult[],
  failures: string[],
  body: () => Promise<Omit<ScenarioResult, 'id' | 'load'>>,
): Promise<void> {
  if (!wants(id)) return;
  const load = loadAverage();
  log(`scenario ${id} (load average ${load.join(' ')})`);
  try {
    const result = await body();
    if (!Number.isFinite(result.measurement.p99) || (!Number.isFinite(result.measurement.rps) && result.measurement.saturation.length > 0)) {
      throw new Error('no numbers');
    }
    results.push({ id, load, ...result });
  } catch (error) {
    failures.push(`${id}: ${(error as Error).message.split('\n').slice(0, 6).join('\n')}`);
    log(`scenario ${id} FAILED: ${(error as Error).message.slice(0, 1500)}`);
  }
}

/**
 * ghz straight at the authorizer's gRPC port: rounds of a fixed number of Checks, each reporting
 * throughput, latency and the authorizer's CPU time per Check (the least noise-sensitive figure
 * on a shared machine, and the one the hot-path before/after compares).
 */
async function directRounds(id: string, authorizer: string, port: number, pid: number, token: string, direct: DirectResult[], failures: string[]): Promise<void> {
  if (!wants(id)) return;
  log(`scenario ${id} (ghz → ${authorizer} directly, load average ${loadAverage().join(' ')})`);
  try {
    const data = checkRequestJson('/v1/clouds/cl0/items', { authorization: `Bearer ${token}` }, { direction: 'inbound' });
    const total = quick ? 5_000 : 40_000;
    await runGhz(port, data, { total: Math.min(total, 5_000), concurrency: 32, cpus: FRONT_CPUS });
    const rounds: Array<DirectResult['rounds'][number]> = [];
    for (let round = 0; round < budget.rounds; round++) {
      const before = sampleProcess(pid);
      const result = await runGhz(port, data, { total, concurrency: 32, cpus: FRONT_CPUS });
      const after = sampleProcess(pid);
      const cpuUsPerCheck = before && after ? (((after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND) * 1e6) / total : Number.NaN;
      if (result.okCount < result.count * 0.99) throw new Error(`only ${result.okCount} of ${result.count} Checks answered OK`);
      log(`    round ${round + 1}: ${result.rps.toFixed(0)} Checks/s, p50 ${result.p50.toFixed(3)} p99 ${result.p99.toFixed(3)} ms, ${cpuUsPerCheck.toFixed(0)} µs CPU per Check`);
      rounds.push({ rps: result.rps, p50: result.p50, p99: result.p99, cpuUsPerCheck });
    }
    direct.push({ id, authorizer, rounds, rps: median(rounds.map((r) => r.rps)), p50: median(rounds.map((r) => r.p50)), p99: median(rounds.map((r) => r.p99)), cpuUsPerCheck: median(rounds.map((r) => r.cpuUsPerCheck)) });
  } catch (error) {
    failures.push(`${id}: ${(error as Error).message.slice(0, 500)}`);
    log(`scenario ${id} FAILED: ${(error as Error).message.slice(0, 1500)}`);
  }
}

/** Sends `count` requests with distinct tokens through Envoy (HTTP/2, 64 in flight); returns non-200 count. */
async function sendDistinctTokens(port: number, keys: BenchKeys, count: number): Promise<number> {
  const session: ClientHttp2Session = connect(`http://127.0.0.1:${port}`);
  let next = 0;
  let bad = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const stream = session.request({ ':path': '/v1/clouds/cl0/items', ':method': 'GET', authorization: `Bearer ${signToken(keys)}` });
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

async function main(): Promise<void> {
  installTools();
  if (PIN) pin(process.pid, FRONT_CPUS);
  const machine = machineDescription();
  const date = new Date().toISOString().slice(0, 10);
  const label = flag('label');
  const base = `${date}-${machine.host}${label ? `-${label}` : ''}`;
  // Quick (CI) runs never write into the tree.
  const outDir = flag('out') ?? (quick ? mkdtempSync(join(tmpdir(), 'jwtauth-bench-results-')) : join(ROOT, 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-bench-'));
  log(`${quick ? 'quick' : 'full'} run; ${machine.cores} cores (${machine.cpuModel}); pinning ${PIN ? 'Envoy+load generator+SpiceDB→cpu0, authorizer→cpu1' : 'off'}; work dir ${dir}`);

  const keys = makeKeys(dir);
  const token = signToken(keys);
  const auth = { authorization: `Bearer ${token}` };
  const header = [`authorization: Bearer ${token}`];

  log('starting SpiceDB (real `spicedb serve`, memory datastore)');
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: 'cloud:cl0#admin@user:alice' });
  const spicedbPid = spicedb.process.child.pid;
  // SpiceDB gets the front core: there it competes only with Envoy and the load generator, which
  // the uncached scenario (the only one that calls SpiceDB under load) keeps below 0.2 cores.
  pin(spicedbPid, FRONT_CPUS);
  // Uncached scenario: one resource per request, each with a relationship so the answer is a real
  // allow. Written first: minimize_latency checks read a revision quantized to 5 s, so fresh writes
  // only become visible a few seconds later.
  // SpiceDB's memory datastore gets slower per check as relationships grow (30,000 and 150,000
  // made every Check hit the sidecar's 300 ms deadline here; see docs/benchmarks.md). That scenario
  // runs with the decision cache off; a run that wraps around its slice meets SpiceDB's own cache.
  const distinct = 10_000;
  if (wants('sidecar_inbound_uncached')) {
    log(`writing ${distinct} relationships (cloud:c<i>#member@user:alice) for the uncached scenario`);
    for (let from = 0; from < distinct; from += 1000) {
      const lines: string[] = [];
      for (let i = from; i < Math.min(distinct, from + 1000); i++) lines.push(`cloud:c${i}#member@user:alice`);
      await spicedb.write(lines.join('\n'));
    }
  }
  const ctx: Context = { dir, keys, token, spicedb, spicedbPid, keyEnv: 'BENCH_SPICEDB_KEY' };

  const results: ScenarioResult[] = [];
  const failures: string[] = [];
  const scaling: ScalingResults = { rules: [], tokens: [], workers: { supported: false, note: '' } };
  const profiles: Record<string, unknown> = {};
  const direct: DirectResult[] = [];

  const ingressPort = await freePort();
  const egressPort = await freePort();
  const url = `http://127.0.0.1:${ingressPort}/v1/clouds/cl0/items`;
  const measure = (watched: Watched, target: { url: string; uriFile?: string; headers: readonly string[] }, latencyOnly = false): Promise<ScenarioMeasurement> =>
    measureScenario({ target, watched, budget, saturation: SATURATION, loadCpus: FRONT_CPUS, latencyOnly, log });

  // (1) The floor: Envoy answering by itself.
  await scenario('bare', results, failures, () =>
    withEnvoy([{ name: 'bare', port: ingressPort, filter: { kind: 'bare' } }], undefined, async (envoy) => {
      await expectStatus(url, {}, 200, 'bare Envoy');
      const pid = envoy.process.child.pid as number;
      return { label: 'Envoy alone (direct_response)', authorizer: 'none', measurement: await measure({ envoy: pid }, { url, headers: header }) };
    }),
  );

  // (2) Envoy's own jwt_authn: same token, same key inline, same iss/aud.
  await scenario('jwt_authn', results, failures, () =>
    withEnvoy([{ name: 'jwt', port: ingressPort, filter: { kind: 'jwt_authn', issuer: ISSUER, audience: AUDIENCE, jwks: keys.jwks } }], undefined, async (envoy) => {
      await expectStatus(url, {}, 401, 'jwt_authn without a token');
      await expectStatus(url, auth, 200, 'jwt_authn with the token');
      const pid = envoy.process.child.pid as number;
      return { label: 'Envoy jwt_authn (in-process, verify only)', authorizer: 'envoy jwt_authn', measurement: await measure({ envoy: pid }, { url, headers: header }) };
    }),
  );

  // (3) OPA-Envoy: the same verification in Rego behind the same ext_authz filter; and its classic
  // input shape (encode_raw_headers off) as OPA's best case.
  for (const variant of [
    { id: 'opa_envoy', rawHeaders: true, label: 'OPA-Envoy ext_authz, same filter settings (Rego io.jwt.decode_verify on headerMap)' },
    { id: 'opa_envoy_classic', rawHeaders: false, label: 'OPA-Envoy ext_authz, encode_raw_headers off (classic headers map)' },
  ]) {
    await scenario(variant.id, results, failures, async () => {
      const policy = join(dir, `${variant.id}.rego`);
      writeFileSync(policy, opaPolicy(keys, variant.rawHeaders));
      const [grpcPort, httpPort, diagPort] = [await freePort(), await freePort(), await freePort()];
      const opa: ManagedProcess = startProcess(join(TOOLS, 'opa-envoy-plugin'), [
        'run', '--server', '--addr', `127.0.0.1:${httpPort}`, '--diagnostic-addr', `127.0.0.1:${diagPort}`, '--log-level', 'error',
        '--set', `plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
        '--set', 'plugins.envoy_ext_authz_grpc.path=envoy/authz/allow',
        '--set', 'decision_logs.console=false',
        policy,
      ]);
      try {
        pin(opa.child.pid, AUTHZ_CPUS);
        await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/health?plugins`)).status === 200, 20_000, () => `OPA-Envoy not healthy:\n${opa.output()}`);
        if (variant.rawHeaders) await directRounds('direct_opa_envoy', 'opa-envoy-plugin', grpcPort, opa.child.pid as number, token, direct, failures);
        const listener: BenchListener = { name: 'opa', port: ingressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'inbound' }, ...(variant.rawHeaders ? {} : { encodeRawHeaders: false }) } };
        return await withEnvoy([listener], grpcPort, async (envoy) => {
          await expectStatus(url, {}, 403, 'OPA-Envoy without a token');
          await expectStatus(url, auth, 200, 'OPA-Envoy with the token');
          const watched = { envoy: envoy.process.child.pid as number, authorizer: opa.child.pid as number };
          return { label: variant.label, authorizer: 'opa-envoy-plugin', measurement: await measure(watched, { url, headers: header }) };
        });
      } finally {
        await opa.stop('SIGTERM', 3000);
      }
    });
  }

  // (4a) The transport floor: the sidecar's own gRPC listener answering OK without deciding.
  await scenario('floor_grpcjs', results, failures, async () => {
    const port = await freePort();
    const floor = startProcess(process.execPath, [join(ROOT, 'dist/bench/null-authorizer.js'), String(port)]);
    try {
      pin(floor.child.pid, AUTHZ_CPUS);
      await waitFor(async () => floor.output().includes('listening'), 10_000, () => `null authorizer did not start:\n${floor.output()}`);
      return await withEnvoy([{ name: 'ingress', port: ingressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'inbound' } } }], port, async (envoy) => {
        await expectEventually(url, {}, 200, 'null authorizer');
        const watched = { envoy: envoy.process.child.pid as number, authorizer: floor.child.pid as number };
        return { label: 'ext_authz floor: the sidecar\'s gRPC listener answering OK without deciding', authorizer: 'grpc-js, no decision', measurement: await measure(watched, { url, headers: header }) };
      });
    } finally {
      await floor.stop('SIGTERM', 3000);
    }
  });

  // (4) and (5): the sidecar, inbound and outbound, through one Envoy with both listeners.
  const sidecarIds = ['sidecar_inbound_cached', 'sidecar_outbound', 'direct_sidecar'];
  if (sidecarIds.some(wants)) {
    const sidecar = await launchSidecar(ctx, {}, 'main');
    const sidecarPid = (): number => sidecar.process.child.pid as number;
    try {
      await withEnvoy(
        [
          { name: 'ingress', port: ingressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'inbound' } } },
          { name: 'egress', port: egressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'outbound', audience: UPSTREAM } } },
        ],
        sidecar.grpcPort,
        async (envoy) => {
          const envoyPid = envoy.process.child.pid as number;
          const backends: Record<string, number> = spicedbPid === undefined ? {} : { spicedb: spicedbPid };
          await scenario('sidecar_inbound_cached', results, failures, async () => {
            await expectStatus(url, {}, 401, 'sidecar without a token');
            await expectEventually(url, auth, 200, 'sidecar with the token');
            const hitsBefore = await sidecar.metric('jwtauth_decision_cache_events_total{event="hit"}');
            const measurement = await measure({ envoy: envoyPid, authorizer: sidecarPid(), backends }, { url, headers: header });
            const hits = (await sidecar.metric('jwtauth_decision_cache_events_total{event="hit"}')) - hitsBefore;
            return { label: 'sidecar inbound, verified token + cached SpiceDB decision', authorizer: 'jwtauth-sidecar', measurement, extra: { decisionCacheHits: hits } };
          });
          await scenario('sidecar_outbound', results, failures, async () => {
            const egress = `http://127.0.0.1:${egressPort}/v1/items`;
            await expectStatus(egress, {}, 200, 'sidecar outbound');
            const measurement = await measure({ envoy: envoyPid, authorizer: sidecarPid() }, { url: egress, headers: [] });
            return { label: `sidecar outbound, service token for ${UPSTREAM} from a warm cache`, authorizer: 'jwtauth-sidecar', measurement };
          });
          await directRounds('direct_sidecar', 'jwtauth-sidecar', sidecar.grpcPort, sidecarPid(), token, direct, failures);
        },
      );
    } finally {
      await sidecar.stop();
      if (profile) profiles.main = summarizeProfile(join(dir, 'profiles', 'main.cpuprofile'));
    }
  }

  // (4b) Uncached: the decision cache off, so every Check asks the real SpiceDB;
  // every request names another resource, so SpiceDB's own cache answers only when a run wraps
  // around its slice.
  await scenario('sidecar_inbound_uncached', results, failures, async () => {
    // Each load run gets its own slice of resources.
    const runsPerScenario = 1 + 2 * budget.rounds;
    const slice = Math.floor((distinct - 1) / runsPerScenario);
    const uriFiles = Array.from({ length: runsPerScenario }, (_, run) => {
      const file = join(dir, `uncached-uris-${run}.txt`);
      writeFileSync(file, Array.from({ length: slice }, (_, i) => `http://127.0.0.1:${ingressPort}/v1/clouds/c${run * slice + i}/items`).join('\n') + '\n');
      return file;
    });
    const sidecar = await launchSidecar(ctx, { decisionCacheTtlMs: 0 }, 'uncached');
    try {
      return await withEnvoy([{ name: 'ingress', port: ingressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'inbound' } } }], sidecar.grpcPort, async (envoy) => {
        const probe = `http://127.0.0.1:${ingressPort}/v1/clouds/c${distinct - 1}/items`;
        await waitFor(async () => (await fetch(probe, { headers: auth })).status === 200, 15_000, () => 'uncached relationships never became visible');
        const watchedMetrics = ['jwtauth_spicedb_checks_total', 'jwtauth_decision_cache_events_total', 'jwtauth_checks_total'];
        const before = await sidecar.samples(watchedMetrics);
        const sidecarPid = sidecar.process.child.pid as number;
        const measurement = await measureScenario({
          target: { url: `http://127.0.0.1:${ingressPort}/`, headers: header },
          targetForRun: (run) => ({ url: `http://127.0.0.1:${ingressPort}/`, uriFile: uriFiles[run % uriFiles.length] as string, headers: header }),
          rateCapFraction: 0.25,
          watched: { envoy: envoy.process.child.pid as number, authorizer: sidecarPid, backends: spicedbPid === undefined ? {} : { spicedb: spicedbPid } },
          budget,
          saturation: UNCACHED_SATURATION,
          loadCpus: FRONT_CPUS,
          log,
        });
        const after = await sidecar.samples(watchedMetrics);
        const delta = (name: string): number => (after[name] ?? 0) - (before[name] ?? 0);
        const extra: Record<string, number> = {
          spicedbChecks: delta('jwtauth_spicedb_checks_total{result="allowed"}'),
          decisionCacheHits: delta('jwtauth_decision_cache_events_total{event="hit"}'),
          distinctResources: distinct,
        };
        for (const name of Object.keys(after)) {
          if (delta(name) > 0 && !name.includes('result="allowed"') && !name.includes('"miss"')) log(`    ${name} +${delta(name)}`);
        }
        log(`    SpiceDB calls ${extra.spicedbChecks}, decision cache hits ${extra.decisionCacheHits}`);
        return { label: 'sidecar inbound, decision cache off, a distinct resource per request → a real SpiceDB check', authorizer: 'jwtauth-sidecar + spicedb', measurement, extra };
      });
    } finally {
      await sidecar.stop();
    }
  });

  // (6) Scaling: rule count, token count, workers.
  if (wants('scaling_rules')) {
    for (const count of [10, 1_000, 10_000]) {
      await scenario(`scaling_rules_${count}`, results, failures, async () => {
        const sidecar = await launchSidecar(ctx, { fillerRules: count - 1 }, `rules-${count}`);
        try {
          return await withEnvoy([{ name: 'ingress', port: ingressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'inbound' } } }], sidecar.grpcPort, async (envoy) => {
            await expectEventually(url, auth, 200, `sidecar with ${count} rules`);
            const measurement = await measure({ envoy: envoy.process.child.pid as number, authorizer: sidecar.process.child.pid as number }, { url, headers: header }, true);
            scaling.rules.push({ rules: count, p50: measurement.p50, p90: measurement.p90, p99: measurement.p99, rssKb: measurement.rssKb.authorizer });
            return { label: `sidecar inbound cached, ${count.toLocaleString('en')} rules (the matched one last)`, authorizer: 'jwtauth-sidecar', measurement };
          });
        } finally {
          await sidecar.stop();
        }
      });
    }
  }

  if (wants('scaling_tokens')) {
    const steps = quick ? [1_000, 10_000] : [1_000, 100_000];
    log(`scenario scaling_tokens: RSS after ${steps.join(' and ')} distinct tokens`);
    try {
      const sidecar = await launchSidecar(ctx, {}, 'tokens');
      try {
        await withEnvoy([{ name: 'ingress', port: ingressPort, filter: { kind: 'ext_authz', contextExtensions: { direction: 'inbound' } } }], sidecar.grpcPort, async () => {
          const pid = sidecar.process.child.pid as number;
          await expectEventually(url, auth, 200, 'sidecar before distinct tokens');
          scaling.tokens.push({ tokens: 1, rssKb: sampleProcess(pid)?.rssKb, hwmKb: sampleProcess(pid)?.hwmKb, seconds: 0 });
          let sent = 1;
          for (const step of steps) {
            const t0 = performance.now();
            const bad = await sendDistinctTokens(ingressPort, keys, step - sent);
            if (bad > 0) throw new Error(`${bad} of ${step - sent} distinct-token requests were not 200`);
            const seconds = (performance.now() - t0) / 1000;
            sent = step;
            const sample = sampleProcess(pid);
            scaling.tokens.push({ tokens: step, rssKb: sample?.rssKb, hwmKb: sample?.hwmKb, seconds });
            log(`    after ${step} distinct tokens: RSS ${fmt((sample?.rssKb ?? NaN) / 1024, 1)} MB (peak ${fmt((sample?.hwmKb ?? NaN) / 1024, 1)} MB), ${((step - (scaling.tokens.at(-2)?.tokens ?? 0)) / seconds).toFixed(0)} new tokens/s`);
          }
        });
      } finally {
        await sidecar.stop();
      }
    } catch (error) {
      failures.push(`scaling_tokens: ${(error as Error).message.slice(0, 500)}`);
      log(`scenario scaling_tokens FAILED: ${(error as Error).message.slice(0, 1500)}`);
    }
  }
  scaling.workers = {
    supported: false,
    note: 'jwtauth-sidecar runs one Node.js event loop per process and has no worker mode today; throughput with one worker per core is not measurable. Scaling out today means more sidecar processes behind one Envoy cluster, which this machine (2 cores shared with Envoy and the load generator) cannot show meaningfully.',
  };

  await spicedb.stop();

  const results_: BenchResults = {
    schema: 1,
    date: new Date().toISOString(),
    mode: quick ? 'quick' : 'full',
    label: label ?? null,
    machine,
    method: {
      envoy: 'one Envoy per scenario, --concurrency 1, routes answered by direct_response; ext_authz filter, HCM settings and authorizer cluster read from envoy/envoy.yaml',
      cores: PIN ? 'cpu0: Envoy + load generator (h2load or vegeta) + orchestrator + SpiceDB; cpu1: the authorizer (sidecar, OPA-Envoy or the grpc-js floor). jwt_authn and bare Envoy use cpu0 only.' : 'not pinned',
      saturation: `h2load -t1 -c${SATURATION.clients} -m${SATURATION.streams} (uncached: -c${UNCACHED_SATURATION.clients} -m${UNCACHED_SATURATION.streams}), ${budget.rounds} × ${budget.saturationSeconds}s after a ${budget.warmUpSeconds}s warm-up; median reported`,
      latency: `vegeta attack -h2c, ${budget.offeredRps} req/s offered open-loop and evenly spaced (uncached: a quarter of its saturation throughput; near saturation the figure is queueing, not latency), ${budget.rounds} × ${budget.rateSeconds}s, first second dropped, percentiles per round from every request's sample; median of rounds reported`,
      noise: `a round is rerun (up to ${budget.maxReruns}×) when processes outside the benchmark used more than ${budget.noisyCores} cores; other engineers run tests on this machine concurrently`,
      spicedb: 'real `spicedb serve` (pinned build from scripts/install-tools.sh), memory datastore, plaintext gRPC on loopback',
      sidecarLogging: 'log.level warn (decision logs off), as OPA-Envoy runs with decision_logs.console=false',
    },
    scenarios: results,
    direct,
    scaling,
    profiles,
    failures,
    wallSeconds: (Date.now() - started) / 1000,
  };
  const json = join(outDir, `${base}.json`);
  writeFileSync(json, `${JSON.stringify(results_, null, 2)}\n`);
  const markdown = renderMarkdown(results_, `${base}.svg`);
  writeFileSync(join(outDir, `${base}.md`), markdown);
  writeFileSync(join(outDir, `${base}.svg`), renderSvg(results_));
  process.stdout.write(`\n${markdown}\n`);
  log(`results: ${json} (+ .md, .svg); wall time ${results_.wallSeconds.toFixed(0)} s`);
  if (failures.length > 0) {
    process.stderr.write(`bench: ${failures.length} scenario(s) produced no numbers:\n  ${failures.join('\n  ')}\n`);
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
