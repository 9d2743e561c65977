/**
 * One trace for one request through a real Envoy with its OpenTelemetry tracer on: Envoy's spans,
 * the sidecar's Check span and its children, and SpiceDB's own spans, all under one trace id,
 * which is also the decision id the app and the caller see. Envoy, the sidecar and SpiceDB all
 * export over OTLP gRPC to Jaeger v2, which scripts/install-tools.sh builds, and the trace is read
 * back from Jaeger's query API. Only where that build failed does a stand-in receiver take its
 * place, and the run says so (test/support/otlp-receiver.ts).
 *
 * Envoy runs a variant of envoy/envoy.yaml reduced to the ingress listener, with
 * `envoy.tracers.opentelemetry` added; the sidecar, SpiceDB and the app are the usual test pod.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../dev/processes.js';
import { startEnvoy } from '../../dev/envoy.js';
import type { RunningEnvoy } from '../../dev/envoy.js';
import { startOtlpReceiver } from '../support/otlp-receiver.js';
import type { OtlpReceiver, ReceivedSpan } from '../support/otlp-receiver.js';
import { startPod } from '../support/pod.js';
import type { Pod } from '../support/pod.js';

const SIDECAR_SERVICE = 'jwtauth-sidecar-under-test';
const SERVER = 2;
const CLIENT = 3;

/** Ports as envoy/envoy.yaml writes them (startEnvoy rewrites them); the collector's is filled in here. */
function tracingEnvoyYaml(collectorPort: number): string {
  return `
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 9901 } }
layered_runtime:
  layers:
    - name: export-at-once
      static_layer:
        # Envoy's OpenTelemetry tracer exports every 5 s or 5 spans by default; at once here.
        tracing.opentelemetry.flush_interval_ms: 100
        tracing.opentelemetry.min_flush_spans: 1
static_resources:
  listeners:
    - name: ingress
      address: { socket_address: { address: 127.0.0.1, port_value: 10000 } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: ingress
                codec_type: AUTO
                generate_request_id: true
                tracing:
                  random_sampling: { value: 100 }
                  provider:
                    name: envoy.tracers.opentelemetry
                    typed_config:
                      "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                      service_name: envoy-ingress
                      grpc_service:
                        envoy_grpc: { cluster_name: otlp_collector }
                        timeout: 2s
                route_config:
                  name: ingress
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes:
                        - match: { prefix: / }
                          route: { cluster: local_app, timeout: 30s }
                          typed_per_filter_config:
                            envoy.filters.http.ext_authz:
                              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute
                              check_settings:
                                context_extensions: { direction: inbound }
                                disable_request_body_buffering: true
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      grpc_service:
                        envoy_grpc: { cluster_name: jwtauth_sidecar, authority: jwtauth-sidecar }
                        timeout: 3s
                      failure_mode_allow: false
                      status_on_error: { code: 503 }
                      encode_raw_headers: true
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: local_app
      type: STATIC
      load_assignment:
        cluster_name: local_app
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 8080 } } } }] }]
    - name: jwtauth_sidecar
      type: STATIC
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
      load_assignment:
        cluster_name: jwtauth_sidecar
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9191 } } } }] }]
    - name: otlp_collector
      type: STATIC
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: { http2_protocol_options: {} }
      load_assignment:
        cluster_name: otlp_collector
        endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${collectorPort} } } } }] }]
`;
}

let receiver: OtlpReceiver;
let pod: Pod;
let envoy: RunningEnvoy;
let ingress: string;
const savedEnv = { ...process.env };

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  if (receiver.kind === 'stand-in') console.warn('tracing-envoy: Jaeger is not installed (its build failed in scripts/install-tools.sh); the stand-in OTLP receiver is used');
  // Read by the processes startPod launches (they inherit this environment): SpiceDB exports
  // every span it makes to the receiver, and both SDKs export within 100 ms instead of 5 s.
  Object.assign(process.env, {
    SPICEDB_OTEL_PROVIDER: 'otlpgrpc',
    SPICEDB_OTEL_ENDPOINT: receiver.endpoint,
    SPICEDB_OTEL_INSECURE: 'true',
    SPICEDB_OTEL_SAMPLE_RATIO: '1',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
  try {
    pod = await startPod({
      relationships: ['cloud:cl0#admin@user:alice', 'cloud:cl1#admin@user:alice'].join('\n'),
      config: { tracing: { enabled: true, endpoint: receiver.endpoint, sampler: 'parentbased_traceidratio', ratio: 1, serviceName: SIDECAR_SERVICE } },
    });
  } finally {
    process.env = savedEnv;
  }
  const file = join(mkdtempSync(join(tmpdir(), 'jwtauth-tracing-envoy-')), 'envoy.yaml');
  writeFileSync(file, tracingEnvoyYaml(Number(receiver.endpoint.split(':')[1])));
  envoy = await startEnvoy({ app: pod.app.port, sidecar: pod.sidecar.grpcPort, vmcontroller: pod.vmcontroller.port }, file);
  ingress = `http://127.0.0.1:${envoy.ports.ingress}`;
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([envoy?.stop(), pod?.stop()]);
  await receiver?.close();
});

