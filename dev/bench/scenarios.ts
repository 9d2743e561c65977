/**
 * What `npm run bench` measures, in the order it runs (docs/benchmarks.md explains each). A group
 * starts one authorizer, and one Envoy in front of it for the scenarios that go through Envoy; the
 * group's scenarios share both, so the outbound path is measured on the sidecar the cached inbound
 * run has just warmed, as in production. Scenario ids are what `--only` matches and what the
 * results are keyed by.
 *
 * It lives in dev/ (with the Envoy configurations, fixtures and gRPC call it names) because a test,
 * test/unit/envoy-configs-in-repo.test.ts, checks every Envoy configuration the bench generates,
 * and the tests and the bench share code only through dev/. bench/run.ts runs it.
 */
import { UPSTREAM } from './fixtures.js';
import type { SidecarVariant } from './fixtures.js';
import { CALLER_CLOUD } from './grpc-call.js';
import type { NamespacesMethod } from './grpc-call.js';
import { SHIPPED_NODE_ARGS } from '../node-flags.js';

/** h2load's connections (-c) and streams per connection (-m) at saturation. */
export interface ShapeSpec {
  readonly clients: number;
  readonly streams: number;
}

export const SATURATION: ShapeSpec = { clients: 8, streams: 16 };
/** h2load clients each walk `-i` lists from the top, so "every request distinct" needs one client. */
export const UNCACHED_SATURATION: ShapeSpec = { clients: 1, streams: 32 };

/**
 * Relationships for the uncached scenario, one resource each. SpiceDB's memory datastore, which
 * the scenario used to run on, got slower per check as relationships grew (30,000 and 150,000 made
 * every Check hit the sidecar's 300 ms deadline here; see docs/benchmarks.md); on Postgres the
 * count stays, so its figures compare with those runs.
 */
const DISTINCT_RESOURCES = 10_000;

/** What answers Envoy's ext_authz calls, and ghz's in a direct scenario. */
export type Authorizer =
  | { readonly kind: 'none' }
  | { readonly kind: 'opa-envoy'; readonly rawHeaders: boolean }
  /**
   * An ext_authz server answering OK without deciding: `node` is the sidecar's own gRPC listener
   * (bench/null-authorizer.ts), `go` a grpc-go server (bench/go-null-authorizer).
   */
  | { readonly kind: 'grpc-floor'; readonly stack: 'node' | 'go'; /** Node's flags for `node`; default SHIPPED_NODE_ARGS. */ readonly nodeArgs?: readonly string[] }
  | {
      readonly kind: 'sidecar';
      /** Node's own flags, before the script; default SHIPPED_NODE_ARGS (BENCH_SIDECAR_NODE_ARGS and --profile add theirs). */
      readonly nodeArgs?: readonly string[];
      /** Names its CPU profile (--profile) and its kept output (BENCH_SIDECAR_OUTPUT). */
      readonly name: string;
      readonly variant: SidecarVariant;
      /** Its profile's hottest functions go into the results JSON. */
      readonly profileInResults?: boolean;
      /**
       * `baseline`: the build BENCH_BASELINE_SIDECAR_CLI names (a worktree at an older commit)
       * instead of this one, for a before/after measured in one `--compare` run.
       */
      readonly build?: 'baseline';
    };

/** The two listeners every Envoy may have: the request path on `ingress` is /v1/clouds/cl0/items, on `egress` /v1/items. */
export type Port = 'ingress' | 'egress';

export interface Listener {
  /** Envoy's stat prefix for it. */
  readonly name: string;
  readonly port: Port;
  readonly filter:
    | { readonly kind: 'bare' }
    /** The same issuer, audience and key as every other verifier, inline. */
    | { readonly kind: 'jwt_authn' }
    /**
     * The deployed ext_authz filter; outbound calls carry the audience of the bench upstream. Every
     * route opts out of body buffering except those of `grpcRoutes` that say otherwise.
     */
    | {
        readonly kind: 'ext_authz';
        readonly direction: 'inbound' | 'outbound';
        readonly encodeRawHeaders?: boolean;
        /** Routes of their own for dev/bench/namespaces.proto methods, answered with grpc-status 0. */
        readonly grpcRoutes?: ReadonlyArray<{ readonly method: NamespacesMethod; readonly buffersBody: boolean }>;
      };
}

