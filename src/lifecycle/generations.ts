/**
 * Which pipeline new checks run on, and when the adapters of a replaced pipeline may close.
 *
 * A check acquires the current generation once and releases it when answered. A reload makes a
 * new generation current and retires the old one: once the last check running on it has finished
 * (or after RETIRE_BOUND_MS, so a stuck call cannot hold a connection forever), every adapter no
 * other generation holds is closed. Adapters are counted across generations because a reload
 * reuses the unchanged ones: an adapter closes only when every generation that used it is gone.
 */
import type { LoadedConfig } from '../config/load.js';
import type { Closable } from '../core/ports.js';
import type { CheckPipeline, PipelineLease } from '../envoy/authorization-service.js';
import { closablesOf } from './adapters.js';
import type { AdapterSet } from './adapters.js';
import type { Fingerprint } from './named-files.js';

/** Longer than any single check may take: the SpiceDB deadline and a token-service call are both bounded below it. */
const RETIRE_BOUND_MS = 30_000;

export class Generation implements PipelineLease {
  #inflight = 0;
  #onIdle: (() => void) | undefined;

  constructor(
    /** The configuration this generation was built from. */
    readonly loaded: LoadedConfig,
    readonly pipeline: CheckPipeline,
    readonly adapters: AdapterSet,
    /** The configuration's hash and the contents of the files it names, as read before the adapters were built. */
    readonly files: Fingerprint,
  ) {}

  enter(): this {
    this.#inflight++;
    return this;
  }

  release(): void {
    this.#inflight--;
    if (this.#inflight === 0) this.#onIdle?.();
  }

  /** Resolves when no check runs on this generation, or after `boundMs`. */
  idle(boundMs: number): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, boundMs);
      timer.unref();
      this.#onIdle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

export class Generations implements Closable {
  #current: Generation;
  readonly #holders = new Map<Closable, number>();
  readonly #retiring = new Set<Promise<void>>();

  constructor(
    first: Generation,
    private readonly onCloseError: (error: unknown) => void,
    private readonly retireBoundMs: number = RETIRE_BOUND_MS,
  ) {
    this.#current = first;
    this.#hold(first);
  }

  get current(): Generation {
    return this.#current;
  }

  /** The generation a new check runs on; the check calls release() when answered. */
  acquire(): Generation {
    return this.#current.enter();
  }

  replace(next: Generation): void {
    this.#hold(next);
    const old = this.#current;
    this.#current = next;
    const retired = old
      .idle(this.retireBoundMs)
      .then(() => this.#letGo(old))
      .finally(() => this.#retiring.delete(retired));
    this.#retiring.add(retired);
  }

  /** Waits for retiring generations, then closes the current one's adapters. */
  async close(): Promise<void> {
    await Promise.all(this.#retiring);
    await this.#letGo(this.#current);
  }

  #hold(generation: Generation): void {
    for (const adapter of closablesOf(generation.adapters)) this.#holders.set(adapter, (this.#holders.get(adapter) ?? 0) + 1);
  }

  async #letGo(generation: Generation): Promise<void> {
    const unheld: Closable[] = [];
    for (const adapter of closablesOf(generation.adapters)) {
      const holders = (this.#holders.get(adapter) ?? 1) - 1;
      if (holders > 0) this.#holders.set(adapter, holders);
      else {
        this.#holders.delete(adapter);
        unheld.push(adapter);
      }
    }
    const results = await Promise.allSettled(unheld.map((adapter) => adapter.close()));
    for (const result of results) if (result.status === 'rejected') this.onCloseError(result.reason);
  }
}
