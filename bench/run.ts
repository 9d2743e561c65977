/**
 * `npm run bench`: the sidecar against its peers and against the floor, all behind the same Envoy.
 * See docs/benchmarks.md for the method. `--quick` is the CI smoke mode: every scenario for a few
 * seconds, results in a temp dir, non-zero exit if any scenario produced no numbers.
 *
 * Flags: see options.ts (`--help`).
 *
 * What runs is the list in scenarios.ts; this file runs it and writes the results.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../dev/ports.js';
import { TOOLS_BIN } from '../dev/processes.js';
import { startSpicedb } from '../dev/spicedb.js';
import { PACKAGE_ROOT } from '../src/base/package-root.js';
import { makeKeys, SCHEMA, signToken } from '../dev/bench/fixtures.js';
import { openGroup, SEED_RELATIONSHIPS } from './groups.js';
import type { OpenGroup } from './groups.js';
import { progressLog } from './log.js';
import type { Log } from './log.js';
import { machineDescription, versionOf } from './machine.js';
import { parseBenchArgs, runsScenario } from './options.js';
import type { BenchOptions, ComparePair } from './options.js';
import { FRONT_CPUS, PIN, pin } from './pinning.js';
import { renderMarkdown, renderSvg } from './report.js';
import type { BenchResults } from './report.js';
import { first500, firstLines, reportFailure } from './run-state.js';
import type { FailureSummary, Findings, Run } from './run-state.js';
import { isDirect, isThroughEnvoy, isTokenScaling, SATURATION, SCENARIO_GROUPS, UNCACHED_SATURATION, WORKER_ROWS_NOTE } from '../dev/bench/scenarios.js';
import type { Scenario, ScenarioGroup } from '../dev/bench/scenarios.js';
import { measureTokenScaling } from './token-scaling.js';
import { measureAlone, measureTakingTurns } from './turns.js';
import type { Preparer } from './turns.js';

function installTools(log: Log): void {
  log('installing peers: bash scripts/install-tools.sh bench (cached after the first run)');
  const result = spawnSync('bash', [join(PACKAGE_ROOT, 'scripts/install-tools.sh'), 'bench'], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.status !== 0) throw new Error('scripts/install-tools.sh bench failed');
}

async function runGroup(group: ScenarioGroup, options: BenchOptions, sharedRun: Run, findings: Findings): Promise<void> {
  const scenarios = group.scenarios.filter((scenario) => runsScenario(options, group, scenario.id));
  if (scenarios.length === 0) return;
  let open: OpenGroup;
  try {
    open = await openGroup(group, sharedRun, scenarios, findings);
  } catch (error) {
    for (const scenario of scenarios) reportFailure(sharedRun, findings, scenario.id, error, firstLines);
    return;
  }
  const summaryOf = (scenario: Scenario): FailureSummary => (isDirect(scenario) ? first500 : firstLines);
  try {
    if (group.alternatesRounds) {
      // Through Envoy in turns, then the direct Checks in turns: each kind against its own kind.
      await measureTakingTurns(scenarios.filter(isThroughEnvoy).map(open.preparer), open.run, findings, firstLines);
      await measureTakingTurns(scenarios.filter(isDirect).map(open.preparer), open.run, findings, first500);
    }
    for (const scenario of scenarios) {
      if (isTokenScaling(scenario)) await measureTokenScaling(scenario, open.processes, open.run, findings);
      else if (!group.alternatesRounds) await measureAlone(open.preparer(scenario), open.run, findings, summaryOf(scenario));
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
async function runCompared(pairs: readonly ComparePair[], options: BenchOptions, sharedRun: Run, findings: Findings): Promise<void> {
  const order = [...new Set(pairs.flat())];
  const opened: OpenGroup[] = [];
  const preparers = new Map<string, Preparer>();
  try {
    for (const group of SCENARIO_GROUPS) {
      const scenarios = group.scenarios.filter((scenario) => runsScenario(options, group, scenario.id));
      if (scenarios.length === 0) continue;
      try {
        const open = await openGroup(group, sharedRun, scenarios, findings);
        opened.push(open);
        for (const scenario of scenarios.filter(isThroughEnvoy)) preparers.set(scenario.id, open.preparer(scenario));
      } catch (error) {
        for (const scenario of scenarios) reportFailure(sharedRun, findings, scenario.id, error, firstLines);
      }
    }
    await measureTakingTurns(order.flatMap((id) => preparers.get(id) ?? []), sharedRun, findings, firstLines);
  } finally {
    for (const open of opened) await open.close();
  }
  for (const [baseline, variant] of pairs) {
    const index = findings.scenarios.findIndex((result) => result.id === variant);
    const result = findings.scenarios[index];
    if (result !== undefined) findings.scenarios[index] = { ...result, comparedWith: baseline };
  }
}

function writeResults(results: BenchResults, outDir: string, base: string, log: Log): void {
  const json = join(outDir, `${base}.json`);
  writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  const markdown = renderMarkdown(results, `${base}.svg`);
  writeFileSync(join(outDir, `${base}.md`), markdown);
  writeFileSync(join(outDir, `${base}.svg`), renderSvg(results));
  process.stdout.write(`\n${markdown}\n`);
  log(`results: ${json} (+ .md, .svg); wall time ${results.wallSeconds.toFixed(0)} s`);
}

/** How the run measured, as the results record it. */
function methodDescription(options: BenchOptions): BenchResults['method'] {
  const { budget, comparePairs } = options;
  return {
    envoy: 'one Envoy per scenario, --concurrency 1 (2 for worker mode), routes answered by direct_response; ext_authz filter, HCM settings and authorizer cluster read from envoy/envoy.yaml',
    cores: PIN ? 'cpu0: Envoy + load generator (h2load or vegeta) + orchestrator + SpiceDB; cpu1: the authorizer (sidecar, OPA-Envoy, the Node or the Go floor). jwt_authn and bare Envoy use cpu0 only.' : 'not pinned',
    saturation: `h2load -t1 -c${SATURATION.clients} -m${SATURATION.streams} (uncached: -c${UNCACHED_SATURATION.clients} -m${UNCACHED_SATURATION.streams}), ${budget.rounds} × ${budget.saturationSeconds}s after a ${budget.warmUpSeconds}s warm-up; median reported`,
    latency: `vegeta attack -h2c, ${budget.offeredRps} req/s offered open-loop and evenly spaced (uncached: a quarter of its saturation throughput; near saturation the figure is queueing, not latency), ${budget.rounds} × ${budget.rateSeconds}s, first second dropped, percentiles per round from every request's sample; median of rounds reported`,
    turns: `${comparePairs ? `--compare ${comparePairs.map((pair) => pair.join(' vs ')).join(', ')}: those scenarios only, all started at once, ` : ''}scenarios compared with each other (a group with alternatesRounds: the gRPC message-field pair; --compare) take turns (A B, B A, A B …), one round each after its own ${budget.warmUpSeconds}s warm-up; the difference reported is the median of the per-round differences`,
    noise: `a round is rerun (up to ${budget.maxReruns}×) when processes outside the benchmark used more than ${budget.noisyCores} cores; other engineers run tests on this machine concurrently`,
    spicedb: `real \`spicedb serve\` (pinned build from scripts/install-tools.sh), plaintext gRPC on loopback; memory datastore, except the uncached scenario's SpiceDB of its own on PostgreSQL ${versionOf(join(TOOLS_BIN, 'postgres'), ['--version'], /\(PostgreSQL\) (\S+)/)} (a throwaway cluster beside SpiceDB${PIN ? ' on cpu0' : ''}, durability off: the load only reads); its *_memory variants have a SpiceDB of their own on the memory datastore`,
    sidecarLogging: 'log.level warn (decision logs off), as OPA-Envoy runs with decision_logs.console=false',
  };
}