/**
 * A unary call to dev/bench/namespaces.proto's service instead of a GET: POST of one framed
 * CreateNamespaceRequest (~200 bytes), with `x-cloud-id` naming the caller's cloud.
 */
export interface GrpcCall {
  readonly method: NamespacesMethod;
  /** The message's cloud_id. */
  readonly messageCloud: string;
}

/** An answer a scenario must get before it measures: a broken setup would otherwise measure fast errors. */
export interface Expectation {
  readonly port: Port;
  /** Instead of the port's usual path. */
  readonly path?: string;
  readonly withToken: boolean;
  readonly status: number;
  /** For the failure message. */
  readonly what: string;
  /** Keep asking for a while: Envoy's first calls to an authorizer that has just started can fail before its cluster connects. */
  readonly eventually?: boolean;
  /** Make this gRPC call instead (`path` unused); a gRPC answer is HTTP 200, so its grpc-status decides. */
  readonly grpc?: { readonly call: GrpcCall; readonly grpcStatus: number };
}

/** A row of the results table. */
export interface RowReport {
  readonly label: string;
  /** The table's authorizer column; sidecar rows start with jwtauth-sidecar. */
  readonly authorizer: string;
  /** Added to the row: how much each sidecar series grew during the measurement. */
  readonly counts?: Readonly<Record<string, string>>;
  /** Added to the row as they are. */
  readonly constants?: Readonly<Record<string, number>>;
  /** Logged: every series of these sidecar metrics that grew, except those containing one of `except`. */
  readonly logsGrowth?: { readonly of: readonly string[]; readonly except: readonly string[] };
  /** Logged after the measurement, from the row's extra figures. */
  readonly summary?: (extra: Readonly<Record<string, number>>) => string;
  /** Also a point of the rule-count scaling table. */
  readonly scalingRules?: number;
  /** The id of a scenario this one differs from in one respect: the results show the differences. */
  readonly comparedWith?: string;
}

/** h2load at saturation, then vegeta at the offered rate, through Envoy. */
export interface ThroughEnvoy {
  readonly id: string;
  readonly expects: readonly Expectation[];
  readonly load:
    | {
        readonly kind: 'one-url';
        readonly port: Port;
        readonly withToken: boolean;
        readonly latencyOnly?: boolean;
        readonly watchesSpicedb?: boolean;
        /** This call instead of a GET of the port's path. The run fails if the sidecar denied any of them. */
        readonly call?: GrpcCall;
      }
    /** Every request names another resource (a slice of them per load run), so only SpiceDB can answer. */
    | { readonly kind: 'distinct-resources'; readonly resources: number; readonly rateCapFraction: number };
  readonly reports: RowReport;
}

/** ghz straight at the authorizer's gRPC port: throughput, latency and CPU per Check, no Envoy. */
export interface DirectChecks {
  readonly id: string;
  readonly load: {
    readonly kind: 'direct-checks';
    readonly checks: { readonly quick: number; readonly full: number };
    readonly concurrency: number;
    /** ghz's HTTP/2 connections (default 1, as one Envoy thread); worker mode needs one per worker. */
    readonly connections?: number;
    /** The Check Envoy sends for this call instead of the ingress GET; with the framed message as raw_body when its route buffers it. */
    readonly request?: { readonly call: GrpcCall; readonly bodyInCheck: boolean };
  };
  readonly reports: { readonly direct: string; readonly comparedWith?: string };
}

/** Requests with ever new tokens through Envoy; the sidecar's RSS after each step. */
export interface TokenScaling {
  readonly id: string;
  readonly expects: readonly Expectation[];
  readonly load: { readonly kind: 'distinct-tokens'; readonly steps: { readonly quick: readonly number[]; readonly full: readonly number[] } };
  readonly reports: { readonly scaling: 'tokens' };
}

