/**
 * Worker mode's primary process (`server.workers` > 1). It decides nothing: it forks the workers
 * (worker-pool.ts), each a whole sidecar with its own pipeline and caches, which share the gRPC
 * listening sockets; node:cluster hands each new connection to the next worker in turn, so
 * Envoy's HTTP/2 connections (one or more per Envoy worker thread) spread over them.
 *
 * The primary owns what must be one per pod:
 * - the admin listener: readiness is every worker's (combined-status.ts), /metrics aggregates the
 *   workers' registries (prom-client's AggregatorRegistry) plus the primary's own, and the JWKS
 *   is the one the workers report (they load the same keys);
 * - reload: the file watch and SIGHUP are the process control's, and reach every worker as a message;
 * - the SpiceDB Watch behind the decision caches (watch-relay.ts): one stream, relayed to every worker;
 * - drain: every worker drains at once, and the primary exits when they have.
 */
import { AggregatorRegistry } from 'prom-client';
import { startAdminListener } from '../admin/admin-server.js';
import type { AdminState } from '../admin/admin-server.js';
import type { LoadedConfig } from '../config/load.js';
import { resolveConfig } from '../config/resolve.js';
import type { PublicKeyDocuments } from '../core/ports.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import { preflight } from '../lifecycle/preflight.js';
import { Teardown } from '../lifecycle/teardown.js';
import type { Logger } from '../observability/logger.js';
import { PrimaryMetrics } from '../observability/metrics.js';
import { combineReadiness } from './combined-status.js';
import { PrimaryWatchRelay } from './watch-relay.js';
import { WorkerPool } from './worker-pool.js';
import { WorkerScrape } from './worker-scrape.js';
import type { WorkerMetrics } from './worker-scrape.js';

export interface PrimaryOptions {
  readonly loaded: LoadedConfig;
  readonly workers: number;
  readonly adminAddress: string;
  readonly logger: Logger;
  /** Where a reload reads the configuration again, for the Watch it relays. */
  readonly env: NodeJS.ProcessEnv;
}

export interface RunningPrimary extends Lifecycle {
  readonly adminPort: number;
  readonly grpcPort: number;
  /** Every worker re-reads the configuration; the relayed Watch follows what the file says now. */
  reload(why: string): void;
  /** Every worker drains; resolves once all have exited and the admin listener is closed. */
  drain(): Promise<void>;
}

/** How long a scrape waits for each worker; Prometheus's own scrape timeout is 10 s by default. */
const WORKER_SCRAPE_TIMEOUT_MS = 2_000;

export async function startPrimary(options: PrimaryOptions): Promise<RunningPrimary> {
  const { logger, loaded } = options;
  // Refused here with validate's problems, before any worker starts (each runs it again).
  await preflight(loaded, { env: options.env });
  const teardown = new Teardown((part, error) => logger.error({ err: error, part }, 'error while closing'));
  // One SpiceDB Watch for the pod, relayed to the workers; a reload re-reads what it watches.
  const watchRelay = new PrimaryWatchRelay(logger);
  watchRelay.follow(loaded);
  teardown.add('watch relay', () => watchRelay.close());
  const metrics = new PrimaryMetrics();
  metrics.workers.set({ state: 'configured' }, options.workers);
  const scrape = new WorkerScrape(WORKER_SCRAPE_TIMEOUT_MS);
  const pool = new WorkerPool({ workers: options.workers, drainSeconds: loaded.config.server.drainSeconds, logger, metrics, scrape, watchRelay });
  const admin = await startAdminListener(options.adminAddress, primaryAdmin(pool, metrics, scrape, logger)).catch(async (error: unknown) => {
    await teardown.close();
    throw error;
  });
  teardown.add('admin listener', () => admin.close());
  teardown.add('workers', () => pool.stop());
  const listening = await pool.start().catch(async (error: unknown) => {
    await teardown.close();
    throw error;
  });
  logger.info({ workers: options.workers, grpc: listening.grpcPort, admin: admin.port, listeners: listening.listenerPorts }, 'jwtauth-sidecar listening (worker mode)');
  return {
    adminPort: admin.port,
    grpcPort: listening.grpcPort,
    reload(why) {
      if (pool.stopping) return;
      try {
        watchRelay.follow(resolveConfig(loaded.origin, options.env));
      } catch {
        // The workers read the same file and report why it does not load.
      }
      pool.send({ type: 'jwtauth:reload', why });
    },
    drain: () => teardown.close(),
  };
}

/** The pod's admin listener, served from the workers' reports. */
function primaryAdmin(pool: WorkerPool, metrics: PrimaryMetrics, scrape: WorkerScrape, logger: Logger): AdminState {
  return {
    ready: () => combineReadiness(pool.statuses(), pool.configured, pool.stopping),
    publicKeys: (): PublicKeyDocuments | undefined => {
      for (const status of pool.statuses()) {
        const keys = status?.publicKeys;
        if (keys) return { jwks: () => keys.jwks, openidConfiguration: () => keys.openidConfiguration };
      }
      return undefined;
    },
    metrics: async () => {
      metrics.workers.set({ state: 'running' }, pool.workers.length);
      const answered: WorkerMetrics[] = [];
      for (const { worker, metrics: reply } of await scrape.collect(pool.workers)) {
        metrics.workerScrapeUp.set({ worker: String(worker.id) }, reply === undefined ? 0 : 1);
        if (reply !== undefined) answered.push(reply);
        else logger.warn({ worker: worker.id, timeoutMs: WORKER_SCRAPE_TIMEOUT_MS }, 'a worker did not answer the metrics scrape in time; left out of it');
      }
      const workers = AggregatorRegistry.aggregate(answered);
      const [fromWorkers, primary] = await Promise.all([workers.metrics(), metrics.registry.metrics()]);
      return { contentType: workers.contentType, body: `${fromWorkers}${primary}` };
    },
  };
}
