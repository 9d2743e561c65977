/**
 * The `outbound` section: which upstreams may receive a token (and under which audience), and who
 * may ask for on-behalf-of tokens under which SpiceDB checks. Every key is documented in
 * docs/outbound.md.
 */
import { z } from 'zod';
import { HEADER_NAME } from '../core/header-name.js';
import { DEFAULT_ON_BEHALF_OF_HEADER } from '../core/identity-headers.js';
import { permissionCheckSpecSchema, SPICEDB_OBJECT_TYPE } from '../rules/permission-check-spec.js';

/** A logical audience name: what goes into `aud` and what routes name in context_extensions. */
const AUDIENCE = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,254}$/;
/** `host` or `host:port` as Envoy's :authority (lower-cased by the parser; default ports dropped). */
const AUTHORITY = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const upstreamSchema = z.strictObject({
  audience: z.string().regex(AUDIENCE, 'audience: letters, digits and . _ : / -').describe('the `aud` of tokens for this upstream'),
  authorities: z
    .array(z.string().regex(AUTHORITY, 'expected host or host:port').transform((a) => a.toLowerCase()))
    .default([])
    .describe(':authority values that are this upstream; requests to them get this audience'),
});

const onBehalfOfSchema = z
  .strictObject({
    header: z
      .string()
      .transform((h) => h.toLowerCase())
      .pipe(z.string().regex(HEADER_NAME, 'an HTTP header name'))
      .default(DEFAULT_ON_BEHALF_OF_HEADER)
      .describe('request header naming the user; always removed before the call leaves the pod'),
    allowedCallers: z
      .array(z.string().min(1))
      .default([])
      .describe('callers (service.name, or the route’s context_extensions.caller) that may use on-behalf-of'),
    userType: z.string().regex(SPICEDB_OBJECT_TYPE, 'a SpiceDB object type').default('user').describe('SpiceDB type of the user'),
    checks: z
      .array(permissionCheckSpecSchema)
      .default([])
      .describe('every check must allow; `{subject}` is the on-behalf-of user, `{subject_type}` is userType'),
    maxUserIdLength: z.int().min(1).max(1024).default(256),
  })
  .refine((o) => o.allowedCallers.length === 0 || o.checks.length > 0, {
    message: 'on-behalf-of needs at least one SpiceDB check when allowedCallers is set',
    path: ['checks'],
  })
  .prefault({});

export const outboundSchema = z
  .strictObject({
    upstreams: z.array(upstreamSchema).default([]).describe('the allow-list: only these upstreams ever get a token'),
    onBehalfOf: onBehalfOfSchema,
  })
  .superRefine((config, ctx) => {
    const audiences = new Set<string>();
    const authorities = new Map<string, string>();
    config.upstreams.forEach((upstream, i) => {
      if (audiences.has(upstream.audience)) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'audience'], message: `audience ${upstream.audience} is listed twice` });
      }
      audiences.add(upstream.audience);
      for (const authority of upstream.authorities) {
        const owner = authorities.get(authority);
        if (owner !== undefined && owner !== upstream.audience) {
          ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'authorities'], message: `${authority} already maps to ${owner}` });
        }
        authorities.set(authority, upstream.audience);
      }
    });
  })
  .optional();

export type OutboundConfig = z.infer<typeof outboundSchema>;
export type OutboundConfigInput = z.input<typeof outboundSchema>;
export type UpstreamConfig = z.infer<typeof upstreamSchema>;
export type OnBehalfOfConfig = z.infer<typeof onBehalfOfSchema>;

/**
 * What the embedded defaults use: the demo's upstreams, and on-behalf-of for the gateway's saga
 * executor where the user holds `create_saga` on the cloud the call's message names (`cloud_id`,
 * read with the descriptors in the defaults' `body` section). Routes name the
 * upstream with `context_extensions.audience`; authorities are empty because the demo's hosts
 * depend on where it runs (list them to route by :authority alone).
 */
export const defaultOutboundConfig: NonNullable<OutboundConfigInput> = {
  upstreams: [
    { audience: 'vmcontroller', authorities: [] },
    { audience: 'gwadmin', authorities: [] },
  ],
  onBehalfOf: {
    allowedCallers: ['gwadmin'],
    checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_saga', subject: 'user:{subject}' }],
  },
};
