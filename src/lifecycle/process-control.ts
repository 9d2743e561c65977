/**
 * What a serving process does with signals, crashes and its exit code. It drives a Lifecycle (one
 * sidecar, or worker mode's primary) and settles `exited` with the code the process must exit
 * with; the CLI entry point (cli.ts) is the one place that ends the process.
 *
 * - SIGTERM and SIGINT drain, then exit 0 (1 if the drain itself failed).
 * - SIGHUP reloads through the file watch's debounce, so a SIGHUP sent for an edit the watch also
 *   saw is one reload; with no watch (a worker, whose primary reloads it) there is nothing to do.
 * - A throw nothing caught, or a rejection nothing handled, leaves a security component in a state
 *   nobody reasoned about: it stops deciding. It drains like SIGTERM and exits CRASH_EXIT_CODE for
 *   the orchestrator to restart it (in worker mode the primary replaces the worker). If the drain
 *   hangs, the process exits anyway once `drainSeconds` and a grace have passed.
 */
import type { Logger } from '../observability/logger.js';
import type { Lifecycle } from './lifecycle.js';

/** EX_SOFTWARE (sysexits.h): the process stopped on a bug, not on a signal or a bad configuration. */
export const CRASH_EXIT_CODE = 70;
/** Beyond drainSeconds, what a crashed process allows its drain before it exits regardless. */
const CRASH_DRAIN_GRACE_SECONDS = 5;

/** The configuration file's watch (config-watcher.ts), as far as the process control needs it. */
interface ReloadTrigger {
  trigger(why: string): void;
  close(): void;
}

export class ProcessControl {
  readonly exited: Promise<number>;
  #settle: (code: number) => void = () => undefined;
  #lifecycle: Lifecycle | undefined;
  #watch: ReloadTrigger | undefined;
  #stopping = false;
  /** What the process exits with once drained: 0, or CRASH_EXIT_CODE after a crash. */
  #exitCode = 0;

  constructor(
    private readonly logger: Logger,
    private readonly drainSeconds: number,
  ) {
    this.exited = new Promise((resolve) => (this.#settle = resolve));
  }

  /** Takes the signals and the crash events. Call first: SIGHUP's default action would end the process. */
  install(): this {
    process.on('SIGHUP', () => this.#watch?.trigger('SIGHUP'));
    process.once('SIGTERM', () => this.stop('SIGTERM'));
    process.once('SIGINT', () => this.stop('SIGINT'));
    process.on('uncaughtException', (error) => this.#crashed('uncaught exception', error));
    process.on('unhandledRejection', (error) => this.#crashed('unhandled rejection', error));
    return this;
  }

  /** The started process; a stop asked before this has already settled `exited`. */
  attach(lifecycle: Lifecycle): void {
    this.#lifecycle = lifecycle;
  }

  /** The configuration file's watch: SIGHUP goes through it, and a stop closes it. */
  watch(watch: ReloadTrigger): void {
    if (this.#stopping) watch.close();
    else this.#watch = watch;
  }

  reload(why: string): void {
    if (this.#lifecycle && !this.#stopping) void this.#lifecycle.reload(why);
  }

  stop(why: string): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.logger.info({ why }, 'shutting down');
    this.#watch?.close();
    const lifecycle = this.#lifecycle;
    if (!lifecycle) {
      this.exit(this.#exitCode);
      return;
    }
    lifecycle.drain().then(
      () => {
        this.logger.info('stopped');
        this.exit(this.#exitCode);
      },
      (error: unknown) => {
        this.logger.error({ err: error }, 'error while draining');
        this.exit(Math.max(this.#exitCode, 1));
      },
    );
  }

  /** Ends the process at once with `code` (a worker whose primary is gone). */
  exit(code: number): void {
    this.logger.flush();
    this.#settle(code);
  }

  #crashed(kind: 'uncaught exception' | 'unhandled rejection', error: unknown): void {
    this.logger.fatal({ err: error }, `${kind}: stopping, since the sidecar's state is unknown`);
    if (this.#exitCode === CRASH_EXIT_CODE) return;
    this.#exitCode = CRASH_EXIT_CODE;
    setTimeout(() => this.exit(CRASH_EXIT_CODE), (this.drainSeconds + CRASH_DRAIN_GRACE_SECONDS) * 1000).unref();
    this.stop(kind);
  }
}
