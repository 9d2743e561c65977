/**
 * Every query of examples/grafana-dashboard.json and every rule of examples/prometheus-rules.yaml,
 * evaluated by a real Prometheus that scrapes real sidecars under load: each must parse and return
 * data. A dashboard panel that says "No data" and an alert that can never fire look the same as
 * healthy ones until the day they are needed, and the metrics-docs test only checks metric names.
 *
 * Two sidecars give every series a panel or rule reads:
 *  - a pod (Envoy, a real SpiceDB, worker mode with 2 workers, outbound minting) whose config is
 *    then reloaded to add an issuer with RFC 7662 introspection (a real oidc-provider, mTLS);
 *  - an inbound-only sidecar in dry-run on the embedded SpiceDB, which must not export the
 *    outbound token cache's or the remote SpiceDB's series at all.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../dev/processes.js';
import { sidecarClient } from '../support/check-client.js';
import { httpCheck } from '../support/check-client.js';
import { createTestPki } from '../support/certs.js';
import type { TestPki } from '../support/certs.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';
import { startOAuthServer } from '../support/oauth-server.js';
import type { OAuthServer } from '../support/oauth-server.js';
import { httpRequest, startPod } from '../support/pod.js';
import type { Pod } from '../support/pod.js';
import { startSidecar } from '../support/sidecar.js';
import type { RunningSidecar } from '../support/sidecar.js';
import { alertRules, dashboardQueries, documentedQueries, RULES_FILE, withBoolComparisons } from './prometheus-expressions.js';
import type { NamedExpression } from './prometheus-expressions.js';
import { NO_SERIES, promtoolCheckRules, startPrometheus } from './prometheus-server.js';
import type { RunningPrometheus } from './prometheus-server.js';

const DRY_RUN_ISSUER = 'https://dry-run.jwtauth.test';

let pki: TestPki;
let oauth: OAuthServer;
let pod: Pod;
let dryRun: RunningSidecar;
let dryRunDir: string;
let prometheus: RunningPrometheus;
let dryRunToken: string;

beforeAll(async () => {
  // 90 days, as cert-manager issues by default: the certificate-expiry alert must not hold here.
  pki = createTestPki(['gwadmin'], 90);
  dryRunDir = mkdtempSync(join(tmpdir(), 'jwtauth-dry-run-'));
  const dryRunKey = await makeSigningKey('ES256', 'dry-run-1');
  writeFileSync(join(dryRunDir, 'jwks.json'), JSON.stringify(jwks(dryRunKey)));
  dryRunToken = await signToken(dryRunKey, { iss: DRY_RUN_ISSUER, aud: 'gwadmin', sub: 'bob', iat: nowSeconds(), exp: nowSeconds() + 600 });
  [oauth, pod, dryRun] = await Promise.all([
    startOAuthServer({ pki, clients: ['gwadmin'], audiences: ['vmcontroller'] }),
    startPod({
      relationships: ['cloud:cl0#admin@user:alice', 'cloud:cl0#member@user:bob'].join('\n'),
      config: { server: { workers: 2, drainSeconds: 1 } },
    }),
    // No spicedb.endpoint: the embedded SpiceDB with the example schema, where bob is a member of
    // cl0 and so may not create namespaces: a denial dry-run lets through and counts.
    startSidecar({
      dryRun: true,
      issuers: [{ name: 'dry', issuer: DRY_RUN_ISSUER, audience: 'gwadmin', kind: 'internal', subjectType: 'service', userSubjectType: 'user', jwks: { file: join(dryRunDir, 'jwks.json') }, algorithms: ['ES256'] }],
      inbound: { rules: [{ name: 'create-namespace', match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }] }] },
    }),
  ]);
  prometheus = await startPrometheus(
    [
      { job: 'jwtauth-pod', targets: [`127.0.0.1:${pod.sidecar.adminPort}`] },
      { job: 'jwtauth-dry-run', targets: [`127.0.0.1:${dryRun.adminPort}`] },
    ],
    [fileURLToPath(RULES_FILE)],
  );
  await addIntrospectionIssuer();
  await driveLoad();
}, 180_000);

afterAll(async () => {
  await Promise.allSettled([prometheus?.stop(), pod?.stop(), dryRun?.stop(), oauth?.close()]);
  pki?.remove();
  if (dryRunDir) rmSync(dryRunDir, { recursive: true, force: true });
});

/** A reload (so the reload series exist) that adds an issuer whose opaque tokens are introspected. */
async function addIntrospectionIssuer(): Promise<void> {
  const client = pki.clients.gwadmin;
  if (!client) throw new Error('no client certificate');
  const config = parse(readFileSync(pod.sidecar.configFile, 'utf8')) as { issuers: unknown[]; inbound: { rules: { name: string; issuerKinds?: string[] }[] } };
  // The introspected tokens are external ones: the namespace rule takes every issuer kind from now on.
  for (const rule of config.inbound.rules) delete rule.issuerKinds;
  config.issuers.push({
    name: 'corp',
    issuer: oauth.issuer,
    audience: 'gwadmin',
    kind: 'external',
    introspection: { endpoint: oauth.introspectionEndpoint, clientId: 'gwadmin', clientCertFile: client.certFile, clientKey: { file: client.keyFile }, caFile: pki.caFile },
  });
  writeFileSync(pod.sidecar.configFile, stringify(config));
  await waitFor(async () => (await pod.sidecar.metric('jwtauth_config_reloads_total{result="success"}')) === 1, 20_000, () => 'the config change was not reloaded');
}

