/**
 * Every Prometheus metric the sidecar exports, in one place so the names, labels and the table in
 * docs/metrics.md stay in step. Labels are bounded sets (direction, decision, reason, source,
 * issuer name, result); a subject, token, path or resource id is never a label.
 *
 * In worker mode (workers/) the primary's scrape aggregates its workers' registries: counters and
 * histograms are summed, and a metric whose sum would not describe one sidecar names its
 * `aggregator` (the readiness of all workers is their minimum; a reload every worker counts is
 * counted once; a config hash any worker serves shows as 1).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CounterCells } from './counter-cells.js';

/** Sub-millisecond resolution at the low end: a cached decision takes tens of microseconds. */
const DECISION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
const BACKEND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** The two series registered only while their feature is in use (see their fields). */
const TOKEN_CACHE_SOONEST_EXPIRY = 'jwtauth_token_cache_soonest_expiry_seconds';
const SPICEDB_CHECKS_PER_CALL = 'jwtauth_spicedb_checks_per_call';

export class Metrics {
  readonly registry = new Registry();

  /** The Check path counts here (counter-cells.ts); a scrape adds the cells into `checks`. */
  readonly checkCells = new CounterCells<'direction' | 'decision' | 'reason'>();
  readonly checks = new Counter({
    name: 'jwtauth_checks_total',
    help: 'Check calls answered, by direction, decision (allow|deny) and reason.',
    labelNames: ['direction', 'decision', 'reason'] as const,
    registers: [this.registry],
    collect: this.checkCells.collector(),
  });
  readonly checkDuration = new Histogram({
    name: 'jwtauth_check_duration_seconds',
    help: 'Time from CheckRequest received to CheckResponse sent.',
    labelNames: ['direction', 'decision'] as const,
    buckets: DECISION_BUCKETS,
    registers: [this.registry],
  });
  readonly dryRunDenials = new Counter({
    name: 'jwtauth_dry_run_would_deny_total',
    help: 'Requests allowed only because of dry-run; they would have been denied with this reason.',
    labelNames: ['direction', 'reason'] as const,
    registers: [this.registry],
  });
  readonly tokensIssued = new Counter({
    name: 'jwtauth_tokens_issued_total',
    help: 'Tokens obtained from a token source, by source kind, request kind and result.',
    labelNames: ['source', 'kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly #tokenCacheCells = new CounterCells<'event'>();
  readonly tokenCacheEvents = new Counter({
    name: 'jwtauth_token_cache_events_total',
    help: 'Outbound token cache events: hit, miss, refresh, refresh_failure, stale_served.',
    labelNames: ['event'] as const,
    registers: [this.registry],
    collect: this.#tokenCacheCells.collector(),
  });
  /** Counted on every outbound Check: a cell, not `tokenCacheEvents.inc`. */
  readonly tokenCacheHits = this.#tokenCacheCells.cell({ event: 'hit' });
  /**
   * Registered only while the outbound token cache holds a token (setTokenCacheSoonestExpiry): an
   * unlabelled prom-client gauge always exports a value, and a constant 0 on an inbound-only sidecar
   * or an empty cache would read as "a token expires now" and trip the expiry alert.
   */
  readonly #tokenCacheSoonestExpiry = new Gauge({
    name: TOKEN_CACHE_SOONEST_EXPIRY,
    help: 'Seconds until the soonest-expiring cached outbound token expires (absent when the cache is empty).',
    aggregator: 'min',
    registers: [],
  });
  readonly #verifiedTokenCells = new CounterCells<'event'>();
  readonly verifiedTokenCache = new Counter({
    name: 'jwtauth_verified_token_cache_events_total',
    help: 'Inbound verified-token cache lookups: hit or miss.',
    labelNames: ['event'] as const,
    registers: [this.registry],
    collect: this.#verifiedTokenCells.collector(),
  });
  /** Counted on every Check: cells, not `verifiedTokenCache.inc`. */
  readonly verifiedTokenHits = this.#verifiedTokenCells.cell({ event: 'hit' });
  readonly jwksRefreshes = new Counter({
    name: 'jwtauth_jwks_refreshes_total',
    help: 'JWKS fetches per configured issuer, by result (success|failure).',
    labelNames: ['issuer', 'result'] as const,
    registers: [this.registry],
  });
  readonly jwksKeys = new Gauge({
    name: 'jwtauth_jwks_keys',
    help: 'Keys currently usable per configured issuer.',
    labelNames: ['issuer'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly spicedbChecks = new Counter({
    name: 'jwtauth_spicedb_checks_total',
    help: 'Checks sent to SpiceDB, by result (allowed|denied|conditional|error reason); several share one CheckBulkPermissions call.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly spicedbCheckDuration = new Histogram({
    name: 'jwtauth_spicedb_check_duration_seconds',
    help: 'Latency of checks sent to SpiceDB: waiting for a call slot, the call and its retry.',
    buckets: BACKEND_BUCKETS,
    registers: [this.registry],
  });
  /**
   * Registered on the first CheckBulkPermissions call (observeSpicedbChecksPerCall), so the embedded
   * SpiceDB, which makes none, exports no histogram that would stay empty forever.
   */
  readonly #spicedbChecksPerCall = new Histogram({
    name: SPICEDB_CHECKS_PER_CALL,
    help: 'Checks carried by each CheckBulkPermissions call to SpiceDB (absent until the first call; never with the embedded SpiceDB).',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000],
    registers: [],
  });
  readonly #decisionCacheCells = new CounterCells<'event'>();
  readonly decisionCache = new Counter({
    name: 'jwtauth_decision_cache_events_total',
    help: 'Permission decision cache lookups: hit, miss, coalesced (joined an identical call in flight), refresh (a hit that also re-asks SpiceDB ahead of expiry).',
    labelNames: ['event'] as const,
    registers: [this.registry],
    collect: this.#decisionCacheCells.collector(),
  });
  /** Counted on every cached Check: a cell, not `decisionCache.inc`. */
  readonly decisionCacheHits = this.#decisionCacheCells.cell({ event: 'hit' });
  readonly tracingSpansDropped = new Counter({
    name: 'jwtauth_tracing_spans_dropped_total',
    help: 'Spans the tracing exporter could not deliver to the OTLP collector (dropped, not retried).',
    registers: [this.registry],
  });
  readonly decisionCacheInvalidations = new Counter({
    name: 'jwtauth_decision_cache_invalidations_total',
    help: 'Cached permission answers dropped because SpiceDB changed (watch mode), by scope: change (a relationship change could affect them) or all (the Watch started over after a cursor SpiceDB refused, or a schema change).',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  readonly spicedbWatch = new Gauge({
    name: 'jwtauth_spicedb_watch',
    help: 'The SpiceDB Watch stream behind the decision cache (watch mode): 1 for its current state (connecting|live|down), 0 for the others. Not live: cached answers fall back to decisionCache.ttlMs.',
    labelNames: ['state'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly spicedbWatchUpdates = new Counter({
    name: 'jwtauth_spicedb_watch_updates_total',
    help: 'Relationship updates received on the SpiceDB Watch stream (watch mode).',
    // In worker mode every worker receives each update the primary relays.
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly spicedbInflightChecks = new Gauge({
    name: 'jwtauth_spicedb_inflight_checks',
    help: 'Checks sent to SpiceDB and not yet answered (bounded by spicedb.maxInflight).',
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'jwtauth_config_reloads_total',
    help: 'Configuration reload attempts by result (success|failure).',
    labelNames: ['result'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly configInfo = new Gauge({
    name: 'jwtauth_config_info',
    help: 'Always 1; the hash label identifies the loaded configuration.',
    labelNames: ['hash'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly schemaConformance = new Gauge({
    name: 'jwtauth_schema_conformance',
    help: 'Whether the rules name only types, permissions, relations and caveat parameters the SpiceDB schema has: 1 for the current state (conforms|mismatch|unchecked), 0 for the others.',
    labelNames: ['state'] as const,
    aggregator: 'max',
    registers: [this.registry],
  });
  readonly certificateNotAfter = new Gauge({
    name: 'jwtauth_certificate_not_after_seconds',
    help: 'notAfter (unix seconds) of each certificate file the serving configuration names, by use (its configuration key) and path; for a CA bundle, its earliest. Alert before it passes.',
    labelNames: ['use', 'path'] as const,
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly ready = new Gauge({
    name: 'jwtauth_ready',
    help: '1 when the sidecar is ready to decide (config, keys and permission backend), else 0.',
    aggregator: 'min',
    registers: [this.registry],
  });
  readonly introspections = new Counter({
    name: 'jwtauth_introspections_total',
    help: 'RFC 7662 introspection calls per configured issuer, by result (active|inactive|failure); cached and coalesced answers are not calls.',
    labelNames: ['issuer', 'result'] as const,
    registers: [this.registry],
  });
  readonly listenerRefusals = new Counter({
    name: 'jwtauth_listener_refusals_total',
    help: 'Connections and calls the gRPC listeners refused or closed for one of their limits, by cause (connection_limit|handshake_timeout|unresponsive|request_timeout|message_too_large|request_memory).',
    labelNames: ['cause'] as const,
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** One scrape of this process's registry, for the admin listener. */
  readonly exposition = async (): Promise<{ contentType: string; body: string }> => ({ contentType: this.registry.contentType, body: await this.registry.metrics() });

  /** Seconds until the soonest cached outbound token expires; undefined (an empty cache) removes the series. */
  setTokenCacheSoonestExpiry(seconds: number | undefined): void {
    if (seconds === undefined) {
      this.registry.removeSingleMetric(TOKEN_CACHE_SOONEST_EXPIRY);
      return;
    }
    this.#registerOnce(TOKEN_CACHE_SOONEST_EXPIRY, this.#tokenCacheSoonestExpiry);
    this.#tokenCacheSoonestExpiry.set(seconds);
  }

  /** The checks one CheckBulkPermissions call carried. */
  observeSpicedbChecksPerCall(checks: number): void {
    this.#registerOnce(SPICEDB_CHECKS_PER_CALL, this.#spicedbChecksPerCall);
    this.#spicedbChecksPerCall.observe(checks);
  }

  #registerOnce(name: string, metric: Gauge | Histogram): void {
    if (this.registry.getSingleMetric(name) === undefined) this.registry.registerMetric(metric);
  }

  setConfigHash(hash: string): void {
    this.configInfo.reset();
    this.configInfo.set({ hash }, 1);
  }

  /** The certificates the serving configuration names; a file no longer named leaves the gauge. */
  setCertificateExpiries(files: ReadonlyArray<{ readonly use: string; readonly path: string; readonly notAfterSeconds: number | undefined }>): void {
    this.certificateNotAfter.reset();
    for (const file of files) if (file.notAfterSeconds !== undefined) this.certificateNotAfter.set({ use: file.use, path: file.path }, file.notAfterSeconds);
  }
}

/**
 * The primary's own series in worker mode (workers/primary.ts), exported after its workers'
 * aggregated ones. A crash-looping worker shows here while the pod stays up.
 */
export class PrimaryMetrics {
  readonly registry = new Registry();

  constructor(options: { processMetrics?: boolean } = {}) {
    // The primary's own process (memory, CPU, event loop), apart from the workers' summed ones.
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'jwtauth_primary_' });
  }

  readonly workerScrapeUp = new Gauge({
    name: 'jwtauth_worker_scrape_up',
    help: 'Worker mode: 1 when the worker answered the last metrics scrape in time, 0 when it was left out of it.',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });

  readonly workerRestarts = new Counter({
    name: 'jwtauth_worker_restarts_total',
    help: 'Workers that exited unexpectedly and were replaced (worker mode).',
    registers: [this.registry],
  });
  readonly workers = new Gauge({
    name: 'jwtauth_workers',
    help: 'Worker processes (worker mode): configured (server.workers) and running.',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
}
