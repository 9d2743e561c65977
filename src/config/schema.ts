/**
 * The configuration file's shape. Each section's schema lives beside the code that uses it; this
 * module only composes them. Every key is documented in docs/configuration.md.
 */
import { z } from 'zod';
import { bodySchema } from '../body/config.js';
import { issuersSchema } from '../identity/config.js';
import { inboundSchema } from '../inbound/config.js';
import { outboundSchema } from '../outbound/config.js';
import { spicedbSchema } from '../spicedb/config.js';
import { tokensSchema } from '../tokens/config.js';
import { tracingSchema } from '../observability/tracing-config.js';
import { listenerLimitsShape } from '../envoy/listener-limits.js';
import { CALL_STATE_BYTES } from '../envoy/listener-memory.js';

/** `host:port`, with an IPv4/IPv6 literal or a name. Port 0 asks the OS for a free port (tests). */
export const listenAddressSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: 'expected host:port, e.g. 127.0.0.1:9191', abort: true })
  .refine((value) => Number(value.slice(value.lastIndexOf(':') + 1)) <= 65535, 'expected a port in 0-65535');

export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:9190';

/**
 * A listener whose checks all have one direction, for control planes that cannot set
 * `context_extensions` per route (Istio's CUSTOM provider; Envoy Gateway before v1.7).
 */
const directionalListenerSchema = z.strictObject({
  address: listenAddressSchema.describe('ext_authz + grpc.health.v1 listener for checks of one direction'),
  direction: z.enum(['inbound', 'outbound']).describe('the direction of every check on this listener; a route that names another one is denied'),
});

const serverSchema = z
  .strictObject({
    grpcAddress: listenAddressSchema.default('127.0.0.1:9191').describe('ext_authz + grpc.health.v1 listener; direction from context_extensions'),
    listeners: z.array(directionalListenerSchema).max(8).optional().describe('more ext_authz listeners, each serving one direction'),
    adminAddress: listenAddressSchema.default(DEFAULT_ADMIN_ADDRESS).describe('/healthz, /readyz, /metrics, JWKS'),
    drainSeconds: z.number().min(0).max(300).default(5).describe('NOT_SERVING period before exit on SIGTERM'),
    workers: z
      .int()
      .min(1)
      .max(64)
      .default(1)
      .describe('processes serving the gRPC listeners (one core each); above 1 a primary process runs the admin listener for them. Read at start'),
  })
  .superRefine((server, ctx) => {
    // Two listeners on one port would fail at start-up with EADDRINUSE; say which keys collide
    // instead. Port 0 (the OS picks) never collides.
    const owners = new Map<string, string>();
    const claim = (address: string, path: (string | number)[]): void => {
      const port = address.slice(address.lastIndexOf(':') + 1);
      if (Number(port) === 0) return;
      const owner = owners.get(port);
      if (owner === undefined) owners.set(port, ['server', ...path].join('.'));
      else ctx.addIssue({ code: 'custom', path, message: `expected a port no other listener uses; ${owner} has port ${port}` });
    };
    claim(server.grpcAddress, ['grpcAddress']);
    claim(server.adminAddress, ['adminAddress']);
    server.listeners?.forEach((listener, index) => claim(listener.address, ['listeners', index, 'address']));
  })
  .prefault({});

const limitsSchema = z
  .strictObject({
    maxHeaderBytes: z.int().min(1024).max(1 << 20).default(65536),
    maxTokenBytes: z.int().min(256).max(1 << 16).default(8192),
    verifiedTokenCacheEntries: z.int().min(1).max(10_000_000).default(10_000).describe('verified tokens kept (by hash) until exp'),
    jwksFetchTimeoutMs: z.int().min(100).max(60_000).default(5000).describe('deadline for one JWKS fetch'),
    // The gRPC listeners' limits live beside the listener (envoy/listener-limits.ts).
    ...listenerLimitsShape,
  })
  .superRefine((limits, ctx) => {
    // Otherwise a message of the largest size could never be received.
    if (limits.maxRequestMemoryBytes < limits.maxMessageBytes + CALL_STATE_BYTES) {
      ctx.addIssue({ code: 'custom', path: ['maxRequestMemoryBytes'], message: `expected at least limits.maxMessageBytes + ${CALL_STATE_BYTES} (one call with a message of the largest size)` });
    }
  })
  .prefault({});

