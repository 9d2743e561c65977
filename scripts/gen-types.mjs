// Generates TypeScript types for the Envoy protos we use, straight from the copies that ship in
// @grpc/grpc-js-xds (deps/). Output is git-ignored and rebuilt by `npm run build`.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { ENVOY_PROTO_FILES, LOADER_OPTIONS_FLAGS, envoyIncludeDirs } from '../protos/envoy-protos.mjs';

const out = new URL('../src/generated/', import.meta.url).pathname;
if (existsSync(out)) rmSync(out, { recursive: true });
const bin = new URL('../node_modules/.bin/proto-loader-gen-types', import.meta.url).pathname;
const include = envoyIncludeDirs().flatMap((d) => ['--includeDirs', d]);
execFileSync(bin, [...LOADER_OPTIONS_FLAGS, '--grpcLib', '@grpc/grpc-js', ...include, '-O', out, ...ENVOY_PROTO_FILES], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
