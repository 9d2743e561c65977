/**
 * Guarantee: `validate --envoy` finds each way an Envoy configuration and the sidecar's can
 * disagree, says where and why, and says nothing about a configuration that agrees. The base case
 * is envoy/envoy.yaml with a sidecar configuration whose rules read the bodies its routes buffer;
 * each row of the table breaks one thing in a copy and expects exactly that check to fire.
 * Through the CLI: exit codes, --strict, --accept, and every input shape (bootstrap, /config_dump,
 * listener, filter alone).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { runCli } from '../../src/commands/dispatch.js';
import { embeddedDefaults } from '../../src/config/defaults.js';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { analyseEnvoyConfig } from '../../src/envoy-config/analyse.js';
import type { EnvoyCheckId, EnvoyFinding } from '../../src/envoy-config/analyse.js';
import { collectEnvoyConfig, EnvoyConfigError } from '../../src/envoy-config/collect.js';
import { sidecarExpectations } from '../../src/envoy-config/sidecar-expectations.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';

const DIR = mkdtempSync(join(tmpdir(), 'jwtauth-envoy-check-'));
const ENVOY_YAML = readFileSync(join(PACKAGE_ROOT, 'envoy', 'envoy.yaml'), 'utf8');

/** Plain JSON, so a row can reach into any part of it. */
type Node = { [key: string]: unknown };

/** envoy/envoy.yaml as Envoy reads it, each filter its own copy (the file shares one by YAML alias). */
const envoyYaml = (): Node => JSON.parse(JSON.stringify(parse(ENVOY_YAML, { merge: true }))) as Node;

const defaults = embeddedDefaults(DIR);
/** The embedded defaults plus the two rules envoy.yaml's buffered ingress routes are for. */
const SIDECAR_INPUT: ConfigInput = {
  ...defaults,
  server: { grpcAddress: '127.0.0.1:9191', listeners: [{ address: '127.0.0.1:9192', direction: 'inbound' }] },
  inbound: {
    rules: [
      ...(defaults.inbound?.rules ?? []),
      { name: 'create-namespace-json', match: { http: { methods: ['POST'], path: '/v1/namespaces' } }, checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }] },
      {
        name: 'create-namespace-grpc',
        match: { grpc: { service: 'demo.vmcontroller.v1.VmController', method: 'CreateNamespace' } },
        checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }],
      },
      { name: 'by-header', match: { http: { path: '/v1/regions/{region}' } }, checks: [{ resource: 'cloud:{header.x-region}', permission: 'view' }] },
    ],
  },
};
const sidecar = sidecarExpectations(validateConfig(SIDECAR_INPUT, 'table', DIR).config);

function findings(envoy: unknown): EnvoyFinding[] {
  return [...analyseEnvoyConfig(collectEnvoyConfig(envoy), sidecar).findings];
}

// ------------------------------------------------------------------ paths into envoy.yaml

const listeners = (c: Node): Node[] => (c.static_resources as { listeners: Node[] }).listeners;
const listener = (c: Node, name: string): Node => listeners(c).find((l) => l.name === name) as Node;
const hcm = (c: Node, name: string): Node => ((listener(c, name).filter_chains as Node[])[0]?.filters as Node[])[0]?.typed_config as Node;
const extAuthz = (c: Node, name: string): Node => ((hcm(c, name).http_filters as Node[])[0] as Node).typed_config as Node;
const bothExtAuthz = (c: Node): Node[] => [extAuthz(c, 'ingress'), extAuthz(c, 'egress')];
const routes = (c: Node, name: string, host = 0): Node[] => ((hcm(c, name).route_config as { virtual_hosts: Node[] }).virtual_hosts[host] as Node).routes as Node[];
const checkSettings = (route: Node): Node =>
  ((route.typed_per_filter_config as Node)['envoy.filters.http.ext_authz'] as Node).check_settings as Node;
const sidecarCluster = (c: Node): Node => (c.static_resources as { clusters: Node[] }).clusters.find((cl) => cl.name === 'jwtauth_sidecar') as Node;
const catchAll = (c: Node): Node => routes(c, 'ingress').at(-1) as Node;

