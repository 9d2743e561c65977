/**
 * A small in-process load generator: `concurrency` workers send requests over keep-alive
 * HTTP/1.1 connections to Envoy for `durationMs`, recording for each request when it started and
 * ended, the status and the `x-jwtauth-reason`. Every request carries a unique `x-load-id`, so a
 * test can match what the app behind Envoy received against what the client was told.
 */
import { Agent, request as httpRequest } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http';

export interface LoadRequest {
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly method?: string;
  /** `:authority`; default 127.0.0.1:port. */
  readonly authority?: string;
  /** Free-form label for the test (e.g. which subject and resource). */
  readonly tag?: string;
}

export interface LoadResult {
  readonly id: string;
  readonly tag: string;
  readonly start: number;
  readonly end: number;
  /** 0 when the stream failed without a response. */
  readonly status: number;
  readonly reason: string | undefined;
  readonly error: string | undefined;
}

export interface LoadOptions {
  readonly port: number;
  readonly durationMs: number;
  readonly concurrency: number;
  /** Builds request number `i`. */
  readonly next: (i: number) => LoadRequest;
  /** Per-request client timeout (default 5 s). */
  readonly timeoutMs?: number;
  /** Pause between requests of one worker (a steady rate instead of closed-loop). */
  readonly pauseMs?: number;
  readonly onResult?: (result: LoadResult) => void;
}

let idPrefix = 0;

/**
 * HTTP/1.1 with keep-alive. (HTTP/2 would be cheaper, but the shared echo upstream's h2 path
 * fails on Node 20 with an INTERNAL_ERROR session close, so Envoy's h2 upstream streams to the app
 * are refused; HTTP/1.1 end to end avoids that.)
 */
export class LoadClient {
  private readonly agent: Agent;
  constructor(
    private readonly port: number,
    maxSockets = 64,
  ) {
    this.agent = new Agent({ keepAlive: true, maxSockets });
  }

  request(request: LoadRequest, id: string, timeoutMs = 5000): Promise<Omit<LoadResult, 'tag'>> {
    const start = performance.now();
    return new Promise((resolve) => {
      let settled = false;
      const done = (status: number, reason: string | undefined, error: string | undefined): void => {
        if (settled) return;
        settled = true;
        resolve({ id, start, end: performance.now(), status, reason, error });
      };
      const headers: OutgoingHttpHeaders = { host: request.authority ?? `127.0.0.1:${this.port}`, 'x-load-id': id, ...request.headers };
      const req = httpRequest({ host: '127.0.0.1', port: this.port, path: request.path, method: request.method ?? 'GET', headers, agent: this.agent }, (res) => {
        const r = res.headers['x-jwtauth-reason'];
        const reason = Array.isArray(r) ? r.join(',') : r;
        res.on('data', () => undefined);
        res.on('end', () => done(res.statusCode ?? 0, reason, undefined));
        res.on('error', (error) => done(res.statusCode ?? 0, reason, error.message));
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error('client timeout')));
      req.on('error', (error) => done(0, undefined, error.message));
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export async function runLoad(options: LoadOptions): Promise<LoadResult[]> {
  const prefix = `${process.pid}-${++idPrefix}`;
  const client = new LoadClient(options.port, options.concurrency);
  const results: LoadResult[] = [];
  const stopAt = performance.now() + options.durationMs;
  let i = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const n = i++;
      const request = options.next(n);
      const result = { ...(await client.request(request, `${prefix}-${n}`, options.timeoutMs)), tag: request.tag ?? '' };
      results.push(result);
      options.onResult?.(result);
      if (options.pauseMs) await new Promise((r) => setTimeout(r, options.pauseMs));
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  client.close();
  return results;
}

/** Counts by `status reason` for failure messages. */
export function summarize(results: readonly LoadResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    const key = `${r.status} ${r.reason ?? r.error ?? ''}`.trim();
    out[key] = (out[key] ?? 0) + 1;
  }
  return out;
}
