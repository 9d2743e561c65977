/**
 * The `issuers` section: every token issuer the sidecar trusts, each with its own keys, exact
 * `iss`, audience and algorithm allow-list (RFC 8725). Parsed and validated once at load.
 */
import { z } from 'zod';
import { secretRefSchema } from '../base/secret.js';

/**
 * Asymmetric JWS algorithms only. `none` and the HMAC family are excluded on purpose: with keys
 * published in a JWKS, accepting HS256 lets anyone holding the public key forge tokens.
 */
export const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type Algorithm = (typeof ALGORITHMS)[number];

const algorithmSchema = z.string().refine((value): value is Algorithm => (ALGORITHMS as readonly string[]).includes(value), {
  message: `algorithm must be one of ${ALGORITHMS.join(', ')} ("none" and HS* are never accepted)`,
});

const SUBJECT_TYPE = /^([a-z][a-z0-9_]{1,61}[a-z0-9]\/)*[a-z][a-z0-9_]{1,62}[a-z0-9]$/;

const jwksSourceSchema = z.union([
  z
    .strictObject({
      url: z.url({ protocol: /^https?$/ }).describe('JWKS endpoint'),
      refreshSeconds: z.int().min(5).max(86_400).default(300).describe('background refresh interval (±10% jitter)'),
      cooldownSeconds: z.int().min(1).max(3600).default(30).describe('minimum time between refetches triggered by an unknown kid'),
      caFile: z
        .string()
        .min(1)
        .optional()
        .describe('PEM CA bundle the JWKS server certificate must chain to, instead of the system roots; relative to the config file'),
    })
    // A CA for a plaintext URL would be silently unused: the operator meant TLS, so say so at load.
    .refine((source) => source.caFile === undefined || new URL(source.url).protocol === 'https:', {
      message: 'caFile needs an https url',
      path: ['caFile'],
    }),
  z
    .strictObject({
      discovery: z
        .union([z.literal(true), z.url({ protocol: /^https?$/, error: 'true, or the http(s) URL of the discovery document' })])
        .describe('OpenID discovery: true for `issuer` + /.well-known/openid-configuration, or the document URL; its jwks_uri is used'),
      refreshSeconds: z.int().min(5).max(86_400).default(300).describe('background refresh of the discovery document and the JWKS (±10% jitter)'),
      cooldownSeconds: z.int().min(1).max(3600).default(30).describe('minimum time between refetches triggered by an unknown kid'),
      caFile: z
        .string()
        .min(1)
        .optional()
        .describe('PEM CA bundle the discovery and JWKS servers must chain to, instead of the system roots; relative to the config file'),
    }),
  z.strictObject({
    file: z.string().min(1).describe('JWKS file; relative to the config file'),
    refreshSeconds: z.int().min(5).max(86_400).default(60).describe('how often the file is re-read'),
  }),
]);

/**
 * RFC 7662 token introspection for opaque tokens. The client authenticates with HTTP Basic
 * (`clientSecret`, RFC 7662 2.1) or with a certificate (`clientCertFile` + `clientKey`, RFC 8705).
 */
const introspectionSchema = z
  .strictObject({
    endpoint: z.url({ protocol: /^https?$/ }).describe('introspection endpoint'),
    clientId: z.string().min(1).describe('this sidecar\'s client_id at the issuer'),
    clientSecret: secretRefSchema.optional().describe('client secret for HTTP Basic authentication'),
    clientCertFile: z.string().min(1).optional().describe('PEM client certificate for mutual TLS; relative to the config file'),
    clientKey: secretRefSchema.optional().describe("the client certificate's private key (PEM)"),
    caFile: z.string().min(1).optional().describe('PEM CA bundle the endpoint must chain to, instead of the system roots'),
    serverName: z.string().min(1).optional().describe('TLS server name to verify; default the endpoint host'),
    cacheMaxSeconds: z.int().min(0).max(3600).default(60).describe('longest an answer is reused (never past the token exp); 0 = ask every time'),
    timeoutMs: z.int().min(50).max(60_000).default(2000),
  })
  .superRefine((introspection, ctx) => {
    const mtls = introspection.clientCertFile !== undefined || introspection.clientKey !== undefined;
    if (mtls && (introspection.clientCertFile === undefined || introspection.clientKey === undefined)) {
      ctx.addIssue({ code: 'custom', path: [introspection.clientKey === undefined ? 'clientKey' : 'clientCertFile'], message: 'mutual TLS needs both clientCertFile and clientKey' });
    }
    if (mtls === (introspection.clientSecret !== undefined)) {
      ctx.addIssue({ code: 'custom', path: ['clientSecret'], message: 'authenticate with exactly one of clientSecret (HTTP Basic) or clientCertFile + clientKey (mutual TLS)' });
    }
    // TLS settings for a plaintext endpoint would be silently unused: the operator meant TLS.
    const tlsOnly = mtls || introspection.caFile !== undefined || introspection.serverName !== undefined;
    if (tlsOnly && new URL(introspection.endpoint).protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', path: ['endpoint'], message: 'clientCertFile, caFile and serverName need an https endpoint' });
    }
  });