async function traceOf(traceId: string, until: (spans: ReceivedSpan[]) => boolean): Promise<ReceivedSpan[]> {
  let spans: ReceivedSpan[] = [];
  await waitFor(
    async () => {
      spans = await receiver.spansOf(traceId);
      return until(spans);
    },
    15_000,
    () => `trace ${traceId} incomplete: ${JSON.stringify(spans.map((span) => `${span.service} ${span.name}`))}`,
  );
  return spans;
}

describe('one request, one trace, through Envoy, the sidecar and SpiceDB', () => {
  it("holds Envoy's spans, the Check span below Envoy's ext_authz span, its children, and SpiceDB's spans", async () => {
    const response = await fetch(`${ingress}/v1/clouds/cl0/namespaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await pod.userToken('alice')}`, 'content-type': 'application/json', 'x-jwtauth-decision-id': 'f'.repeat(32) },
      body: '{"name":"ns1"}',
    });
    expect(response.status).toBe(200);
    const decisionId = pod.app.received.at(-1)?.headers['x-jwtauth-decision-id'];
    expect(decisionId).toMatch(/^[0-9a-f]{32}$/);
    expect(decisionId).not.toBe('f'.repeat(32));

    const spans = await traceOf(String(decisionId), (found) =>
      found.some((span) => span.service === SIDECAR_SERVICE && span.kind === SERVER) &&
      found.some((span) => span.service === 'envoy-ingress') &&
      found.some((span) => span.service !== SIDECAR_SERVICE && span.service !== 'envoy-ingress'),
    );
    const byId = new Map(spans.map((span) => [span.spanId, span]));
    const check = spans.find((span) => span.service === SIDECAR_SERVICE && span.kind === SERVER);
    expect(check?.name).toBe('envoy.service.auth.v3.Authorization/Check');
    expect(check?.attributes).toMatchObject({ 'jwtauth.decision': 'allow', 'jwtauth.rule': 'create-namespace', 'url.path': '/v1/clouds/cl0/namespaces' });
    // The Check span's parent is one of Envoy's spans (its ext_authz call).
    expect(byId.get(check?.parentSpanId ?? '')?.service).toBe('envoy-ingress');

    const childOf = (name: string) => spans.find((span) => span.name === name && span.parentSpanId === check?.spanId);
    expect(childOf('jwtauth.match_rule')?.attributes).toMatchObject({ 'jwtauth.rule.matched': true, 'jwtauth.rule': 'create-namespace' });
    expect(childOf('jwtauth.verify_token')?.attributes).toMatchObject({ 'jwtauth.token.cached': false, 'jwtauth.issuer': 'mesh' });
    const permission = childOf('jwtauth.check_permission');
    expect(permission?.attributes).toMatchObject({ 'jwtauth.spicedb.permission': 'create_namespace', 'jwtauth.spicedb.result': 'allowed' });
    const call = spans.find((span) => span.name === 'authzed.api.v1.PermissionsService/CheckBulkPermissions' && span.kind === CLIENT);
    expect(call?.parentSpanId).toBe(permission?.spanId);
    expect(call?.attributes).toMatchObject({ 'rpc.system.name': 'grpc', 'jwtauth.spicedb.checks': 1, 'rpc.status_code': 'OK' });
    // SpiceDB's own server span, a child of the sidecar's call.
    const spicedbSpans = spans.filter((span) => span.parentSpanId === call?.spanId && span.service !== SIDECAR_SERVICE);
    expect(spicedbSpans.length).toBeGreaterThan(0);

    // No token anywhere in the trace, and no subject id in the sidecar's spans (SpiceDB's are its own).
    expect(JSON.stringify(spans)).not.toContain('Bearer');
    expect(JSON.stringify(spans.filter((span) => span.service === SIDECAR_SERVICE))).not.toContain('alice');
  });

  it('gives a denied caller the decision id, the trace id of its trace', async () => {
    const response = await fetch(`${ingress}/v1/clouds/cl9/namespaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await pod.userToken('alice')}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(response.status).toBe(403);
    const decisionId = response.headers.get('x-jwtauth-decision-id') ?? '';
    expect(decisionId).toMatch(/^[0-9a-f]{32}$/);
    const spans = await traceOf(decisionId, (found) => found.some((span) => span.service === SIDECAR_SERVICE && span.kind === SERVER));
    expect(spans.find((span) => span.kind === SERVER && span.service === SIDECAR_SERVICE)?.attributes['jwtauth.reason']).toBe('permission_denied');
  });
});
