/**
 * The life-cycle owner of a running sidecar: it builds the adapters and the decision pipeline
 * from a validated configuration, starts the listeners (admin, and every gRPC one), keeps
 * readiness, reloads, drains and closes. Each part registers its own teardown as it starts
 * (lifecycle/teardown.ts), and the adapters of a replaced configuration close only once the
 * checks running on them have finished (lifecycle/generations.ts).
 */
import { ConfigError } from './config/load.js';
import type { LoadedConfig } from './config/load.js';
import { EMBEDDED_ORIGIN, resolveConfig } from './config/resolve.js';
import { startAdminListener } from './admin/admin-server.js';
import { createCheckHandler } from './envoy/authorization-service.js';
import type { CheckHandlerOptions, CheckPipeline } from './envoy/authorization-service.js';
import { listenerOptions, startGrpcListener } from './envoy/grpc-server.js';
import type { GrpcListener } from './envoy/grpc-server.js';
import type { Direction } from './core/request-context.js';
import { buildAdapters, closablesOf } from './lifecycle/adapters.js';
import type { AdapterDeps, AdapterSet } from './lifecycle/adapters.js';
import { Generation, Generations } from './lifecycle/generations.js';
import { buildPipeline } from './lifecycle/pipeline.js';
import { preflight } from './lifecycle/preflight.js';
import { sectionRemovalProblems } from './lifecycle/reload-guard.js';
import { checkAgainstServerSchema, SchemaCheck } from './lifecycle/schema-check.js';
import type { SchemaConformance } from './lifecycle/schema-check.js';
import { Teardown } from './lifecycle/teardown.js';
import { createDecisionObserver } from './observability/decision-log.js';
import type { Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { TracingVerifier } from './identity/tracing-verifier.js';
import { TracingRuleMatcher } from './inbound/tracing-rule-matcher.js';
import { TracingChecker } from './spicedb/tracing-checker.js';
import { TracingTokenSource } from './tokens/tracing-token-source.js';
import type { PipelinePorts } from './lifecycle/pipeline.js';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ChangeFeed } from './spicedb/change-feed.js';

/** What a worker reports to the primary that serves the admin listener for it (workers/). */
export interface SidecarStatus {
  readonly ready: boolean;
  readonly detail: ReadinessDetail;
  /** The configuration serving now. */
  readonly hash: string;
  /** What the admin listener publishes when this sidecar mints tokens. */
  readonly publicKeys: { readonly jwks: { keys: object[] }; readonly openidConfiguration: object } | undefined;
}

interface ReadinessDetail {
  readonly keys: boolean;
  readonly permissions: boolean;
  readonly schema: SchemaConformance['state'];
  readonly draining: boolean;
}

