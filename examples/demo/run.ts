/**
 * `npm run demo`: the seed scenario end to end (scenario.ts), printed as a trace. Exits 0 when
 * every expectation held, 1 naming the ones that did not, 2 when the demo could not start.
 * Every process it started is stopped on the way out, including on Ctrl-C.
 */
import { formatDecision } from './decisions.js';
import { onStopSignal } from '../../dev/processes.js';
import { runScenario } from './scenario.js';
import type { ExpectationResult } from './scenario.js';

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

// dev/processes.ts then SIGKILLs each child's process group; the exit handler removes the temp files.
onStopSignal((signal) => out(`\n${signal}: stopping everything the demo started`));

let index = 0;
function print(result: ExpectationResult): void {
  index += 1;
  out();
  out(`${result.passed ? '✔' : '✘'} ${index}. ${result.title}`);
  for (const line of result.narrative) out(`    ${line}`);
  if (result.decisions.length > 0) out('    sidecar decisions:');
  for (const decision of result.decisions) for (const line of formatDecision(decision, '      ')) out(line);
  for (const failure of result.failures) out(`    FAILED: ${failure}`);
}

async function main(): Promise<number> {
  out('jwtauth-sidecar demo: the seed scenario with real Envoy, SpiceDB and one sidecar per service');
  let result;
  try {
    result = await runScenario({ progress: (message) => out(`  ${message}`), onExpectation: print });
  } catch (error) {
    out(`\nthe demo could not run: ${error instanceof Error ? error.message : String(error)}`);
    return 2;
  }
  const failed = result.expectations.filter((e) => !e.passed);
  out();
  out(
    `${result.expectations.length - failed.length}/${result.expectations.length} expectations held ` +
      `(start-up ${(result.startupMs / 1000).toFixed(1)} s, total ${(result.totalMs / 1000).toFixed(1)} s)`,
  );
  if (failed.length > 0) {
    out(`failed: ${failed.map((e) => e.id).join(', ')}`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    out(`demo crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(2);
  },
);
