/**
 * The adapters a configuration needs: token verifier, permission checker and outbound token
 * source. They hold caches and connections worth keeping, so a reload rebuilds only those whose
 * config section changed.
 */
import type { LoadedConfig } from '../config/load.js';
import { serviceIdentityOf } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { Closable, PermissionChecker, TokenVerifier } from '../core/ports.js';
import { createTokenVerifier } from '../identity/token-verifier.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createPermissionChecker } from '../spicedb/permission-checker.js';
import { createTokenSource } from '../tokens/token-source.js';
import type { OutboundTokenSource } from '../tokens/token-source.js';

export interface Adapters {
  readonly verifier: TokenVerifier & Closable;
  readonly checker: PermissionChecker & Closable;
  readonly tokens: OutboundTokenSource | undefined;
}

type Section = keyof Adapters;

/** The config each adapter is built from, so a reload can tell whether it changed. */
function sectionsOf(config: Config): Record<Section, string> {
  return {
    verifier: JSON.stringify([config.issuers, config.limits.verifiedTokenCacheEntries, config.limits.jwksFetchTimeoutMs]),
    checker: JSON.stringify(config.spicedb),
    tokens: JSON.stringify([config.tokens, config.service]),
  };
}

export interface AdapterDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** Adapters plus what they were built from. */
export interface AdapterSet extends Adapters {
  readonly sections: Readonly<Record<Section, string>>;
}

export function closablesOf(adapters: Adapters): Closable[] {
  return adapters.tokens ? [adapters.verifier, adapters.checker, adapters.tokens] : [adapters.verifier, adapters.checker];
}

/**
 * Builds the adapters for a configuration, reusing those of `previous` whose section is unchanged.
 * If one fails to build, the ones this call created are closed again: on reload the old
 * configuration keeps serving and must not leak.
 */
export async function buildAdapters(loaded: LoadedConfig, deps: AdapterDeps, previous?: AdapterSet): Promise<AdapterSet> {
  const { config, baseDir } = loaded;
  const sections = sectionsOf(config);
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
        }),
      );
    const checker = reuse('checker') ?? track(await createPermissionChecker(config.spicedb, shared));
    let tokens = reuse('tokens');
    if (tokens === undefined && config.tokens) {
      tokens = track(await createTokenSource(config.tokens, { ...shared, serviceName: serviceIdentityOf(config).name }));
    }
    return { verifier, checker, tokens, sections };
  } catch (error) {
    await Promise.allSettled(created.map((adapter) => adapter.close()));
    throw error;
  }
}
