/**
 * What the parts of a bench run share: the run itself (work dir, keys, SpiceDB, ports, budget,
 * log), the findings the results are written from, and the processes a scenario group starts.
 */
import type { RunningAuthorizer, Workspace } from './authorizers.js';
import type { Log } from './log.js';
import type { Budget } from './measure.js';
import type { EnvoyProcess } from '../dev/envoy.js';
import type { DirectResult, ScalingResults, ScenarioResult } from './report.js';
import type { Port } from '../dev/bench/scenarios.js';

/** What every scenario of a run shares. */
export interface Run extends Workspace {
  readonly token: string;
  readonly spicedbPid: number | undefined;
  readonly ports: Readonly<Record<Port, number>>;
  readonly budget: Budget;
  readonly log: Log;
}

/** What the run reports, filled in scenario by scenario. */
export interface Findings {
  readonly scenarios: ScenarioResult[];
  readonly direct: DirectResult[];
  readonly scaling: ScalingResults;
  readonly profiles: Record<string, unknown>;
  readonly failures: string[];
}

/** What a group has started so far: each is started when a scenario first needs it. */
export interface GroupProcesses {
  authorizer(): Promise<RunningAuthorizer>;
  envoy(): Promise<EnvoyProcess>;
}

/**
 * A scenario whose expectations held, ready to measure. Its rounds are taken all at once, or in
 * turns with other scenarios' (scenarios.ts, `alternatesRounds`); `finish` adds its result.
 */
export interface Measurable {
  readonly id: string;
  measureRounds(rounds: number): Promise<void>;
  finish(): void;
}

/** How much of a failure's message goes into the results: the first lines, or the first 500 characters. */
export type FailureSummary = (message: string) => string;
export const firstLines: FailureSummary = (message) => message.split('\n').slice(0, 6).join('\n');
export const first500: FailureSummary = (message) => message.slice(0, 500);

/** Records a scenario that produced no numbers; the run goes on. */
export function reportFailure(run: Run, findings: Findings, id: string, error: unknown, summary: FailureSummary): void {
  const message = (error as Error).message;
  findings.failures.push(`${id}: ${summary(message)}`);
  run.log(`scenario ${id} FAILED: ${message.slice(0, 1500)}`);
}
