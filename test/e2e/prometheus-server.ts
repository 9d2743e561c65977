/**
 * A real Prometheus (the pinned build scripts/install-tools.sh links into .tools/bin) scraping
 * given targets every second with given rule files, and the one question the dashboard and alert
 * tests ask it: does this expression parse, and does it return data?
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../dev/ports.js';
import { startProcess, TOOLS_BIN, waitFor } from '../../dev/processes.js';
import type { ManagedProcess } from '../../dev/processes.js';

/** problemWith's answer for a query that parsed and matched nothing. */
export const NO_SERIES = 'returned no series';

const PROMETHEUS_BIN = join(TOOLS_BIN, 'prometheus');
const PROMTOOL_BIN = join(TOOLS_BIN, 'promtool');

export interface ScrapeJob {
  readonly job: string;
  /** host:port of each /metrics endpoint. */
  readonly targets: readonly string[];
}

export interface RunningPrometheus {
  readonly url: string;
  readonly process: ManagedProcess;
  /** Evaluates an expression at the current time: an error text, or undefined when it returned data. */
  problemWith(expression: string): Promise<string | undefined>;
  /** The API's /api/v1/rules answer: every loaded rule with its health and last error. */
  rules(): Promise<LoadedRule[]>;
  stop(): Promise<void>;
}

interface LoadedRule {
  readonly name: string;
  readonly query: string;
  readonly health: string;
  readonly lastError?: string;
  readonly lastEvaluation: string;
}

interface ApiAnswer<T> {
  readonly status: 'success' | 'error';
  readonly data?: T;
  readonly errorType?: string;
  readonly error?: string;
}

export async function startPrometheus(jobs: readonly ScrapeJob[], ruleFiles: readonly string[]): Promise<RunningPrometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-prometheus-'));
  // JSON is YAML: the config needs no YAML writer.
  const config = {
    global: { scrape_interval: '1s', scrape_timeout: '900ms', evaluation_interval: '1s' },
    rule_files: ruleFiles,
    scrape_configs: jobs.map(({ job, targets }) => ({ job_name: job, static_configs: [{ targets }] })),
  };
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const process = startProcess(PROMETHEUS_BIN, [
    `--config.file=${join(dir, 'prometheus.yml')}`,
    `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  const ready = async (): Promise<boolean> => (await fetch(`${url}/-/ready`).catch(() => undefined))?.ok === true;
  await waitFor(ready, 30_000, () => `prometheus did not become ready:\n${process.output()}`);

  async function api<T>(path: string, params: Record<string, string> = {}): Promise<ApiAnswer<T>> {
    const response = await fetch(`${url}${path}?${new URLSearchParams(params).toString()}`);
    return (await response.json()) as ApiAnswer<T>;
  }

  return {
    url,
    process,
    async problemWith(expression) {
      const answer = await api<{ resultType: string; result: unknown[] | [number, string] }>('/api/v1/query', { query: expression });
      if (answer.status !== 'success') return `${answer.errorType ?? 'error'}: ${answer.error ?? 'no error text'}`;
      const data = answer.data;
      if (data === undefined) return 'no data in the answer';
      // A vector or matrix with no series is "No data" on a dashboard and a rule that never fires.
      if ((data.resultType === 'vector' || data.resultType === 'matrix') && data.result.length === 0) return NO_SERIES;
      return undefined;
    },
    async rules() {
      const answer = await api<{ groups: { rules: LoadedRule[] }[] }>('/api/v1/rules');
      return answer.data?.groups.flatMap((group) => group.rules) ?? [];
    },
    async stop() {
      await process.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `promtool check rules FILE`: its exit status and output. */
export async function promtoolCheckRules(file: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(PROMTOOL_BIN, ['check', 'rules', file]);
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` || failed.message };
  }
}
