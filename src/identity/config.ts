/**
 * The `issuers` section: every token issuer the sidecar trusts, each with its own keys, exact
 * `iss`, audience and algorithm allow-list (RFC 8725). Parsed and validated once at load.
 */
import { z } from 'zod';

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
  z.strictObject({
    file: z.string().min(1).describe('JWKS file; relative to the config file'),
    refreshSeconds: z.int().min(5).max(86_400).default(60).describe('how often the file is re-read'),
  }),
]);

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
    jwks: jwksSourceSchema,
    algorithms: z.array(algorithmSchema).min(1).default(['RS256', 'ES256', 'EdDSA']).describe('allow-list; each key is bound to exactly one of these'),
    typ: z.string().min(1).optional().describe('required `typ` header, e.g. at+jwt (compared without application/ and case)'),
    clockSkewSeconds: z.int().min(0).max(300).default(30),
    maxLifetimeSeconds: z.int().min(1).optional().describe('refuse tokens with exp - iat above this, or older than this; needs iat'),
    requiredClaims: z.array(z.string().min(1)).default([]).describe('claims that must be present (exp and sub always are)'),
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
  });

export type IssuerConfig = z.infer<typeof issuerSchema>;
export type IssuersConfig = z.infer<typeof issuersSchema>;
