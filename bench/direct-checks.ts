/**
 * A direct scenario: ghz sends Checks straight to the authorizer's gRPC port, no Envoy, in rounds
 * of a fixed number, each reporting throughput, latency and the authorizer's CPU time per Check
 * (the least noise-sensitive figure on a shared machine, and the one the hot-path before/after
 * compares).
 */
import { frameMessage } from '../src/body/grpc-frame.js';
import { sampleProcess, loadAverage, TICKS_PER_SECOND } from '../dev/proc.js';
import { checkRequestJson, runGhz } from './ghz.js';
import type { CheckedRequest } from './ghz.js';
import { createNamespaceMessage, GRPC_HEADERS, methodPath } from '../dev/bench/grpc-call.js';
import { median } from './measure.js';
import { FRONT_CPUS } from './pinning.js';
import type { DirectResult } from './report.js';
import { authorization, PATHS } from './requests.js';
import type { Findings, GroupProcesses, Measurable, Run } from './run-state.js';
import type { DirectChecks } from '../dev/bench/scenarios.js';
import { growth, requireNoDenials } from './sidecar-growth.js';

type DirectRound = DirectResult['rounds'][number];

/** ghz's warm-up: this many Checks at most before the measured rounds. */
const WARM_UP_CHECKS = 5_000;

/** What Envoy puts in the Check for the scenario's request: the ingress GET, or a gRPC call. */
function directRequest(run: Run, request: DirectChecks['load']['request']): CheckedRequest {
  if (request === undefined) return { method: 'GET', path: PATHS.ingress, headers: authorization(run) };
  const { call, bodyInCheck } = request;
  const frame = frameMessage(createNamespaceMessage(call.messageCloud));
  const headers = { ...GRPC_HEADERS, ...authorization(run), 'content-length': String(frame.length) };
  return { method: 'POST', path: methodPath(call.method), headers, ...(bodyInCheck ? { rawBody: frame } : {}) };
}

function directResult(scenario: DirectChecks, rounds: readonly DirectRound[]): DirectResult {
  const medianOf = (key: keyof DirectRound): number => median(rounds.map((r) => r[key]));
  const { direct: authorizer, comparedWith } = scenario.reports;
  return {
    id: scenario.id,
    authorizer,
    rounds,
    rps: medianOf('rps'),
    p50: medianOf('p50'),
    p99: medianOf('p99'),
    cpuUsPerCheck: medianOf('cpuUsPerCheck'),
    ...(comparedWith ? { comparedWith } : {}),
  };
}

export async function prepareDirectChecks(scenario: DirectChecks, processes: GroupProcesses, run: Run, findings: Findings): Promise<Measurable> {
  const { id, load } = scenario;
  run.log(`scenario ${id} (ghz → ${scenario.reports.direct} directly, load average ${loadAverage().join(' ')})`);
  const { pid, grpcPort, sidecar } = await processes.authorizer();
  if (pid === undefined || grpcPort === undefined) throw new Error('no authorizer process to call');
  const data = checkRequestJson(directRequest(run, load.request), { direction: 'inbound' });
  const total = run.budget.quick ? load.checks.quick : load.checks.full;
  const ghzOptions = { concurrency: load.concurrency, connections: load.connections ?? 1, cpus: FRONT_CPUS };
  const warmUpBefore = await sidecar?.metrics();
  await runGhz(grpcPort, data, { ...ghzOptions, total: Math.min(total, WARM_UP_CHECKS) });
  // ghz sees an OK call whether the CheckResponse allows or denies: the sidecar's count tells.
  if (sidecar && warmUpBefore) requireNoDenials(growth(warmUpBefore, await sidecar.metrics()));
  const rounds: DirectRound[] = [];
  return {
    id,
    async measureRounds(count) {
      for (let round = 0; round < count; round++) {
        const before = sampleProcess(pid);
        const result = await runGhz(grpcPort, data, { ...ghzOptions, total });
        const after = sampleProcess(pid);
        const cpuUsPerCheck = before && after ? (((after.cpuTicks - before.cpuTicks) / TICKS_PER_SECOND) * 1e6) / total : Number.NaN;
        if (result.okCount < result.count * 0.99) throw new Error(`only ${result.okCount} of ${result.count} Checks answered OK`);
        run.log(`    round ${rounds.length + 1}: ${result.rps.toFixed(0)} Checks/s, p50 ${result.p50.toFixed(3)} p99 ${result.p99.toFixed(3)} ms, ${cpuUsPerCheck.toFixed(0)} µs CPU per Check`);
        rounds.push({ rps: result.rps, p50: result.p50, p99: result.p99, cpuUsPerCheck });
      }
    },
    finish() {
      findings.direct.push(directResult(scenario, rounds));
    },
  };
}