export type Scenario = ThroughEnvoy | DirectChecks | TokenScaling;

export function isDirect(scenario: Scenario): scenario is DirectChecks {
  return scenario.load.kind === 'direct-checks';
}
export function isTokenScaling(scenario: Scenario): scenario is TokenScaling {
  return scenario.load.kind === 'distinct-tokens';
}
export function isThroughEnvoy(scenario: Scenario): scenario is ThroughEnvoy {
  return !isDirect(scenario) && !isTokenScaling(scenario);
}

export interface ScenarioGroup {
  readonly starts: Authorizer;
  /** Started before the first scenario that goes through Envoy, and kept until the group ends. */
  readonly envoy: readonly Listener[];
  /** Envoy's worker threads (default 1), each with its own connection to the authorizer. */
  readonly envoyConcurrency?: number;
  readonly scenarios: readonly Scenario[];
  /**
   * Its scenarios take turns, one round each (A B, B A, A B …; those through Envoy among
   * themselves, then the direct ones), instead of running their rounds back to back: on a machine
   * others use, load that comes and goes then hits both alike. For scenarios compared with each other.
   */
  readonly alternatesRounds?: boolean;
  /**
   * The SpiceDB its authorizer asks. Default: the run's shared one, on the memory datastore, which
   * is enough where decisions are cached. For groups whose every Check reaches SpiceDB, one of its
   * own: `postgres` on a throwaway PostgreSQL cluster, the datastore users run, or `memory`.
   */
  readonly spicedbDatastore?: 'postgres' | 'memory';
  /**
   * Left out of a run unless `--only` or `--compare` names one of its scenario ids exactly: the
   * Node flag variants, measured against their defaults on request (`--compare`), not in every run.
   */
  readonly onlyWhenNamed?: boolean;
}

const INGRESS_INBOUND: Listener = { name: 'ingress', port: 'ingress', filter: { kind: 'ext_authz', direction: 'inbound' } };
const CACHED_PATH = { kind: 'one-url', port: 'ingress', withToken: true } as const;
const DIRECT_CHECKS = { kind: 'direct-checks', checks: { quick: 5_000, full: 40_000 }, concurrency: 32 } as const;
const refuses = (status: number, what: string): Expectation => ({ port: 'ingress', withToken: false, status, what: `${what} without a token` });
const admits = (what: string, eventually = false): Expectation => ({ port: 'ingress', withToken: true, status: 200, what, eventually });
/** A gRPC call with the token: HTTP 200 always, `grpcStatus` 0 when allowed, 7 when denied. */
const answersGrpc = (call: GrpcCall, grpcStatus: number, what: string, eventually = false): Expectation => ({
  port: 'ingress',
  withToken: true,
  status: 200,
  what,
  eventually,
  grpc: { call, grpcStatus },
});
const GRPC_OK = 0;
const GRPC_PERMISSION_DENIED = 7;
const GRPC_UNAUTHENTICATED = 16;
/** Names a cloud the caller has no relation to; only the rule that reads the message sees it. */
const OTHER_CLOUD = 'cl1';
const BY_HEADER: GrpcCall = { method: 'CreateByHeaders', messageCloud: CALLER_CLOUD };
const BY_MESSAGE: GrpcCall = { method: 'CreateByMessage', messageCloud: CALLER_CLOUD };
const DECISION_CACHE_HITS = { decisionCacheHits: 'jwtauth_decision_cache_events_total{event="hit"}' };