export type IntrospectionConfig = z.infer<typeof introspectionSchema>;

const issuerSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _').describe('metrics label and {issuer} value'),
    issuer: z.string().min(1).describe('exact `iss` value'),
    audience: z.string().min(1).describe('exact audience this sidecar expects unless a route names another'),
    kind: z.enum(['internal', 'external']).describe('internal tokens pass outbound as they are; external ones are exchanged'),
    subjectType: z.string().regex(SUBJECT_TYPE, 'a SpiceDB object type, e.g. user').default('user'),
    userSubjectType: z
      .string()
      .regex(SUBJECT_TYPE, 'a SpiceDB object type, e.g. user')
      .optional()
      .describe('for issuers that mint service and user tokens: the type of a `sub` that differs from `client_id` (RFC 9068 2.2)'),
    jwks: jwksSourceSchema.optional().describe('where JWT signing keys come from; may be omitted only with introspection'),
    introspection: introspectionSchema.optional().describe('RFC 7662 introspection of opaque (non-JWT) tokens; kind external only'),
    algorithms: z.array(algorithmSchema).min(1).default(['RS256', 'ES256', 'EdDSA']).describe('allow-list; each key is bound to exactly one of these'),
    typ: z.string().min(1).optional().describe('required `typ` header, e.g. at+jwt (compared without application/ and case)'),
    clockSkewSeconds: z.int().min(0).max(300).default(30),
    maxLifetimeSeconds: z.int().min(1).optional().describe('refuse tokens with exp - iat above this, or older than this; needs iat'),
    requiredClaims: z.array(z.string().min(1)).default([]).describe('claims that must be present (exp and sub always are)'),
    required: z
      .boolean()
      .default(true)
      .describe('false: the sidecar is ready without this issuer\'s keys; its tokens get keys_unavailable (503) meanwhile'),
  })
  .superRefine((issuer, ctx) => {
    if (issuer.jwks === undefined && issuer.introspection === undefined) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'an issuer needs jwks (JWTs), introspection (opaque tokens), or both' });
    }
    if (issuer.introspection !== undefined && issuer.kind !== 'external') {
      ctx.addIssue({ code: 'custom', path: ['introspection'], message: 'introspection is for external issuers (kind: external); internal tokens are JWTs' });
    }
    if (issuer.jwks !== undefined && 'discovery' in issuer.jwks && issuer.jwks.discovery === true && !/^https?:\/\//.test(issuer.issuer)) {
      ctx.addIssue({ code: 'custom', path: ['jwks', 'discovery'], message: 'discovery: true needs an http(s) issuer URL; give the document URL instead' });
    }
  })
  .transform((issuer) => ({ ...issuer, algorithms: [...new Set(issuer.algorithms)] as Algorithm[] }));

export const issuersSchema = z
  .array(issuerSchema)
  .default([])
  .superRefine((issuers, ctx) => {
    const names = new Set<string>();
    const isses = new Set<string>();
    issuers.forEach((issuer, index) => {
      if (names.has(issuer.name)) ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `duplicate issuer name "${issuer.name}"` });
      // The unverified `iss` picks the issuer; two issuers sharing one would make that choice ambiguous.
      if (isses.has(issuer.issuer)) ctx.addIssue({ code: 'custom', path: [index, 'issuer'], message: `duplicate iss "${issuer.issuer}"` });
      names.add(issuer.name);
      isses.add(issuer.issuer);
    });
    // An opaque token names no issuer. Sending it to several introspection endpoints would hand a
    // caller's credential to issuers it was never meant for, so only one issuer may take them.
    const introspecting = issuers.flatMap((issuer, index) => (issuer.introspection !== undefined ? [index] : []));
    for (const index of introspecting.slice(1)) {
      ctx.addIssue({ code: 'custom', path: [index, 'introspection'], message: 'only one issuer may introspect opaque tokens (an opaque token does not say which issuer it is from)' });
    }
  });

export type IssuerConfig = z.infer<typeof issuerSchema>;
export type JwksSource = NonNullable<IssuerConfig['jwks']>;
export type IssuersConfig = z.infer<typeof issuersSchema>;
