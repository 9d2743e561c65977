/**
 * What worker mode's primary and its workers say to each other over the cluster IPC channel.
 * Every message here is recognised by its `jwtauth:` type and anything else is ignored.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { Direction } from '../core/request-context.js';
import type { SidecarStatus } from '../lifecycle/readiness.js';
import type { WatchEventMessage, WatchSubscribeMessage } from './watch-relay.js';

/** Worker to primary: the gRPC listeners are open. */
export interface ListeningMessage {
  readonly type: 'jwtauth:listening';
  readonly grpcPort: number;
  readonly listenerPorts: readonly { readonly direction: Direction; readonly port: number }[];
}

/** Worker to primary: readiness, its detail, the configuration serving and the public keys, at start and on every change. */
interface StatusMessage {
  readonly type: 'jwtauth:status';
  readonly status: SidecarStatus;
}

/** Worker to primary: its registry, for the scrape `id` asked for (worker-scrape.ts). */
export interface MetricsReplyMessage {
  readonly type: 'jwtauth:metrics';
  readonly id: number;
  readonly metrics: MetricObjectWithValues<MetricValue<string>>[];
}

export type WorkerMessage = ListeningMessage | StatusMessage | WatchSubscribeMessage | MetricsReplyMessage;

/** Primary to worker: re-read the configuration (the primary watches the file and takes SIGHUP). */
interface ReloadMessage {
  readonly type: 'jwtauth:reload';
  readonly why: string;
}

/** Primary to worker: go NOT_SERVING, wait drainSeconds, finish in-flight checks and exit 0. */
interface DrainMessage {
  readonly type: 'jwtauth:drain';
}

/** Primary to worker: send your metrics, answering with this id. */
interface MetricsRequestMessage {
  readonly type: 'jwtauth:metrics-request';
  readonly id: number;
}

export type PrimaryMessage = ReloadMessage | DrainMessage | WatchEventMessage | MetricsRequestMessage;

function typeOf(message: unknown): unknown {
  return typeof message === 'object' && message !== null ? (message as { type?: unknown }).type : undefined;
}

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  const type = typeOf(message);
  return type === 'jwtauth:listening' || type === 'jwtauth:status' || type === 'jwtauth:watch-subscribe' || type === 'jwtauth:metrics';
}

export function isPrimaryMessage(message: unknown): message is PrimaryMessage {
  const type = typeOf(message);
  return type === 'jwtauth:reload' || type === 'jwtauth:drain' || type === 'jwtauth:watch' || type === 'jwtauth:metrics-request';
}
