/**
 * `jwtauth-sidecar token --audience X`: one service token for an allow-listed upstream, from the
 * same source `serve` uses (with embedded defaults: the same persisted development key, so the
 * token verifies against the running sidecar's /.well-known/jwks.json).
 */
import type { TokenResult } from '../core/ports.js';
import { failure } from '../core/result.js';
import type { Logger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { OutboundConfig } from '../outbound/config.js';
import { UpstreamAllowList } from '../outbound/upstreams.js';
import type { TokensConfig } from './config.js';
import { createTokenSource } from './token-source.js';

export interface CliTokenOptions {
  readonly tokens: NonNullable<TokensConfig>;
  /** The allow-list: the CLI hands out tokens only for upstreams the sidecar would. */
  readonly outbound: OutboundConfig;
  readonly serviceName: string;
  readonly audience: string;
  readonly baseDir: string;
  readonly logger: Logger;
}

export async function issueServiceTokenForCli(options: CliTokenOptions): Promise<TokenResult> {
  const listed = new UpstreamAllowList(options.outbound?.upstreams ?? []).named(options.audience);
  if (!listed.ok) return failure('unknown_upstream', listed.detail);
  const source = await createTokenSource(options.tokens, {
    serviceName: options.serviceName,
    metrics: new Metrics({ processMetrics: false }),
    logger: options.logger,
    baseDir: options.baseDir,
    uncached: true,
  });
  try {
    return await source.issue({ kind: 'service', audience: options.audience });
  } finally {
    await source.close();
  }
}
