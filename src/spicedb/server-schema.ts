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

/** Why no schema text came back; each has its own fix (config, network, key, `zed schema write`). */
type ServerSchemaFailureKind = 'not_configured' | 'unreachable' | 'unauthenticated' | 'no_schema' | 'failed';

export type ServerSchemaResult =
  | {
      readonly ok: true;
      readonly schemaText: string;
      /** How to name this schema in problems, e.g. `the schema in SpiceDB at spicedb:50051`. */
      readonly origin: string;
    }
  | { readonly ok: false; readonly kind: ServerSchemaFailureKind; readonly problem: string };

function failed(kind: ServerSchemaFailureKind, problem: string): ServerSchemaResult {
  return { ok: false, kind, problem };
}

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
  if (!isServiceError(error)) return failed('failed', `ReadSchema on SpiceDB at ${endpoint} failed: ${error instanceof Error ? error.message : String(error)}`);
  switch (error.code) {
    case status.UNAVAILABLE:
      return failed('unreachable', `SpiceDB at ${endpoint} is unreachable (spicedb.endpoint, spicedb.tls): ${readableDetails(error.details)}`);
    case status.DEADLINE_EXCEEDED:
      return failed('unreachable', `SpiceDB at ${endpoint} did not answer ReadSchema within ${timeoutMs} ms (spicedb.endpoint, spicedb.tls)`);
    case status.UNAUTHENTICATED:
    case status.PERMISSION_DENIED:
      return failed('unauthenticated', `SpiceDB at ${endpoint} refused the preshared key (spicedb.presharedKey): ${readableDetails(error.details)}`);
    case status.NOT_FOUND:
      return failed('no_schema', `SpiceDB at ${endpoint} has no schema yet; write one first (zed schema write)`);
    default:
      return failed('failed', `ReadSchema on SpiceDB at ${endpoint} failed: ${status[error.code] ?? error.code}: ${readableDetails(error.details)}`);
  }
}

/** The schema text of the SpiceDB `config` points at, or what kept it from being read within `timeoutMs`. */
export async function readServerSchema(config: SpicedbConfig, baseDir: string, timeoutMs: number): Promise<ServerSchemaResult> {
  const { endpoint, presharedKey } = config;
  if (endpoint === undefined) return failed('not_configured', 'spicedb.endpoint is not set: the embedded SpiceDB has no server schema to read (see spicedb.embedded.schemaFile)');
  if (presharedKey === undefined) return failed('not_configured', 'spicedb.presharedKey is required with spicedb.endpoint');
  let client: v1.ZedClientInterface;
  try {
    client = createSpicedbClient({ endpoint, presharedKey: resolveSecret(presharedKey, baseDir), tls: config.tls, baseDir });
  } catch (error) {
    // A secret or CA file that cannot be read: the call was never made.
    return failed('not_configured', `cannot connect to SpiceDB at ${endpoint}: ${error instanceof Error ? error.message : String(error)}`);
  }
  try {
    const response = await client.promises.readSchema(v1.ReadSchemaRequest.create({}), new Metadata(), { deadline: Date.now() + timeoutMs });
    if (response.schemaText.trim() === '') return failed('no_schema', `SpiceDB at ${endpoint} has an empty schema; write one first (zed schema write)`);
    return { ok: true, schemaText: response.schemaText, origin: `the schema in SpiceDB at ${endpoint}` };
  } catch (error) {
    return callFailure(error, endpoint, timeoutMs);
  } finally {
    client.close();
  }
}
