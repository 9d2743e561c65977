/**
 * The `spicedb` section: where permission checks go, how long each may take, how many may be in
 * flight, and how long decisions are cached. Without an endpoint the sidecar runs SpiceDB itself,
 * in-process, from a schema and relationships file (development and small static models).
 */
import { z } from 'zod';
import { secretRefSchema } from '../base/secret.js';

export const spicedbSchema = z
  .strictObject({
    endpoint: z
      .string()
      .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected host:port')
      .optional()
      .describe('SpiceDB gRPC address; omit to run the embedded SpiceDB'),
    tls: z
      .union([z.boolean(), z.strictObject({ caFile: z.string().min(1).describe('PEM CA bundle; relative to the config file') })])
      .default(true)
      .describe('true: TLS with system roots; { caFile }: TLS with this CA; false: plaintext'),
    presharedKey: secretRefSchema.optional().describe('SpiceDB preshared key; required with endpoint'),
    deadlineMs: z.int().min(10).max(30_000).default(300).describe('budget for one check, the retry on UNAVAILABLE included'),
    maxInflight: z.int().min(1).max(100_000).default(256).describe('checks waiting for SpiceDB; beyond it checks fail fast with 503'),
    batch: z
      .strictObject({
        maxConcurrentCalls: z
          .int()
          .min(1)
          .max(1024)
          .default(4)
          .describe('CheckBulkPermissions calls in flight; checks arriving while all are busy leave together in the next one'),
        maxItems: z.int().min(1).max(1000).default(100).describe('checks in one CheckBulkPermissions call'),
      })
      .prefault({}),
    decisionCache: z
      .strictObject({
        freshness: z
          .enum(['watch', 'ttl'])
          .default('watch')
          .describe('watch: SpiceDB Watch evicts what a change could affect, and answers live for watchTtlMs; ttl: answers live for ttlMs'),
        ttlMs: z
          .int()
          .min(0)
          .max(60_000)
          .default(3000)
          .describe('lifetime in ttl mode, and in watch mode while the Watch is not live; 0 disables caching'),
        watchTtlMs: z.int().min(1000).max(3_600_000).default(60_000).describe('lifetime while the Watch is live'),
        quantizationWindowMs: z
          .int()
          .min(0)
          .max(600_000)
          .default(5500)
          .describe("how old SpiceDB's minimize_latency snapshots can be (its quantization interval plus max staleness): for this long after a change, misses ask at_least_as_fresh it"),
        requireWatch: z.boolean().default(false).describe('watch mode: not ready while the Watch is not live'),
        maxEntries: z.int().min(1).max(10_000_000).default(50_000),
      })
      .prefault({}),
    embedded: z
      .strictObject({
        schemaFile: z.string().min(1).optional().describe('default: the packaged examples/schema.zed'),
        relationshipsFile: z.string().min(1).optional().describe('default: the packaged examples/relationships.txt'),
      })
      .prefault({}),
  })
  .superRefine((value, ctx) => {
    if (value.endpoint !== undefined && value.presharedKey === undefined) {
      ctx.addIssue({ code: 'custom', path: ['presharedKey'], message: 'presharedKey is required when endpoint is set' });
    }
  })
  .prefault({});

export type SpicedbConfig = z.infer<typeof spicedbSchema>;
