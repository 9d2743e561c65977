/**
 * Worker mode's forked workers (node:cluster): each a whole sidecar whose messages (status,
 * metrics, the Watch subscription) land here. A worker that dies is logged, counted and replaced,
 * backing off while it keeps dying young; one that dies while the pool is still starting fails the
 * start, since it will not start on a second try either (a port in use, say).
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.js';
import type { PrimaryMetrics } from '../observability/metrics.js';
import type { SidecarStatus } from '../lifecycle/readiness.js';
import { isWorkerMessage } from './messages.js';
import type { ListeningMessage, PrimaryMessage } from './messages.js';
import type { PrimaryWatchRelay } from './watch-relay.js';
import type { WorkerScrape } from './worker-scrape.js';

/** A worker that dies within this long of starting died young: its replacement waits longer each time. */
const YOUNG_DEATH_MS = 10_000;
const RESTART_DELAY_MS = { first: 500, max: 30_000 };
/** After the workers' own drain, how long they get to exit before SIGKILL. */
const EXIT_GRACE_MS = 5_000;

interface WorkerState {
  readonly startedAt: number;
  status: SidecarStatus | undefined;
  listening: ListeningMessage | undefined;
}

export interface WorkerPoolOptions {
  readonly workers: number;
  /** Each worker's drain takes this long before its listeners close; the pool waits a little more. */
  readonly drainSeconds: number;
  readonly logger: Logger;
  readonly metrics: PrimaryMetrics;
  readonly scrape: WorkerScrape;
  readonly watchRelay?: PrimaryWatchRelay | undefined;
}

export class WorkerPool {
  readonly #states = new Map<Worker, WorkerState>();
  readonly #options: WorkerPoolOptions;
  #restartDelay = RESTART_DELAY_MS.first;
  #startingUp = true;
  #stopping = false;
  #started: { resolve(message: ListeningMessage): void; reject(error: Error): void } | undefined;

  constructor(options: WorkerPoolOptions) {
    this.#options = options;
  }

  /** How many workers the pool keeps running. */
  get configured(): number {
    return this.#options.workers;
  }

  get workers(): readonly Worker[] {
    return [...this.#states.keys()];
  }

  /** The last status of each running worker (none yet for one still starting). */
  statuses(): (SidecarStatus | undefined)[] {
    return [...this.#states.values()].map((state) => state.status);
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Forks every worker; resolves when all listen, rejects (after stopping the rest) when one dies first. */
  async start(): Promise<ListeningMessage> {
    const listening = new Promise<ListeningMessage>((resolve, reject) => (this.#started = { resolve, reject }));
    for (let i = 0; i < this.#options.workers; i++) this.#fork();
    try {
      return await listening;
    } catch (error) {
      await this.stop();
      throw error;
    } finally {
      this.#startingUp = false;
    }
  }

  send(message: PrimaryMessage): void {
    for (const worker of this.#states.keys()) if (worker.isConnected()) worker.send(message);
  }

  /** Every worker drains and exits; one still running after its drain and a grace is killed. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const exits = this.workers.map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
    this.send({ type: 'jwtauth:drain' });
    const force = setTimeout(() => {
      for (const worker of this.#states.keys()) {
        this.#options.logger.error({ worker: worker.id }, 'worker still running after its drain; killed');
        worker.process.kill('SIGKILL');
      }
    }, this.#options.drainSeconds * 1000 + EXIT_GRACE_MS);
    await Promise.all(exits);
    clearTimeout(force);
  }

  #fork(): void {
    const worker = cluster.fork();
    this.#states.set(worker, { startedAt: Date.now(), status: undefined, listening: undefined });
    worker.on('message', (message: unknown) => this.#receive(worker, message));
    worker.on('exit', (code: number | null, signal: string | null) => this.#exited(worker, code, signal));
  }

  #receive(worker: Worker, message: unknown): void {
    const state = this.#states.get(worker);
    if (!state || !isWorkerMessage(message)) return;
    switch (message.type) {
      case 'jwtauth:status':
        state.status = message.status;
        break;
      case 'jwtauth:watch-subscribe':
        this.#options.watchRelay?.subscribe(worker);
        break;
      case 'jwtauth:metrics':
        this.#options.scrape.receive(worker, message);
        break;
      case 'jwtauth:listening':
        state.listening = message;
        if (this.#states.size === this.#options.workers && [...this.#states.values()].every((each) => each.listening !== undefined)) this.#started?.resolve(message);
        break;
    }
  }

  #exited(worker: Worker, code: number | null, signal: string | null): void {
    const { logger, metrics, watchRelay } = this.#options;
    const state = this.#states.get(worker);
    this.#states.delete(worker);
    watchRelay?.unsubscribe(worker);
    metrics.workerScrapeUp.remove({ worker: String(worker.id) });
    if (this.#stopping) return;
    if (this.#startingUp) {
      this.#started?.reject(new Error(`worker ${worker.id} exited during start-up (${signal ?? `code ${code}`}); see its log lines above`));
      return;
    }
    metrics.workerRestarts.inc();
    const lived = Date.now() - (state?.startedAt ?? Date.now());
    this.#restartDelay = lived < YOUNG_DEATH_MS ? Math.min(this.#restartDelay * 2, RESTART_DELAY_MS.max) : RESTART_DELAY_MS.first;
    logger.error({ worker: worker.id, code, signal, livedMs: lived, restartInMs: this.#restartDelay }, 'worker exited unexpectedly; not ready until it is replaced');
    setTimeout(() => {
      if (!this.#stopping) this.#fork();
    }, this.#restartDelay).unref();
  }
}
