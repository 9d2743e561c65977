/**
 * The token-scaling scenario: requests with ever new tokens through Envoy, and the authorizer's
 * RSS after each step, for the scaling table (how memory grows with the distinct tokens a sidecar
 * has seen).
 */
import { connect } from 'node:http2';
import { sampleProcess } from '../dev/proc.js';
import { signToken } from '../dev/bench/fixtures.js';
import type { BenchKeys } from '../dev/bench/fixtures.js';
import { fmt } from './measure.js';
import { expectAnswer, PATHS } from './requests.js';
import { first500, reportFailure } from './run-state.js';
import type { Findings, GroupProcesses, Run } from './run-state.js';
import type { TokenScaling } from '../dev/bench/scenarios.js';

/** Requests in flight at once on the one HTTP/2 connection. */
const IN_FLIGHT = 64;

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
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  session.close();
  return bad;
}

const megabytes = (kb: number | undefined): string => fmt((kb ?? NaN) / 1024, 1);

/** Adds its rows to the scaling table; a failure is reported and the run goes on. */
export async function measureTokenScaling(scenario: TokenScaling, processes: GroupProcesses, run: Run, findings: Findings): Promise<void> {
  const steps = run.budget.quick ? scenario.load.steps.quick : scenario.load.steps.full;
  const rows = findings.scaling.tokens;
  run.log(`scenario ${scenario.id}: RSS after ${steps.join(' and ')} distinct tokens`);
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
      const newTokensPerSecond = ((step - (rows.at(-2)?.tokens ?? 0)) / seconds).toFixed(0);
      run.log(`    after ${step} distinct tokens: RSS ${megabytes(sample?.rssKb)} MB (peak ${megabytes(sample?.hwmKb)} MB), ${newTokensPerSecond} new tokens/s`);
    }
  } catch (error) {
    reportFailure(run, findings, scenario.id, error, first500);
  }
}