const FLOOR_NODE: ThroughEnvoy = {
  id: 'floor_node',
  expects: [{ port: 'ingress', withToken: false, status: 200, what: 'null authorizer', eventually: true }],
  load: CACHED_PATH,
  reports: { label: "ext_authz floor: the sidecar's gRPC listener answering OK without deciding", authorizer: 'node:http2, no decision' },
};
const SIDECAR_LISTENERS: readonly Listener[] = [INGRESS_INBOUND, { name: 'egress', port: 'egress', filter: { kind: 'ext_authz', direction: 'outbound' } }];
const SIDECAR_INBOUND_CACHED: ThroughEnvoy = {
  id: 'sidecar_inbound_cached',
  expects: [refuses(401, 'sidecar'), admits('sidecar with the token', true)],
  load: { ...CACHED_PATH, watchesSpicedb: true },
  reports: {
    label: 'sidecar inbound, verified token + cached SpiceDB decision',
    authorizer: 'jwtauth-sidecar',
    // SpiceDB checks: what keeping the decision cache fresh costs (per worker in worker mode).
    counts: { ...DECISION_CACHE_HITS, spicedbChecks: 'jwtauth_spicedb_checks_total{result="allowed"}' },
  },
};

/**
 * Node flag variants (`onlyWhenNamed`): the Node floor and the cached inbound sidecar, each in a
 * group of its own started with other Node flags than the shipped ones, its id the default's plus
 * the suffix. Compare with `--compare=floor_node,floor_node_v8gc` (docs/benchmarks.md).
 */
const NODE_FLAG_VARIANTS: ReadonlyArray<{ readonly suffix: string; readonly nodeArgs: readonly string[] }> = [
  // V8's defaults: parallel GC helper threads that share the authorizer's one core with the main thread.
  { suffix: 'v8gc', nodeArgs: [] },
  // A smaller young generation: scavenges more often, each shorter (their cost follows what was
  // allocated since the last one), against more promotion into the old generation.
  { suffix: 'semi4', nodeArgs: [...SHIPPED_NODE_ARGS, '--max-semi-space-size=4'] },
  { suffix: 'semi8', nodeArgs: [...SHIPPED_NODE_ARGS, '--max-semi-space-size=8'] },
];

function nodeFlagVariant(scenario: ThroughEnvoy, suffix: string, nodeArgs: readonly string[]): ThroughEnvoy {
  const { label } = scenario.reports;
  const flags = nodeArgs.length === 0 ? "V8's default flags" : `node ${nodeArgs.join(' ')}`;
  return { ...scenario, id: `${scenario.id}_${suffix}`, reports: { ...scenario.reports, label: `${label}, ${flags}`, comparedWith: scenario.id } };
}

const SIDECAR_INBOUND_UNCACHED: ThroughEnvoy = {
  id: 'sidecar_inbound_uncached',
  expects: [{ ...admits('the last uncached relationship visible', true), path: `/v1/clouds/c${DISTINCT_RESOURCES - 1}/items` }],
  // Near saturation the latency figure is queueing: offer a quarter of its throughput.
  load: { kind: 'distinct-resources', resources: DISTINCT_RESOURCES, rateCapFraction: 0.25 },
  reports: {
    label: 'sidecar inbound, decision cache off, a distinct resource per request → a real SpiceDB check',
    authorizer: 'jwtauth-sidecar + spicedb',
    counts: {
      spicedbChecks: 'jwtauth_spicedb_checks_total{result="allowed"}',
      spicedbCalls: 'jwtauth_spicedb_checks_per_call_count',
      decisionCacheHits: 'jwtauth_decision_cache_events_total{event="hit"}',
    },
    constants: { distinctResources: DISTINCT_RESOURCES },
    logsGrowth: { of: ['jwtauth_spicedb_checks_total', 'jwtauth_decision_cache_events_total', 'jwtauth_checks_total'], except: ['result="allowed"', '"miss"'] },
    summary: (extra) =>
      `SpiceDB checks ${extra.spicedbChecks} in ${extra.spicedbCalls} CheckBulkPermissions calls (${((extra.spicedbChecks ?? 0) / (extra.spicedbCalls ?? NaN)).toFixed(1)} per call), decision cache hits ${extra.decisionCacheHits}`,
  },
};

