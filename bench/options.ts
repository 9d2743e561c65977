/**
 * `npm run bench`'s command line, read into a value. Nothing here prints or exits: the entry point
 * (run.ts) decides what to do with help text and refusals.
 */
import { FULL, QUICK } from './measure.js';
import type { Budget } from './measure.js';
import { isThroughEnvoy, SCENARIO_GROUPS } from '../dev/bench/scenarios.js';
import type { ScenarioGroup } from '../dev/bench/scenarios.js';

const USAGE = `npm run bench [-- FLAGS]   (or node dist/bench/run.js FLAGS after npm run build)

  --quick            CI smoke: every scenario for a few seconds, results in a temp dir,
                     exit 1 if any scenario produced no numbers
  --only=ID,ID       only scenarios whose id starts with one of these (ids: dev/bench/scenarios.ts);
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

const FLAGS = ['quick', 'only', 'compare', 'rounds', 'label', 'out', 'noisy', 'profile', 'help'];

export type ComparePair = readonly [baseline: string, variant: string];

export interface BenchOptions {
  /** The CI smoke mode: short rounds, results in a temp dir. */
  readonly quick: boolean;
  /** Rounds and their lengths, from --quick, --noisy and --rounds. */
  readonly budget: Budget;
  /** --only's id prefixes. */
  readonly only: readonly string[] | undefined;
  /** --compare: [baseline, variant] pairs of through-Envoy scenario ids. */
  readonly comparePairs: readonly ComparePair[] | undefined;
  readonly label: string | undefined;
  readonly out: string | undefined;
  readonly profile: boolean;
}

export type BenchArgs =
  | { readonly kind: 'run'; readonly options: BenchOptions }
  /** --help: the text for stdout. */
  | { readonly kind: 'help'; readonly text: string }
  /** Arguments the bench refuses: the text for stderr. */
  | { readonly kind: 'refused'; readonly message: string };

/** A flag's value: '' when given bare, undefined when absent. */
function flagValue(args: readonly string[], name: string): string | undefined {
  const hit = args.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (hit === undefined) return undefined;
  return hit.includes('=') ? hit.slice(hit.indexOf('=') + 1) : '';
}

function helpText(): string {
  const ids = SCENARIO_GROUPS.flatMap((group) => group.scenarios.map((scenario) => `${scenario.id}${group.onlyWhenNamed ? '   (only when named)' : ''}`));
  return `${USAGE}\nScenarios, in the order they run:\n  ${ids.join('\n  ')}\n`;
}

/** --compare's pairs, or why they are refused. */
function parseCompare(ids: readonly string[], only: readonly string[] | undefined): { readonly pairs: ComparePair[] } | { readonly problem: string } {
  const throughEnvoy = new Set(SCENARIO_GROUPS.flatMap((group) => group.scenarios.filter(isThroughEnvoy).map((scenario) => scenario.id)));
  const bad = ids.filter((id) => !throughEnvoy.has(id));
  const problem =
    only !== undefined ? '--compare takes no --only'
    : ids.length < 2 || ids.length % 2 !== 0 ? '--compare takes pairs of scenario ids: BASELINE,VARIANT[,BASELINE,VARIANT…]'
    : bad.length > 0 ? `--compare takes ids of scenarios through Envoy (see --help); not ${bad.join(', ')}`
    : undefined;
  if (problem !== undefined) return { problem };
  return { pairs: Array.from({ length: ids.length / 2 }, (_, i) => [ids[2 * i] as string, ids[2 * i + 1] as string] as const) };
}

export function parseBenchArgs(args: readonly string[]): BenchArgs {
  // A mistyped flag would otherwise be ignored and start the full run (~12 minutes).
  const unknown = args.filter((arg) => !FLAGS.some((name) => arg === `--${name}` || arg.startsWith(`--${name}=`)));
  if (unknown.length > 0) return { kind: 'refused', message: `unknown argument(s): ${unknown.join(' ')}\n\n${USAGE}` };
  const flag = (name: string): string | undefined => flagValue(args, name);
  if (flag('help') !== undefined) return { kind: 'help', text: helpText() };
  const rounds = flag('rounds');
  if (rounds !== undefined && !(Number.isInteger(Number(rounds)) && Number(rounds) >= 1)) {
    return { kind: 'refused', message: `--rounds takes a whole number of at least 1, not ${JSON.stringify(rounds)}\n` };
  }
  const quick = flag('quick') !== undefined;
  const noisy = flag('noisy');
  const only = flag('only')?.split(',').filter(Boolean);
  const compareIds = flag('compare')?.split(',').filter(Boolean);
  const compare = compareIds === undefined ? undefined : parseCompare(compareIds, only);
  if (compare !== undefined && 'problem' in compare) return { kind: 'refused', message: `${compare.problem}\n` };
  const budget: Budget = {
    ...(quick ? QUICK : FULL),
    // The outside CPU above which a round is rerun (once).
    ...(noisy ? { noisyCores: Number(noisy), maxReruns: 1 } : {}),
    ...(rounds ? { rounds: Number(rounds) } : {}),
  };
  return {
    kind: 'run',
    options: { quick, budget, only, comparePairs: compare?.pairs, label: flag('label'), out: flag('out'), profile: flag('profile') !== undefined },
  };
}

/** Whether the run includes this scenario of `group`. */
export function runsScenario(options: BenchOptions, group: ScenarioGroup, id: string): boolean {
  const { only, comparePairs } = options;
  if (comparePairs !== undefined) return comparePairs.some((pair) => pair.includes(id));
  const wanted = only === undefined || only.some((prefix) => id.startsWith(prefix));
  return wanted && (!group.onlyWhenNamed || only?.includes(id) === true);
}
