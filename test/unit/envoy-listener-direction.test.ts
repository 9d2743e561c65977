/**
 * A listener that declares a direction (`server.listeners`) gives it to every Check whose route set
 * no `context_extensions.direction`, which is every Check from Istio's CUSTOM provider and from
 * Envoy Gateway before v1.7. A route may repeat the listener's direction but not contradict it: a
 * listener reachable from other pods must never mint tokens. `server.grpcAddress` keeps deciding by
 * context_extensions alone. Through a real Envoy: test/e2e/integrations.test.ts.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecurityPolicy } from '@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1';
import { IstioOperator } from '@kubernetes-models/istio/install.istio.io/v1alpha1';
import { ServiceEntry } from '@kubernetes-models/istio/networking.istio.io/v1';
import { EnvoyFilter } from '@kubernetes-models/istio/networking.istio.io/v1alpha3';
import { AuthorizationPolicy } from '@kubernetes-models/istio/security.istio.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { parseConfigText, validateConfig } from '../../src/config/load.js';
import { allow } from '../../src/core/decision.js';
import type { DecisionEvent } from '../../src/core/decision-event.js';
import type { Direction, RequestContext } from '../../src/core/request-context.js';
import { createCheckHandler } from '../../src/envoy/authorization-service.js';
import type { CheckHandler } from '../../src/envoy/authorization-service.js';
import { parseCheckRequest } from '../../src/envoy/request-context-parser.js';
import type { CheckRequest__Output } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import { createLogger } from '../../src/observability/logger.js';
import { serve } from '../../src/serve.js';
import type { RunningSidecar } from '../../src/serve.js';
import { httpCheck, sidecarClient } from '../support/check-client.js';
import { jwks, makeSigningKey } from '../../dev/jwt-fixtures.js';
import { decodeFramedResponse } from '../support/framed-response.js';

const limits = { maxHeaderBytes: 65536 };

function check(extensions: Record<string, string> | undefined, http: Record<string, unknown> = { method: 'GET', path: '/v1/status' }): CheckRequest__Output {
  return { attributes: { request: { http }, ...(extensions ? { context_extensions: extensions } : {}) } } as CheckRequest__Output;
}

describe('the direction of a Check', () => {
  it('comes from the listener when the route sets none', () => {
    for (const direction of ['inbound', 'outbound'] as const) {
      const parsed = parseCheckRequest(check(undefined), limits, direction);
      expect(parsed.ok && parsed.value.direction).toBe(direction);
      expect(parseCheckRequest(check({ audience: 'vmcontroller' }), limits, direction)).toMatchObject({ ok: true, value: { direction } });
    }
  });

  it('is missing on a listener that declares none and a route that sets none (server.grpcAddress, as before)', () => {
    expect(parseCheckRequest(check(undefined), limits)).toMatchObject({ ok: false, reason: 'missing_direction' });
    expect(parseCheckRequest(check({}), limits, undefined)).toMatchObject({ ok: false, reason: 'missing_direction' });
  });

  it('comes from context_extensions on a listener that declares none', () => {
    expect(parseCheckRequest(check({ direction: 'outbound' }), limits)).toMatchObject({ ok: true, value: { direction: 'outbound' } });
  });

  it('may be repeated by the route on a directional listener', () => {
    expect(parseCheckRequest(check({ direction: 'inbound' }), limits, 'inbound')).toMatchObject({ ok: true, value: { direction: 'inbound' } });
  });

  it('is never switched by a route: a contradicting context_extensions.direction is denied (counted under the listener’s direction: below)', () => {
    expect(parseCheckRequest(check({ direction: 'outbound' }), limits, 'inbound')).toEqual({
      ok: false,
      reason: 'unknown_direction',
      detail: 'context_extensions.direction is outbound but this listener serves inbound checks only',
    });
    expect(parseCheckRequest(check({ direction: 'inbound' }), limits, 'outbound')).toMatchObject({ ok: false, reason: 'unknown_direction' });
    expect(parseCheckRequest(check({ direction: 'sideways' }), limits, 'inbound')).toMatchObject({ ok: false, reason: 'unknown_direction' });
    expect(parseCheckRequest(check({ direction: '' }), limits, 'outbound')).toMatchObject({ ok: false, reason: 'unknown_direction' });
  });
});

describe('a body Envoy sent as a string (no pack_as_bytes, as Envoy Gateway’s bodyToExtAuth sends it)', () => {
  const grpcHeaders = { 'content-type': 'application/grpc' };
  const body = (text: string, headers: Record<string, string>) =>
    parseCheckRequest(check(undefined, { method: 'POST', path: '/demo.v1.Svc/Call', body: text, headers }), limits, 'inbound');

  it('is read as its UTF-8 bytes when it holds no "!" (so Envoy replaced nothing)', () => {
    const parsed = body('\u0000\u0000\u0000\u0000\u0005\n\u0003cl0', grpcHeaders);
    expect(parsed.ok && Buffer.from(parsed.value.body?.bytes ?? []).toString('hex')).toBe('00000000050a03636c30');
  });

  it('is not read for gRPC when it holds "!": Envoy may have put it there for a byte that was not UTF-8', () => {
    const parsed = body('\u0000\u0000\u0000\u0000!\n\u0003cl0', grpcHeaders);
    expect(parsed.ok && parsed.value.body).toBeUndefined();
    const partial = body('\u0000!', { ...grpcHeaders, 'x-envoy-auth-partial-body': 'true' });
    expect(parsed.ok && partial.ok && partial.value.body).toMatchObject({ truncated: true, bytes: new Uint8Array(0) });
  });

  it('is read as it came for JSON, "!" included', () => {
    const parsed = body('{"name":"hello!"}', { 'content-type': 'application/json' });
    expect(parsed.ok && Buffer.from(parsed.value.body?.bytes ?? []).toString()).toBe('{"name":"hello!"}');
  });

  it('is ignored when raw bytes came too', () => {
    const parsed = parseCheckRequest(
      check(undefined, { method: 'POST', path: '/demo.v1.Svc/Call', raw_body: Buffer.from([0, 0, 0, 0, 1, 0x21]), body: 'ignored', headers: grpcHeaders }),
      limits,
      'inbound',
    );
    expect(parsed.ok && Buffer.from(parsed.value.body?.bytes ?? []).toString('hex')).toBe('000000000121');
  });
});

describe('a Check handler built for a listener', () => {
  function handlerFor(listenerDirection: Direction | undefined, seen: (Direction | 'unknown')[]): CheckHandler {
    return createCheckHandler({
      acquire: () => ({
        pipeline: { limits, authorizer: { strippedHeaders: [], decide: (request: RequestContext) => Promise.resolve(allow('allowed', { detail: request.direction })) } },
        release: () => undefined,
      }),
      observe: (event: DecisionEvent) => seen.push(event.direction),
      onUnexpectedError: (error) => {
        throw error;
      },
      ...(listenerDirection ? { listenerDirection } : {}),
    });
  }

  function call(handler: CheckHandler, request: CheckRequest__Output): Promise<CheckResponse__Output> {
    return new Promise((resolve, reject) => {
      handler(request, {}, (response) => (response ? resolve(decodeFramedResponse(response)) : reject(new Error('no response'))));
    });
  }

  it('decides with its own direction, and two listeners sharing one pipeline never mix theirs', async () => {
    const seen: (Direction | 'unknown')[] = [];
    const inbound = handlerFor('inbound', seen);
    const outbound = handlerFor('outbound', seen);
    const plain = handlerFor(undefined, seen);
    for (const [handler, request] of [
      [inbound, check(undefined)],
      [outbound, check(undefined)],
      [plain, check(undefined)],
      [plain, check({ direction: 'outbound' })],
    ] as const) {
      await call(handler, request);
    }
    expect(seen).toEqual(['inbound', 'outbound', 'unknown', 'outbound']);
    const refused = await call(inbound, check({ direction: 'outbound' }));
    expect(refused.status?.code).not.toBe(0);
    expect(seen.at(-1)).toBe('inbound');
    // A request refused as unreadable is still counted under the direction its route names.
    const malformed = await call(plain, { attributes: { context_extensions: { direction: 'outbound' } } } as CheckRequest__Output);
    expect(malformed.status?.code).not.toBe(0);
    expect(seen.at(-1)).toBe('outbound');
  });
});

describe('server.listeners in the configuration', () => {
  const base = {
    issuers: [{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { file: 'jwks.json' } }],
    spicedb: { endpoint: '127.0.0.1:1', tls: false, presharedKey: { env: 'JWTAUTH_TEST_LISTENERS_KEY' } },
    inbound: { rules: [{ name: 'public', match: { http: { path: '/v1/status' } }, auth: 'none' }] },
  };
  const problems = (server: unknown): string[] => {
    try {
      validateConfig({ ...base, server }, 'test.yaml', '/');
      return [];
    } catch (error) {
      return (error as { problems: string[] }).problems;
    }
  };

  it('defaults to none, so a configuration without the key behaves as before', () => {
    expect(validateConfig(base, 'test.yaml', '/').config.server.listeners).toBeUndefined();
  });

  it('takes an address and a direction for each listener', () => {
    expect(problems({ listeners: [{ address: '0.0.0.0:9192', direction: 'inbound' }, { address: '127.0.0.1:9193', direction: 'inbound' }] })).toEqual([]);
    expect(problems({ listeners: [{ address: '0.0.0.0:9192' }] }).join('\n')).toMatch(/server\.listeners\[0\]\.direction/);
    expect(problems({ listeners: [{ address: '0.0.0.0:9192', direction: 'both' }] }).join('\n')).toMatch(/server\.listeners\[0\]\.direction/);
    expect(problems({ listeners: [{ address: 'localhost', direction: 'inbound' }] }).join('\n')).toMatch(/server\.listeners\[0\]\.address/);
  });

  it('refuses a port two listeners would share, naming both keys', () => {
    const found = problems({ grpcAddress: '127.0.0.1:9191', listeners: [{ address: '0.0.0.0:9191', direction: 'inbound' }] });
    expect(found).toEqual(['server.listeners[0].address: got "0.0.0.0:9191"; expected a port no other listener uses; server.grpcAddress has port 9191']);
    expect(problems({ listeners: [{ address: '127.0.0.1:0', direction: 'inbound' }, { address: '127.0.0.1:0', direction: 'inbound' }] })).toEqual([]);
  });
});

describe('a running sidecar with directional listeners', () => {
  let running: RunningSidecar;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-listeners-'));
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(await makeSigningKey())));
    const loaded = validateConfig(
      {
        server: {
          grpcAddress: '127.0.0.1:0',
          adminAddress: '127.0.0.1:0',
          // Long enough to see every listener NOT_SERVING while it drains.
          drainSeconds: 1,
          listeners: [
            { address: '127.0.0.1:0', direction: 'inbound' },
            { address: '127.0.0.1:0', direction: 'outbound' },
          ],
        },
        log: { level: 'silent' },
        issuers: [{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { file: 'jwks.json' } }],
        // Nothing listens there: the sidecar starts, is not ready, and a public rule still decides.
        spicedb: { endpoint: '127.0.0.1:1', tls: false, presharedKey: { env: 'JWTAUTH_TEST_LISTENERS_KEY' } },
        inbound: { rules: [{ name: 'public', match: { http: { methods: ['GET'], path: '/v1/status' } }, auth: 'none' }] },
        service: { name: 'gw' },
        tokens: { source: { kind: 'mint', issuer: 'https://gw.test' } },
        outbound: { upstreams: [{ audience: 'vmcontroller', authorities: ['vmcontroller'] }] },
      },
      join(dir, 'jwtauth.yaml'),
      dir,
    );
    // The adapters read `{ env }` secrets from process.env.
    process.env.JWTAUTH_TEST_LISTENERS_KEY = 'not-used';
    running = await serve({ loaded, logger: createLogger({ level: 'silent' }) });
  });

  afterAll(async () => {
    await running?.close();
  });

  it('reports the bound port of each, in configuration order', () => {
    expect(running.listenerPorts.map((listener) => listener.direction)).toEqual(['inbound', 'outbound']);
    expect(new Set([running.grpcPort, ...running.listenerPorts.map((listener) => listener.port)]).size).toBe(3);
  });

  it('decides a Check without context_extensions by the listener it arrived on', async () => {
    const [inbound, outbound] = running.listenerPorts.map((listener) => sidecarClient(listener.port));
    const plain = sidecarClient(running.grpcPort);
    try {
      const request = httpCheck('GET', '/v1/status', {}, {});
      expect((await inbound?.check(request))?.status?.code).toBe(0);
      // The same request on the outbound listener is decided by the outbound half: its authority is no upstream.
      const denied = await outbound?.check(request);
      expect(denied?.denied_response?.headers?.find((header) => header.header?.key === 'x-jwtauth-reason')?.header?.value).toBe('unknown_upstream');
      const missing = await plain.check(request);
      expect(missing.denied_response?.headers?.find((header) => header.header?.key === 'x-jwtauth-reason')?.header?.value).toBe('missing_direction');
      expect((await plain.check(httpCheck('GET', '/v1/status', {}, { direction: 'inbound' }))).status?.code).toBe(0);
    } finally {
      for (const client of [inbound, outbound, plain]) client?.close();
    }
  });

  const healthOfEvery = async (ports: readonly number[]): Promise<string[]> =>
    Promise.all(
      ports.map(async (port) => {
        const client = sidecarClient(port);
        try {
          return `${await client.health()} ${await client.health('envoy.service.auth.v3.Authorization')}`;
        } finally {
          client.close();
        }
      }),
    );

  it('serves health on every listener, turns every one NOT_SERVING when it drains, then stops them all', async () => {
    const ports = [running.grpcPort, ...running.listenerPorts.map((listener) => listener.port)];
    // Ready: no SpiceDB call has failed yet (the public rule needs none) and the keys are loaded.
    expect(await healthOfEvery(ports)).toEqual(Array(3).fill('SERVING SERVING'));
    const drained = running.drain();
    expect(await healthOfEvery(ports)).toEqual(Array(3).fill('NOT_SERVING NOT_SERVING'));
    await drained;
    const refused = await Promise.all(
      ports.map(
        (port) =>
          new Promise<boolean>((resolve) => {
            const socket = connect(port, '127.0.0.1');
            socket.once('connect', () => {
              socket.destroy();
              resolve(false);
            });
            socket.once('error', () => resolve(true));
          }),
      ),
    );
    expect(refused).toEqual([true, true, true]);
  });
});

describe('the Istio and Envoy Gateway examples', () => {
  const EXAMPLE_FILES = ['istio/mesh-config.yaml', 'istio/gwadmin.yaml', 'envoy-gateway/gwadmin.yaml'] as const;
  /** The upstream schema of each kind the examples use (kubernetes-models, generated from the CRDs). */
  const MODELS: Readonly<Record<string, new (data: never) => { validate(): void }>> = {
    AuthorizationPolicy,
    ConfigMap,
    Deployment,
    EnvoyFilter,
    HTTPRoute,
    IstioOperator,
    NetworkPolicy,
    SecurityPolicy,
    Service,
    ServiceEntry,
  };
  const documentsOf = (file: string): Record<string, unknown>[] =>
    parseAllDocuments(readFileSync(new URL(`../../examples/${file}`, import.meta.url), 'utf8')).map((document) => document.toJS() as Record<string, unknown>);

  it.each(EXAMPLE_FILES)('%s: every manifest validates against its upstream schema', (file) => {
    for (const manifest of documentsOf(file)) {
      const Model = MODELS[String(manifest.kind)];
      expect(Model, `a model for ${String(manifest.kind)}`).toBeDefined();
      expect(() => new (Model as NonNullable<typeof Model>)(manifest as never).validate(), `${file}: ${String(manifest.kind)}`).not.toThrow();
    }
  });

  function jwtauthConfigIn(file: string) {
    const documents = documentsOf(file);
    const configMap = documents.find((document) => document.kind === 'ConfigMap') as { data: Record<string, string> };
    return parseConfigText(configMap.data['jwtauth.yaml'] ?? '', file, '/etc/jwtauth/config').config;
  }

  it('Istio: one loopback listener per direction, on the ports the provider and the EnvoyFilter name', () => {
    const config = jwtauthConfigIn('istio/gwadmin.yaml');
    expect(config.server.listeners).toEqual([
      { address: '127.0.0.1:9192', direction: 'inbound' },
      { address: '127.0.0.1:9193', direction: 'outbound' },
    ]);
    const mesh = readFileSync(new URL('../../examples/istio/mesh-config.yaml', import.meta.url), 'utf8');
    expect(mesh).toMatch(/port: 9192\b/);
    expect(readFileSync(new URL('../../examples/istio/gwadmin.yaml', import.meta.url), 'utf8')).toContain('outbound|9193||jwtauth-sidecar.local');
  });

  it('Envoy Gateway: an inbound listener on the pod IP, and no outbound section that anything could mint with', () => {
    const config = jwtauthConfigIn('envoy-gateway/gwadmin.yaml');
    expect(config.server.listeners).toEqual([{ address: '0.0.0.0:9192', direction: 'inbound' }]);
    expect(config.outbound).toBeUndefined();
    expect(config.tokens).toBeUndefined();
  });
});
