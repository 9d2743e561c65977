/**
 * The decision pipeline in-process, built like serve.ts builds it (DryRun → DirectionRouter →
 * inbound/outbound authorizers) from the hardening config, with the real token verifier (JWKS
 * files), the real mint token source, and a deterministic PermissionChecker whose answers the
 * fuzzers use as their oracle:
 *   user:alice on cloud:cl0 → allowed; anything on cloud:cl1 → backend error; else → denied.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import type { PermissionAnswer, PermissionChecker, PermissionQuery } from '../../../src/core/ports.js';
import { createCheckHandler } from '../../../src/envoy/authorization-service.js';
import type { CheckHandler } from '../../../src/envoy/authorization-service.js';
import type { CheckRequest__Output } from '../../../src/generated/envoy/service/auth/v3/CheckRequest.js';
import type { CheckResponse__Output } from '../../../src/generated/envoy/service/auth/v3/CheckResponse.js';
import { createTokenVerifier } from '../../../src/identity/token-verifier.js';
import { buildPipeline } from '../../../src/lifecycle/pipeline.js';
import { createLogger } from '../../../src/observability/logger.js';
import { Metrics } from '../../../src/observability/metrics.js';
import { createTokenSource } from '../../../src/tokens/token-source.js';
import { jwks, makeSigningKey } from '../../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../../dev/jwt-fixtures.js';
import { sidecarConfig } from '../../../dev/hardening/fixtures.js';
import { decodeFramedResponse } from '../framed-response.js';

class OracleChecker implements PermissionChecker {
  calls = 0;
  ready(): boolean {
    return true;
  }
  check(query: PermissionQuery): Promise<PermissionAnswer> {
    this.calls++;
    if (query.resource.type === 'cloud' && query.resource.id === 'cl1') {
      return Promise.resolve({ ok: false, reason: 'permission_backend_unavailable' });
    }
    const allowed = query.resource.type === 'cloud' && query.resource.id === 'cl0' && query.subject.type === 'user' && query.subject.id === 'alice';
    return Promise.resolve({ ok: true, value: { permissionship: allowed ? 'allowed' : 'denied', cached: false } });
  }
}

export interface InProcessPipeline {
  readonly config: Config;
  readonly externalKey: SigningKey;
  readonly internalKey: SigningKey;
  readonly checker: OracleChecker;
  readonly unexpectedErrors: unknown[];
  /** Runs one Check through the handler; rejects if the callback is not called exactly once with a response. */
  check(request: CheckRequest__Output): Promise<CheckResponse__Output>;
  close(): Promise<void>;
}

export async function openInProcessPipeline(
  overrides: Readonly<Record<string, Record<string, unknown>>> = {},
  /** Replaces the oracle checker (e.g. the real decorator stack over a controlled backend). */
  makeChecker?: (config: Config, metrics: Metrics) => PermissionChecker,
): Promise<InProcessPipeline> {
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-fuzz-'));
  const externalKey = await makeSigningKey('ES256', 'ext-1');
  const internalKey = await makeSigningKey('RS256', 'mesh-1');
  writeFileSync(join(dir, 'ext.json'), JSON.stringify(jwks(externalKey)));
  writeFileSync(join(dir, 'mesh.json'), JSON.stringify(jwks(internalKey)));
  const raw = sidecarConfig({ spicedbEndpoint: '127.0.0.1:1', spicedbKeyEnv: 'UNUSED', externalJwksUrl: 'http://x/', internalJwksUrl: 'http://x/', overrides });
  const issuers = raw.issuers as Array<Record<string, unknown>>;
  issuers[0] = { ...issuers[0], jwks: { file: 'ext.json' } };
  issuers[1] = { ...issuers[1], jwks: { file: 'mesh.json' } };
  const { config } = validateConfig(raw, 'fuzz', dir);

  const metrics = new Metrics({ processMetrics: false });
  const logger = createLogger({ level: 'silent' });
  const verifier = await createTokenVerifier(config.issuers, { metrics, logger, baseDir: dir });
  const checker = new OracleChecker();
  const permissionChecker = makeChecker ? makeChecker(config, metrics) : checker;
  const tokens = await createTokenSource(config.tokens!, { serviceName: config.service!.name, metrics, logger, baseDir: dir });
  // The pipeline serve builds, over these adapters.
  const pipeline = buildPipeline({ config, baseDir: dir }, { verifier, checker: permissionChecker, tokens });
  const unexpectedErrors: unknown[] = [];
  const lease = { pipeline, release: () => undefined };
  const handler: CheckHandler = createCheckHandler({ acquire: () => lease, observe: () => undefined, onUnexpectedError: (e) => unexpectedErrors.push(e) });

  return {
    config,
    externalKey,
    internalKey,
    checker,
    unexpectedErrors,
    check(request) {
      return new Promise((resolve, reject) => {
        let calls = 0;
        try {
          handler(request, {}, (response) => {
            calls++;
            if (calls > 1) reject(new Error('answered twice'));
            else if (!response) reject(new Error('no response'));
            else resolve(decodeFramedResponse(response));
          });
        } catch (error) {
          reject(new Error(`handler threw: ${String(error)}`));
        }
      });
    },
    async close() {
      await verifier.close();
      await tokens.close();
    },
  };
}

/** The HTTP statuses a denial may carry (400 401 403 413 415 431 500 503), by their StatusCode names. */
const DENY_STATUS_NAMES = ['BadRequest', 'Unauthorized', 'Forbidden', 'PayloadTooLarge', 'UnsupportedMediaType', 'RequestHeaderFieldsTooLarge', 'InternalServerError', 'ServiceUnavailable'];

/** Well-formedness of a CheckResponse as Envoy reads it; returns the problem, or undefined. */
export function malformation(response: CheckResponse__Output): string | undefined {
  const code = response.status?.code;
  if (code === undefined || code === null) return 'no status.code';
  const headers = code === 0 ? response.ok_response?.headers : response.denied_response?.headers;
  for (const option of headers ?? []) {
    if (option.append?.value !== false) return 'a header without append: false';
    const key = option.header?.key ?? '';
    const value = option.header?.value ?? '';
    if (!/^[a-z0-9-]+$/.test(key)) return `bad header name ${JSON.stringify(key)}`;
    if (/[\r\n\0]/.test(value)) return `CR/LF/NUL in header ${key}`;
  }
  if (code === 0) {
    if (response.denied_response) return 'OK status with denied_response';
    if (!response.ok_response) return 'OK status without ok_response';
    return undefined;
  }
  if (response.ok_response) return 'deny status with ok_response';
  const denied = response.denied_response;
  if (!denied) return 'deny status without denied_response';
  // Decoded from the bytes, the HTTP status is its envoy.type.v3.StatusCode name.
  const http = denied.status?.code;
  if (!DENY_STATUS_NAMES.includes(http as string)) return `denied with HTTP ${http}`;
  const reason = denied.headers?.find((h) => h.header?.key === 'x-jwtauth-reason')?.header?.value;
  if (!reason) return 'denial without x-jwtauth-reason';
  if (reason !== response.status?.message) return 'x-jwtauth-reason differs from status.message';
  return undefined;
}

export function reasonOf(response: CheckResponse__Output): string {
  return response.denied_response?.headers?.find((h) => h.header?.key === 'x-jwtauth-reason')?.header?.value ?? 'allowed';
}