export interface RunningSidecar {
  readonly grpcPort: number;
  /** Undefined for a worker (`admin: false`): its primary serves the admin listener. */
  readonly adminPort: number | undefined;
  /** The `server.listeners` as bound (useful when a configured port is 0), in configuration order. */
  readonly listenerPorts: readonly { readonly direction: Direction; readonly port: number }[];
  readonly metrics: Metrics;
  /**
   * Re-reads the configuration from where it came from and, if it changed, swaps it in; one at a
   * time. A configuration that fails to load, fails preflight, removes a serving section (unless
   * it allows that) or fails to build is logged and counted, and the old one keeps serving. Checks already running finish on the configuration they started with.
   */
  reload(why: string): Promise<void>;
  /** NOT_SERVING, wait `drainSeconds`, finish in-flight checks, close everything. */
  drain(): Promise<void>;
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

/** Closes the adapters of `adapters` that `previous` does not share: a generation that never served. */
async function discard(adapters: AdapterSet, previous: AdapterSet | undefined): Promise<void> {
  const fresh = closablesOf(adapters).filter((adapter) => previous === undefined || !closablesOf(previous).includes(adapter));
  await Promise.allSettled(fresh.map((adapter) => adapter.close()));
}

/** The adapters behind tracing decorators, so verification, permission checks and tokens get spans (and rule lookups, below). */
function tracedPorts(adapters: AdapterSet): PipelinePorts {
  return {
    verifier: new TracingVerifier(adapters.verifier),
    checker: new TracingChecker(adapters.checker),
    tokens: adapters.tokens && new TracingTokenSource(adapters.tokens),
  };
}

async function openGeneration(loaded: LoadedConfig, deps: AdapterDeps, previous?: AdapterSet): Promise<Generation> {
  const adapters = await buildAdapters(loaded, deps, previous);
  let pipeline: CheckPipeline;
  try {
    // Tracing decorators only when this configuration traces: off, the ports are the adapters themselves.
    pipeline = adapters.tracing
      ? { ...buildPipeline(loaded, tracedPorts(adapters), { ruleMatcher: (rules) => new TracingRuleMatcher(rules) }), tracing: adapters.tracing }
      : buildPipeline(loaded, adapters);
  } catch (error) {
    await discard(adapters, previous);
    throw error;
  }
  return new Generation(loaded, pipeline, adapters);
}

/** A decision pipeline without listeners: what `check` explains offline. */
export interface DecisionRuntime {
  readonly pipeline: CheckPipeline;
  /** Keys loaded and permission backend reachable. */
  ready(): boolean;
  close(): Promise<void>;
}

export async function openDecisionRuntime(loaded: LoadedConfig, metrics: Metrics, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<DecisionRuntime> {
  await preflight(loaded, { env });
  const generation = await openGeneration(loaded, { metrics, logger });
  const { verifier, checker } = generation.adapters;
  return {
    pipeline: generation.pipeline,
    ready: () => verifier.ready() && checker.ready(),
    close: async () => {
      await Promise.allSettled(closablesOf(generation.adapters).map((adapter) => adapter.close()));
    },
  };
}

export async function serve(options: ServeOptions): Promise<RunningSidecar> {
  const { logger } = options;
  const metrics = options.metrics ?? new Metrics();
  const env = options.env ?? process.env;
  const deps: AdapterDeps = {
    metrics,
    logger,
    env,
    ...(options.spanExporter ? { spanExporter: options.spanExporter } : {}),
    ...(options.changeFeed ? { changeFeed: options.changeFeed } : {}),
  };
  // Refuses the configuration with every problem before anything starts; throws a ConfigError.
  const checked = await preflight(options.loaded, { env });
  const teardown = new Teardown((name, error) => logger.error({ err: error, part: name }, 'error while closing'));
  const generations = new Generations(await openGeneration(options.loaded, deps), (error) => logger.error({ err: error }, 'error while closing a replaced adapter'));
  teardown.add('adapters', () => generations.close());
  // The embedded schema was checked by preflight; a server's is read now, in the background.
  const schemaCheckFor = (loaded: LoadedConfig, known: SchemaConformance | undefined): SchemaCheck => new SchemaCheck(loaded, deps, known);
  let schemaCheck = schemaCheckFor(options.loaded, checked.schemaOrigin === undefined ? undefined : { state: 'conforms', origin: checked.schemaOrigin });
  teardown.add('schema check', () => Promise.resolve(schemaCheck.close()));
  const live = (): LoadedConfig => generations.current.loaded;
  metrics.setConfigHash(live().hash);
  let draining = false;

  const readiness = (): { ready: boolean; detail: ReadinessDetail } => {
    const { verifier, checker } = generations.current.adapters;
    const detail = { keys: verifier.ready(), permissions: checker.ready(), schema: schemaCheck.status.state, draining };
    return { ready: detail.keys && detail.permissions && detail.schema !== 'mismatch' && !draining, detail };
  };

  // Shared by every gRPC listener: one pipeline, one decision log, whichever port a Check used.
  const handlerOptions: CheckHandlerOptions = {
    acquire: () => generations.acquire(),
    observe: createDecisionObserver(metrics, logger, () => ({ allowSampleRate: live().config.log.allowSampleRate })),
    onUnexpectedError: (error) => logger.error({ err: error }, 'unexpected error while deciding; denied'),
  };

  let ports: { grpc: number; admin: number | undefined; listeners: RunningSidecar['listenerPorts'] };
  const grpcListeners: GrpcListener[] = [];
  const setServing = (serving: boolean): void => {
    for (const listener of grpcListeners) listener.setServing(serving);
  };
  try {
    const admin =
      options.admin === false
        ? undefined
        : await startAdminListener(options.adminAddress ?? live().config.server.adminAddress, {
            metrics: metrics.exposition,
            ready: readiness,
            publicKeys: () => generations.current.adapters.tokens?.publicKeys,
          });
    if (admin) teardown.add('admin listener', () => admin.close());
    // One step for every gRPC listener, registered before the first starts: all stop taking
    // checks at once and let those in flight answer before the adapters close.
    teardown.add('gRPC listeners', async () => {
      await Promise.all(grpcListeners.map((listener) => listener.shutdown(2_000)));
    });
    // limits.* of the listeners are read here, at start; every listener shares one request memory.
    const listening = listenerOptions(live().config.limits, (cause) => metrics.listenerRefusals.inc({ cause }));
    const grpc = await startGrpcListener(options.grpcAddress ?? live().config.server.grpcAddress, createCheckHandler(handlerOptions), listening);
    grpcListeners.push(grpc);
    const listeners: { direction: Direction; port: number }[] = [];
    for (const { address, direction } of live().config.server.listeners ?? []) {
      // The direction is bound into this listener's handler here, not looked up per Check.
      const listener = await startGrpcListener(address, createCheckHandler({ ...handlerOptions, listenerDirection: direction }), listening);
      grpcListeners.push(listener);
      listeners.push({ direction, port: listener.port });
    }
    ports = { grpc: grpc.port, admin: admin?.port, listeners };
  } catch (error) {
    await teardown.close();
    throw error;
  }

  let lastReady: boolean | undefined;
  let lastStatus = '';
  const reportStatus = (ready: boolean, detail: ReadinessDetail): void => {
    if (!options.onStatus) return;
    const hash = live().hash;
    const key = `${ready} ${detail.keys} ${detail.permissions} ${detail.schema} ${detail.draining} ${hash}`;
    if (key === lastStatus) return;
    lastStatus = key;
    const keys = generations.current.adapters.tokens?.publicKeys;
    options.onStatus({ ready, detail, hash, publicKeys: keys && { jwks: keys.jwks(), openidConfiguration: keys.openidConfiguration() } });
  };
  const updateReadiness = (): void => {
    const { ready, detail } = readiness();
    reportStatus(ready, detail);
    if (ready === lastReady) return;
    lastReady = ready;
    setServing(ready);
    metrics.ready.set(ready ? 1 : 0);
    logger.info({ ready, ...detail }, ready ? 'ready: health SERVING' : 'not ready: health NOT_SERVING');
  };
  updateReadiness();
  const readinessTimer = setInterval(updateReadiness, 250);
  readinessTimer.unref();
  teardown.add('readiness timer', () => Promise.resolve(clearInterval(readinessTimer)));

  logger.info({ grpc: ports.grpc, admin: ports.admin, listeners: ports.listeners, config: live().origin, hash: live().hash }, 'jwtauth-sidecar listening');

  const reloadOnce = async (why: string): Promise<void> => {
    if (draining) return;
    let next: LoadedConfig;
    let generation: Generation;
    let known: SchemaConformance;
    try {
      next = resolveConfig(live().origin, env);
      if (next.hash === live().hash) return;
      const removed = sectionRemovalProblems(live().config, next.config);
      if (removed.length > 0) throw new ConfigError(next.origin, removed);
      const nextChecked = await preflight(next, { env });
      // A server that answers and contradicts the rules refuses the reload; one that does not
      // answer leaves the check to the retries of the new SchemaCheck.
      known = nextChecked.schemaOrigin !== undefined ? { state: 'conforms', origin: nextChecked.schemaOrigin } : await checkAgainstServerSchema(next);
      if (known.state === 'mismatch') throw new ConfigError(next.origin, known.problems);
      generation = await openGeneration(next, deps, generations.current.adapters);
    } catch (error) {
      metrics.configReloads.inc({ result: 'failure' });
      const problems = error instanceof ConfigError ? error.problems : [error instanceof Error ? error.message : String(error)];
      logger.error({ why, problems }, 'reload rejected; still serving the previous configuration');
      return;
    }
    if (draining) {
      // Closed while the adapters were being built: nothing will ever close these.
      await discard(generation.adapters, generations.current.adapters);
      return;
    }
    // One tick: a Check acquires the generation once, so it sees old or new, never a mix.
    generations.replace(generation);
    schemaCheck.close();
    schemaCheck = schemaCheckFor(next, known);
    metrics.setConfigHash(next.hash);
    metrics.configReloads.inc({ result: 'success' });
    logger.info({ why, config: next.origin, hash: next.hash }, 'configuration reloaded');
    updateReadiness();
  };
  // One reload at a time: a file save and a SIGHUP for the same edit must not race each other.
  let reloads = Promise.resolve();

  return {
    grpcPort: ports.grpc,
    adminPort: ports.admin,
    listenerPorts: ports.listeners,
    metrics,
    reload(why) {
      if (live().origin === EMBEDDED_ORIGIN) return Promise.resolve();
      reloads = reloads.then(() => reloadOnce(why));
      return reloads;
    },
    async drain() {
      draining = true;
      updateReadiness();
      const seconds = live().config.server.drainSeconds;
      logger.info({ seconds }, 'draining: health NOT_SERVING, still answering checks');
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      await teardown.close();
    },
    close() {
      // A reload queued behind this must not open adapters nobody will close.
      draining = true;
      return teardown.close();
    },
  };
}
