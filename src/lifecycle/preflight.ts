/**
 * Everything start-up checks about a configuration, short of opening a listener or a connection:
 * every file it names exists and parses (JWKS files, signing keys, certificates, secrets, the
 * embedded SpiceDB schema and relationships, message descriptors), a client certificate has not
 * expired and its key matches it, every rule and template compiles, and every literal SpiceDB
 * name in a check exists in the schema. `validate`, `check`, `serve` and each reload run this
 * same function, so `validate` cannot call a file valid that `serve` refuses. All problems are
 * reported at once, as a ConfigError.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { readCaBundle } from '../base/ca-bundle.js';
import { ConfigError } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import { resolveConfigPath } from '../base/paths.js';
import { resolveSecret } from '../base/secret.js';
import type { Config } from '../config/schema.js';
import { failure } from '../core/result.js';
import type { PermissionChecker, TokenSource, TokenVerifier } from '../core/ports.js';
import { issuerFileProblems } from '../identity/issuer-files.js';
import { checkConfigAgainstSchema } from './schema-conformance.js';
import { embeddedModulePath } from '../spicedb/embedded-checker.js';
import { embeddedSpicedbFiles } from '../spicedb/permission-checker.js';
import { parseRelationships, relationshipProblems } from '../spicedb/relationships-file.js';
import type { RelationshipLine } from '../spicedb/relationships-file.js';
import { parseSchemaModel } from '../spicedb/schema-model.js';
import type { SchemaModel } from '../spicedb/schema-model.js';
import { loadSigningKeyFile } from '../tokens/signing-keys.js';
import { namedFiles } from './named-files.js';
import { buildPipeline } from './pipeline.js';

export interface PreflightOptions {
  /** Where secrets named by `{ env }` are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * A schema file to check the rules against instead of the configured one (`validate --schema`):
   * how a configuration for a SpiceDB server is checked offline.
   */
  readonly schemaFile?: string;
}

export interface PreflightResult {
  /** The schema file the rules were checked against, when one was available offline. */
  readonly schemaOrigin: string | undefined;
}

/** A schema file read and parsed. */
interface LocalSchema {
  readonly origin: string;
  readonly model: SchemaModel;
}

/** Ports that are never called: compiling the pipeline only stores them. */
const INERT_PORTS: { verifier: TokenVerifier; checker: PermissionChecker; tokens: TokenSource } = {
  verifier: { verify: () => Promise.resolve(failure('internal_error', 'preflight')), ready: () => false },
  checker: { check: () => Promise.resolve(failure('internal_error', 'preflight')), ready: () => false },
  tokens: { name: 'preflight', issue: () => Promise.resolve(failure('internal_error', 'preflight')) },
};

function messageOf(error: unknown): string {
  return error instanceof ConfigError ? error.problems.join('; ') : error instanceof Error ? error.message : String(error);
}

function readText(path: string, what: string, problems: string[]): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    problems.push(`${what}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? messageOf(error)}`);
    return undefined;
  }
}

/** A CA bundle must hold certificates that parse: TLS would take any text and fail every handshake. */
function checkCaFile(path: string, key: string, problems: string[]): string | undefined {
  try {
    return readCaBundle(path).join('\n');
  } catch (error) {
    problems.push(`${key}: ${messageOf(error)}`);
    return undefined;
  }
}

/** A JWKS file must parse and hold a `keys` array; which keys are usable is the verifier's call. */
function checkJwksFiles(config: Config, baseDir: string, problems: string[]): void {
  config.issuers.forEach((issuer, index) => {
    if (issuer.jwks === undefined) return; // an issuer that only introspects opaque tokens
    if ('url' in issuer.jwks && issuer.jwks.caFile !== undefined) {
      checkCaFile(resolveConfigPath(baseDir, issuer.jwks.caFile), `issuers[${index}] (${issuer.name}).jwks.caFile`, problems);
    }
    if (!('file' in issuer.jwks)) return;
    const where = `issuers[${index}] (${issuer.name}).jwks.file`;
    const text = readText(resolveConfigPath(baseDir, issuer.jwks.file), where, problems);
    if (text === undefined) return;
    try {
      const document = JSON.parse(text) as { keys?: unknown } | null;
      if (!Array.isArray(document?.keys)) problems.push(`${where}: not a JWKS (no "keys" array)`);
    } catch (error) {
      problems.push(`${where}: not JSON (${messageOf(error)})`);
    }
  });
}

