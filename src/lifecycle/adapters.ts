/**
 * The adapters a configuration needs: token verifier, permission checker and outbound token
 * source. They hold caches and connections worth keeping, so a reload rebuilds only those whose
 * config section, or the content of a file that section names (named-files.ts), changed.
 */
import type { LoadedConfig } from '../config/load.js';
import { serviceIdentityOf } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { Closable, PermissionChecker } from '../core/ports.js';
import { createTokenVerifier } from '../identity/token-verifier.js';
import type { VerifierAdapter } from '../identity/token-verifier.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Tracing } from '../observability/tracing.js';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { resolveTracingSettings } from '../observability/tracing-config.js';
import { checkedPermissions } from './checked-permissions.js';
import type { ChangeFeed } from '../spicedb/change-feed.js';
import { createPermissionChecker } from '../spicedb/permission-checker.js';
import { digestsFor } from './named-files.js';
import type { Fingerprint } from './named-files.js';
import { createTokenSource } from '../tokens/token-source.js';
import type { OutboundTokenSource } from '../tokens/token-source.js';

export interface Adapters {
  readonly verifier: VerifierAdapter;
  readonly checker: PermissionChecker & Closable;
  readonly tokens: OutboundTokenSource | undefined;
  /** The tracer provider; absent when tracing is off, so a Check creates no span at all. */
  readonly tracing?: Tracing | undefined;
}

type Section = keyof Adapters;
/** What each adapter was built from; `tracing` may be absent, for sets built without it. */
type Sections = Readonly<Record<Exclude<Section, 'tracing'>, string> & Partial<Record<'tracing', string>>>;

/**
 * The config each adapter is built from, and the digests of the files it reads, so a reload can
 * tell whether it changed: a certificate renewed at the same path rebuilds the adapter reading it.
 */
function sectionsOf(config: Config, env: NodeJS.ProcessEnv, files: Fingerprint): Required<Sections> {
  return {
    // Settings as resolved, OTEL_* variables included: the provider is rebuilt only when they differ.
    tracing: JSON.stringify(resolveTracingSettings(config.tracing, env) ?? null),
    verifier: JSON.stringify([config.issuers, config.limits.verifiedTokenCacheEntries, config.limits.jwksFetchTimeoutMs, digestsFor(files, 'verifier')]),
    // The checked permissions decide what the Watch follows: rules that check others need a new one.
    checker: JSON.stringify([
      config.spicedb,
      config.spicedb.decisionCache.freshness === 'watch' ? checkedPermissions(config) ?? null : null,
      digestsFor(files, 'checker'),
    ]),
    tokens: JSON.stringify([config.tokens, config.service, digestsFor(files, 'tokens')]),
  };
}

export interface AdapterDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Where OTEL_* variables are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Spans go here instead of OTLP (tests and the bench). */
  readonly spanExporter?: SpanExporter;
  /** In a worker: the SpiceDB changes its primary relays, so the workers share one Watch. */
  readonly changeFeed?: ChangeFeed;
}

/** Adapters plus what they were built from. */
export interface AdapterSet extends Adapters {
  readonly sections: Sections;
}

export function closablesOf(adapters: Adapters): Closable[] {
  const closables: Closable[] = [adapters.verifier, adapters.checker];
  if (adapters.tokens) closables.push(adapters.tokens);
  if (adapters.tracing) closables.push(adapters.tracing);
  return closables;
}

/**
 * Builds the adapters for a configuration, reusing those of `previous` whose section is unchanged;
 * `files` is what the named files held when read, before building (runtime.ts).
 * If one fails to build, the ones this call created are closed again: on reload the old
 * configuration keeps serving and must not leak.
 */
export async function buildAdapters(loaded: LoadedConfig, files: Fingerprint, deps: AdapterDeps, previous?: AdapterSet): Promise<AdapterSet> {
  const { config, baseDir } = loaded;
  const env = deps.env ?? process.env;
  const sections = sectionsOf(config, env, files);
  const created: Closable[] = [];
  const reuse = <K extends Section>(section: K): Adapters[K] | undefined =>
    previous !== undefined && previous.sections[section] === sections[section] ? previous[section] : undefined;
  const track = <T extends Closable>(adapter: T): T => {
    created.push(adapter);
    return adapter;
  };
  const shared = { ...deps, baseDir };
  try {
    const verifier =
      reuse('verifier') ??
      track(
        await createTokenVerifier(config.issuers, {
          ...shared,
          cacheMaxEntries: config.limits.verifiedTokenCacheEntries,
          fetchTimeoutMs: config.limits.jwksFetchTimeoutMs,
          // An unchanged issuer keeps its last good keys through a rebuild, even with its JWKS unreachable.
          ...(previous ? { previous: previous.verifier } : {}),
        }),
      );
    const checker =
      reuse('checker') ??
      track(await createPermissionChecker(config.spicedb, { ...shared, checkedPermissions: checkedPermissions(config), ...(deps.changeFeed ? { changeFeed: deps.changeFeed } : {}) }));
    let tokens = reuse('tokens');
    if (tokens === undefined && config.tokens) {
      tokens = track(await createTokenSource(config.tokens, { ...shared, serviceName: serviceIdentityOf(config).name }));
    }
    let tracing = reuse('tracing');
    const tracingSettings = resolveTracingSettings(config.tracing, env);
    if (tracing === undefined && tracingSettings !== undefined) {
      tracing = track(new Tracing(tracingSettings, deps.spanExporter ? { exporter: deps.spanExporter } : { watch: { metrics: deps.metrics, logger: deps.logger } }));
    }
    return { verifier, checker, tokens, tracing, sections };
  } catch (error) {
    await Promise.allSettled(created.map((adapter) => adapter.close()));
    throw error;
  }
}
