// One place that says which Envoy protos we load and how, shared by the runtime loader
// (src/envoy/protos.ts) and the type generator (scripts/gen-types.mjs), so the generated types
// always describe what the loader really produces.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export const ENVOY_PROTO_FILES = ['envoy/service/auth/v3/external_auth.proto'];

/** proto-loader options; the flags below are the same options spelled for proto-loader-gen-types. */
export const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };
export const LOADER_OPTIONS_FLAGS = ['--keepCase', '--longs', 'String', '--enums', 'String', '--oneofs', '--importFileExtension', '.js'];

export function envoyIncludeDirs() {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(root, 'deps', d));
}
