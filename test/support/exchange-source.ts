/**
 * The `tokens` configuration of an exchange token source (RFC 8693 over mutual TLS) for a test:
 * the client certificate and key of one of the test PKI's clients, trusting the PKI's CA. One
 * place for the shape, shared by the sidecar configs and the source-level tests.
 */
import { tokensSchema } from '../../src/tokens/config.js';
import type { TokensConfig } from '../../src/tokens/config.js';
import type { TestPki } from './certs.js';

export interface ExchangeSourceOptions {
  /** The PKI client the source authenticates as; default gwadmin. */
  readonly client?: string;
  /** Default: the PKI's own CA. */
  readonly caFile?: string;
  /** Any further `tokens.source` keys (audienceParameter, timeoutMs, …). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** `tokens.source` as written in a config file. */
export function exchangeSource(pki: TestPki, tokenEndpoint: string, options: ExchangeSourceOptions = {}): Record<string, unknown> {
  const client = pki.clients[options.client ?? 'gwadmin'];
  if (!client) throw new Error(`the test PKI has no client ${options.client ?? 'gwadmin'}`);
  return {
    kind: 'exchange',
    tokenEndpoint,
    clientCertFile: client.certFile,
    clientKey: { file: client.keyFile },
    caFile: options.caFile ?? pki.caFile,
    ...options.extra,
  };
}

/** The validated `tokens` section with that source, ready for createTokenSource. */
export function exchangeTokensConfig(pki: TestPki, tokenEndpoint: string, options: ExchangeSourceOptions = {}): NonNullable<TokensConfig> {
  const config = tokensSchema.parse({ source: exchangeSource(pki, tokenEndpoint, options) });
  if (!config) throw new Error('tokens config');
  return config;
}
