/**
 * The primary's scrape of its workers' metrics (worker mode). prom-client's own cluster scrape
 * waits for every worker and fails the whole scrape, process metrics of the primary included,
 * when one does not answer in 5 s: one stuck worker blinds the pod's dashboards exactly when they
 * are needed. Here each worker has its own deadline; one that misses it is left out of that scrape
 * and reported as such (`jwtauth_worker_scrape_up{worker}` 0), and the rest are aggregated.
 */
import type { Worker } from 'node:cluster';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { MetricsReplyMessage } from './messages.js';

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

interface Waiting {
  readonly resolve: (metrics: WorkerMetrics | undefined) => void;
  readonly timer: NodeJS.Timeout;
}

export class WorkerScrape {
  #nextId = 0;
  readonly #waiting = new Map<string, Waiting>();

  constructor(private readonly timeoutMs: number) {}

  /** Asks every worker for its metrics; each answer, or undefined for a worker that did not answer in time. */
  collect(workers: readonly Worker[]): Promise<Array<{ readonly worker: Worker; readonly metrics: WorkerMetrics | undefined }>> {
    const id = ++this.#nextId;
    return Promise.all(
      workers.map(
        (worker) =>
          new Promise<{ worker: Worker; metrics: WorkerMetrics | undefined }>((resolve) => {
            const key = `${id}:${worker.id}`;
            const done = (metrics: WorkerMetrics | undefined): void => {
              const waiting = this.#waiting.get(key);
              if (waiting === undefined) return;
              clearTimeout(waiting.timer);
              this.#waiting.delete(key);
              resolve({ worker, metrics });
            };
            const timer = setTimeout(() => done(undefined), this.timeoutMs);
            timer.unref();
            this.#waiting.set(key, { resolve: done, timer });
            if (worker.isConnected()) worker.send({ type: 'jwtauth:metrics-request', id });
            else done(undefined);
          }),
      ),
    );
  }

  /** A worker's reply; one that comes after its deadline is dropped. */
  receive(worker: Worker, message: MetricsReplyMessage): void {
    this.#waiting.get(`${message.id}:${worker.id}`)?.resolve(message.metrics);
  }
}