/** The uncached sidecar, asking a SpiceDB of its own on `datastore`. */
function uncachedGroup(scenario: ThroughEnvoy, datastore: 'postgres' | 'memory', build?: 'baseline', maxConcurrentCalls?: number): ScenarioGroup {
  return {
    starts: {
      kind: 'sidecar',
      name: scenario.id.replace(/^sidecar_inbound_/, '').replaceAll('_', '-'),
      variant: { decisionCacheTtlMs: 0, ...(maxConcurrentCalls === undefined ? {} : { maxConcurrentCalls }) },
      profileInResults: true,
      ...(build ? { build } : {}),
    },
    envoy: [INGRESS_INBOUND],
    spicedbDatastore: datastore,
    scenarios: [scenario],
    ...(scenario.id === SIDECAR_INBOUND_UNCACHED.id ? {} : { onlyWhenNamed: true }),
  };
}

/**
 * The uncached scenario on SpiceDB's memory datastore, both on the baseline build
 * (BENCH_BASELINE_SIDECAR_CLI), and with fewer CheckBulkPermissions calls in flight (so each
 * carries more checks): issue #22's CPU per uncached check, before and after, on memory and on
 * Postgres, and the batching it depends on, each measured against another in one `--compare` run
 * (docs/benchmarks.md). Only when named.
 */
const UNCACHED_VARIANTS: readonly ScenarioGroup[] = (
  [
    ['memory', 'memory', undefined, undefined],
    ['baseline', 'postgres', 'baseline', undefined],
    ['memory_baseline', 'memory', 'baseline', undefined],
    ['calls1', 'postgres', undefined, 1],
    ['calls2', 'postgres', undefined, 2],
    ['memory_calls1', 'memory', undefined, 1],
  ] as const
).map(([suffix, datastore, build, maxConcurrentCalls]) => {
  const where = datastore === 'memory' ? ', SpiceDB on the memory datastore' : '';
  const which = build === 'baseline' ? ', baseline build (BENCH_BASELINE_SIDECAR_CLI)' : '';
  const calls = maxConcurrentCalls === undefined ? '' : `, batch.maxConcurrentCalls ${maxConcurrentCalls}`;
  const scenario: ThroughEnvoy = {
    ...SIDECAR_INBOUND_UNCACHED,
    id: `${SIDECAR_INBOUND_UNCACHED.id}_${suffix}`,
    reports: { ...SIDECAR_INBOUND_UNCACHED.reports, label: `${SIDECAR_INBOUND_UNCACHED.reports.label}${where}${which}${calls}` },
  };
  return uncachedGroup(scenario, datastore, build, maxConcurrentCalls);
});

/** What the worker-mode rows can and cannot show on this machine, for the results. */
export const WORKER_ROWS_NOTE =
  'worker mode (server.workers, docs/configuration.md#worker-mode): the `_w2` rows run 2 workers, one on the authorizer core and one on the front core beside Envoy and the load generator, since this machine has no third core. They show what a Check costs in worker mode, not how it scales; scaling with cores is the per-core cost times the cores given (docs/benchmarks.md).';

