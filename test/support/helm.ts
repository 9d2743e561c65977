/**
 * The pinned helm (scripts/install-tools.sh helm) over charts/jwtauth-sidecar: lint and template,
 * each a real helm process, so what the tests read is what `helm install` would apply.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { TOOLS_BIN } from '../../dev/processes.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { manifestsOf } from './pod-wiring.js';
import type { Manifest } from './pod-wiring.js';

export const CHART = join(PACKAGE_ROOT, 'charts', 'jwtauth-sidecar');
const HELM = join(TOOLS_BIN, 'helm');

export interface HelmRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function helm(args: readonly string[]): HelmRun {
  if (!existsSync(HELM)) throw new Error(`${HELM} is missing: run bash scripts/install-tools.sh helm`);
  // HELM_*_HOME under a throwaway place: no user's repositories or plugins change what renders.
  const run = spawnSync(HELM, [...args], { encoding: 'utf8', env: { ...process.env, HELM_CONFIG_HOME: '/tmp/jwtauth-helm/config', HELM_CACHE_HOME: '/tmp/jwtauth-helm/cache', HELM_DATA_HOME: '/tmp/jwtauth-helm/data' } });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** `helm template` of the chart as release `gwadmin` in namespace `cloud`; throws with helm's message when it fails. */
export function renderChart(args: readonly string[] = []): { text: string; manifests: Manifest[] } {
  const run = helm(['template', 'gwadmin', CHART, '--namespace', 'cloud', ...args]);
  if (run.status !== 0) throw new Error(`helm template ${args.join(' ')} failed:\n${run.stderr}`);
  return { text: run.stdout, manifests: manifestsOf(run.stdout) };
}
