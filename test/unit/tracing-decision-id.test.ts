/**
 * Decision ids and Check tracing, at the Check handler: every answer names its decision in
 * `x-jwtauth-decision-id`, a client cannot choose that name, and with tracing on the name is the
 * Check span's trace id. Spans are read from the SDK's InMemorySpanExporter; the decorators run
 * over fake ports. Through a real Envoy and OTLP receiver: test/e2e/tracing-envoy.test.ts.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http2';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import { allow, deny } from '../../src/core/decision.js';
import type { Decision } from '../../src/core/decision.js';
import type { DecisionEvent } from '../../src/core/decision-event.js';
import type { Authorizer, PermissionChecker, TokenSource, TokenVerifier, VerifiedToken } from '../../src/core/ports.js';
import type { RequestContext } from '../../src/core/request-context.js';
import { failure, success } from '../../src/core/result.js';
import { createCheckHandler } from '../../src/envoy/authorization-service.js';
import type { CheckPipeline } from '../../src/envoy/authorization-service.js';
import { DECISION_ID_HEADER } from '../../src/envoy/check-response.js';
import type { CheckRequest__Output } from '../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse__Output } from '../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import { TracingVerifier } from '../../src/identity/tracing-verifier.js';
import type { RuleMatch } from '../../src/inbound/rule-index.js';
import { TracingRuleMatcher } from '../../src/observability/tracing-rule-matcher.js';
import { createDecisionObserver } from '../../src/observability/decision-log.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Tracing } from '../../src/observability/tracing.js';
import { resolveTracingSettings, tracingSchema } from '../../src/observability/tracing-config.js';
import type { TracingSettings } from '../../src/observability/tracing-config.js';
import { TracingChecker } from '../../src/spicedb/tracing-checker.js';
import { TracingTokenSource } from '../../src/tokens/tracing-token-source.js';
import { decodeFramedResponse } from '../support/framed-response.js';

const limits = { maxHeaderBytes: 65536 };
const HEX32 = /^[0-9a-f]{32}$/;
const ENVOY_PARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const CLIENT_PARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const ALWAYS_ON: TracingSettings = { endpoint: 'http://127.0.0.1:1', sampler: 'always_on', ratio: 1, serviceName: 'test' };

function checkRequest(headers: Record<string, string> = {}, path = '/v1/things'): CheckRequest__Output {
  return {
    attributes: { request: { http: { method: 'GET', path, host: 'app.local:8080', headers } }, context_extensions: { direction: 'inbound' } },
  } as unknown as CheckRequest__Output;
}

function handlerFor(authorizer: Authorizer, options: { tracing?: Tracing; events?: DecisionEvent[] } = {}) {
  const pipeline: CheckPipeline = { authorizer, limits, ...(options.tracing ? { tracing: options.tracing } : {}) };
  const handler = createCheckHandler({
    acquire: () => ({ pipeline, release: () => undefined }),
    observe: (event) => options.events?.push(event),
    onUnexpectedError: (error) => {
      throw error;
    },
  });
  return (request: CheckRequest__Output, metadata: IncomingHttpHeaders = {}): Promise<CheckResponse__Output> =>
    new Promise((resolve, reject) => {
      handler(request, metadata, (response) => (response ? resolve(decodeFramedResponse(response)) : reject(new Error('no response'))));
    });
}

const deciding = (decide: (request: RequestContext) => Promise<Decision>): Authorizer => ({ strippedHeaders: ['x-jwtauth-subject'], decide });
const allowing = deciding(() => Promise.resolve(allow('allowed', { rule: 'things' }, [['x-jwtauth-subject', 'alice']], ['x-jwtauth-subject'])));
const denying = deciding(() => Promise.resolve(deny('permission_denied', { rule: 'things' })));

function headerValues(response: CheckResponse__Output, name: string): string[] {
  const headers = response.ok_response?.headers ?? response.denied_response?.headers ?? [];
  return headers.filter((option) => option.header?.key === name).map((option) => option.header?.value ?? '');
}

describe('the decision id', () => {
  it('is on every allow (toward the app) and every denial (toward the caller), unique per answer', async () => {
    const ids = new Set<string>();
    for (const authorizer of [allowing, denying]) {
      for (let i = 0; i < 50; i++) {
        const values = headerValues(await handlerFor(authorizer)(checkRequest()), DECISION_ID_HEADER);
        expect(values).toHaveLength(1);
        expect(values[0]).toMatch(HEX32);
        ids.add(values[0] ?? '');
      }
    }
    expect(ids.size).toBe(100);
  });

  it('is on an answer to a request that could not be parsed', async () => {
    const response = await handlerFor(allowing)({ attributes: {} } as CheckRequest__Output);
    expect(response.denied_response).toBeDefined();
    expect(headerValues(response, DECISION_ID_HEADER)[0]).toMatch(HEX32);
  });

  it('cannot be set by the client: a forged value is overwritten, never removed after the real one is set', async () => {
    const forged = 'f'.repeat(32);
    const response = await handlerFor(allowing)(checkRequest({ [DECISION_ID_HEADER]: forged }));
    const values = headerValues(response, DECISION_ID_HEADER);
    expect(values).toHaveLength(1);
    expect(values[0]).not.toBe(forged);
    expect(response.ok_response?.headers?.find((option) => option.header?.key === DECISION_ID_HEADER)?.append).toEqual({ value: false });
    expect(response.ok_response?.headers_to_remove ?? []).not.toContain(DECISION_ID_HEADER);
    // A decision that lists the header among those to strip still leaves it set.
    const stripping = deciding(() => Promise.resolve(allow('allowed', {}, [], [DECISION_ID_HEADER, 'x-jwtauth-subject'])));
    const stripped = await handlerFor(stripping)(checkRequest({ [DECISION_ID_HEADER]: forged }));
    expect(stripped.ok_response?.headers_to_remove).toEqual(['x-jwtauth-subject']);
    expect(headerValues(stripped, DECISION_ID_HEADER)[0]).toMatch(HEX32);
  });

  it('is in the decision log line and the decision event', async () => {
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (line: string) => lines.push(line) } });
    const observe = createDecisionObserver(new Metrics({ processMetrics: false }), logger, () => ({ allowSampleRate: 1 }));
    const events: DecisionEvent[] = [];
    const handle = handlerFor(denying, { events });
    const response = await handle(checkRequest());
    const event = events[0];
    expect(event?.decisionId).toBe(headerValues(response, DECISION_ID_HEADER)[0]);
    if (event) observe(event);
    expect(JSON.parse(lines.at(-1) ?? '{}')).toMatchObject({ msg: 'decision', decisionId: event?.decisionId });
  });
});

describe('Check tracing', () => {
  let exporter: InMemorySpanExporter;
  let tracing: Tracing;
  const start = (settings: TracingSettings = ALWAYS_ON) => {
    exporter = new InMemorySpanExporter();
    tracing = new Tracing(settings, { exporter });
    return tracing;
  };
  afterEach(async () => {
    await tracing?.close();
  });

  const checkSpans = () => exporter.getFinishedSpans().filter((span) => span.kind === SpanKind.SERVER);

  it('makes one SERVER span per Check whose trace id is the decision id, and no span with tracing off', async () => {
    start();
    const response = await handlerFor(allowing, { tracing })(checkRequest());
    const [span] = checkSpans();
    expect(checkSpans()).toHaveLength(1);
    expect(span?.name).toBe('envoy.service.auth.v3.Authorization/Check');
    expect(headerValues(response, DECISION_ID_HEADER)[0]).toBe(span?.spanContext().traceId);
    expect(span?.parentSpanContext).toBeUndefined();
    expect(span?.attributes).toMatchObject({
      'rpc.system.name': 'grpc',
      'rpc.method': 'envoy.service.auth.v3.Authorization/Check',
      'http.request.method': 'GET',
      'url.path': '/v1/things',
      'server.address': 'app.local',
      'jwtauth.decision': 'allow',
      'jwtauth.reason': 'allowed',
      'jwtauth.rule': 'things',
    });
    await handlerFor(allowing)(checkRequest());
    expect(checkSpans()).toHaveLength(1);
  });

  it("is a child of Envoy's ext_authz span from the call metadata, before the client's traceparent", async () => {
    start();
    // gRPC metadata: the Check call's HTTP/2 request headers.
    const metadata: IncomingHttpHeaders = { traceparent: ENVOY_PARENT };
    const response = await handlerFor(denying, { tracing })(checkRequest({ traceparent: CLIENT_PARENT }), metadata);
    const [span] = checkSpans();
    expect(span?.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(span?.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(headerValues(response, DECISION_ID_HEADER)[0]).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  });

  it("is a child of the client's traceparent when Envoy sends none", async () => {
    start();
    await handlerFor(denying, { tracing })(checkRequest({ traceparent: CLIENT_PARENT }));
    const [span] = checkSpans();
    expect(span?.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(span?.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
  });

  it('keeps the trace id as decision id when the sampler drops the span (ratio 0)', async () => {
    start({ ...ALWAYS_ON, sampler: 'parentbased_traceidratio', ratio: 0 });
    const response = await handlerFor(allowing, { tracing })(checkRequest());
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    expect(headerValues(response, DECISION_ID_HEADER)[0]).toMatch(HEX32);
    const parented = await handlerFor(allowing, { tracing })(checkRequest({ traceparent: CLIENT_PARENT }));
    expect(headerValues(parented, DECISION_ID_HEADER)[0]).toBe('0af7651916cd43dd8448eb211c80319c');
  });

  describe('child spans from the port decorators', () => {
    const verified: VerifiedToken = {
      issuer: 'corp',
      iss: 'https://issuer.example',
      issuerKind: 'external',
      subjectType: 'user',
      subject: 'alice.personal-subject-id',
      audience: ['app'],
      expiresAt: 2_000_000_000,
      actor: undefined,
      claims: {},
      fingerprint: 'fp',
    };
    const fakeVerifier: TokenVerifier = { verify: () => Promise.resolve(success(verified)), ready: () => true };
    const fakeChecker: PermissionChecker = {
      check: () => new Promise((resolve) => setImmediate(() => resolve(success({ permissionship: 'allowed', cached: false })))),
      ready: () => true,
    };
    const issued: string[] = [];
    const fakeTokens: TokenSource = {
      name: 'exchange',
      issue: () => {
        const token = `eyJ${randomBytes(24).toString('base64url')}.${randomBytes(32).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
        issued.push(token);
        return Promise.resolve(success({ token, expiresAt: 2_000_000_000, issuedAt: 1 }));
      },
    };

    /** Verifies the caller's token, checks a permission and exchanges the token: every port, traced. */
    function tracedAuthorizer(): Authorizer {
      const verifier = new TracingVerifier(fakeVerifier);
      const checker = new TracingChecker(fakeChecker);
      const tokens = new TracingTokenSource(fakeTokens);
      return deciding(async (request) => {
        const token = (request.headers.get('authorization') ?? '').replace(/^Bearer /, '');
        const result = await verifier.verify(token, 'app');
        if (!result.ok) return deny(result.reason);
        await checker.check({
          resource: { type: 'cloud', id: 'cl0' },
          permission: 'view',
          subject: { type: 'user', id: result.value.subject },
          consistency: { kind: 'minimize_latency' },
        });
        await tokens.issue({ kind: 'exchange', audience: 'vmcontroller', subjectToken: token, subjectTokenFingerprint: 'fp', subject: result.value.subject });
        return allow('allowed', { rule: 'things', subject: result.value.subject, subjectType: 'user', issuer: 'corp' }, [['x-jwtauth-subject', result.value.subject]]);
      });
    }

    it('hang below the Check span: verification, permission check, token', async () => {
      start();
      await handlerFor(tracedAuthorizer(), { tracing })(checkRequest({ authorization: 'Bearer a.b.c' }));
      const spans = exporter.getFinishedSpans();
      const [check] = checkSpans();
      const byName = (name: string) => spans.find((span) => span.name === name);
      for (const name of ['jwtauth.verify_token', 'jwtauth.check_permission', 'jwtauth.issue_token']) {
        const child = byName(name);
        expect(child, name).toBeDefined();
        expect(child?.spanContext().traceId).toBe(check?.spanContext().traceId);
        expect(child?.parentSpanContext?.spanId).toBe(check?.spanContext().spanId);
      }
      expect(byName('jwtauth.verify_token')?.attributes).toMatchObject({ 'jwtauth.token.cached': false, 'jwtauth.token.result': 'ok', 'jwtauth.issuer': 'corp', 'jwtauth.issuer_kind': 'external', 'jwtauth.subject_type': 'user' });
      expect(byName('jwtauth.check_permission')?.attributes).toMatchObject({ 'jwtauth.spicedb.permission': 'view', 'jwtauth.spicedb.result': 'allowed' });
      expect(byName('jwtauth.issue_token')?.attributes).toMatchObject({ 'jwtauth.token.kind': 'exchange', 'jwtauth.token.result': 'ok' });
    });

    it('mark a verification answered from the cache', async () => {
      start();
      const handle = handlerFor(tracedAuthorizer(), { tracing });
      await handle(checkRequest({ authorization: 'Bearer a.b.c' }));
      await handle(checkRequest({ authorization: 'Bearer a.b.c' }));
      const cached = exporter.getFinishedSpans().filter((span) => span.name === 'jwtauth.verify_token').map((span) => span.attributes['jwtauth.token.cached']);
      expect(cached).toEqual([false, true]);
    });

    it('say why a verification was refused, and that it was not from the cache', async () => {
      start();
      let ready = false;
      const refusing = new TracingVerifier({ verify: () => Promise.resolve(failure('token_expired')), ready: () => ready });
      expect(refusing.ready()).toBe(false);
      ready = true;
      expect(refusing.ready()).toBe(true);
      const handle = handlerFor(
        deciding(async () => {
          const result = await refusing.verify('a.b.c');
          return result.ok ? allow('allowed') : deny(result.reason);
        }),
        { tracing },
      );
      await handle(checkRequest({ authorization: 'Bearer a.b.c' }));
      await handle(checkRequest({ authorization: 'Bearer a.b.c' }));
      const spans = exporter.getFinishedSpans().filter((span) => span.name === 'jwtauth.verify_token');
      expect(spans.map((span) => span.attributes)).toEqual([
        { 'jwtauth.token.cached': false, 'jwtauth.token.result': 'token_expired' },
        { 'jwtauth.token.cached': false, 'jwtauth.token.result': 'token_expired' },
      ]);
    });

    it('name the rule that matched, or say none did', async () => {
      start();
      const rule = { name: 'things' } as unknown as RuleMatch['rule'];
      const matcher = new TracingRuleMatcher({ match: (request) => (request.path.startsWith('/v1/things') ? { rule, pathParams: {} } : undefined) });
      const handle = handlerFor(
        deciding((request) => Promise.resolve(matcher.match(request) === undefined ? deny('no_matching_rule') : allow('allowed'))),
        { tracing },
      );
      await handle(checkRequest({}, '/v1/things/1'));
      await handle(checkRequest({}, '/v1/other'));
      const spans = exporter.getFinishedSpans().filter((span) => span.name === 'jwtauth.match_rule');
      expect(spans.map((span) => span.attributes)).toEqual([{ 'jwtauth.rule.matched': true, 'jwtauth.rule': 'things' }, { 'jwtauth.rule.matched': false }]);
    });

    it('never carry a token, a secret or the subject id in any attribute (fuzzed tokens)', async () => {
      start();
      const handle = handlerFor(tracedAuthorizer(), { tracing });
      const sent: string[] = [];
      for (let i = 0; i < 25; i++) {
        const token = `${randomBytes(12).toString('base64url')}.${randomBytes(40).toString('base64url')}.${randomBytes(i + 8).toString('base64url')}`;
        sent.push(token);
        await handle(checkRequest({ authorization: `Bearer ${token}`, cookie: `session=${token}`, 'x-api-key': token }, `/v1/things/${i}`));
      }
      const text = (span: ReadableSpan) => JSON.stringify([span.name, span.attributes, span.events, span.links, span.status]);
      const everything = exporter.getFinishedSpans().map(text).join('\n');
      expect(exporter.getFinishedSpans().length).toBe(25 * 4);
      for (const secret of [...sent, ...issued, ...sent.map((token) => token.split('.')[1] ?? ''), 'alice.personal-subject-id', 'session=']) {
        expect(everything).not.toContain(secret);
      }
    });
  });
});

