/**
 * The change feed of a SpiceDB server: one WatchService.Watch stream, kept open.
 *
 * Start: ReadSchema gives the schema and the revision it was read at; the watch starts from that
 * revision, so nothing after it is missed, and subscribers reset (their answers so far predate it,
 * so they keep them only for ttlMs). The
 * stream is filtered to the object types the checked permissions can depend on
 * (permission-dependencies.ts), or not at all when some checked permission is not known up front.
 *
 * Resume: when the stream ends or fails, it reopens from the last revision it published, with
 * backoff; subscribers keep their answers, because every change since is still delivered. When
 * SpiceDB refuses that cursor (garbage-collected, or from another datastore: a memory SpiceDB that
 * restarted), the feed starts over, and subscribers drop everything. A schema change also starts
 * over: what a permission depends on may have changed.
 *
 * Changes are published at the checkpoint SpiceDB sends after each batch of them, with the
 * checkpoint's revision, not one response at a time with each change's own: the cache asks
 * at_least_as_fresh the revision it is given, so that revision must include every change
 * published. On Postgres a change's own revision does not always: it is its transaction's snapshot
 * (internal/datastore/postgres/watch.go, getNewRevisions), so a transaction that began before a
 * concurrent one committed, and committed after it, has a revision where that one is still in
 * progress. Measured (bench:revocation): a revoke, then an unrelated write in the same poll whose
 * revision left the revoke out; the refill asked at that revision, got the old answer and kept it
 * until the next change to it. The checkpoint after the batch marks every transaction in it
 * complete (authzed/spicedb#1278). It can still leave out a change of the batch before that was
 * concurrent with its own last transaction; SpiceDB then delivers that change again in the next
 * batch, which drops whatever was refilled in between. The cursor moves only where changes are
 * published, so a stream cut before its
 * checkpoint is resumed from before the held changes, which come again. SpiceDB v1.56 sends that
 * checkpoint after every batch on every datastore (read in each one's watch.go); one before v1.42
 * ignores the update kinds and sends none, so a stream that has not sent a checkpoint yet publishes
 * what it holds after CHECKPOINT_WAIT_MS, at the newest change's revision.
 *
 * SpiceDB sends nothing on a healthy watch while nothing changes (memory datastore), so the
 * stream counts as live once it has stayed open for LIVE_AFTER_MS without an error; a refused
 * cursor comes back well within that.
 */