function checkSpicedb(config: Config, baseDir: string, env: NodeJS.ProcessEnv, schemaFile: string | undefined, problems: string[]): LocalSchema | undefined {
  const { spicedb } = config;
  if (spicedb.endpoint !== undefined) {
    if (spicedb.presharedKey !== undefined) {
      try {
        // An empty file (a Secret mounted before its value was written) would fail every check as unauthenticated.
        if (resolveSecret(spicedb.presharedKey, baseDir, env) === '') problems.push('spicedb.presharedKey: the secret is empty');
      } catch (error) {
        problems.push(`spicedb.presharedKey: ${messageOf(error)}`);
      }
    }
    if (typeof spicedb.tls === 'object') checkCaFile(resolveConfigPath(baseDir, spicedb.tls.caFile), 'spicedb.tls.caFile', problems);
  }
  const embedded = spicedb.endpoint === undefined ? embeddedSpicedbFiles(spicedb, baseDir) : undefined;
  let relationships: RelationshipLine[] | undefined;
  if (embedded !== undefined) {
    try {
      embeddedModulePath();
    } catch (error) {
      problems.push(`spicedb.endpoint: ${messageOf(error)}`);
    }
    const text = readText(embedded.relationshipsFile, 'spicedb.embedded.relationshipsFile', problems);
    if (text !== undefined) {
      try {
        relationships = parseRelationships(text, embedded.relationshipsFile);
      } catch (error) {
        problems.push(`spicedb.embedded.relationshipsFile: ${messageOf(error)}`);
      }
    }
  }
  const schema = readSchema(schemaFile ?? embedded?.schemaFile, schemaFile ? '--schema' : 'spicedb.embedded.schemaFile', problems);
  if (schema !== undefined && relationships !== undefined && embedded !== undefined && schemaFile === undefined) {
    problems.push(...relationshipProblems(relationships, schema.model, embedded.relationshipsFile).map((problem) => `spicedb.embedded.relationshipsFile: ${problem}`));
  }
  return schema;
}

function readSchema(schemaOrigin: string | undefined, schemaKey: string, problems: string[]): LocalSchema | undefined {
  if (schemaOrigin === undefined) return undefined;
  const schemaText = readText(schemaOrigin, schemaKey, problems);
  if (schemaText === undefined) return undefined;
  const parsed = parseSchemaModel(schemaText, schemaOrigin);
  if (!parsed.ok) {
    problems.push(`${schemaKey}: ${parsed.problem}`);
    return undefined;
  }
  return { origin: schemaOrigin, model: parsed.value };
}

async function checkTokenSource(config: Config, baseDir: string, env: NodeJS.ProcessEnv, problems: string[]): Promise<void> {
  const source = config.tokens?.source;
  if (source === undefined) return;
  if (source.kind === 'mint') {
    // The development key (no keys listed) is created on first start; nothing to check before.
    for (const [index, entry] of source.keys.entries()) {
      try {
        await loadSigningKeyFile(resolveConfigPath(baseDir, entry.file), entry.algorithm ?? source.algorithm, -Infinity);
      } catch (error) {
        problems.push(`tokens.source.keys[${index}].file: ${messageOf(error)}`);
      }
    }
    return;
  }
  const cert = readText(resolveConfigPath(baseDir, source.clientCertFile), 'tokens.source.clientCertFile', problems);
  const ca = checkCaFile(resolveConfigPath(baseDir, source.caFile), 'tokens.source.caFile', problems);
  let key: string | undefined;
  try {
    key = resolveSecret(source.clientKey, baseDir, env);
  } catch (error) {
    problems.push(`tokens.source.clientKey: ${messageOf(error)}`);
  }
  if (cert === undefined || ca === undefined || key === undefined) return;
  try {
    // What the mTLS agent will do at start: parse all three and pair the key with the certificate.
    createSecureContext({ cert, key, ca });
  } catch (error) {
    problems.push(`tokens.source: the client certificate, key and CA do not load together: ${messageOf(error)}`);
  }
}

/**
 * A client certificate past its notAfter fails every handshake: refused here, so a renewal that
 * wrote an old certificate keeps the last good one serving (a reload that fails preflight is
 * refused). CA bundles are left alone: one may hold an expired certificate beside current ones.
 */
function checkClientCertificateExpiry(loaded: LoadedConfig, now: number, problems: string[]): void {
  for (const file of namedFiles(loaded)) {
    if (file.kind !== 'client certificate') continue;
    let pem: string;
    try {
      pem = readFileSync(file.path, 'utf8');
    } catch {
      continue; // the check that reads it for use reports this
    }
    let validTo: number;
    try {
      validTo = Date.parse(new X509Certificate(pem).validTo);
    } catch (error) {
      problems.push(`${file.use}: ${file.path} is not a PEM certificate (${messageOf(error)})`);
      continue;
    }
    if (validTo <= now) problems.push(`${file.use}: the certificate in ${file.path} expired at ${new Date(validTo).toISOString()}`);
  }
}

/** Throws a ConfigError naming every problem; resolves when start-up would get past the configuration. */
export async function preflight(loaded: LoadedConfig, options: PreflightOptions = {}): Promise<PreflightResult> {
  const { config, baseDir } = loaded;
  const env = options.env ?? process.env;
  const problems: string[] = [];
  checkJwksFiles(config, baseDir, problems);
  // Discovery CA, introspection secret, certificate and CA: read as the verifier will read them.
  config.issuers.forEach((issuer, index) => problems.push(...issuerFileProblems(issuer, `issuers[${index}] (${issuer.name})`, baseDir, env)));
  const schema = checkSpicedb(config, baseDir, env, options.schemaFile, problems);
  await checkTokenSource(config, baseDir, env, problems);
  checkClientCertificateExpiry(loaded, Date.now(), problems);
  try {
    buildPipeline(loaded, { ...INERT_PORTS, tokens: config.tokens ? INERT_PORTS.tokens : undefined });
  } catch (error) {
    problems.push(messageOf(error));
  }
  if (schema !== undefined) problems.push(...checkConfigAgainstSchema(config, schema.model, schema.origin));
  if (problems.length > 0) throw new ConfigError(loaded.origin, problems);
  return { schemaOrigin: schema?.origin };
}
