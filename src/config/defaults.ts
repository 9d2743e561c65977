/**
 * The embedded development defaults: what `npm start` runs with when no configuration is given.
 * A signing key generated once into ./.jwtauth/, an in-process SpiceDB loaded with the packaged
 * example schema and relationships (examples/), this sidecar trusting its own tokens, rules for the
 * seed scenario, the demo's upstreams and its vmcontroller API descriptors. Typed against the schema's input type, so the compiler
 * keeps it valid. Never for production: `serve` says so loudly.
 */
import { join } from 'node:path';
import { defaultOutboundConfig } from '../outbound/config.js';
import { PACKAGE_ROOT } from '../base/package-root.js';
import { DEFAULT_ADMIN_ADDRESS } from './schema.js';
import type { ConfigInput } from './schema.js';

const DEFAULT_SERVICE_NAME = 'gwadmin';
/**
 * `adminAddress` is where this sidecar serves its JWKS, so the issuer URL and the JWKS it trusts
 * follow `serve --admin-address`: the defaults stay ready on any port.
 */
export function embeddedDefaults(cwd: string, adminAddress: string = DEFAULT_ADMIN_ADDRESS): ConfigInput {
  const SELF = `http://${adminAddress}`;
  return {
    server: { adminAddress },
    service: { name: DEFAULT_SERVICE_NAME },
    tokens: {
      source: { kind: 'mint', issuer: SELF, devKeyFile: join(cwd, '.jwtauth', 'dev-signing-key.json') },
    },
    issuers: [
      {
        // This sidecar's own tokens, verified against its own JWKS endpoint.
        name: 'self',
        issuer: SELF,
        audience: DEFAULT_SERVICE_NAME,
        kind: 'internal',
        subjectType: 'service',
        // On-behalf-of and exchanged tokens carry a user as sub (sub != client_id).
        userSubjectType: 'user',
        jwks: { url: `${SELF}/.well-known/jwks.json` },
        algorithms: ['ES256'],
        typ: 'at+jwt',
      },
    ],
    // The demo's vmcontroller API, so on-behalf-of checks can read the cloud a saga's call names.
    body: { protoFiles: [join(PACKAGE_ROOT, 'examples', 'demo', 'vmcontroller.proto')] },
    inbound: {
      default: 'deny',
      rules: [
        {
          name: 'create-namespace',
          match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } },
          checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }],
        },
        {
          name: 'view-cloud',
          match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}/**' } },
          checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }],
        },
        {
          name: 'spicedb-write-relationships',
          match: { grpc: { service: 'authzed.api.v1.PermissionsService', method: 'WriteRelationships' } },
          checks: [{ resource: 'platform:spicedb', permission: 'write_relationships' }],
        },
      ],
    },
    outbound: defaultOutboundConfig,
  };
}
