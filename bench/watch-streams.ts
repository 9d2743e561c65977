/**
 * The pieces of bench/watch-fleet.ts: SpiceDB Watch streams held the way a fleet of sidecars would
 * hold them (one connection each, filtered to a few object types, with checkpoints), a writer at a
 * steady rate, and the delay from each write's return to each stream's delivery of it.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import type { SpicedbServer } from '../dev/spicedb.js';
import { summarize } from './percentiles.js';

/**
 * Nested groups and a document type, as a sidecar's rules would read them, and an audit type no
 * rule reads: streams filter on WATCHED_TYPES the way a sidecar filters on what its permissions
 * depend on.
 */
export const WATCH_SCHEMA = `
definition user {}
definition group {
  relation member: user | group#member
}
definition document {
  relation viewer: user | group#member
  permission view = viewer
}
definition audit {
  relation actor: user
}
`;
export const WATCHED_TYPES: readonly string[] = ['document', 'group'];
/** What every write touches: a watched type, so that every write is one delay sample per stream. */
const WRITTEN_TYPE = 'document';

/** One stream's view: when it first delivered each relationship it was sent, and how it ended. */
class WatchStream {
  /** Resource (`document:id`) to performance.now() of its first delivery. */
  readonly arrivals = new Map<string, number>();
  checkpoints = 0;
  /** Set when the stream ended with an error other than our own cancel. */
  failure: ServiceError | undefined;
  /** Set by close(): the CANCELLED error that follows is ours, not a failure. */
  private closed = false;
  private readonly client: v1.ZedClientInterface;
  private readonly call: ReturnType<v1.ZedClientInterface['watch']>;
  private readonly listeners = new Set<() => void>();

  constructor(server: SpicedbServer, request: v1.WatchRequest) {
    // A connection of its own, as each sidecar pod has: grpc-js otherwise shares one per address.
    this.client = v1.NewClient(server.presharedKey, server.endpoint, v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS, undefined, { 'grpc.use_local_subchannel_pool': 1 });
    this.call = this.client.watch(request);
    this.call.on('data', (response: v1.WatchResponse) => {
      const now = performance.now();
      if (response.isCheckpoint) this.checkpoints++;
      for (const update of response.updates) {
        const resource = update.relationship?.resource;
        if (resource === undefined) continue;
        const key = `${resource.objectType}:${resource.objectId}`;
        if (!this.arrivals.has(key)) this.arrivals.set(key, now);
      }
      for (const listener of this.listeners) listener();
    });
    this.call.on('error', (error: ServiceError) => {
      if (!this.closed) this.failure = error;
      for (const listener of this.listeners) listener();
    });
  }

  /** Resolves once `key` has arrived (or the stream failed); false after `timeoutMs`. */
  async delivered(key: string, timeoutMs: number): Promise<boolean> {
    if (this.arrivals.has(key) || this.failure) return this.arrivals.has(key);
    let listener: (() => void) | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      listener = () => {
        if (this.arrivals.has(key) || this.failure) resolve(this.arrivals.has(key));
      };
      this.listeners.add(listener);
    });
    try {
      return await Promise.race([arrived, sleep(timeoutMs, false)]);
    } finally {
      if (listener) this.listeners.delete(listener);
    }
  }

  close(): void {
    this.closed = true;
    this.call.cancel();
    this.client.close();
  }
}

export interface FleetRequest {
  /** WATCH_KIND_INCLUDE_CHECKPOINTS as well as relationship updates (what a sidecar asks for to see its cursor move when idle). */
  readonly checkpoints: boolean;
}

/** N streams, each what one sidecar pod would hold. */
export class WatchFleet {
  readonly streams: readonly WatchStream[];

  constructor(server: SpicedbServer, size: number, options: FleetRequest) {
    const kinds = [v1.WatchKind.INCLUDE_RELATIONSHIP_UPDATES, ...(options.checkpoints ? [v1.WatchKind.INCLUDE_CHECKPOINTS] : [])];
    const request = v1.WatchRequest.create({ optionalObjectTypes: [...WATCHED_TYPES], optionalUpdateKinds: kinds });
    this.streams = Array.from({ length: size }, () => new WatchStream(server, request));
  }

