/**
 * The `tokens` section: where outbound tokens come from (minted here, or fetched from a token
 * service over mTLS), how long they live and how they are cached. Every key is documented in
 * docs/outbound.md.
 */
import { z } from 'zod';
import { secretRefSchema } from '../base/secret.js';

export const SIGNING_ALGORITHMS = ['ES256', 'EdDSA', 'RS256'] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

const DEFAULT_DEV_KEY_FILE = '.jwtauth/dev-signing-key.json';

const signingKeySchema = z.strictObject({
  file: z.string().min(1).describe('PKCS#8 PEM or private JWK (JSON); relative to the config file'),
  algorithm: z.enum(SIGNING_ALGORITHMS).optional().describe('defaults to source.algorithm'),
  notBefore: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('earliest time this key may sign (it is published publishBeforeUseSeconds earlier); unset = always'),
});

const mintSourceSchema = z.strictObject({
  kind: z.literal('mint'),
  issuer: z.string().min(1).default('http://127.0.0.1:9190').describe('`iss` of minted tokens'),
  jwksUri: z.string().min(1).optional().describe('advertised in openid-configuration; default <issuer>/.well-known/jwks.json'),
  algorithm: z.enum(SIGNING_ALGORITHMS).default('ES256'),
  keys: z
    .array(signingKeySchema)
    .default([])
    .describe('signing keys; empty = a development key generated once into devKeyFile'),
  publishBeforeUseSeconds: z.int().min(0).max(7 * 86400).default(300),
  devKeyFile: z.string().min(1).default(DEFAULT_DEV_KEY_FILE),
});

const exchangeSourceSchema = z.strictObject({
  kind: z.literal('exchange'),
  tokenEndpoint: z.url({ protocol: /^https$/ }).describe('the token service endpoint; https only'),
  clientId: z.string().min(1).optional().describe('sent as client_id (RFC 8705); default service.name'),
  clientCertFile: z.string().min(1).describe("PEM certificate naming this service (mTLS client certificate)"),
  clientKey: secretRefSchema.describe("the client certificate's private key (PEM)"),
  caFile: z.string().min(1).describe('PEM CA bundle the token service certificate must chain to'),
  serverName: z.string().min(1).optional().describe('TLS server name to verify; default the endpoint host'),
  timeoutMs: z.int().min(50).max(60_000).default(2000),
  audienceParameter: z
    .enum(['audience', 'resource'])
    .default('audience')
    .describe('how the upstream is named: RFC 8693 `audience`, or an RFC 8707 `resource` URI'),
  resourcePrefix: z.string().default('urn:jwtauth:audience:').describe('resource = resourcePrefix + audience'),
  subjectTokenType: z.string().min(1).default('urn:ietf:params:oauth:token-type:access_token'),
  requestedTokenType: z.string().min(1).default('urn:ietf:params:oauth:token-type:access_token'),
  maxResponseBytes: z.int().min(1024).max(1 << 20).default(65536),
});

const tokenCacheSchema = z
  .strictObject({
    maxEntries: z.int().min(1).max(1_000_000).default(10_000),
    refreshAtFraction: z.number().gt(0).lt(1).default(0.5).describe('refresh when this fraction of the lifetime has passed'),
    jitterFraction: z.number().min(0).max(0.25).default(0.1),
    retrySeconds: z.number().min(0.1).max(300).default(5).describe('wait after a failed background refresh'),
  })
  .prefault({});

export const tokensSchema = z
  .strictObject({
    source: z.discriminatedUnion('kind', [mintSourceSchema, exchangeSourceSchema]),
    lifetimeSeconds: z.int().min(30).max(3600).default(300).describe('lifetime of minted tokens'),
    clockSkewSeconds: z.int().min(0).max(300).default(30).describe('a cached token is never served past exp minus this'),
    cache: tokenCacheSchema,
  })
  .refine((t) => t.lifetimeSeconds > 2 * t.clockSkewSeconds, {
    message: 'lifetimeSeconds must exceed twice clockSkewSeconds, or a minted token could never be served from the cache',
    path: ['lifetimeSeconds'],
  })
  .optional();

export type TokensConfig = z.infer<typeof tokensSchema>;
export type MintSourceConfig = z.infer<typeof mintSourceSchema>;
export type ExchangeSourceConfig = z.infer<typeof exchangeSourceSchema>;

/** What the embedded defaults use: minting with a development key persisted under `.jwtauth/`. */
export const defaultTokensConfig: z.input<typeof tokensSchema> = { source: { kind: 'mint' } };
