import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli, VERSION } from '../../src/commands/dispatch.js';
import { COMMANDS } from '../../src/commands/index.js';
import { loadConfigFile } from '../../src/config/load.js';
import { jwks, makeSigningKey, nowSeconds, signToken } from '../../dev/jwt-fixtures.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`), env: {} });
  return { code, out, err };
}

describe('jwtauth-sidecar CLI', () => {
  it('prints the package version', async () => {
    expect(await run('--version')).toEqual({ code: 0, out: `${VERSION}\n`, err: '' });
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('has --help on every command', async () => {
    for (const command of COMMANDS) {
      const result = await run(command.name, '--help');
      expect(result.code).toBe(0);
      expect(result.out).toContain(`Usage: jwtauth-sidecar ${command.name}`);
      // Scripts branch on exit codes; each command states its own, and the tests below hold them.
      expect(result.out).toMatch(/\nExit codes: 0 /);
    }
  });

  it('refuses an unknown command or option with exit code 2', async () => {
    expect((await run('frobnicate')).code).toBe(2);
    const bad = await run('validate', '--colour', 'blue');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--colour/);
  });

  it('serve: refuses a --workers count it cannot run, and worker mode on the embedded defaults, before anything starts', async () => {
    for (const count of ['0', '1.5', 'many', '65']) {
      const result = await run('serve', '--workers', count);
      expect(result.code).toBe(2);
      expect(result.err).toContain('--workers: got');
    }
    // Each worker would generate its own signing key and hold its own in-memory SpiceDB.
    const embedded = await run('serve', '--workers', '2');
    expect(embedded.code).toBe(2);
    expect(embedded.err).toContain('needs a configuration file');
  });

  it('validate: exit 0 for a valid file, 1 with every problem for a bad one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-cli-'));
    writeFileSync(join(dir, 'good.yaml'), 'dryRun: true\ninbound: {}\n');
    writeFileSync(join(dir, 'bad.yaml'), 'server: { grpcAddress: nowhere }\nlog: { level: loud }\n');
    const good = await run('validate', '--config', join(dir, 'good.yaml'));
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/valid \(config hash [0-9a-f]{12}\)/);
    const bad = await run('validate', '--config', join(dir, 'bad.yaml'));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/server\.grpcAddress: got "nowhere"/);
    expect(bad.err).toMatch(/log\.level: got "loud"/);
  });

  it('subject-id: encodes a Teleport user id for SpiceDB and decodes it back', async () => {
    const encoded = await run('subject-id', 'cloud-teleport-aleksander.rykalin', 'plain_user');
    expect(encoded.code).toBe(0);
    const [teleport, plain] = encoded.out.trim().split('\n');
    expect(teleport).toMatch(/^[a-zA-Z0-9/_|\-=+]+$/);
    expect(plain).toBe('plain_user');
    const decoded = await run('subject-id', '--decode', teleport ?? '');
    expect(decoded.out.trim()).toBe('cloud-teleport-aleksander.rykalin');
    const undecodable = await run('subject-id', '--decode', 'no spaces allowed');
    expect(undecodable.code).toBe(1);
    expect(undecodable.err).toContain('not a valid encoded subject id');
    expect((await run('subject-id')).code).toBe(2);
  });
});

