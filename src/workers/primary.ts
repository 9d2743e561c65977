/**
 * Worker mode's primary process (`server.workers` > 1). It decides nothing: it forks the workers
 * (node:cluster), each a whole sidecar with its own pipeline and caches, which share the gRPC
 * listening sockets; node:cluster hands each new connection to the next worker in turn, so
 * Envoy's HTTP/2 connections (one or more per Envoy worker thread) spread over them.
 *
 * The primary owns what must be one per pod:
 * - the admin listener: readiness is every worker's (combined-status.ts), /metrics aggregates the
 *   workers' registries (prom-client's AggregatorRegistry) plus the primary's own, and the JWKS
 *   is the one the workers report (they load the same keys);
 * - reload: the file watch and SIGHUP are the command's, and reach every worker as a message;
 * - the SpiceDB Watch behind the decision caches (watch-relay.ts): one stream, relayed to every worker;
 * - drain: every worker drains at once, and the primary exits when they have;
 * - a worker that dies is logged, counted and replaced (backing off while it keeps dying young),
 *   and the sidecar is unready until it is back.
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { startAdminListener } from '../admin/admin-server.js';
import type { PublicKeyDocuments } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import { PrimaryMetrics } from '../observability/metrics.js';
import type { SidecarStatus } from '../serve.js';
import { combineReadiness } from './combined-status.js';
import { isWorkerMessage } from './messages.js';
import type { ListeningMessage, PrimaryMessage } from './messages.js';
import type { PrimaryWatchRelay } from './watch-relay.js';
import { WorkerScrape } from './worker-scrape.js';
import type { WorkerMetrics } from './worker-scrape.js';

export interface PrimaryOptions {
  readonly workers: number;
  readonly adminAddress: string;
  /** Each worker's drain takes this long before its listeners close; the primary waits a little more. */
  readonly drainSeconds: number;
  readonly logger: Logger;
  /** The pod's SpiceDB Watch, relayed to every worker; closed when the primary stops. */
  readonly watchRelay?: PrimaryWatchRelay;
}

export interface RunningPrimary {
  readonly adminPort: number;
  readonly grpcPort: number;
  /** Every worker re-reads the configuration. */
  reload(why: string): void;
  /** Every worker drains; resolves once all have exited and the admin listener is closed. */
  drain(): Promise<void>;
}

/** A worker that dies within this long of starting died young: its replacement waits longer each time. */
const YOUNG_DEATH_MS = 10_000;
const RESTART_DELAY_MS = { first: 500, max: 30_000 };
/** After the workers' own drain, how long they get to exit before SIGKILL. */
const EXIT_GRACE_MS = 5_000;
/** How long a scrape waits for each worker; Prometheus's own scrape timeout is 10 s by default. */
const WORKER_SCRAPE_TIMEOUT_MS = 2_000;

interface WorkerState {
  readonly startedAt: number;
  status: SidecarStatus | undefined;
  listening: ListeningMessage | undefined;
}

function send(worker: Worker, message: PrimaryMessage): void {
  if (worker.isConnected()) worker.send(message);
}