export const SCENARIO_GROUPS: readonly ScenarioGroup[] = [
  // The floor: Envoy answering by itself.
  {
    starts: { kind: 'none' },
    envoy: [{ name: 'bare', port: 'ingress', filter: { kind: 'bare' } }],
    scenarios: [{ id: 'bare', expects: [{ port: 'ingress', withToken: false, status: 200, what: 'bare Envoy' }], load: CACHED_PATH, reports: { label: 'Envoy alone (direct_response)', authorizer: 'none' } }],
  },
  // Envoy's own jwt_authn: same token, same key inline, same iss/aud.
  {
    starts: { kind: 'none' },
    envoy: [{ name: 'jwt', port: 'ingress', filter: { kind: 'jwt_authn' } }],
    scenarios: [
      {
        id: 'jwt_authn',
        expects: [refuses(401, 'jwt_authn'), admits('jwt_authn with the token')],
        load: CACHED_PATH,
        reports: { label: 'Envoy jwt_authn (in-process, verify only)', authorizer: 'envoy jwt_authn' },
      },
    ],
  },
  // OPA-Envoy: the same verification in Rego behind the same ext_authz filter.
  {
    starts: { kind: 'opa-envoy', rawHeaders: true },
    envoy: [{ name: 'opa', port: 'ingress', filter: { kind: 'ext_authz', direction: 'inbound' } }],
    scenarios: [
      { id: 'direct_opa_envoy', load: DIRECT_CHECKS, reports: { direct: 'opa-envoy-plugin' } },
      {
        id: 'opa_envoy',
        expects: [refuses(403, 'OPA-Envoy'), admits('OPA-Envoy with the token')],
        load: CACHED_PATH,
        reports: { label: 'OPA-Envoy ext_authz, same filter settings (Rego io.jwt.decode_verify on headerMap)', authorizer: 'opa-envoy-plugin' },
      },
    ],
  },
  // OPA-Envoy's classic input shape (encode_raw_headers off): its best case.
  {
    starts: { kind: 'opa-envoy', rawHeaders: false },
    envoy: [{ name: 'opa', port: 'ingress', filter: { kind: 'ext_authz', direction: 'inbound', encodeRawHeaders: false } }],
    scenarios: [
      {
        id: 'opa_envoy_classic',
        expects: [refuses(403, 'OPA-Envoy'), admits('OPA-Envoy with the token')],
        load: CACHED_PATH,
        reports: { label: 'OPA-Envoy ext_authz, encode_raw_headers off (classic headers map)', authorizer: 'opa-envoy-plugin' },
      },
    ],
  },
  // The transport floor: the sidecar's own gRPC listener answering OK without deciding.
  {
    starts: { kind: 'grpc-floor', stack: 'node' },
    envoy: [INGRESS_INBOUND],
    scenarios: [FLOOR_NODE],
  },
  // The same floor in Go (grpc-go, go-control-plane's types): what the round trip costs with a
  // compiled gRPC stack, the ratio the results give beside OPA-Envoy's.
  {
    starts: { kind: 'grpc-floor', stack: 'go' },
    envoy: [INGRESS_INBOUND],
    scenarios: [
      {
        id: 'floor_go',
        expects: [{ port: 'ingress', withToken: false, status: 200, what: 'Go null authorizer', eventually: true }],
        load: CACHED_PATH,
        reports: { label: 'ext_authz floor in Go: grpc-go answering OK without deciding', authorizer: 'grpc-go, no decision' },
      },
    ],
  },
  // The sidecar, inbound and outbound, through one Envoy with both listeners.
  {
    starts: { kind: 'sidecar', name: 'main', variant: {}, profileInResults: true },
    envoy: SIDECAR_LISTENERS,
    scenarios: [
      SIDECAR_INBOUND_CACHED,
      {
        id: 'sidecar_outbound',
        expects: [{ port: 'egress', withToken: false, status: 200, what: 'sidecar outbound' }],
        load: { kind: 'one-url', port: 'egress', withToken: false },
        reports: { label: `sidecar outbound, service token for ${UPSTREAM} from a warm cache`, authorizer: 'jwtauth-sidecar' },
      },
      { id: 'direct_sidecar', load: DIRECT_CHECKS, reports: { direct: 'jwtauth-sidecar' } },
    ],
  },
  // Worker mode (docs/configuration.md#worker-mode): two workers, the first on the authorizer's
  // core and the second on the front core beside Envoy and the load generator, since this machine
  // has no third. Envoy runs two threads, so it keeps two connections, one per worker; ghz opens
  // two. Compared with the one-process rows above, whose load has one connection.
  {
    starts: { kind: 'sidecar', name: 'workers-2', variant: { workers: 2 } },
    envoy: [INGRESS_INBOUND],
    envoyConcurrency: 2,
    scenarios: [
      {
        ...SIDECAR_INBOUND_CACHED,
        id: 'sidecar_inbound_cached_w2',
        reports: { ...SIDECAR_INBOUND_CACHED.reports, label: `${SIDECAR_INBOUND_CACHED.reports.label}, 2 workers (Envoy with 2 threads)`, comparedWith: 'sidecar_inbound_cached' },
      },
      { id: 'direct_sidecar_w2', load: { ...DIRECT_CHECKS, connections: 2 }, reports: { direct: 'jwtauth-sidecar, 2 workers, 2 connections', comparedWith: 'direct_sidecar' } },
    ],
  },
  // The decision cache off, so every Check asks the real SpiceDB; every request names another
  // resource, so SpiceDB's own cache answers only when a run wraps around its slice.
  uncachedGroup(SIDECAR_INBOUND_UNCACHED, 'postgres'),
  // A rule reading a message field against the same rule reading a header: the same ~200-byte
  // unary gRPC call (dev/bench/namespaces.proto), the same caller, the decision cached. Only
  // CreateByMessage's route buffers the body and sends it in the Check, and only its rule decodes
  // it, so the difference between the two is what buffering and decoding cost.
  {
    starts: { kind: 'sidecar', name: 'grpc', variant: { messageRules: true } },
    envoy: [
      {
        ...INGRESS_INBOUND,
        filter: {
          kind: 'ext_authz',
          direction: 'inbound',
          grpcRoutes: [
            { method: 'CreateByHeaders', buffersBody: false },
            { method: 'CreateByMessage', buffersBody: true },
          ],
        },
      },
    ],
    alternatesRounds: true,
    scenarios: [
      {
        id: 'sidecar_grpc_header',
        expects: [
          answersGrpc(BY_HEADER, GRPC_OK, 'CreateByHeaders naming the caller\'s cloud', true),
          // It reads the header only: a message naming another cloud changes nothing.
          answersGrpc({ ...BY_HEADER, messageCloud: OTHER_CLOUD }, GRPC_OK, 'CreateByHeaders whose message names another cloud (the rule reads the header)'),
          { ...answersGrpc(BY_HEADER, GRPC_UNAUTHENTICATED, 'CreateByHeaders without a token'), withToken: false },
        ],
        load: { ...CACHED_PATH, call: BY_HEADER },
        reports: {
          label: 'sidecar inbound gRPC, ~200-byte unary message, rule reads a header (cloud:{header.x-cloud-id}), route not buffered, cached decision',
          authorizer: 'jwtauth-sidecar',
          counts: DECISION_CACHE_HITS,
        },
      },
      {
        id: 'sidecar_grpc_message',
        expects: [
          answersGrpc(BY_MESSAGE, GRPC_OK, 'CreateByMessage naming the caller\'s cloud', true),
          // It reads the message: the other cloud is denied although the header names the caller's.
          answersGrpc({ ...BY_MESSAGE, messageCloud: OTHER_CLOUD }, GRPC_PERMISSION_DENIED, 'CreateByMessage whose message names another cloud'),
        ],
        load: { ...CACHED_PATH, call: BY_MESSAGE },
        reports: {
          label: 'the same call, rule reads the message (cloud:{body.cloud_id}), route buffers the body (pack_as_bytes), cached decision',
          authorizer: 'jwtauth-sidecar',
          counts: DECISION_CACHE_HITS,
          comparedWith: 'sidecar_grpc_header',
        },
      },
      { id: 'direct_grpc_header', load: { ...DIRECT_CHECKS, request: { call: BY_HEADER, bodyInCheck: false } }, reports: { direct: 'jwtauth-sidecar, gRPC call, rule reads a header' } },
      { id: 'direct_grpc_message', load: { ...DIRECT_CHECKS, request: { call: BY_MESSAGE, bodyInCheck: true } }, reports: { direct: 'jwtauth-sidecar, gRPC call, rule reads the message', comparedWith: 'direct_grpc_header' } },
    ],
  },
  // Scaling with the rule count: the matched rule written last, so no "first rule wins" shortcut.
  ...[10, 1_000, 10_000].map(
    (rules): ScenarioGroup => ({
      starts: { kind: 'sidecar', name: `rules-${rules}`, variant: { fillerRules: rules - 1 } },
      envoy: [INGRESS_INBOUND],
      scenarios: [
        {
          id: `scaling_rules_${rules}`,
          expects: [admits(`sidecar with ${rules} rules`, true)],
          load: { ...CACHED_PATH, latencyOnly: true },
          reports: { label: `sidecar inbound cached, ${rules.toLocaleString('en')} rules (the matched one last)`, authorizer: 'jwtauth-sidecar', scalingRules: rules },
        },
      ],
    }),
  ),
  // Scaling with the token count: what the verified-token cache and the heap hold.
  {
    starts: { kind: 'sidecar', name: 'tokens', variant: {} },
    envoy: [INGRESS_INBOUND],
    scenarios: [
      {
        id: 'scaling_tokens',
        expects: [admits('sidecar before distinct tokens', true)],
        load: { kind: 'distinct-tokens', steps: { quick: [1_000, 10_000], full: [1_000, 100_000] } },
        reports: { scaling: 'tokens' },
      },
    ],
  },
  // Tracing's cost on the cached inbound path (docs/observability.md): off, on but sampling
  // nothing (ratio 0: the Check still gets a trace id as its decision id, no span is recorded),
  // and on sampling every Check, each span exported to an OTLP sink in the bench process that
  // discards what it receives (bench/otlp-sink.ts). The off row is its own sidecar so the three
  // take turns on equal terms.
  ...([
    ['off', undefined],
    ['ratio0', 0],
    ['ratio1', 1],
  ] as const).map(
    ([name, ratio]): ScenarioGroup => ({
      starts: { kind: 'sidecar', name: `tracing-${name}`, variant: ratio === undefined ? {} : { tracing: { ratio } } },
      envoy: [INGRESS_INBOUND],
      scenarios: [
        {
          id: `tracing_${name}_inbound_cached`,
          expects: [admits(`sidecar with tracing ${name}`, true)],
          load: CACHED_PATH,
          reports: {
            label: `sidecar inbound cached, tracing ${ratio === undefined ? 'off' : `on, ratio ${ratio}`}`,
            authorizer: 'jwtauth-sidecar',
            ...(name === 'off' ? {} : { comparedWith: 'tracing_off_inbound_cached' }),
          },
        },
        { id: `tracing_${name}_direct`, load: DIRECT_CHECKS, reports: { direct: `jwtauth-sidecar, tracing ${name}`, ...(name === 'off' ? {} : { comparedWith: 'tracing_off_direct' }) } },
      ],
    }),
  ),
  ...UNCACHED_VARIANTS,
  // The cached inbound path on the baseline build (BENCH_BASELINE_SIDECAR_CLI): a change on the
  // request path measured against the commit before it, in one --compare run. Only when named.
  {
    starts: { kind: 'sidecar', name: 'main-baseline', variant: {}, build: 'baseline' },
    envoy: SIDECAR_LISTENERS,
    scenarios: [
      {
        ...SIDECAR_INBOUND_CACHED,
        id: `${SIDECAR_INBOUND_CACHED.id}_baseline`,
        reports: { ...SIDECAR_INBOUND_CACHED.reports, label: `${SIDECAR_INBOUND_CACHED.reports.label}, baseline build (BENCH_BASELINE_SIDECAR_CLI)`, comparedWith: SIDECAR_INBOUND_CACHED.id },
      },
    ],
    onlyWhenNamed: true,
  },
  ...NODE_FLAG_VARIANTS.flatMap(({ suffix, nodeArgs }): ScenarioGroup[] => [
    { starts: { kind: 'grpc-floor', stack: 'node', nodeArgs }, envoy: [INGRESS_INBOUND], scenarios: [nodeFlagVariant(FLOOR_NODE, suffix, nodeArgs)], onlyWhenNamed: true },
    {
      starts: { kind: 'sidecar', name: `main-${suffix}`, variant: {}, nodeArgs },
      envoy: SIDECAR_LISTENERS,
      scenarios: [nodeFlagVariant(SIDECAR_INBOUND_CACHED, suffix, nodeArgs)],
      onlyWhenNamed: true,
    },
  ]),
];