/**
 * Rounds of allowed, denied, introspected, outbound and dry-run calls, a second apart, so every
 * counter has moved between scrapes and rate() has two samples in its window.
 */
async function driveLoad(): Promise<void> {
  const createNamespace = (token: string) =>
    fetch(`${pod.ingress}/v1/clouds/cl0/namespaces`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"name":"ns1"}' });
  const dryRunClient = sidecarClient(dryRun.grpcPort);
  try {
    for (let round = 0; round < 5; round++) {
      const [allowed, denied, introspected, outbound, wouldDeny] = await Promise.all([
        createNamespace(await pod.userToken('alice')),
        createNamespace(await pod.userToken('bob')),
        createNamespace(await oauth.opaqueToken('alice', { audience: 'gwadmin' })),
        httpRequest(`${pod.egress}/vmcontroller.v1.VMService/CreateNamespace`, { method: 'POST', headers: { host: 'vmcontroller' }, body: '{}' }),
        dryRunClient.check(httpCheck('POST', '/v1/clouds/cl0/namespaces', { authorization: `Bearer ${dryRunToken}` })),
      ]);
      // The load is what the series are made of: it must be the load intended.
      expect([allowed.status, denied.status, introspected.status, outbound.status, wouldDeny.status?.code]).toEqual([200, 403, 200, 200, 0]);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  } finally {
    dryRunClient.close();
  }
}

/**
 * Each expression's problem, polled while only "no series" problems are left (a series appears a
 * scrape or two after the call that makes it); an error, such as a parse error, ends the wait.
 */
async function problemsOf(expressions: readonly NamedExpression[]): Promise<string[]> {
  let problems: { text: string; waitable: boolean }[] = [];
  await waitFor(
    async () => {
      const answers = await Promise.all(expressions.map(async ({ name, expression }) => ({ name, expression, problem: await prometheus.problemWith(expression) })));
      problems = answers.flatMap(({ name, expression, problem }) => (problem === undefined ? [] : [{ text: `${name}: ${problem}\n    ${expression}`, waitable: problem === NO_SERIES }]));
      return problems.every((problem) => !problem.waitable);
    },
    15_000,
    () => 'some expressions never returned data',
  ).catch(() => undefined);
  return problems.map((problem) => problem.text);
}

describe('the expression check itself', () => {
  // The dashboard's latency panel once read `histogram_0.5uantile(q, ...)`: a parse error that only
  // a Prometheus notices. The check must call that a failure, and a query of a metric that does not
  // exist too.
  it('reports a parse error and a query with no series as problems', async () => {
    const broken = await prometheus.problemWith('histogram_0.5uantile(q, sum by (le) (rate(jwtauth_check_duration_seconds_bucket[1m])))');
    expect(broken).toMatch(/^bad_data: .*parse error/);
    expect(await prometheus.problemWith('sum(rate(jwtauth_no_such_metric_total[1m]))')).toBe(NO_SERIES);
    expect(await prometheus.problemWith('sum(jwtauth_ready)')).toBeUndefined();
  });

  it('turns every top-level threshold of a rule into a bool comparison, leaving label matchers alone', () => {
    expect(withBoolComparisons('min by (job) (jwtauth_ready{state!="x"}) == 0')).toBe('min by (job) (jwtauth_ready{state!="x"}) == bool 0');
    expect(withBoolComparisons('(a > 1) > 0.1\nand\nb > 2 * c')).toBe('(a > 1) > bool 0.1\nand\nb > bool 2 * c');
    expect(withBoolComparisons('x{reason=~"a|b"} <= 3')).toBe('x{reason=~"a|b"} <= bool 3');
  });
});

describe('the Grafana dashboard against a real Prometheus', () => {
  it('every panel query parses and returns data', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(20);
    expect(await problemsOf(queries)).toEqual([]);
  }, 60_000);
});