export async function startPrimary(options: PrimaryOptions): Promise<RunningPrimary> {
  const { logger } = options;
  const states = new Map<Worker, WorkerState>();
  let draining = false;
  let restartDelay = RESTART_DELAY_MS.first;

  const own = new PrimaryMetrics();
  own.workers.set({ state: 'configured' }, options.workers);
  const scrape = new WorkerScrape(WORKER_SCRAPE_TIMEOUT_MS);

  const readiness = () => combineReadiness([...states.values()].map((state) => state.status), options.workers, draining);
  const publicKeys = (): PublicKeyDocuments | undefined => {
    for (const { status } of states.values()) {
      const keys = status?.publicKeys;
      if (keys) return { jwks: () => keys.jwks, openidConfiguration: () => keys.openidConfiguration };
    }
    return undefined;
  };

  const admin = await startAdminListener(options.adminAddress, {
    ready: readiness,
    publicKeys,
    metrics: async () => {
      own.workers.set({ state: 'running' }, states.size);
      const replies = await scrape.collect([...states.keys()]);
      const answered: WorkerMetrics[] = [];
      for (const { worker, metrics } of replies) {
        own.workerScrapeUp.set({ worker: String(worker.id) }, metrics === undefined ? 0 : 1);
        if (metrics !== undefined) answered.push(metrics);
        else logger.warn({ worker: worker.id, timeoutMs: WORKER_SCRAPE_TIMEOUT_MS }, 'a worker did not answer the metrics scrape in time; left out of it');
      }
      const workers = AggregatorRegistry.aggregate(answered);
      const [fromWorkers, primary] = await Promise.all([workers.metrics(), own.registry.metrics()]);
      return { contentType: workers.contentType, body: `${fromWorkers}${primary}` };
    },
  });

  let allListening: (message: ListeningMessage) => void = () => undefined;
  let startFailed: (error: Error) => void = () => undefined;
  const started = new Promise<ListeningMessage>((resolve, reject) => {
    allListening = resolve;
    startFailed = reject;
  });
  let startingUp = true;

  const fork = (): void => {
    const worker = cluster.fork();
    states.set(worker, { startedAt: Date.now(), status: undefined, listening: undefined });
    worker.on('message', (message: unknown) => {
      const state = states.get(worker);
      if (!state || !isWorkerMessage(message)) return;
      switch (message.type) {
        case 'jwtauth:status':
          state.status = message.status;
          break;
        case 'jwtauth:watch-subscribe':
          options.watchRelay?.subscribe(worker);
          break;
        case 'jwtauth:metrics':
          scrape.receive(worker, message);
          break;
        case 'jwtauth:listening':
          state.listening = message;
          if ([...states.values()].every((each) => each.listening !== undefined) && states.size === options.workers) allListening(message);
          break;
      }
    });
    worker.on('exit', (code, signal) => {
      const state = states.get(worker);
      states.delete(worker);
      options.watchRelay?.unsubscribe(worker);
      own.workerScrapeUp.remove({ worker: String(worker.id) });
      if (draining) return;
      if (startingUp) {
        // A worker that cannot start (a port in use, say) will not start on a second try either.
        startFailed(new Error(`worker ${worker.id} exited during start-up (${signal ?? `code ${code}`}); see its log lines above`));
        return;
      }
      own.workerRestarts.inc();
      const lived = Date.now() - (state?.startedAt ?? Date.now());
      restartDelay = lived < YOUNG_DEATH_MS ? Math.min(restartDelay * 2, RESTART_DELAY_MS.max) : RESTART_DELAY_MS.first;
      logger.error({ worker: worker.id, code, signal, livedMs: lived, restartInMs: restartDelay }, 'worker exited unexpectedly; not ready until it is replaced');
      setTimeout(() => {
        if (!draining) fork();
      }, restartDelay).unref();
    });
  };

  const stopAll = async (): Promise<void> => {
    const exits = [...states.keys()].map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
    for (const worker of states.keys()) send(worker, { type: 'jwtauth:drain' });
    const force = setTimeout(() => {
      for (const worker of states.keys()) {
        logger.error({ worker: worker.id }, 'worker still running after its drain; killed');
        worker.process.kill('SIGKILL');
      }
    }, options.drainSeconds * 1000 + EXIT_GRACE_MS);
    await Promise.all(exits);
    clearTimeout(force);
    await options.watchRelay?.close();
    await admin.close();
  };

  for (let i = 0; i < options.workers; i++) fork();
  let listening: ListeningMessage;
  try {
    listening = await started;
  } catch (error) {
    draining = true;
    await stopAll();
    throw error;
  }
  startingUp = false;
  logger.info({ workers: options.workers, grpc: listening.grpcPort, admin: admin.port, listeners: listening.listenerPorts }, 'jwtauth-sidecar listening (worker mode)');

  let drained: Promise<void> | undefined;
  return {
    adminPort: admin.port,
    grpcPort: listening.grpcPort,
    reload(why) {
      if (draining) return;
      for (const worker of states.keys()) send(worker, { type: 'jwtauth:reload', why });
    },
    drain() {
      draining = true;
      drained ??= stopAll();
      return drained;
    },
  };
}