import { Metadata, status } from '@grpc/grpc-js';
import type { ClientReadableStream, ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import type { Closable } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import { isServiceError } from './backend-errors.js';
import { FeedReplay } from './change-feed.js';
import type { ChangeFeed, ChangeListener, RelationshipChange, ResetCause } from './change-feed.js';
import { createSpicedbClient } from './grpc-checker.js';
import type { SpicedbClientOptions } from './grpc-checker.js';
import { SchemaDependencies } from './permission-dependencies.js';

/** A permission the rules check, as `type#permission`; undefined in the list when not known up front. */
export type CheckedPermissions = readonly string[] | undefined;

export interface WatchFeedOptions extends SpicedbClientOptions {
  /** Filters the stream to what these can depend on; undefined watches every type. */
  readonly checkedPermissions: CheckedPermissions;
  readonly logger: Logger;
}

const LIVE_AFTER_MS = 300;
const READ_SCHEMA_TIMEOUT_MS = 5_000;
const RETRY_MS = { first: 100, max: 5_000 };
/** How long changes wait for a checkpoint on a stream that has not sent one yet, before they are published without it. */
const CHECKPOINT_WAIT_MS = 250;
const UPDATE_KINDS = [v1.WatchKind.INCLUDE_RELATIONSHIP_UPDATES, v1.WatchKind.INCLUDE_SCHEMA_UPDATES, v1.WatchKind.INCLUDE_CHECKPOINTS];

/** SpiceDB's codes for a start cursor it cannot resume from: OUT_OF_RANGE (stale), INVALID_ARGUMENT (another datastore, undecodable). */
function cursorRefused(error: ServiceError): boolean {
  return error.code === status.OUT_OF_RANGE || error.code === status.INVALID_ARGUMENT;
}

/** What an operator needs to hear about a failed watch: the cause and, where there is one, the fix. */
function explain(error: unknown): string {
  if (!isServiceError(error)) return error instanceof Error ? error.message : String(error);
  const name = status[error.code] ?? String(error.code);
  if (error.code === status.UNAUTHENTICATED || error.code === status.PERMISSION_DENIED) return `${name}: SpiceDB refused the preshared key (spicedb.presharedKey)`;
  // SpiceDB leaves WatchService out when its datastore cannot watch (docs/watch-fleet.md).
  if (error.code === status.UNIMPLEMENTED) {
    return `${name}: this SpiceDB serves no Watch: on Postgres it needs track_commit_timestamp = on (then restart Postgres, then SpiceDB), or it was started with --datastore-disable-watch-support (${error.details})`;
  }
  return `${name}: ${error.details}`;
}

function relationshipChange(update: v1.RelationshipUpdate): RelationshipChange | undefined {
  const relationship = update.relationship;
  const resource = relationship?.resource;
  const subject = relationship?.subject?.object;
  if (relationship === undefined || resource === undefined || subject === undefined) return undefined;
  return {
    resourceType: resource.objectType,
    resourceId: resource.objectId,
    relation: relationship.relation,
    subjectType: subject.objectType,
    subjectId: subject.objectId,
    subjectRelation: relationship.subject?.optionalRelation ?? '',
  };
}

export class SpicedbWatchFeed implements ChangeFeed, Closable {
  readonly #replay = new FeedReplay();
  readonly #client: v1.ZedClientInterface;
  readonly #logger: Logger;
  readonly #checkedPermissions: CheckedPermissions;
  /** Where a resumed stream starts; undefined: start over, for `#startOver`. */
  #cursor: string | undefined;
  #startOver: ResetCause = 'start';
  #stream: ClientReadableStream<v1.WatchResponse> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #retryMs = RETRY_MS.first;
  #closed = false;
  #warnedNoCheckpoint = false;

  constructor(options: WatchFeedOptions) {
    this.#client = createSpicedbClient(options);
    this.#logger = options.logger;
    this.#checkedPermissions = options.checkedPermissions;
    void this.#open();
  }

  subscribe(listener: ChangeListener): () => void {
    return this.#replay.subscribe(listener);
  }

  close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#stream?.cancel();
    this.#client.close();
    return Promise.resolve();
  }

  /** A fresh start reads the schema and its revision first; a resume goes straight to the watch. */
  async #open(): Promise<void> {
    let types: readonly string[] = [];
    if (this.#cursor === undefined) {
      let schema: v1.ReadSchemaResponse;
      try {
        schema = await this.#client.promises.readSchema(v1.ReadSchemaRequest.create({}), new Metadata(), { deadline: Date.now() + READ_SCHEMA_TIMEOUT_MS });
      } catch (error) {
        this.#failed(error);
        return;
      }
      if (this.#closed) return;
      const revision = schema.readAt?.token;
      if (revision === undefined || revision === '') {
        this.#failed(new Error('SpiceDB answered ReadSchema without a revision'));
        return;
      }
      types = this.#watchedTypes(schema.schemaText);
      this.#cursor = revision;
      this.#replay.publish({ kind: 'reset', why: this.#startOver, revision, schemaText: schema.schemaText, receivedAt: Date.now() });
    }
    this.#watch(types);
  }

  /** The object types to watch; empty means all. */
  #watchedTypes(schemaText: string): readonly string[] {
    if (this.#checkedPermissions === undefined) return [];
    const dependencies = new SchemaDependencies();
    const problem = dependencies.load(schemaText);
    if (problem !== undefined) {
      this.#logger.warn({ problem }, 'cannot read the SpiceDB schema: the Watch takes every object type, and every change drops every cached answer');
      return [];
    }
    const types = new Set<string>();
    for (const permission of this.#checkedPermissions) {
      const of = dependencies.of(permission);
      if (of === undefined) return [];
      for (const type of of.types) types.add(type);
    }
    return [...types].sort();
  }

  #watch(types: readonly string[]): void {
    const stream = this.#client.watch(
      v1.WatchRequest.create({ optionalObjectTypes: [...types], optionalStartCursor: v1.ZedToken.create({ token: this.#cursor! }), optionalUpdateKinds: UPDATE_KINDS }),
    );
    this.#stream = stream;
    const live = (): void => {
      clearTimeout(liveTimer);
      if (this.#stream !== stream || this.#replay.state === 'live') return;
      this.#retryMs = RETRY_MS.first;
      this.#replay.publish({ kind: 'state', state: 'live' });
      this.#logger.info({ types: types.length === 0 ? 'all' : types }, 'SpiceDB Watch is live: cached answers follow its changes');
    };
    const liveTimer = setTimeout(live, LIVE_AFTER_MS);
    liveTimer.unref();
    // Changes since the stream's last checkpoint, held until the next one (see the header).
    let held: RelationshipChange[] = [];
    let heldRevision = '';
    /** Whether this stream has sent a checkpoint: then one follows every batch, and held changes wait for it. */
    let checkpoints = false;
    let fallback: NodeJS.Timeout | undefined;
    const publish = (revision: string): void => {
      clearTimeout(fallback);
      fallback = undefined;
      this.#cursor = revision;
      if (held.length === 0) return;
      const changes = held;
      held = [];
      this.#replay.publish({ kind: 'changes', revision, changes, receivedAt: Date.now() });
    };
    const withoutCheckpoint = (): void => {
      if (this.#stream !== stream || this.#closed || held.length === 0) return;
      if (!this.#warnedNoCheckpoint) {
        this.#warnedNoCheckpoint = true;
        this.#logger.warn(
          { waitedMs: CHECKPOINT_WAIT_MS },
          'SpiceDB sent Watch changes without a checkpoint (before v1.42 it sends none): changes are applied at their own revision, which on Postgres may not include a concurrent change, so a revocation can stay cached until decisionCache.watchTtlMs',
        );
      }
      publish(heldRevision);
    };
    stream.on('data', (response: v1.WatchResponse) => {
      if (this.#stream !== stream) return;
      live();
      const revision = response.changesThrough?.token;
      if (response.schemaUpdated) {
        // Start over: the schema says what each permission depends on, and which types to watch.
        clearTimeout(fallback);
        this.#restart('schema_changed');
        return;
      }
      if (revision === undefined || revision === '') return;
      for (const update of response.updates) {
        const change = relationshipChange(update);
        if (change !== undefined) held.push(change);
      }
      if (response.isCheckpoint) {
        checkpoints = true;
        publish(revision);
        return;
      }
      if (held.length === 0) return;
      heldRevision = revision;
      if (!checkpoints) fallback ??= setTimeout(withoutCheckpoint, CHECKPOINT_WAIT_MS).unref();
    });
    stream.on('error', (error: unknown) => {
      clearTimeout(liveTimer);
      clearTimeout(fallback);
      if (this.#stream !== stream || this.#closed) return;
      this.#stream = undefined;
      if (isServiceError(error) && cursorRefused(error)) {
        this.#logger.warn({ why: explain(error) }, 'SpiceDB refused the Watch cursor: starting over, every cached answer is dropped');
        this.#forgetCursor('cursor_expired');
        this.#down();
        this.#retry();
        return;
      }
      this.#failed(error);
    });
    stream.on('end', () => {
      clearTimeout(liveTimer);
      clearTimeout(fallback);
      if (this.#stream !== stream || this.#closed) return;
      // The server ended the stream (a restart, a recycled connection): resume where it stopped.
      this.#stream = undefined;
      this.#down();
      this.#retry();
    });
  }

  #forgetCursor(why: ResetCause): void {
    this.#cursor = undefined;
    this.#startOver = why;
  }

  #restart(why: ResetCause): void {
    this.#stream?.cancel();
    this.#stream = undefined;
    this.#forgetCursor(why);
    this.#down();
    void this.#open();
  }

  #failed(error: unknown): void {
    if (this.#closed) return;
    this.#logger.warn({ why: explain(error), retryInMs: this.#retryMs }, 'SpiceDB Watch is down: cached answers fall back to decisionCache.ttlMs until it is back');
    this.#down();
    this.#retry();
  }

  #down(): void {
    this.#replay.publish({ kind: 'state', state: 'down' });
  }

  /** Opens again after the backoff: a resume when a cursor is kept, else a fresh start. */
  #retry(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => void this.#open(), this.#retryMs);
    this.#timer.unref();
    this.#retryMs = Math.min(this.#retryMs * 2, RETRY_MS.max);
  }
}
