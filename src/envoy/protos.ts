/**
 * Loads Envoy's ext_authz v3 service from the protos shipped in @grpc/grpc-js-xds (see
 * protos/README.md). Loading takes ~100 ms, so it happens once per process.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { ProtoGrpcType } from '../generated/external_auth.js';
import spec from '../../protos/envoy-protos.json' with { type: 'json' };

let loaded: ProtoGrpcType | undefined;

export function envoyAuthProto(): ProtoGrpcType {
  if (!loaded) {
    const xdsRoot = dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json'));
    const definition = protoLoader.loadSync(spec.files, {
      keepCase: spec.keepCase,
      longs: String,
      enums: String,
      oneofs: spec.oneofs,
      includeDirs: spec.depsFolders.map((folder) => join(xdsRoot, 'deps', folder)),
    });
    loaded = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return loaded;
}
