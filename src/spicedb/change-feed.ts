/**
 * What the decision cache learns about changes in SpiceDB. The port between the cache and
 * whatever watches SpiceDB: the Watch stream itself (watch-feed.ts), the one its primary relays to
 * a worker (workers/), or a store that never changes (the embedded SpiceDB). Events are plain
 * data, so they cross the worker IPC channel as they are.
 */

/** One relationship written, touched or deleted; which of the three does not matter to a cache. */
export interface RelationshipChange {
  readonly resourceType: string;
  readonly resourceId: string;
  readonly relation: string;
  readonly subjectType: string;
  /** `*` for a wildcard subject. */
  readonly subjectId: string;
  /** `member` for a subject set `group:eng#member`; empty for a plain object. */
  readonly subjectRelation: string;
}

export type WatchState = 'connecting' | 'live' | 'down';

/** Why the feed starts (over): after `start`, answers asked before are bounded by ttlMs; after the others, every cached answer is dropped. */
export type ResetCause = 'start' | 'cursor_expired' | 'schema_changed';

export type ChangeFeedEvent =
  | {
      /** Nothing before `revision` will be delivered: answers asked before it cannot be trusted past ttlMs. */
      readonly kind: 'reset';
      readonly why: ResetCause;
      /** A ZedToken: changes after it are delivered. */
      readonly revision: string;
      /** The schema at `revision`, which says what each permission depends on. */
      readonly schemaText: string;
      /** When the feed learned of `revision` (ms since the epoch). */
      readonly receivedAt: number;
    }
  | {
      readonly kind: 'changes';
      /**
       * A ZedToken at which these changes, and every change delivered before them, are visible (a
       * Watch checkpoint's: on Postgres a change's own revision may leave out a concurrent one).
       */
      readonly revision: string;
      readonly changes: readonly RelationshipChange[];
      readonly receivedAt: number;
    }
  | {
      /** `live`: every change is being delivered. Otherwise changes may be missed until the next reset or resume. */
      readonly kind: 'state';
      readonly state: WatchState;
    };

export type ChangeListener = (event: ChangeFeedEvent) => void;

export interface ChangeFeed {
  /**
   * Calls `listener` at once with what a newcomer needs (the last reset, moved up to the newest
   * revision delivered, and the current state), then with every event. Returns the unsubscribe.
   */
  subscribe(listener: ChangeListener): () => void;
}

/**
 * The replay a new subscriber gets, kept by every feed the same way: the last reset advanced to
 * the newest revision delivered, and the state.
 */
export class FeedReplay {
  #reset: Extract<ChangeFeedEvent, { kind: 'reset' }> | undefined;
  #state: WatchState = 'connecting';
  readonly #listeners = new Set<ChangeListener>();

  get state(): WatchState {
    return this.#state;
  }

  /** Records `event` and hands it to every listener. */
  publish(event: ChangeFeedEvent): void {
    switch (event.kind) {
      case 'reset':
        this.#reset = event;
        break;
      case 'changes':
        if (this.#reset !== undefined) this.#reset = { ...this.#reset, revision: event.revision, receivedAt: event.receivedAt };
        break;
      case 'state':
        if (event.state === this.#state) return;
        this.#state = event.state;
        break;
    }
    for (const listener of this.#listeners) listener(event);
  }

  subscribe(listener: ChangeListener): () => void {
    if (this.#reset !== undefined) listener(this.#reset);
    listener({ kind: 'state', state: this.#state });
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** The feed of a store nothing changes after loading (the embedded SpiceDB): live from the start, silent after. */
export const UNCHANGING: ChangeFeed = {
  subscribe(listener) {
    listener({ kind: 'state', state: 'live' });
    return () => undefined;
  },
};