interface Row {
  readonly breaks: string;
  readonly check: EnvoyCheckId;
  readonly severity: 'error' | 'warning';
  /** Text the finding must contain: the run-time consequence it promises to name. */
  readonly says: RegExp;
  readonly where: RegExp;
  readonly mutate: (c: Node) => void;
}

const TABLE: readonly Row[] = [
  {
    breaks: 'no ext_authz filter at all',
    check: 'ext-authz-missing', severity: 'error', says: /every request passes unchecked/, where: /bootstrap/,
    mutate: (c) => { for (const l of ['ingress', 'egress']) hcm(c, l).http_filters = (hcm(c, l).http_filters as Node[]).slice(1); },
  },
  {
    breaks: 'the filter calls an HTTP service',
    check: 'grpc-service', severity: 'error', says: /gRPC ext_authz API/, where: /listener ingress → filter_chains\[0\] → .* → http_filters\[0\] envoy\.filters\.http\.ext_authz/,
    mutate: (c) => { for (const f of bothExtAuthz(c)) { delete f.grpc_service; f.http_service = { server_uri: { uri: 'http://127.0.0.1:9191', cluster: 'jwtauth_sidecar', timeout: '1s' } }; } },
  },
  {
    breaks: 'the sidecar cluster points at a port the sidecar does not listen on',
    check: 'sidecar-cluster', severity: 'error', says: /none of the sidecar’s gRPC listeners.*127\.0\.0\.1:9191/, where: /^cluster jwtauth_sidecar/,
    mutate: (c) => { ((((sidecarCluster(c).load_assignment as Node).endpoints as Node[])[0]?.lb_endpoints as Node[])[0]?.endpoint as { address: { socket_address: Node } }).address.socket_address.port_value = 9999; },
  },
  {
    breaks: 'the filter names a cluster that does not exist',
    check: 'sidecar-cluster', severity: 'error', says: /names no cluster/, where: /envoy_grpc/,
    mutate: (c) => { for (const f of bothExtAuthz(c)) ((f.grpc_service as Node).envoy_grpc as Node).cluster_name = 'jwtauth-sidecar'; },
  },
  {
    breaks: 'the sidecar cluster speaks HTTP/1.1',
    check: 'http2', severity: 'error', says: /does not speak HTTP\/2/, where: /^cluster jwtauth_sidecar$/,
    mutate: (c) => { delete sidecarCluster(c).typed_extension_protocol_options; },
  },
  {
    breaks: 'transport_api_version V2',
    check: 'transport-api-version', severity: 'error', says: /serves envoy\.service\.auth\.v3 only/, where: /http_filters\[0\]/,
    mutate: (c) => { for (const f of bothExtAuthz(c)) f.transport_api_version = 'V2'; },
  },
  {
    breaks: 'failure_mode_allow: true',
    check: 'failure-mode-allow', severity: 'error', says: /outage becomes an allow/, where: /listener egress .*ext_authz$/,
    mutate: (c) => { extAuthz(c, 'egress').failure_mode_allow = true; },
  },
  {
    breaks: 'no status_on_error',
    check: 'status-on-error', severity: 'warning', says: /403, which looks like a denial/, where: /listener ingress/,
    mutate: (c) => { delete extAuthz(c, 'ingress').status_on_error; },
  },
  {
    breaks: 'a timeout below spicedb.deadlineMs',
    check: 'timeout', severity: 'error', says: /timeout is 250 ms, not above spicedb\.deadlineMs \(300 ms\)/, where: /grpc_service\.timeout$/,
    mutate: (c) => { (extAuthz(c, 'ingress').grpc_service as Node).timeout = '0.25s'; },
  },
  {
    breaks: 'no timeout (Envoy’s default 200 ms)',
    check: 'timeout', severity: 'error', says: /Envoy’s default is 200 ms/, where: /grpc_service\.timeout$/,
    mutate: (c) => { delete (extAuthz(c, 'ingress').grpc_service as Node).timeout; },
  },
  {
    breaks: 'a retry max_interval of 0.25 s (the per-try timeout trap)',
    check: 'retry-max-interval', severity: 'error', says: /per-try timeout/, where: /retry_back_off$/,
    mutate: (c) => { ((extAuthz(c, 'ingress').grpc_service as Node).retry_policy as Node).retry_back_off = { base_interval: '0.025s', max_interval: '0.25s' }; },
  },
  {
    breaks: 'no with_request_body although rules read the body',
    check: 'request-body', severity: 'error', says: /body_missing/, where: /routes\[1\] \(path \/demo\.vmcontroller\.v1\.VmController\/CreateNamespace\)/,
    mutate: (c) => { for (const f of bothExtAuthz(c)) delete f.with_request_body; },
  },
  {
    breaks: 'the route of a rule that reads the body opts out of buffering',
    check: 'request-body', severity: 'error', says: /inbound rule create-namespace-json reads \{body\.…\}.*disable_request_body_buffering/, where: /routes\[2\] \(path \/v1\/namespaces\)/,
    mutate: (c) => { checkSettings(routes(c, 'ingress')[2] as Node).disable_request_body_buffering = true; },
  },
  {
    breaks: 'pack_as_bytes false on the filter, with a gRPC rule reading the message',
    check: 'pack-as-bytes', severity: 'error', says: /UTF-8 string/, where: /routes\[1\]/,
    mutate: (c) => { for (const f of bothExtAuthz(c)) (f.with_request_body as Node).pack_as_bytes = false; },
  },
  {
    breaks: 'pack_as_bytes set per route only (envoy#35623)',
    check: 'pack-as-bytes', severity: 'error', says: /envoy#35623/, where: /routes\[1\]/,
    mutate: (c) => {
      for (const f of bothExtAuthz(c)) delete f.with_request_body;
      checkSettings(routes(c, 'ingress')[1] as Node).with_request_body = { max_request_bytes: 65536, pack_as_bytes: true };
      checkSettings(routes(c, 'ingress')[2] as Node).with_request_body = { max_request_bytes: 65536, pack_as_bytes: true };
      checkSettings(routes(c, 'egress')[0] as Node).with_request_body = { max_request_bytes: 65536, pack_as_bytes: true };
    },
  },
  {
    breaks: 'the catch-all route buffers bodies no rule reads',
    check: 'body-buffering', severity: 'warning', says: /no rule reads \{body\.…\}/, where: /routes\[3\] \(prefix \/\)/,
    mutate: (c) => { delete checkSettings(catchAll(c)).disable_request_body_buffering; },
  },
  {
    breaks: 'a route without context_extensions.direction on server.grpcAddress',
    check: 'direction', severity: 'error', says: /missing_direction/, where: /routes\[3\] \(prefix \/\)/,
    mutate: (c) => { delete (checkSettings(catchAll(c)).context_extensions as Node).direction; },
  },
  {
    breaks: 'a route naming no known direction',
    check: 'direction', severity: 'error', says: /unknown_direction/, where: /routes\[3\]/,
    mutate: (c) => { (checkSettings(catchAll(c)).context_extensions as Node).direction = 'ingress'; },
  },
  {
    breaks: 'outbound routes sent to the inbound-only listener',
    check: 'direction', severity: 'error', says: /serves inbound checks only/, where: /listener egress .* virtual_host vmcontroller/,
    mutate: (c) => {
      const cluster = structuredClone(sidecarCluster(c));
      cluster.name = 'jwtauth_inbound';
      (cluster.load_assignment as Node).cluster_name = 'jwtauth_inbound';
      ((((cluster.load_assignment as Node).endpoints as Node[])[0]?.lb_endpoints as Node[])[0]?.endpoint as { address: { socket_address: Node } }).address.socket_address.port_value = 9192;
      (c.static_resources as { clusters: Node[] }).clusters.push(cluster);
      ((extAuthz(c, 'egress').grpc_service as Node).envoy_grpc as Node).cluster_name = 'jwtauth_inbound';
    },
  },
  {
    breaks: 'an audience that is not in outbound.upstreams',
    check: 'audience', severity: 'error', says: /billing, which is not in outbound\.upstreams.*unknown_upstream/, where: /virtual_host vmcontroller → routes\[0\]/,
    mutate: (c) => { (checkSettings(routes(c, 'egress')[0] as Node).context_extensions as Node).audience = 'billing'; },
  },
  {
    breaks: 'allowed_headers without authorization',
    check: 'allowed-headers', severity: 'error', says: /keeps authorization from the sidecar.*missing_token/, where: /allowed_headers$/,
    mutate: (c) => {
      extAuthz(c, 'ingress').allowed_headers = { patterns: ['content-type', 'content-length', 'grpc-encoding', 'x-request-id', 'x-region', 'x-jwtauth-on-behalf-of'].map((exact) => ({ exact })) };
    },
  },
  {
    breaks: 'allowed_headers without a header a template reads',
    check: 'allowed-headers', severity: 'error', says: /x-region.*invalid_check_input/, where: /allowed_headers$/,
    mutate: (c) => {
      extAuthz(c, 'ingress').allowed_headers = { patterns: [{ prefix: 'content-' }, { exact: 'Authorization', ignore_case: true }, ...['grpc-encoding', 'x-request-id', 'x-jwtauth-on-behalf-of'].map((exact) => ({ exact }))] };
    },
  },
  {
    breaks: 'disallowed_headers dropping authorization',
    check: 'allowed-headers', severity: 'error', says: /disallowed_headers keeps authorization/, where: /disallowed_headers$/,
    mutate: (c) => { extAuthz(c, 'egress').disallowed_headers = { patterns: [{ exact: 'authorization' }] }; },
  },
  {
    breaks: 'a health check without no_traffic_interval (the 60 s idle trap)',
    check: 'health-check', severity: 'warning', says: /every 60 s.*idle pod reports ready/, where: /health_checks\[0\]$/,
    mutate: (c) => { delete ((sidecarCluster(c).health_checks as Node[])[0] as Node).no_traffic_interval; },
  },
  {
    breaks: 'Envoy’s readiness counting a sidecar cluster that is never health-checked',
    check: 'health-check', severity: 'warning', says: /an unchecked host is always healthy/, where: /^cluster jwtauth_sidecar$/,
    mutate: (c) => { delete sidecarCluster(c).health_checks; },
  },
];

