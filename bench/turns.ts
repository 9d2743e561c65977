/**
 * How a scenario's rounds are taken: all of them back to back, or in turns with other scenarios'
 * (scenarios.ts, `alternatesRounds`; --compare). A scenario that fails is reported and drops out;
 * the others go on.
 */
import { loadAverage } from '../dev/proc.js';
import { reportFailure } from './run-state.js';
import type { FailureSummary, Findings, Measurable, Run } from './run-state.js';

export interface Preparer {
  readonly id: string;
  readonly prepare: () => Promise<Measurable>;
}

/** Prepares, measures every round, finishes. */
export async function measureAlone(preparer: Preparer, run: Run, findings: Findings, summary: FailureSummary): Promise<void> {
  try {
    const scenario = await preparer.prepare();
    await scenario.measureRounds(run.budget.rounds);
    scenario.finish();
  } catch (error) {
    reportFailure(run, findings, preparer.id, error, summary);
  }
}

/**
 * Scenarios in turns, one round each, every one prepared first. The order flips every round
 * (A B, B A, A B …), so neither always goes first after the other has warmed or cooled the
 * machine, and a steady drift in outside load cancels over each pair of rounds.
 */
export async function measureTakingTurns(preparers: readonly Preparer[], run: Run, findings: Findings, summary: FailureSummary): Promise<void> {
  const taking: Measurable[] = [];
  for (const { id, prepare } of preparers) {
    try {
      taking.push(await prepare());
    } catch (error) {
      reportFailure(run, findings, id, error, summary);
    }
  }
  const dropped = new Set<Measurable>();
  const { rounds } = run.budget;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? taking : [...taking].reverse();
    for (const scenario of order.filter((entry) => !dropped.has(entry))) {
      run.log(`  ${scenario.id}: round ${round + 1} of ${rounds}, taking turns (load average ${loadAverage().join(' ')})`);
      try {
        await scenario.measureRounds(1);
      } catch (error) {
        dropped.add(scenario);
        reportFailure(run, findings, scenario.id, error, summary);
      }
    }
  }
  for (const scenario of taking.filter((entry) => !dropped.has(entry))) {
    try {
      scenario.finish();
    } catch (error) {
      reportFailure(run, findings, scenario.id, error, summary);
    }
  }
}
