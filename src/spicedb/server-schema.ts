/**
 * Reads the schema a remote SpiceDB holds (SchemaService.ReadSchema), so the configuration can be
 * checked against what checks will actually meet. One call with one deadline, on a client of its
 * own that is closed after; config load only.
 */
import { Metadata, status } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { resolveSecret } from '../base/secret.js';
import type { SpicedbConfig } from './config.js';
import { isServiceError } from './backend-errors.js';
import { createSpicedbClient } from './grpc-checker.js';
import { failure, success } from '../core/result.js';
import type { Result } from '../core/result.js';

/** Why no schema text came back; each has its own fix (config, network, key, `zed schema write`). */
type ServerSchemaFailureKind = 'not_configured' | 'unreachable' | 'unauthenticated' | 'no_schema' | 'failed';

/** The schema SpiceDB serves; `origin` names it in problems, e.g. `the schema in SpiceDB at spicedb:50051`. */
interface ServerSchema {
  readonly schemaText: string;
  readonly origin: string;
}

/** The schema, or why there is none, with the operator's problem as the detail. */
export type ServerSchemaResult = Result<ServerSchema, ServerSchemaFailureKind>;

const OPENSSL_ERROR = /[0-9A-F]+:error:[0-9A-F]+:([^:]+):[^:]*:([^:]+):/;

/**
 * grpc-js wraps a connection failure as "No connection established. Last error: Error: connect
 * ECONNREFUSED .... Resolution note: " and TLS failures as OpenSSL's colon-separated record; keep
 * the cause only.
 */
function readableDetails(details: string): string {
  const cause = (/Last error: (?:Error: )?([\s\S]*?)(?:\.?\s*Resolution note:[\s\S]*)?$/.exec(details)?.[1] ?? details).trim();
  const openssl = OPENSSL_ERROR.exec(cause);
  const text = openssl ? `${openssl[1]}: ${openssl[2]}` : cause.replace(/\s+/g, ' ');
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}

function callFailure(error: unknown, endpoint: string, timeoutMs: number): ServerSchemaResult {
  if (!isServiceError(error)) return failure('failed', `ReadSchema on SpiceDB at ${endpoint} failed: ${error instanceof Error ? error.message : String(error)}`);
  switch (error.code) {
    case status.UNAVAILABLE:
      return failure('unreachable', `SpiceDB at ${endpoint} is unreachable (spicedb.endpoint, spicedb.tls): ${readableDetails(error.details)}`);
    case status.DEADLINE_EXCEEDED:
      return failure('unreachable', `SpiceDB at ${endpoint} did not answer ReadSchema within ${timeoutMs} ms (spicedb.endpoint, spicedb.tls)`);
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return failure('unauthenticated', `SpiceDB at ${endpoint} refused the preshared key (spicedb.presharedKey): ${readableDetails(error.details)}`);
    case status.NOT_FOUND:
      return failure('no_schema', `SpiceDB at ${endpoint} has no schema yet; write one first (zed schema write)`);
    default:
      return failure('failed', `ReadSchema on SpiceDB at ${endpoint} failed: ${status[error.code] ?? error.code}: ${readableDetails(error.details)}`);
  }
}

/** The schema text of the SpiceDB `config` points at, or what kept it from being read within `timeoutMs`. */
export async function readServerSchema(config: SpicedbConfig, baseDir: string, timeoutMs: number): Promise<ServerSchemaResult> {
  const { endpoint, presharedKey } = config;
  if (endpoint === undefined) return failure('not_configured', 'spicedb.endpoint is not set: the embedded SpiceDB has no server schema to read (see spicedb.embedded.schemaFile)');
  if (presharedKey === undefined) return failure('not_configured', 'spicedb.presharedKey is required with spicedb.endpoint');
  let client: v1.ZedClientInterface;
  try {
    client = createSpicedbClient({ endpoint, presharedKey: resolveSecret(presharedKey, baseDir), tls: config.tls, baseDir });
  } catch (error) {
    // A secret or CA file that cannot be read: the call was never made.
    return failure('not_configured', `cannot connect to SpiceDB at ${endpoint}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    const response = await client.promises.readSchema(v1.ReadSchemaRequest.create({}), new Metadata(), { deadline: Date.now() + timeoutMs });
    if (response.schemaText.trim() === '') return failure('no_schema', `SpiceDB at ${endpoint} has an empty schema; write one first (zed schema write)`);
    return success({ schemaText: response.schemaText, origin: `the schema in SpiceDB at ${endpoint}` });
  } catch (error) {
    return callFailure(error, endpoint, timeoutMs);
  } finally {
    client.close();
  }
}