/** The run's shared state: work dir, keys and token, and the shared SpiceDB on the front core. */
async function startSharedRun(options: BenchOptions, machine: BenchResults['machine'], log: Log): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-bench-'));
  const cores = PIN ? 'Envoy+load generator+SpiceDB→cpu0, authorizer→cpu1' : 'off';
  log(`${options.quick ? 'quick' : 'full'} run; ${machine.cores} cores (${machine.cpuModel}); pinning ${cores}; work dir ${dir}`);
  const keys = makeKeys(dir);
  log('starting SpiceDB (real `spicedb serve`, memory datastore)');
  const spicedb = await startSpicedb({ schema: SCHEMA, relationships: SEED_RELATIONSHIPS });
  const spicedbPid = spicedb.process.child.pid;
  // SpiceDB gets the front core: there it competes only with Envoy and the load generator. The
  // cached scenarios ask it only on a miss; the uncached one has its own, also on the front core,
  // where Envoy and the load generator take little of it at its rate.
  pin(spicedbPid, FRONT_CPUS);
  const ports = { ingress: await freePort(), egress: await freePort() };
  return { dir, keys, token: signToken(keys), spicedb, spicedbPid, keyEnv: 'BENCH_SPICEDB_KEY', profile: options.profile, ports, budget: options.budget, log };
}