describe('validate --envoy: one broken Envoy configuration per check', () => {
  it('finds nothing in envoy/envoy.yaml against a configuration that agrees with it (so every finding below is caused by its row)', () => {
    expect(findings(envoyYaml())).toEqual([]);
  });

  it('covers every check', () => {
    const covered = new Set(TABLE.map((row) => row.check));
    expect([...covered].sort()).toEqual(['allowed-headers', 'audience', 'body-buffering', 'direction', 'ext-authz-missing', 'failure-mode-allow', 'grpc-service', 'health-check', 'http2', 'pack-as-bytes', 'request-body', 'retry-max-interval', 'sidecar-cluster', 'status-on-error', 'timeout', 'transport-api-version']);
  });

  it.each(TABLE.map((row) => [row.breaks, row] as const))('%s', (_name, row) => {
    const config = envoyYaml();
    row.mutate(config);
    const found = findings(config);
    expect(found.length, JSON.stringify(found, null, 1)).toBeGreaterThan(0);
    expect(new Set(found.map((f) => f.check)), JSON.stringify(found, null, 1)).toEqual(new Set([row.check]));
    const finding = found.find((f) => row.says.test(f.problem) && row.where.test(f.at));
    expect(finding, JSON.stringify(found, null, 1)).toBeDefined();
    expect(finding?.severity).toBe(row.severity);
    expect(finding?.fix.length).toBeGreaterThan(10);
  });
});