describe('jwtauth-sidecar keys, token and check', () => {
  const workdir = () => mkdtempSync(join(tmpdir(), 'jwtauth-cli-'));

  it('keys generate writes an owner-only key and never overwrites one', async () => {
    const dir = workdir();
    const out = join(dir, 'k.pem');
    const generated = await run('keys', 'generate', '--out', out, '--algorithm', 'EdDSA');
    expect(generated.code).toBe(0);
    const printed = JSON.parse(generated.out) as { kid: string; publicJwk: { crv: string; d?: string } };
    expect(printed.publicJwk.crv).toBe('Ed25519');
    expect(printed.publicJwk.d).toBeUndefined();
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect((await run('keys', 'generate', '--out', out)).code).toBe(2);
  });

  it('keys rotate adds a key that is published before it signs, keeping the file valid and its comments', async () => {
    const dir = workdir();
    await run('keys', 'generate', '--out', join(dir, 'first.pem'));
    const configFile = join(dir, 'jwtauth.yaml');
    writeFileSync(
      configFile,
      ['# production signing keys', 'service: { name: gwadmin }', 'tokens:', '  source:', '    kind: mint', '    publishBeforeUseSeconds: 600', '    keys:', '      - file: first.pem', 'outbound: { upstreams: [{ audience: vmcontroller }] }', ''].join('\n'),
    );
    const rotated = await run('keys', 'rotate', '--config', configFile);
    expect(rotated.code).toBe(0);
    const text = readFileSync(configFile, 'utf8');
    expect(text).toContain('# production signing keys');
    const { config } = loadConfigFile(configFile);
    const keys = config.tokens?.source.kind === 'mint' ? config.tokens.source.keys : [];
    expect(keys).toHaveLength(2);
    const notBefore = Date.parse(keys[1]?.notBefore ?? '');
    expect(notBefore - Date.now()).toBeGreaterThan(590_000);
    expect(notBefore - Date.now()).toBeLessThan(610_000);
  });

  it('token prints a service token for a listed upstream and refuses any other audience', async () => {
    const dir = workdir();
    await run('keys', 'generate', '--out', join(dir, 'k.pem'));
    const configFile = join(dir, 'jwtauth.yaml');
    writeFileSync(
      configFile,
      stringify({
        service: { name: 'gwadmin' },
        tokens: { source: { kind: 'mint', issuer: 'https://gw.test', keys: [{ file: 'k.pem' }] } },
        outbound: { upstreams: [{ audience: 'vmcontroller' }] },
      }),
    );
    const issued = await run('token', '--config', configFile, '--audience', 'vmcontroller');
    expect(issued.code).toBe(0);
    const publicKey = createPublicKey(createPrivateKey(readFileSync(join(dir, 'k.pem'))));
    const { payload, protectedHeader } = await jwtVerify(issued.out.trim(), publicKey, { issuer: 'https://gw.test', audience: 'vmcontroller' });
    expect(payload.sub).toBe('gwadmin');
    expect(protectedHeader.typ).toBe('at+jwt');
    const refused = await run('token', '--config', configFile, '--audience', 'billing');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain('unknown_upstream');
    expect(refused.out).toBe('');
  });

  it('check explains an allow and a denial: rule, token, SpiceDB checks, decision', async () => {
    const dir = workdir();
    const key = await makeSigningKey('ES256', 'cli-1');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(key)));
    writeFileSync(join(dir, 'relationships.txt'), 'cloud:cl0#admin@user:alice\n');
    const configFile = join(dir, 'jwtauth.yaml');
    writeFileSync(
      configFile,
      stringify({
        issuers: [{ name: 'mesh', issuer: 'https://mesh.test', audience: 'gwadmin', kind: 'internal', jwks: { file: 'jwks.json' }, algorithms: ['ES256'] }],
        spicedb: { embedded: { relationshipsFile: join(dir, 'relationships.txt') } },
        inbound: {
          rules: [
            { name: 'create-namespace', match: { http: { methods: ['POST'], path: '/v1/clouds/{cloud}/namespaces' } }, checks: [{ resource: 'cloud:{path.cloud}', permission: 'create_namespace' }] },
          ],
        },
      }),
    );
    const tokenFor = (sub: string) => signToken(key, { iss: 'https://mesh.test', aud: 'gwadmin', sub, iat: nowSeconds(), exp: nowSeconds() + 300 });
    const allowed = await run('check', '--config', configFile, '--method', 'POST', '--path', '/v1/clouds/cl0/namespaces', '--token', await tokenFor('alice'));
    expect(allowed.code).toBe(0);
    expect(allowed.out).toMatch(/rule:\s+create-namespace/);
    expect(allowed.out).toMatch(/cloud:cl0#create_namespace@user:alice -> allowed/);
    expect(allowed.out).toMatch(/decision:\s+ALLOW allowed/);
    const denied = await run('check', '--config', configFile, '--method', 'POST', '--path', '/v1/clouds/cl0/namespaces', '--token', await tokenFor('bob'));
    expect(denied.code).toBe(1);
    expect(denied.out).toMatch(/cloud:cl0#create_namespace@user:bob -> denied/);
    expect(denied.out).toMatch(/decision:\s+DENY 403 permission_denied/);
  }, 30_000);

  it('check takes a gRPC message as JSON (or a raw body) and shows the fields the rule read', async () => {
    const dir = workdir();
    const key = await makeSigningKey('ES256', 'cli-2');
    writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(key)));
    writeFileSync(join(dir, 'relationships.txt'), 'cloud:cl0#admin@user:alice\n');
    const configFile = join(dir, 'jwtauth.yaml');
    const proto = new URL('../../examples/demo/vmcontroller.proto', import.meta.url).pathname;
    writeFileSync(
      configFile,
      stringify({
        issuers: [{ name: 'mesh', issuer: 'https://mesh.test', audience: 'vmcontroller', kind: 'internal', jwks: { file: 'jwks.json' }, algorithms: ['ES256'] }],
        spicedb: { embedded: { relationshipsFile: join(dir, 'relationships.txt') } },
        body: { protoFiles: [proto] },
        inbound: {
          rules: [
            { name: 'create-namespace', match: { grpc: { service: 'demo.vmcontroller.v1.VmController', method: 'CreateNamespace' } }, checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }] },
            { name: 'create-namespace-http', match: { http: { methods: ['POST'], path: '/v1/namespaces' } }, checks: [{ resource: 'cloud:{body.cloud_id}', permission: 'create_namespace' }] },
          ],
        },
      }),
    );
    const token = await signToken(key, { iss: 'https://mesh.test', aud: 'vmcontroller', sub: 'alice', iat: nowSeconds(), exp: nowSeconds() + 300 });
    const grpc = ['check', '--config', configFile, '--grpc', 'demo.vmcontroller.v1.VmController/CreateNamespace', '--token', token];
    const allowed = await run(...grpc, '--message', '{"cloud_id":"cl0","namespace_id":"ns1"}');
    expect(allowed.out).toMatch(/message:\s+cloud_id="cl0"/);
    expect(allowed.out).toMatch(/cloud:cl0#create_namespace@user:alice -> allowed/);
    expect(allowed.code).toBe(0);
    const denied = await run(...grpc, '--message', '{"cloud_id":"cl1"}', '--header', 'x-cloud-id: cl0');
    expect(denied.out).toMatch(/message:\s+cloud_id="cl1"/);
    expect(denied.out).toMatch(/decision:\s+DENY 403 permission_denied/);
    expect(denied.code).toBe(1);
    const missing = await run(...grpc, '--message', '{"namespace_id":"ns1"}');
    expect(missing.out).toMatch(/decision:\s+DENY 400 body_field_missing/);
    expect((await run(...grpc, '--message', '{"cloud_id":7}')).code).toBe(2);
    // proto3's JSON mapping, as grpcurl prints a message: the JSON name reads like the field name.
    const camel = await run(...grpc, '--message', '{"cloudId":"cl0","namespaceId":"ns1"}');
    expect(camel.out).toMatch(/message:\s+cloud_id="cl0"/);
    expect(camel.code).toBe(0);
    // A name that is neither is refused, not dropped (dropped, the call explained is not the one sent).
    const unknown = await run(...grpc, '--message', '{"cloud_id":"cl0","cloudid":"cl1"}');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/--message: demo\.vmcontroller\.v1\.\w+ has no field "cloudid"/);
    const twice = await run(...grpc, '--message', '{"cloud_id":"cl0","cloudId":"cl1"}');
    expect(twice.code).toBe(2);
    expect(twice.err).toMatch(/field cloud_id is given twice/);
    const http = await run('check', '--config', configFile, '--method', 'POST', '--path', '/v1/namespaces', '--token', token, '--header', 'content-type: application/json', '--body', '{"cloud_id":"cl0"}');
    expect(http.out).toMatch(/decision:\s+ALLOW allowed/);
  }, 30_000);
});
