/**
 * Builds a running sidecar from a validated configuration: the adapters at the edges (token
 * verifier, permission checker, token source), the decision core over them, and the two
 * listeners. Also owns the life cycle: readiness, reload and graceful drain.
 */
import type { LoadedConfig } from './config/load.js';
import { serviceIdentityOf } from './config/schema.js';
import type { Config } from './config/schema.js';
import { DirectionRouter } from './core/direction-router.js';
import { DryRunAuthorizer } from './core/dry-run.js';
import { DEFAULT_ON_BEHALF_OF_HEADER, IDENTITY_HEADER_NAMES } from './core/identity-headers.js';
import type { Authorizer, PermissionChecker, PublicKeyDocuments, TokenSource, TokenVerifier } from './core/ports.js';
import { startAdminListener } from './admin/admin-server.js';
import type { AdminListener } from './admin/admin-server.js';
import { createCheckHandler } from './envoy/authorization-service.js';
import type { CheckPipeline } from './envoy/authorization-service.js';
import { startGrpcListener } from './envoy/grpc-server.js';
import type { GrpcListener } from './envoy/grpc-server.js';
import { createTokenVerifier } from './identity/token-verifier.js';
import { createInboundAuthorizer } from './inbound/inbound-authorizer.js';
import { createDecisionObserver } from './observability/decision-log.js';
import type { Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import { createOutboundAuthorizer } from './outbound/outbound-authorizer.js';
import { createPermissionChecker } from './spicedb/permission-checker.js';
import { createTokenSource } from './tokens/token-source.js';

type Closable<T> = T & { close(): void | Promise<void> };

/** The adapters: stateful, with caches and connections worth keeping across a reload. */
interface Adapters {
  readonly verifier: Closable<TokenVerifier>;
  readonly checker: Closable<PermissionChecker>;
  readonly tokens: Closable<TokenSource & { publicKeys?: PublicKeyDocuments }> | undefined;
  /** JSON of the config sections each adapter was built from, to tell whether a reload touches it. */
  readonly fingerprints: { readonly verifier: string; readonly checker: string; readonly tokens: string };
}

export interface RunningSidecar {
  readonly grpcPort: number;
  readonly adminPort: number;
  readonly metrics: Metrics;
  /** Validates and swaps in a new configuration; on failure the old one keeps serving. */
  reload(next: LoadedConfig): Promise<void>;
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
}

const fingerprintsOf = (config: Config): Adapters['fingerprints'] => ({
  verifier: JSON.stringify([config.issuers, config.limits.verifiedTokenCacheEntries, config.limits.jwksFetchTimeoutMs]),
  checker: JSON.stringify(config.spicedb),
  tokens: JSON.stringify([config.tokens, config.service]),
});

/**
 * Builds the adapters for a configuration, reusing those of `previous` whose section is unchanged
 * (their caches and connections survive a reload). If one fails to build, the ones this call
 * created are closed again: on reload the old configuration keeps serving and must not leak.
 */
async function buildAdapters(loaded: LoadedConfig, metrics: Metrics, logger: Logger, previous?: Adapters): Promise<Adapters> {
  const { config, baseDir } = loaded;
  const fingerprints = fingerprintsOf(config);
  const deps = { metrics, logger, baseDir };
  const reuse = (section: keyof Adapters['fingerprints']) => previous !== undefined && previous.fingerprints[section] === fingerprints[section];
  const created: Array<{ close(): void | Promise<void> }> = [];
  const track = <T extends { close(): void | Promise<void> }>(adapter: T): T => {
    created.push(adapter);
    return adapter;
  };
  try {
    const verifierOptions = { ...deps, cacheMaxEntries: config.limits.verifiedTokenCacheEntries, fetchTimeoutMs: config.limits.jwksFetchTimeoutMs };
    const verifier = previous && reuse('verifier') ? previous.verifier : track(await createTokenVerifier(config.issuers, verifierOptions));
    const checker = previous && reuse('checker') ? previous.checker : track(await createPermissionChecker(config.spicedb, deps));
    let tokens = previous && reuse('tokens') ? previous.tokens : undefined;
    if (!tokens && config.tokens) {
      tokens = track(await createTokenSource(config.tokens, { ...deps, serviceName: serviceIdentityOf(config).name }));
    }
    return { verifier, checker, tokens, fingerprints };
  } catch (error) {
    await Promise.allSettled(created.map(async (adapter) => adapter.close()));
    throw error;
  }
}

const adaptersReady = (adapters: Adapters): { keys: boolean; permissions: boolean } => ({
  keys: adapters.verifier.ready(),
  permissions: adapters.checker.ready(),
});

function buildPipeline(config: Config, adapters: Adapters, metrics: Metrics, logger: Logger): CheckPipeline {
  const maxTokenBytes = config.limits.maxTokenBytes;
  const inbound: Authorizer | undefined = config.inbound
    ? createInboundAuthorizer(config.inbound, { verifier: adapters.verifier, checker: adapters.checker, metrics, logger, maxTokenBytes })
    : undefined;
  let outbound: Authorizer | undefined;
  if (config.outbound) {
    if (!adapters.tokens) throw new Error('outbound is configured but tokens.source is not'); // unreachable after validation
    outbound = createOutboundAuthorizer(config.outbound, {
      verifier: adapters.verifier,
      checker: adapters.checker,
      tokens: adapters.tokens,
      serviceName: serviceIdentityOf(config).name,
      serviceSubjectType: serviceIdentityOf(config).subjectType,
      metrics,
      logger,
      maxTokenBytes,
    });
  }
  const router = new DirectionRouter(inbound, outbound);
  // The dry-run layer costs an extra await per Check; add it only where some decision can be dry-run.
  const anyDryRun = config.dryRun || (config.inbound?.rules.some((rule) => rule.dryRun) ?? false);
  const onBehalfOfHeader = config.outbound?.onBehalfOf?.header ?? DEFAULT_ON_BEHALF_OF_HEADER;
  const authorizer = anyDryRun ? new DryRunAuthorizer(router, config.dryRun, [...IDENTITY_HEADER_NAMES, onBehalfOfHeader]) : router;
  return { authorizer, limits: { maxHeaderBytes: config.limits.maxHeaderBytes } };
}

/** A decision pipeline without listeners: what `serve` runs, and what `check` explains offline. */
export interface DecisionRuntime {
  readonly pipeline: CheckPipeline;
  /** Keys loaded and permission backend reachable. */
  ready(): boolean;
  close(): Promise<void>;
}

export async function openDecisionRuntime(loaded: LoadedConfig, metrics: Metrics, logger: Logger): Promise<DecisionRuntime> {
  const adapters = await buildAdapters(loaded, metrics, logger);
  try {
    const pipeline = buildPipeline(loaded.config, adapters, metrics, logger);
    return {
      pipeline,
      ready: () => {
        const { keys, permissions } = adaptersReady(adapters);
        return keys && permissions;
      },
      close: () => closeUnshared(adapters, undefined),
    };
  } catch (error) {
    await closeUnshared(adapters, undefined);
    throw error;
  }
}

async function closeUnshared(old: Adapters, next: Adapters | undefined): Promise<void> {
  if (old.verifier !== next?.verifier) old.verifier.close();
  if (old.checker !== next?.checker) await old.checker.close();
  if (old.tokens && old.tokens !== next?.tokens) old.tokens.close();
}

export async function serve(options: ServeOptions): Promise<RunningSidecar> {
  const { logger } = options;
  const metrics = options.metrics ?? new Metrics();
  let loaded = options.loaded;
  let adapters = await buildAdapters(loaded, metrics, logger);
  let pipeline = buildPipeline(loaded.config, adapters, metrics, logger);
  metrics.setConfigHash(loaded.hash);
  let draining = false;

  const readiness = () => {
    const detail = { ...adaptersReady(adapters), draining };
    return { ready: detail.keys && detail.permissions && !draining, detail };
  };

  const observe = createDecisionObserver(metrics, logger, () => ({ allowSampleRate: loaded.config.log.allowSampleRate }));
  const handler = createCheckHandler({
    pipeline: () => pipeline,
    observe,
    onUnexpectedError: (error) => logger.error({ err: error }, 'unexpected error while deciding; denied'),
  });

  let grpc: GrpcListener | undefined;
  let admin: AdminListener | undefined;
  try {
    admin = await startAdminListener(options.adminAddress ?? loaded.config.server.adminAddress, {
      registry: metrics.registry,
      ready: readiness,
      publicKeys: () => adapters.tokens?.publicKeys,
    });
    grpc = await startGrpcListener(options.grpcAddress ?? loaded.config.server.grpcAddress, handler);
  } catch (error) {
    await admin?.close();
    await closeUnshared(adapters, undefined);
    throw error;
  }

  let lastReady: boolean | undefined;
  const updateReadiness = (): void => {
    const { ready } = readiness();
    if (ready === lastReady) return;
    lastReady = ready;
    grpc?.setServing(ready);
    metrics.ready.set(ready ? 1 : 0);
    logger.info({ ready, ...readiness().detail }, ready ? 'ready: health SERVING' : 'not ready: health NOT_SERVING');
  };
  updateReadiness();
  const readinessTimer = setInterval(updateReadiness, 250);
  readinessTimer.unref();

  let closed = false;
  const closeAll = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    clearInterval(readinessTimer);
    await grpc?.shutdown(2_000);
    await admin?.close();
    await closeUnshared(adapters, undefined);
  };

  logger.info({ grpc: grpc.port, admin: admin.port, config: loaded.origin, hash: loaded.hash }, 'jwtauth-sidecar listening');

  return {
    grpcPort: grpc.port,
    adminPort: admin.port,
    metrics,
    async reload(next) {
      try {
        const nextAdapters = await buildAdapters(next, metrics, logger, adapters);
        let nextPipeline: CheckPipeline;
        try {
          nextPipeline = buildPipeline(next.config, nextAdapters, metrics, logger);
        } catch (error) {
          await closeUnshared(nextAdapters, adapters);
          throw error;
        }
        const old = adapters;
        // One assignment each, on one tick: a Check reads `pipeline` once, so it sees old or new, never a mix.
        adapters = nextAdapters;
        pipeline = nextPipeline;
        loaded = next;
        metrics.setConfigHash(next.hash);
        metrics.configReloads.inc({ result: 'success' });
        await closeUnshared(old, nextAdapters);
        logger.info({ config: next.origin, hash: next.hash }, 'configuration reloaded');
        updateReadiness();
      } catch (error) {
        metrics.configReloads.inc({ result: 'failure' });
        throw error;
      }
    },
    async drain() {
      draining = true;
      updateReadiness();
      const seconds = loaded.config.server.drainSeconds;
      logger.info({ seconds }, 'draining: health NOT_SERVING, still answering checks');
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
      await closeAll();
    },
    close: closeAll,
  };
}
