/**
 * Builds the outbound token source from the `tokens` section: the configured source (mint or
 * exchange), wrapped in the metrics and cache decorators. Called once at start-up (and on reload).
 */
import type { Closable, PublicKeyDocuments, TokenSource } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { MintSourceConfig, TokensConfig } from './config.js';
import { ExchangeTokenSource } from './exchange-source.js';
import { MintTokenSource } from './mint-source.js';
import { SigningKeySet, loadOrCreateDevKey, loadSigningKeyFile } from './signing-keys.js';
import type { SigningKey } from './signing-keys.js';
import { CachingTokenSource, MeteredTokenSource } from './token-cache.js';
import { resolveConfigPath } from '../base/paths.js';

export interface TokenSourceDeps {
  readonly serviceName: string;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Relative key and certificate paths (and the development key file) resolve against this. */
  readonly baseDir: string;
  /** Epoch milliseconds; tests inject a clock. */
  readonly now?: () => number;
  /** Skip the cache decorator (the `token` CLI issues one token and exits). */
  readonly uncached?: boolean;
}

/** The outbound token source as serve runs it: decorated, closable, and with the keys a minting source publishes. */
export interface OutboundTokenSource extends TokenSource, Closable {
  readonly publicKeys: PublicKeyDocuments | undefined;
}

export async function createTokenSource(config: NonNullable<TokensConfig>, deps: TokenSourceDeps): Promise<OutboundTokenSource> {
  const now = deps.now ?? Date.now;
  let inner: TokenSource;
  let publicKeys: PublicKeyDocuments | undefined;
  let closeInner: () => Promise<void> = () => Promise.resolve();

  if (config.source.kind === 'mint') {
    const keys = await loadMintKeys(config.source, config, deps, now);
    const mint = new MintTokenSource(keys, {
      issuer: config.source.issuer,
      jwksUri: config.source.jwksUri ?? `${config.source.issuer.replace(/\/+$/, '')}/.well-known/jwks.json`,
      serviceName: deps.serviceName,
      lifetimeSeconds: config.lifetimeSeconds,
      now,
    });
    inner = mint;
    publicKeys = mint.publicKeys;
  } else {
    const exchange = new ExchangeTokenSource(config.source, { serviceName: deps.serviceName, baseDir: deps.baseDir, now });
    inner = exchange;
    closeInner = () => exchange.close();
    deps.logger.info({ tokenEndpoint: config.source.tokenEndpoint, clientId: config.source.clientId ?? deps.serviceName }, 'outbound tokens from the token service');
  }

  const metered = new MeteredTokenSource(inner, deps.metrics);
  if (deps.uncached) {
    return { name: inner.name, issue: (r) => metered.issue(r), publicKeys, close: closeInner };
  }
  const cache = new CachingTokenSource(metered, {
    ...config.cache,
    clockSkewSeconds: config.clockSkewSeconds,
    metrics: deps.metrics,
    now,
  });
  return {
    name: inner.name,
    issue: (r) => cache.issue(r),
    publicKeys,
    close: async () => {
      await cache.close();
      await closeInner();
    },
  };
}

async function loadMintKeys(
  source: MintSourceConfig,
  config: NonNullable<TokensConfig>,
  deps: TokenSourceDeps,
  now: () => number,
): Promise<SigningKeySet> {
  const keys: SigningKey[] = [];
  if (source.keys.length === 0) {
    const dev = await loadOrCreateDevKey(source.devKeyFile, deps.baseDir, source.algorithm);
    deps.logger.warn(
      { keyFile: dev.path, kid: dev.key.kid, created: dev.created },
      'DEVELOPMENT SIGNING KEY in use: tokens.source.keys is empty, so outbound tokens are signed with a key kept in a local file. Configure tokens.source.keys for anything but local development.',
    );
    keys.push(dev.key);
  } else {
    for (const entry of source.keys) {
      const path = resolveConfigPath(deps.baseDir, entry.file);
      const notBefore = entry.notBefore === undefined ? -Infinity : Date.parse(entry.notBefore);
      keys.push(await loadSigningKeyFile(path, entry.algorithm ?? source.algorithm, notBefore));
    }
  }
  const set = new SigningKeySet(keys, {
    publishBeforeUseSeconds: source.publishBeforeUseSeconds,
    maxTokenLifetimeSeconds: config.lifetimeSeconds,
    clockSkewSeconds: config.clockSkewSeconds,
  });
  const at = now();
  if (!set.signingKey(at)) deps.logger.warn('no signing key is active yet: every key has a future notBefore; minting fails until the first one');
  for (const key of set.describe()) {
    const soon = key.signsFrom > at && key.signsFrom - at < source.publishBeforeUseSeconds * 1000;
    deps.logger[soon ? 'warn' : 'info'](
      {
        kid: key.kid,
        alg: key.alg,
        keyFile: key.origin,
        publishFrom: iso(key.publishFrom),
        signsFrom: iso(key.signsFrom),
        retireAt: iso(key.retireAt),
      },
      soon
        ? 'signing key starts signing in less than publishBeforeUseSeconds: verifiers that have not seen it yet may reject its tokens'
        : 'signing key scheduled',
    );
  }
  return set;
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : ms < 0 ? 'always' : 'never';
}