describe('validate --envoy: the inputs it reads', () => {
  it('reads a /config_dump (listeners, clusters, RDS routes, EDS endpoints) like the bootstrap it came from', () => {
    const bootstrap = envoyYaml();
    const ingress = listener(bootstrap, 'ingress');
    const routeConfig = hcm(bootstrap, 'ingress').route_config as Node;
    delete hcm(bootstrap, 'ingress').route_config;
    hcm(bootstrap, 'ingress').rds = { route_config_name: 'ingress', config_source: { ads: {} } };
    const clusters = (bootstrap.static_resources as { clusters: Node[] }).clusters;
    const sidecarAssignment = sidecarCluster(bootstrap).load_assignment;
    delete sidecarCluster(bootstrap).load_assignment;
    const dump = {
      configs: [
        { '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap: { node: { id: 'x' } } },
        { '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump', dynamic_active_clusters: clusters.map((cluster) => ({ version_info: '1', cluster })) },
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
          static_listeners: listeners(bootstrap).filter((l) => l !== ingress).map((l) => ({ listener: l })),
          dynamic_listeners: [{ name: 'ingress', active_state: { listener: ingress } }, { name: 'warming', warming_state: { listener: { name: 'warming' } } }],
        },
        { '@type': 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump', dynamic_route_configs: [{ route_config: routeConfig }] },
        { '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump', dynamic_endpoint_configs: [{ endpoint_config: sidecarAssignment }] },
      ],
    };
    const analysis = analyseEnvoyConfig(collectEnvoyConfig(dump), sidecar);
    expect(analysis.findings).toEqual([]);
    expect(analysis.routes).toBe(6);
    // …and finds in it what it finds in a file.
    (checkSettings(routeConfig.virtual_hosts ? ((routeConfig.virtual_hosts as Node[])[0]?.routes as Node[])[3] as Node : {}).context_extensions as Node).direction = 'sideways';
    expect(analyseEnvoyConfig(collectEnvoyConfig(dump), sidecar).findings.map((f) => f.check)).toEqual(['direction']);
  });

  it('reads several config dumps in one YAML stream as one (egctl x translate writes one per Gateway)', async () => {
    const bootstrap = envoyYaml();
    const dump = (listener: Node) => ({ configKey: 'x', configs: [
      { '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump', static_listeners: [{ listener }] },
      { '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump', static_clusters: (bootstrap.static_resources as { clusters: Node[] }).clusters.map((cluster) => ({ cluster })) },
    ] });
    extAuthz(bootstrap, 'egress').failure_mode_allow = true;
    const file = join(DIR, 'dumps.yaml');
    writeFileSync(file, `${stringify(dump(listener(bootstrap, 'ingress')))}---\n${stringify(dump(listener(bootstrap, 'egress')))}`);
    let err = '';
    const code = await runCli(['validate', '--config', join(DIR, 'jwtauth.yaml'), '--envoy', file], { out: () => undefined, err: (t) => (err += `${t}\n`), env: {} });
    expect(code).toBe(1);
    expect(err).toMatch(/error \[failure-mode-allow\] listener egress/);
    expect(err).toMatch(/1 error, 0 warnings \(2 ext_authz filters, 6 routes/);
  });

  it('reads proto fields in their camelCase JSON spelling too (as egctl x translate writes them)', () => {
    const camel = (value: unknown): unknown =>
      Array.isArray(value) ? value.map(camel)
      : value !== null && typeof value === 'object' ? Object.fromEntries(Object.entries(value).map(([k, v]) => [/^[a-z]+(_[a-z0-9]+)+$/.test(k) ? k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()) : k, camel(v)]))
      : value;
    const config = envoyYaml();
    expect(JSON.stringify(camel(config))).toContain('"socketAddress"');
    expect(findings(camel(config))).toEqual([]);
    extAuthz(config, 'ingress').failure_mode_allow = true;
    expect(findings(camel(config)).map((f) => f.check)).toEqual(['failure-mode-allow']);
  });

  it('reads a listener, or an ext_authz filter alone (checking what a filter alone can show)', () => {
    expect(findings(listener(envoyYaml(), 'ingress'))).toEqual([]);
    const filter = (hcm(envoyYaml(), 'ingress').http_filters as Node[])[0] as Node;
    expect(findings(filter)).toEqual([]);
    (filter.typed_config as Node).failure_mode_allow = true;
    delete ((filter.typed_config as Node).with_request_body as Node).pack_as_bytes;
    expect(findings(filter).map((f) => [f.check, f.severity])).toEqual([['failure-mode-allow', 'error'], ['pack-as-bytes', 'error']]);
  });

  it('refuses input that is no Envoy configuration, saying what it expected', () => {
    for (const bad of [null, 'text', { kind: 'Deployment' }, [{ name: 'x' }]]) {
      expect(() => collectEnvoyConfig(bad)).toThrow(EnvoyConfigError);
    }
    expect(() => collectEnvoyConfig({ static_resources: { clusters: [{ load_assignment: {} }] } })).toThrow(/static_resources\.clusters\[0\]\.name/);
    // A field the check reads, in a form Envoy would refuse too: named, never a crash.
    const config = envoyYaml();
    (extAuthz(config, 'ingress').grpc_service as Node).timeout = '3 seconds';
    expect(() => findings(config)).toThrow(EnvoyConfigError);
    expect(() => findings(config)).toThrow(/listener ingress → .* http_filters\[0\] envoy\.filters\.http\.ext_authz\.grpc_service\.timeout: .*duration such as 0\.25s/);
  });
});

describe('validate --envoy on the command line', () => {
  const sidecarFile = join(DIR, 'jwtauth.yaml');
  writeFileSync(sidecarFile, stringify(SIDECAR_INPUT));
  const envoyFile = (mutate: (c: Node) => void): string => {
    const config = envoyYaml();
    mutate(config);
    const file = join(DIR, `envoy-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify(config));
    return file;
  };
  async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runCli(argv, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`), env: {} });
    return { code, out, err };
  }

  it('exits 0 on envoy/envoy.yaml, 1 on an error, and prints where, what and the fix', async () => {
    const clean = await run('validate', '--config', sidecarFile, '--envoy', join(PACKAGE_ROOT, 'envoy', 'envoy.yaml'));
    expect(clean.err).toBe('');
    expect(clean.code).toBe(0);
    expect(clean.out).toMatch(/envoy\.yaml: 0 errors, 0 warnings \(2 ext_authz filters, 6 routes/);
    const broken = await run('validate', '--config', sidecarFile, '--envoy', envoyFile((c) => { extAuthz(c, 'ingress').failure_mode_allow = true; }));
    expect(broken.code).toBe(1);
    expect(broken.err).toMatch(/^error \[failure-mode-allow\] listener ingress → .*\n {2}failure_mode_allow is true.*\n {2}fix: set failure_mode_allow: false/m);
    expect(broken.err).toMatch(/1 error, 0 warnings/);
  });

  it('warnings print and exit 0, unless --strict', async () => {
    const file = envoyFile((c) => { delete extAuthz(c, 'ingress').status_on_error; });
    const lenient = await run('validate', '--config', sidecarFile, '--envoy', file);
    expect(lenient.code).toBe(0);
    expect(lenient.out).toMatch(/^warning \[status-on-error\]/m);
    const strict = await run('validate', '--config', sidecarFile, '--envoy', file, '--strict');
    expect(strict.code).toBe(1);
    expect(strict.err).toMatch(/--strict counts warnings/);
  });

  it('--accept turns a check’s errors into accepted ones (exit 0), and refuses a check that does not exist', async () => {
    const file = envoyFile((c) => { extAuthz(c, 'ingress').failure_mode_allow = true; });
    const accepted = await run('validate', '--config', sidecarFile, '--envoy', file, '--accept', 'failure-mode-allow');
    expect(accepted.code).toBe(0);
    expect(accepted.out).toMatch(/^accepted error \[failure-mode-allow\]/m);
    const typo = await run('validate', '--config', sidecarFile, '--envoy', file, '--accept', 'failure-mode');
    expect(typo.code).toBe(2);
    expect(typo.err).toMatch(/--accept failure-mode: not a check/);
  });

  it('says clearly when the file is missing, is not YAML, or is not an Envoy configuration', async () => {
    const notYaml = join(DIR, 'bad.yaml');
    writeFileSync(notYaml, 'a: [1, 2\n');
    const notEnvoy = join(DIR, 'deployment.yaml');
    writeFileSync(notEnvoy, 'apiVersion: apps/v1\nkind: Deployment\n');
    const twoThings = join(DIR, 'two.yaml');
    writeFileSync(twoThings, `${ENVOY_YAML}\n---\n${ENVOY_YAML}`);
    for (const [file, message] of [[join(DIR, 'absent.yaml'), /cannot read .*ENOENT/], [notYaml, /is not YAML or JSON/], [notEnvoy, /expected an Envoy bootstrap/], [twoThings, /holds 2 YAML documents/]] as const) {
      const result = await run('validate', '--config', sidecarFile, '--envoy', file);
      expect(result.code).toBe(1);
      expect(result.err).toMatch(message);
    }
    expect((await run('validate', '--config', sidecarFile, '--envoy', 'a', '--envoy-admin', 'http://x')).code).toBe(2);
  });
});