/** Every scenario the options name, in order (or the --compare pairs in turns). */
async function runScenarios(options: BenchOptions, run: Run): Promise<Findings> {
  const findings: Findings = { scenarios: [], direct: [], scaling: { rules: [], tokens: [], workers: { supported: false, note: '' } }, profiles: {}, failures: [] };
  if (options.comparePairs) await runCompared(options.comparePairs, options, run, findings);
  else for (const group of SCENARIO_GROUPS) await runGroup(group, options, run, findings);
  findings.scaling.workers = { supported: true, note: WORKER_ROWS_NOTE };
  return findings;
}

/** Runs the bench; its exit code: 1 if any scenario produced no numbers. */
async function bench(options: BenchOptions, startedAt: number): Promise<number> {
  const log = progressLog(startedAt);
  installTools(log);
  if (PIN) pin(process.pid, FRONT_CPUS);
  const machine = machineDescription();
  const base = `${new Date().toISOString().slice(0, 10)}-${machine.host}${options.label ? `-${options.label}` : ''}`;
  // Quick (CI) runs never write into the tree.
  const outDir = options.out ?? (options.quick ? mkdtempSync(join(tmpdir(), 'jwtauth-bench-results-')) : join(PACKAGE_ROOT, 'bench/results'));
  mkdirSync(outDir, { recursive: true });
  const run = await startSharedRun(options, machine, log);
  const findings = await runScenarios(options, run);
  await run.spicedb.stop();
  const results: BenchResults = {
    schema: 1,
    date: new Date().toISOString(),
    mode: options.quick ? 'quick' : 'full',
    label: options.label ?? null,
    machine,
    method: methodDescription(options),
    ...findings,
    ...(options.comparePairs ? { comparisons: options.comparePairs } : {}),
    wallSeconds: (Date.now() - startedAt) / 1000,
  };
  writeResults(results, outDir, base, log);
  if (findings.failures.length === 0) return 0;
  process.stderr.write(`bench: ${findings.failures.length} scenario(s) produced no numbers:\n  ${findings.failures.join('\n  ')}\n`);
  return 1;
}

const startedAt = Date.now();
const parsed = parseBenchArgs(process.argv.slice(2));
if (parsed.kind === 'help') {
  process.stdout.write(parsed.text);
  process.exit(0);
}
if (parsed.kind === 'refused') {
  process.stderr.write(parsed.message);
  process.exit(2);
}
bench(parsed.options, startedAt).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
