/**
 * The files an issuer's discovery and introspection settings name, checked at load (preflight) the
 * way the adapters will read them, so `validate` refuses what `serve` would fail on.
 */
import { createSecureContext } from 'node:tls';
import { resolveSecret } from '../base/secret.js';
import { readClientTls } from '../base/tls-client-agent.js';
import type { IssuerConfig } from './config.js';

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Problems, each prefixed with its config key; empty when every file loads. */
export function issuerFileProblems(issuer: IssuerConfig, where: string, baseDir: string, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  const jwks = issuer.jwks;
  if (jwks !== undefined && 'discovery' in jwks && jwks.caFile !== undefined) {
    try {
      readClientTls({ caFile: jwks.caFile }, { baseDir, env });
    } catch (error) {
      problems.push(`${where}.jwks.caFile: ${messageOf(error)}`);
    }
  }
  const introspection = issuer.introspection;
  if (introspection === undefined) return problems;
  if (introspection.clientSecret !== undefined) {
    try {
      resolveSecret(introspection.clientSecret, baseDir, env);
    } catch (error) {
      problems.push(`${where}.introspection.clientSecret: ${messageOf(error)}`);
    }
  }
  try {
    const material = readClientTls(introspection, { baseDir, env });
    // What the mTLS agent will do at the first call: parse them all and pair the key with the certificate.
    if (material.cert !== undefined || material.ca !== undefined) createSecureContext(material);
  } catch (error) {
    problems.push(`${where}.introspection: ${messageOf(error)}`);
  }
  return problems;
}
