/**
 * The https.Agent for a TLS client the configuration describes: an optional client certificate
 * and key (mutual TLS) and an optional private CA. Shared by the token service source and token
 * introspection, so both present a certificate and check the server the same way.
 */
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { readCaBundle } from './ca-bundle.js';
import { resolveConfigPath } from './paths.js';
import { resolveSecret } from './secret.js';
import type { SecretRef } from './secret.js';

export interface ClientTlsFiles {
  /** PEM client certificate; with `clientKey`, for mutual TLS. */
  readonly clientCertFile?: string | undefined;
  readonly clientKey?: SecretRef | undefined;
  /** PEM CA bundle the server must chain to; unset means the system roots. */
  readonly caFile?: string | undefined;
  /** TLS server name to verify; default the endpoint host. */
  readonly serverName?: string | undefined;
}

export interface ClientAgentOptions {
  readonly baseDir: string;
  readonly keepAlive: boolean;
  readonly maxSockets?: number;
  /** Where `{ env }` secrets are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

function readPem(path: string, baseDir: string, what: string): string {
  const full = resolveConfigPath(baseDir, path);
  try {
    return readFileSync(full, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${what} ${full}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
  }
}

export interface ClientTlsMaterial {
  readonly cert?: string;
  readonly key?: string;
  readonly ca?: string[];
}

/** Reads the files; throws, naming the file, when one cannot be read or the CA bundle holds no certificate. */
export function readClientTls(files: ClientTlsFiles, options: Pick<ClientAgentOptions, 'baseDir' | 'env'>): ClientTlsMaterial {
  return {
    ...(files.clientCertFile !== undefined ? { cert: readPem(files.clientCertFile, options.baseDir, 'client certificate') } : {}),
    ...(files.clientKey !== undefined ? { key: resolveSecret(files.clientKey, options.baseDir, options.env) } : {}),
    ...(files.caFile !== undefined ? { ca: readCaBundle(resolveConfigPath(options.baseDir, files.caFile)) } : {}),
  };
}

export function createClientTlsAgent(files: ClientTlsFiles, options: ClientAgentOptions): Agent {
  return new Agent({
    ...readClientTls(files, options),
    // Without serverName, node:https verifies (and sends as SNI) each request's own host, leaving out
    // IP literals as RFC 6066 requires; an agent-wide name would be wrong for a second host.
    ...(files.serverName !== undefined ? { servername: files.serverName } : {}),
    rejectUnauthorized: true,
    keepAlive: options.keepAlive,
    ...(options.maxSockets !== undefined ? { maxSockets: options.maxSockets } : {}),
    minVersion: 'TLSv1.2',
  });
}
