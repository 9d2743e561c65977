/**
 * The `inbound` section: rules that map a request reaching this pod to the identity it needs and
 * the SpiceDB checks it must pass. Validated here, compiled once by compile-rules.ts.
 */
import { z } from 'zod';
import { HEADER_NAME } from '../core/header-name.js';
import { permissionCheckSpecSchema, consistencyModeSchema } from '../rules/permission-check-spec.js';
import { requirementSchema } from '../rules/conditions.js';

const GRPC_SERVICE = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$/;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HTTP_METHOD = /^[A-Z]+$/;

const grpcMatchSchema = z.strictObject({
  service: z.string().regex(GRPC_SERVICE, 'a fully qualified gRPC service, e.g. authzed.api.v1.PermissionsService'),
  method: z.string().regex(GRPC_METHOD).optional().describe('omit to match every method of the service'),
});

const httpMatchSchema = z.strictObject({
  methods: z
    .array(z.string().regex(HTTP_METHOD, 'upper-case HTTP method'))
    .min(1)
    .optional()
    .describe('omit to match any method'),
  path: z.string().startsWith('/').describe('path template: literal segments, {param} for one segment, ** (last) for the rest'),
});

const ruleMatchSchema = z
  .strictObject({
    grpc: grpcMatchSchema.optional(),
    http: httpMatchSchema.optional(),
    host: z
      .string()
      .regex(/^(\*\.)?[a-z0-9.-]+$/, 'lower-case host, optionally *.suffix')
      .optional()
      .describe('exact :authority (port stripped), or *.domain'),
    headers: z
      .record(z.string().regex(HEADER_NAME), z.string())
      .optional()
      .describe('header values that must match exactly'),
  })
  .refine((m) => (m.grpc === undefined) !== (m.http === undefined), 'a rule matches on exactly one of grpc or http');

const inboundRuleSchema = z
  .strictObject({
    name: z.string().min(1).max(128).describe('shown in decision facts and logs'),
    match: ruleMatchSchema,
    auth: z.enum(['none', 'token', 'checks']).optional().describe('default: checks when checks are given, else token when require is'),
    audience: z.string().min(1).optional().describe('expected aud; default: context_extensions.audience, else the issuer audience'),
    issuers: z.array(z.string().min(1)).min(1).optional().describe('accept tokens only from these issuer names'),
    issuerKinds: z.array(z.enum(['internal', 'external'])).min(1).optional().describe('accept only these issuer kinds'),
    require: requirementSchema.optional().describe('scopes and claim conditions the token must meet, checked before SpiceDB'),
    checks: z.array(permissionCheckSpecSchema).default([]).describe('SpiceDB checks; all must pass'),
    dryRun: z.boolean().default(false).describe('mark this rule’s decisions as dry-run (facts.dryRun)'),
  })
  .transform((rule, ctx) => {
    const auth = rule.auth ?? (rule.checks.length > 0 ? 'checks' : rule.require !== undefined ? 'token' : undefined);
    if (auth === undefined) {
      ctx.addIssue({ code: 'custom', path: ['auth'], message: 'set auth: none | token, or give checks' });
      return z.NEVER;
    }
    if (auth === 'checks' && rule.checks.length === 0) ctx.addIssue({ code: 'custom', path: ['checks'], message: 'auth: checks needs at least one check' });
    if (auth !== 'checks' && rule.checks.length > 0) ctx.addIssue({ code: 'custom', path: ['checks'], message: `auth: ${auth} takes no checks` });
    if (auth === 'none' && rule.require !== undefined) ctx.addIssue({ code: 'custom', path: ['require'], message: 'no require: auth: none reads no token' });
    return { ...rule, auth };
  });

export const inboundSchema = z
  .strictObject({
    default: z
      .enum(['deny', 'token', 'allow'])
      .default('deny')
      .describe('for requests no rule matches: deny (no_matching_rule), token (any valid token), allow'),
    consistency: consistencyModeSchema.default('minimize_latency').describe('consistency for checks that set none'),
    rules: z.array(inboundRuleSchema).default([]),
  })
  .optional();

export type InboundConfig = z.infer<typeof inboundSchema>;
export type InboundRule = z.infer<typeof inboundRuleSchema>;
