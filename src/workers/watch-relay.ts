/**
 * Worker mode keeps one SpiceDB Watch per pod: the primary holds the stream and relays every event
 * to every worker, whose decision cache follows the relayed feed as it would its own Watch.
 *
 * A worker asks for the feed once it listens (`jwtauth:watch-subscribe`), so nothing the primary
 * sends while the worker is still loading is lost; the primary answers with the replay (the last
 * reset and the state) and then every event. When the primary replaces its Watch (a reload that
 * changes where SpiceDB is), each worker gets the new Watch's reset, which drops its answers.
 */
import type { Worker } from 'node:cluster';
import type { LoadedConfig } from '../config/load.js';
import type { Closable } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import { checkedPermissions } from '../lifecycle/checked-permissions.js';
import { digestsFor, fingerprintOf } from '../lifecycle/named-files.js';
import type { ChangeFeed, ChangeFeedEvent } from '../spicedb/change-feed.js';
import { openWatchFeed } from '../spicedb/permission-checker.js';

/** Primary to worker: one event of the primary's feed. */
export interface WatchEventMessage {
  readonly type: 'jwtauth:watch';
  readonly event: ChangeFeedEvent;
}

/** Worker to primary: send me the feed. */
export interface WatchSubscribeMessage {
  readonly type: 'jwtauth:watch-subscribe';
}

/**
 * What a configuration's Watch is opened from, the content of the preshared-key and CA files
 * included (a key renewed at the same path opens a new stream): a reload that keeps it keeps the stream.
 */
function watchSettings(loaded: LoadedConfig): string {
  const { spicedb } = loaded.config;
  return JSON.stringify([
    spicedb.endpoint,
    spicedb.presharedKey,
    spicedb.tls,
    spicedb.decisionCache.freshness,
    checkedPermissions(loaded.config) ?? null,
    loaded.baseDir,
    digestsFor(fingerprintOf(loaded), 'checker'),
  ]);
}

/** The primary's side: the pod's Watch, and the workers it is relayed to. */
export class PrimaryWatchRelay implements Closable {
  #feed: (ChangeFeed & Closable) | undefined;
  #settings: string | undefined;
  readonly #subscribers = new Map<Worker, () => void>();

  constructor(private readonly logger: Logger) {}

  /**
   * Watches as `loaded` says (no stream unless a remote SpiceDB in watch mode). When that differs
   * from what is watched now, the new Watch replaces the old; its first event, a reset, reaches
   * every worker and drops their answers.
   */
  follow(loaded: LoadedConfig): void {
    const settings = watchSettings(loaded);
    if (settings === this.#settings) return;
    this.#settings = settings;
    const previous = this.#feed;
    this.#feed = openWatchFeed(loaded.config.spicedb, { baseDir: loaded.baseDir, logger: this.logger, checkedPermissions: checkedPermissions(loaded.config) });
    for (const worker of [...this.#subscribers.keys()]) this.subscribe(worker);
    void previous?.close();
  }

  /** Relays the feed to `worker` from now on, starting with the replay. */
  subscribe(worker: Worker): void {
    this.#subscribers.get(worker)?.();
    this.#subscribers.delete(worker);
    if (this.#feed === undefined) return;
    this.#subscribers.set(
      worker,
      this.#feed.subscribe((event) => {
        if (worker.isConnected()) worker.send({ type: 'jwtauth:watch', event } satisfies WatchEventMessage);
      }),
    );
  }

  unsubscribe(worker: Worker): void {
    this.#subscribers.get(worker)?.();
    this.#subscribers.delete(worker);
  }

  async close(): Promise<void> {
    for (const unsubscribe of this.#subscribers.values()) unsubscribe();
    this.#subscribers.clear();
    await this.#feed?.close();
  }
}
