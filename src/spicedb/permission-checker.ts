/**
 * Assembles the permission stack: a raw client (remote SpiceDB over gRPC, or the embedded one)
 * wrapped by metrics, then the in-flight bound, then the decision cache with coalescing. The
 * cache sits outermost so hits and joined calls never take an in-flight slot; metrics sit
 * innermost so they count only calls that reach SpiceDB.
 */
import { join } from 'node:path';
import { resolveConfigPath } from '../config/paths.js';
import { PACKAGE_ROOT } from '../package-root.js';
import { resolveSecret } from '../config/secret.js';
import type { Closable, PermissionChecker } from '../core/ports.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { SpicedbConfig } from './config.js';
import { CachingChecker } from './decision-cache.js';
import { EmbeddedChecker } from './embedded-checker.js';
import { GrpcChecker } from './grpc-checker.js';
import { InflightLimit } from './inflight-limit.js';
import { MeteredChecker } from './metered-checker.js';

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
      onCall: (checks) => deps.metrics.spicedbChecksPerCall.observe(checks),
    });
  }
  const { schemaFile, relationshipsFile } = embeddedSpicedbFiles(config, deps.baseDir);
  deps.logger.info({ schemaFile, relationshipsFile }, 'no spicedb.endpoint: starting embedded SpiceDB');
  return EmbeddedChecker.start({ schemaFile, relationshipsFile, deadlineMs: config.deadlineMs });
}

export function decorate(raw: PermissionChecker & Closable, config: SpicedbConfig, metrics: Metrics): PermissionChecker & Closable {
  const limited = new InflightLimit(new MeteredChecker(raw, metrics), config.maxInflight, metrics);
  return new CachingChecker(limited, config.decisionCache, metrics);
}

export async function createPermissionChecker(
  config: SpicedbConfig,
  deps: { metrics: Metrics; logger: Logger; baseDir: string },
): Promise<PermissionChecker & Closable> {
  return decorate(await rawChecker(config, deps), config, deps.metrics);
}