describe('tracing settings', () => {
  const config = (input: object) => tracingSchema.parse(input);

  it('are off by default, and OTEL_* variables alone never turn tracing on', () => {
    expect(resolveTracingSettings(config({}), { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4317', OTEL_TRACES_SAMPLER: 'always_on' })).toBeUndefined();
    expect(resolveTracingSettings(config({ enabled: true }), { OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
  });

  it('take the file first, then OTEL_* variables, then the defaults', () => {
    expect(resolveTracingSettings(config({ enabled: true }), {})).toEqual({
      endpoint: 'http://127.0.0.1:4317',
      sampler: 'parentbased_traceidratio',
      ratio: 1,
      serviceName: 'jwtauth-sidecar',
    });
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://collector:4317', OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25', OTEL_SERVICE_NAME: 'gw-sidecar' };
    expect(resolveTracingSettings(config({ enabled: true }), env)).toEqual({ endpoint: 'https://collector:4317', sampler: 'traceidratio', ratio: 0.25, serviceName: 'gw-sidecar' });
    expect(
      resolveTracingSettings(config({ enabled: true, endpoint: '10.0.0.5:4317', sampler: 'always_on', ratio: 0.5, serviceName: 'pinned' }), env),
    ).toEqual({ endpoint: 'http://10.0.0.5:4317', sampler: 'always_on', ratio: 0.5, serviceName: 'pinned' });
    expect(resolveTracingSettings(config({ enabled: true }), { OTEL_TRACES_SAMPLER: 'parentbased_always_off' })).toMatchObject({ sampler: 'parentbased_traceidratio', ratio: 0 });
  });

  it('refuse an endpoint that is not host:port or an http(s) URL', () => {
    expect(tracingSchema.safeParse({ enabled: true, endpoint: 'collector' }).success).toBe(false);
    expect(tracingSchema.safeParse({ enabled: true, ratio: 2 }).success).toBe(false);
  });
});
