/**
 * The life cycle of one sidecar, as a composition of the steps in lifecycle/: preflight, open the
 * runtime, start the listeners, follow readiness, reload, drain. Each part registers its own
 * teardown as it starts (lifecycle/teardown.ts); the adapters of a replaced configuration close
 * only once the Checks running on them have finished (lifecycle/generations.ts).
 */
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { LoadedConfig } from './config/load.js';
import { createDecisionObserver } from './observability/decision-log.js';
import type { Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import type { AdapterDeps } from './lifecycle/adapters.js';
import type { Lifecycle } from './lifecycle/lifecycle.js';
import { startListeners } from './lifecycle/listeners.js';
import type { Listeners } from './lifecycle/listeners.js';
import { preflight } from './lifecycle/preflight.js';
import { Readiness } from './lifecycle/readiness.js';
import type { SidecarStatus } from './lifecycle/readiness.js';
import { liveReloadSteps, Reloader, settledConformance } from './lifecycle/reloader.js';
import { openGeneration } from './lifecycle/runtime.js';
import { ServingState } from './lifecycle/serving-state.js';
import { Teardown } from './lifecycle/teardown.js';
import type { ChangeFeed } from './spicedb/change-feed.js';

export interface RunningSidecar extends Lifecycle {
  readonly grpcPort: number;
  /** Undefined for a worker (`admin: false`): its primary serves the admin listener. */
  readonly adminPort: number | undefined;
  /** The `server.listeners` as bound (useful when a configured port is 0), in configuration order. */
  readonly listenerPorts: Listeners['ports']['listeners'];
  readonly metrics: Metrics;
  /**
   * Re-reads the configuration and swaps it in if it changed (lifecycle/reloader.ts); a refused one
   * is logged and counted, and the old one keeps serving.
   */
  reload(why: string): Promise<void>;
  /** Closes at once (tests). */
  close(): Promise<void>;
}

export interface ServeOptions {
  readonly loaded: LoadedConfig;
  readonly logger: Logger;
  /** Overrides of the configured listen addresses (command-line flags). */
  readonly grpcAddress?: string;
  readonly adminAddress?: string;
  readonly metrics?: Metrics;
  /** Where a reload reads `JWTAUTH_CONFIG` and secrets from; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** With `tracing.enabled`, spans go here instead of OTLP (tests). */
  readonly spanExporter?: SpanExporter;
  /** False for a worker process: its primary serves /healthz, /readyz, /metrics and the JWKS. */
  readonly admin?: boolean;
  /** Called with the status at start and whenever it changes (readiness, its detail, a reload). */
  readonly onStatus?: (status: SidecarStatus) => void;
  /** A worker's: the SpiceDB changes its primary relays (workers/watch-relay.ts). */
  readonly changeFeed?: ChangeFeed;
}

export async function serve(options: ServeOptions): Promise<RunningSidecar> {
  const { logger, loaded } = options;
  const metrics = options.metrics ?? new Metrics();
  const deps = { metrics, logger, env: options.env ?? process.env, ...optional(options, 'spanExporter', 'changeFeed') } satisfies AdapterDeps;
  // Refuses the configuration with every problem before anything starts; throws a ConfigError.
  const checked = await preflight(loaded, { env: deps.env });
  const teardown = new Teardown((part, error) => logger.error({ err: error, part }, 'error while closing'));
  const state = new ServingState(await openGeneration(loaded, deps), settledConformance(checked), deps);
  teardown.add('serving state', () => state.close());
  const readiness = new Readiness(state, { metrics, logger, onStatus: options.onStatus });
  const listeners = await startListeners(
    {
      config: loaded.config,
      grpcAddress: options.grpcAddress,
      adminAddress: options.adminAddress,
      admin: options.admin === false ? undefined : { metrics: metrics.exposition, ready: () => readiness.now(), publicKeys: () => state.current.adapters.tokens?.publicKeys },
      checks: {
        acquire: () => state.generations.acquire(),
        observe: createDecisionObserver(metrics, logger, () => ({ allowSampleRate: state.loaded.config.log.allowSampleRate })),
        onUnexpectedError: (error) => logger.error({ err: error }, 'unexpected error while deciding; denied'),
      },
      metrics,
    },
    teardown,
  ).catch(async (error: unknown) => {
    await teardown.close();
    throw error;
  });
  teardown.add('readiness', readiness.follow(listeners.grpc));
  logger.info({ ...listeners.ports, config: loaded.origin, hash: loaded.hash }, 'jwtauth-sidecar listening');
  const reloader = new Reloader(state, liveReloadSteps(deps), { metrics, logger, swapped: () => readiness.update() });
  const { ports } = listeners;
  return {
    grpcPort: ports.grpc,
    adminPort: ports.admin,
    listenerPorts: ports.listeners,
    metrics,
    reload: (why) => reloader.reload(why),
    async drain() {
      reloader.stop();
      readiness.startDraining();
      await drainPeriod(state.loaded.config.server.drainSeconds, logger);
      await teardown.close();
    },
    close() {
      reloader.stop();
      return teardown.close();
    },
  };
}

/** NOT_SERVING already: Envoy stops sending new Checks while those it sent still get answers. */
function drainPeriod(seconds: number, logger: Logger): Promise<void> {
  logger.info({ seconds }, 'draining: health NOT_SERVING, still answering checks');
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

/** The options among `keys` that are set, for an object type whose optional properties may not be undefined. */
function optional<T extends object, K extends keyof T>(from: T, ...keys: K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from[key] !== undefined) picked[key] = from[key];
  return picked;
}