const logSchema = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
    allowSampleRate: z.number().min(0).max(1).default(1).describe('fraction of allow decisions logged; denies always are'),
  })
  .prefault({});

const reloadSchema = z
  .strictObject({
    allowSectionRemoval: z
      .boolean()
      .default(false)
      .describe('let a reload drop a serving inbound or outbound section; otherwise such a reload is refused'),
  })
  .prefault({});

const serviceIdentitySchema = z
  .strictObject({
    name: z.string().min(1).describe("this pod's service name: the `sub` of its service tokens"),
    subjectType: z.string().default('service'),
  })
  .describe("this pod's service identity");

export const configSchema = z
  .strictObject({
    server: serverSchema,
    limits: limitsSchema,
    log: logSchema,
    dryRun: z.boolean().default(false).describe('decide, log and count, but always tell Envoy to allow'),
    reload: reloadSchema,
    body: bodySchema,
    service: serviceIdentitySchema.optional(),
    issuers: issuersSchema,
    spicedb: spicedbSchema,
    tokens: tokensSchema,
    inbound: inboundSchema,
    outbound: outboundSchema,
    tracing: tracingSchema,
  })
  .superRefine((config, ctx) => {
    // An empty file, or one cut short before either section, would decide nothing: every Check
    // would be denied unknown_direction. Refused here, so start-up and reload both refuse it.
    if (!config.inbound && !config.outbound) {
      ctx.addIssue({ code: 'custom', path: [], message: 'expected an inbound or an outbound section (an empty or incomplete file configures neither)' });
    }
    // A listener for a direction this file does not configure would deny every Check it gets.
    config.server.listeners?.forEach((listener, index) => {
      if (config[listener.direction] === undefined) {
        ctx.addIssue({ code: 'custom', path: ['server', 'listeners', index, 'direction'], message: `expected a direction this file configures: there is no ${listener.direction} section` });
      }
    });
    // A service token's subject must be stated, never defaulted: it is this pod's identity.
    if ((config.tokens || config.outbound) && !config.service) {
      ctx.addIssue({ code: 'custom', path: ['service'], message: 'expected service.name: tokens and outbound need this pod’s identity' });
    }
    // The inbound section cannot see the issuer list, so a typo there would silently deny a route.
    const issuerNames = new Set(config.issuers.map((issuer) => issuer.name));
    config.inbound?.rules.forEach((rule, index) => {
      rule.issuers?.forEach((name, at) => {
        if (!issuerNames.has(name)) {
          ctx.addIssue({ code: 'custom', path: ['inbound', 'rules', index, 'issuers', at], message: `expected the name of an entry in issuers (${[...issuerNames].join(', ') || 'none configured'})` });
        }
      });
    });
    if (config.outbound && !config.tokens) {
      ctx.addIssue({ code: 'custom', path: ['tokens'], message: 'expected a tokens section: outbound needs a token source' });
    }
    // On-behalf-of tokens are minted here: a token service has no user token to exchange for them,
    // so every on-behalf-of call would otherwise fail at run time.
    if (config.outbound?.onBehalfOf.allowedCallers.length && config.tokens?.source.kind === 'exchange') {
      ctx.addIssue({
        code: 'custom',
        path: ['outbound', 'onBehalfOf', 'allowedCallers'],
        message: 'expected no allowedCallers with tokens.source.kind: exchange; on-behalf-of tokens need tokens.source.kind: mint',
      });
    }
  });

export type Config = z.infer<typeof configSchema>;

/** This pod's service identity. Validation guarantees it wherever tokens or outbound are configured. */
export function serviceIdentityOf(config: Config): NonNullable<Config['service']> {
  if (!config.service) throw new Error('service.name is not configured');
  return config.service;
}
export type ConfigInput = z.input<typeof configSchema>;