  /** Streams that ended with an error, with their gRPC code and message. */
  failures(): string[] {
    return this.streams.flatMap((stream) => (stream.failure ? [`${stream.failure.code} ${stream.failure.details || stream.failure.message}`] : []));
  }

  /** How many streams delivered `key` within `timeoutMs`. */
  async deliveredBy(key: string, timeoutMs: number): Promise<number> {
    const delivered = await Promise.all(this.streams.map((stream) => stream.delivered(key, timeoutMs)));
    return delivered.filter(Boolean).length;
  }

  checkpoints(): number {
    return this.streams.reduce((sum, stream) => sum + stream.checkpoints, 0);
  }

  close(): void {
    for (const stream of this.streams) stream.close();
  }
}

/** One relationship write: its resource, and when it was sent and returned (performance.now()). */
export interface WriteRecord {
  readonly key: string;
  readonly sentAt: number;
  readonly returnedAt: number;
  readonly error?: string;
}

let writeCounter = 0;

/** Touches one new relationship on a watched type; the resource id is unique to this process's run. */
export async function writeOne(server: SpicedbServer, label: string): Promise<WriteRecord> {
  const id = `${label}-${process.pid}-${++writeCounter}`;
  const key = `${WRITTEN_TYPE}:${id}`;
  const sentAt = performance.now();
  try {
    await server.write(`${key}#viewer@user:u${writeCounter % 97}`);
    return { key, sentAt, returnedAt: performance.now() };
  } catch (error) {
    return { key, sentAt, returnedAt: performance.now(), error: (error as Error).message };
  }
}

/**
 * Writes at `perSecond`, open loop: each write starts on its schedule whether or not the previous
 * one has returned, as independent writers would. Resolves with every write once all have returned.
 */
export async function writeSteadily(server: SpicedbServer, perSecond: number, seconds: number, label: string): Promise<WriteRecord[]> {
  const intervalMs = 1000 / perSecond;
  const count = Math.round(perSecond * seconds);
  const start = performance.now();
  const writes: Array<Promise<WriteRecord>> = [];
  for (let i = 0; i < count; i++) {
    const due = start + i * intervalMs - performance.now();
    if (due > 0) await sleep(due);
    writes.push(writeOne(server, label));
  }
  return Promise.all(writes);
}

export interface DelaySummary {
  /** Delivered (write, stream) pairs. */
  readonly samples: number;
  /** Pairs not delivered by the drain deadline, and writes that failed. */
  readonly undelivered: number;
  readonly failedWrites: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Median WriteRelationships round trip: what the writer itself waited. */
  readonly writeP50Ms: number;
}

/**
 * Waits until every stream has delivered every successful write (or `drainMs` has passed), then
 * summarises, per (write, stream), the time from the write's return to the stream's delivery. On
 * the memory datastore a stream may deliver before the write's answer reaches the writer: those
 * delays are negative, and kept.
 */
export async function deliveryDelays(fleet: WatchFleet, writes: readonly WriteRecord[], drainMs: number): Promise<DelaySummary> {
  const succeeded = writes.filter((write) => write.error === undefined);
  const last = succeeded.at(-1);
  if (last !== undefined) await fleet.deliveredBy(last.key, drainMs);
  const samples = [];
  let undelivered = 0;
  for (const write of succeeded) {
    for (const stream of fleet.streams) {
      const arrival = stream.arrivals.get(write.key);
      if (arrival === undefined) undelivered++;
      else samples.push({ sentMs: write.returnedAt, status: 200, latencyMs: arrival - write.returnedAt });
    }
  }
  const writeTimes = succeeded.map((write) => ({ sentMs: write.sentAt, status: 200, latencyMs: write.returnedAt - write.sentAt }));
  const delays = samples.length > 0 ? summarize(samples, 0) : undefined;
  return {
    samples: samples.length,
    undelivered,
    failedWrites: writes.length - succeeded.length,
    p50Ms: delays?.p50 ?? Number.NaN,
    p90Ms: delays?.p90 ?? Number.NaN,
    p99Ms: delays?.p99 ?? Number.NaN,
    maxMs: delays?.max ?? Number.NaN,
    meanMs: delays?.mean ?? Number.NaN,
    writeP50Ms: writeTimes.length > 0 ? summarize(writeTimes, 0).p50 : Number.NaN,
  };
}
