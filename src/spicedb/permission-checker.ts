/**
 * Assembles the permission stack: a raw client (remote SpiceDB over gRPC, or the embedded one)
 * wrapped by metrics, then the in-flight bound, then the decision cache with coalescing. The
 * cache sits outermost so hits and joined calls never take an in-flight slot; metrics sit
 * innermost so they count only calls that reach SpiceDB. In watch mode the cache follows a change
 * feed: the Watch stream this stack opens, or the one a worker's primary relays.
 */
import { join } from 'node:path';
import { resolveConfigPath } from '../base/paths.js';
import { PACKAGE_ROOT } from '../base/package-root.js';
import { resolveSecret } from '../base/secret.js';
import type { Closable, PermissionChecker } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SpicedbConfig } from './config.js';
import { CachingChecker } from './decision-cache.js';
import { UNCHANGING } from './change-feed.js';
import type { ChangeFeed } from './change-feed.js';
import { EmbeddedChecker } from './embedded-checker.js';
import { GrpcChecker } from './grpc-checker.js';
import { InflightLimit } from './inflight-limit.js';
import { MeteredChecker } from './metered-checker.js';
import { SpicedbWatchFeed } from './watch-feed.js';
import type { CheckedPermissions } from './watch-feed.js';

/** The packaged examples/ folder holds the default schema and relationships. */
function packagedExample(name: string): string {
  return join(PACKAGE_ROOT, 'examples', name);
}

/** The schema and relationships the embedded SpiceDB loads: the configured files, else the packaged examples. */
export function embeddedSpicedbFiles(config: SpicedbConfig, baseDir: string): { schemaFile: string; relationshipsFile: string } {
  return {
    schemaFile: config.embedded.schemaFile ? resolveConfigPath(baseDir, config.embedded.schemaFile) : packagedExample('schema.zed'),
    relationshipsFile: config.embedded.relationshipsFile
      ? resolveConfigPath(baseDir, config.embedded.relationshipsFile)
      : packagedExample('relationships.txt'),
  };
}

async function rawChecker(config: SpicedbConfig, deps: { metrics: Metrics; logger: Logger; baseDir: string }): Promise<PermissionChecker & Closable> {
  if (config.endpoint !== undefined) {
    if (config.presharedKey === undefined) throw new Error('spicedb.presharedKey is required with spicedb.endpoint');
    deps.logger.info({ endpoint: config.endpoint, tls: config.tls !== false }, 'using SpiceDB');
    return new GrpcChecker({
      endpoint: config.endpoint,
      presharedKey: resolveSecret(config.presharedKey, deps.baseDir),
      tls: config.tls,
      deadlineMs: config.deadlineMs,
      baseDir: deps.baseDir,
      batch: config.batch,
      onCall: (checks) => deps.metrics.observeSpicedbChecksPerCall(checks),
    });
  }
  const { schemaFile, relationshipsFile } = embeddedSpicedbFiles(config, deps.baseDir);
  deps.logger.info({ schemaFile, relationshipsFile }, 'no spicedb.endpoint: starting embedded SpiceDB');
  return EmbeddedChecker.start({ schemaFile, relationshipsFile, deadlineMs: config.deadlineMs });
}

export interface PermissionCheckerDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly baseDir: string;
  /** The permissions the rules check (`type#permission`), for the Watch filter; absent or undefined: watch every type. */
  readonly checkedPermissions?: CheckedPermissions;
  /** In a worker: the feed its primary relays, used instead of a Watch of its own (a remote SpiceDB in watch mode). */
  readonly changeFeed?: ChangeFeed;
}

/**
 * The Watch a stack on `config` follows: a remote SpiceDB in watch mode has one. Opened by the
 * stack itself, or in worker mode by the primary, which relays it.
 */
export function openWatchFeed(config: SpicedbConfig, deps: Pick<PermissionCheckerDeps, 'baseDir' | 'logger' | 'checkedPermissions'>): SpicedbWatchFeed | undefined {
  if (config.decisionCache.freshness !== 'watch' || config.endpoint === undefined || config.presharedKey === undefined) return undefined;
  return new SpicedbWatchFeed({
    endpoint: config.endpoint,
    presharedKey: resolveSecret(config.presharedKey, deps.baseDir),
    tls: config.tls,
    baseDir: deps.baseDir,
    checkedPermissions: deps.checkedPermissions,
    logger: deps.logger,
  });
}

/** The cache outermost, then the in-flight bound, then metrics. Watch mode needs `feed`; `owned` closes with the stack. */
export function decorate(raw: PermissionChecker & Closable, config: SpicedbConfig, metrics: Metrics, feed?: ChangeFeed, owned?: Closable): PermissionChecker & Closable {
  const limited = new InflightLimit(new MeteredChecker(raw, metrics), config.maxInflight, metrics);
  return new CachingChecker(limited, config.decisionCache, metrics, feed, owned);
}

export async function createPermissionChecker(config: SpicedbConfig, deps: PermissionCheckerDeps): Promise<PermissionChecker & Closable> {
  const raw = await rawChecker(config, deps);
  if (config.decisionCache.freshness !== 'watch') return decorate(raw, config, deps.metrics);
  // The embedded store never changes after loading: nothing to watch.
  if (config.endpoint === undefined) return decorate(raw, config, deps.metrics, UNCHANGING);
  if (deps.changeFeed !== undefined) return decorate(raw, config, deps.metrics, deps.changeFeed);
  const watch = openWatchFeed(config, deps);
  return decorate(raw, config, deps.metrics, watch, watch);
}
