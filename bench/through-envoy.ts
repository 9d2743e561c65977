/**
 * A scenario through Envoy: its expectations checked, then h2load at saturation and vegeta at the
 * offered rate (measure.ts), with the sidecar's metrics read around each pass.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { methodPath, writeRequestBody } from '../dev/bench/grpc-call.js';
import { combineMeasurements, measureScenario } from './measure.js';
import type { Budget, ScenarioMeasurement, Watched } from './measure.js';
import { FRONT_CPUS } from './pinning.js';
import { loadAverage } from '../dev/proc.js';
import { expectAnswer, grpcHeaderLines, headerLines, urlOf } from './requests.js';
import type { Findings, GroupProcesses, Measurable, Run } from './run-state.js';
import { SATURATION, UNCACHED_SATURATION } from '../dev/bench/scenarios.js';
import type { Scenario, ThroughEnvoy } from '../dev/bench/scenarios.js';
import { extraFigures, growth, requireNoDenials, sidecarOf, summedGrowth } from './sidecar-growth.js';
import type { Growth } from './sidecar-growth.js';

type OneUrl = Extract<Scenario['load'], { kind: 'one-url' }>;
type DistinctResources = Extract<Scenario['load'], { kind: 'distinct-resources' }>;

/** One measurement of a scenario, and how much each sidecar series grew during it (and only it). */
interface Pass {
  readonly measurement: ScenarioMeasurement;
  readonly grew: Growth;
}

function measureOneUrl(load: OneUrl, watched: Watched, run: Run, passBudget: Budget): Promise<ScenarioMeasurement> {
  const tokenLines = load.withToken ? headerLines(run) : [];
  const target =
    load.call === undefined
      ? { url: urlOf(run, load.port), headers: tokenLines }
      : { url: urlOf(run, load.port, methodPath(load.call.method)), headers: [...grpcHeaderLines(), ...tokenLines], body: writeRequestBody(run.dir, load.call.messageCloud) };
  return measureScenario({ target, watched, budget: passBudget, saturation: SATURATION, loadCpus: FRONT_CPUS, latencyOnly: load.latencyOnly ?? false, log: run.log });
}

function measureDistinctResources(load: DistinctResources, watched: Watched, run: Run, passBudget: Budget): Promise<ScenarioMeasurement> {
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
    log: run.log,
  });
}

export async function prepareThroughEnvoy(scenario: ThroughEnvoy, processes: GroupProcesses, run: Run, findings: Findings): Promise<Measurable> {
  const { id, load, reports } = scenario;
  const loadAverageAtStart = loadAverage();
  run.log(`scenario ${id} (load average ${loadAverageAtStart.join(' ')})`);
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
      const passBudget = { ...run.budget, rounds };
      const measurement = load.kind === 'one-url' ? await measureOneUrl(load, watched, run, passBudget) : await measureDistinctResources(load, watched, run, passBudget);
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
      const extra = extraFigures(reports, grew, run.log);
      if (!Number.isFinite(measurement.p99) || (!Number.isFinite(measurement.rps) && measurement.saturation.length > 0)) throw new Error('no numbers');
      const row = { label: reports.label, authorizer: reports.authorizer, measurement, ...(Object.keys(extra).length > 0 ? { extra } : {}), ...(reports.comparedWith ? { comparedWith: reports.comparedWith } : {}) };
      findings.scenarios.push({ id, load: loadAverageAtStart, ...row });
    },
  };
}
