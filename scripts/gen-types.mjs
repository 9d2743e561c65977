// Generates TypeScript types for the Envoy protos we use, straight from the copies that ship in
// @grpc/grpc-js-xds (deps/). Output is git-ignored and rebuilt by `npm run build`.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { URL } from 'node:url';

const spec = JSON.parse(readFileSync(new URL('../protos/envoy-protos.json', import.meta.url), 'utf8'));
const xdsRoot = dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json'));
const out = new URL('../src/generated/', import.meta.url).pathname;
if (existsSync(out)) rmSync(out, { recursive: true });
const flags = [
  ...(spec.keepCase ? ['--keepCase'] : []),
  '--longs', spec.longs, '--enums', spec.enums,
  ...(spec.oneofs ? ['--oneofs'] : []),
  '--importFileExtension', '.js', '--grpcLib', '@grpc/grpc-js',
  ...spec.depsFolders.flatMap((d) => ['--includeDirs', join(xdsRoot, 'deps', d)]),
];
execFileSync(new URL('../node_modules/.bin/proto-loader-gen-types', import.meta.url).pathname, [...flags, '-O', out, ...spec.files], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