describe('the queries docs/metrics.md suggests, against a real Prometheus', () => {
  it('each parses and returns data', async () => {
    const queries = documentedQueries();
    expect(queries.length).toBeGreaterThanOrEqual(4);
    expect(await problemsOf(queries)).toEqual([]);
  }, 60_000);
});

describe('the alert rules against a real Prometheus', () => {
  it('promtool check rules accepts the rule file', async () => {
    const { ok, output } = await promtoolCheckRules(fileURLToPath(RULES_FILE));
    expect(output).toContain('SUCCESS');
    expect(ok).toBe(true);
  });

  it('Prometheus loads every rule and evaluates it without an error', async () => {
    const names = alertRules().map((rule) => rule.alert);
    expect(names.length).toBeGreaterThanOrEqual(6);
    let loaded = await prometheus.rules();
    await waitFor(
      async () => {
        loaded = await prometheus.rules();
        return names.every((name) => loaded.some((rule) => rule.name === name && !rule.lastEvaluation.startsWith('0001')));
      },
      20_000,
      () => `rules not evaluated yet: ${JSON.stringify(loaded)}`,
    );
    expect(loaded.map((rule) => ({ name: rule.name, health: rule.health, lastError: rule.lastError ?? '' }))).toEqual(
      names.map((name) => ({ name, health: 'ok', lastError: '' })),
    );
  });

  it('every rule expression returns data for the series it watches', async () => {
    const expressions = alertRules().map((rule) => ({ name: `alert ${rule.alert}`, expression: withBoolComparisons(rule.expr) }));
    expect(await problemsOf(expressions)).toEqual([]);
  }, 60_000);

  // A rule whose condition holds on healthy sidecars (as a constant-0 token expiry once made one)
  // pages for nothing and teaches people to ignore it.
  it('on healthy sidecars under load, no rule condition holds', async () => {
    const rules = alertRules();
    const holding = await Promise.all(rules.map(async (rule) => ((await prometheus.problemWith(rule.expr)) === undefined ? [rule.alert] : [])));
    expect(holding.flat()).toEqual([]);
  });
});

describe('series of features a sidecar does not use are absent, not 0', () => {
  it('an inbound-only sidecar on the embedded SpiceDB exports no token-cache expiry and no checks per call; the pod exports both', async () => {
    expect(await prometheus.problemWith('jwtauth_token_cache_soonest_expiry_seconds{job="jwtauth-dry-run"}')).toBe(NO_SERIES);
    expect(await prometheus.problemWith('jwtauth_spicedb_checks_per_call_count{job="jwtauth-dry-run"}')).toBe(NO_SERIES);
    expect(await prometheus.problemWith('jwtauth_token_cache_soonest_expiry_seconds{job="jwtauth-pod"} > 0')).toBeUndefined();
    expect(await prometheus.problemWith('jwtauth_spicedb_checks_per_call_count{job="jwtauth-pod"} > 0')).toBeUndefined();
  });
});
