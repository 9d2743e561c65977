/**
 * Guarantee: `validate` refuses exactly what start-up refuses. For each bad configuration, the
 * built CLI's `validate` and `serve` (and `check`) print the same problems, `validate` and `serve`
 * exit 1 and `check` exits 2 (what each command's --help states), and `serve` ends within 10 s:
 * it never hangs, and never opens a listener for a configuration it refuses.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { jwks, makeSigningKey } from '../../dev/jwt-fixtures.js';

const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
const SERVE_EXITS_WITHIN_MS = 10_000;

interface Outcome {
  readonly code: number | null;
  readonly stderr: string;
  readonly ms: number;
}

function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    // Far past the bound the test asserts: a hang shows as a failed assertion, not a stuck suite.
    const killer = setTimeout(() => child.kill('SIGKILL'), SERVE_EXITS_WITHIN_MS * 2);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, ms: Date.now() - started });
    });
  });
}

/** The `  - problem` lines of a ConfigError, in order. */
function problemLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.startsWith('  - '));
}

let dir: string;

/** Valid on its own: one issuer from a JWKS file, one rule checked against the packaged schema. */
function baseConfig(): Record<string, unknown> {
  return {
    issuers: [{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { file: 'jwks.json' } }],
    inbound: {
      rules: [
        {
          name: 'view-cloud',
          match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}' } },
          checks: [{ resource: 'cloud:{path.cloud}', permission: 'view' }],
        },
      ],
    },
  };
}

function withRule(check: Record<string, unknown>): Record<string, unknown> {
  const config = baseConfig();
  config.inbound = { rules: [{ name: 'view-cloud', match: { http: { methods: ['GET'], path: '/v1/clouds/{cloud}' } }, checks: [check] }] };
  return config;
}

interface Case {
  readonly name: string;
  /** The file's text, or a config object written as YAML. */
  readonly config: string | Record<string, unknown>;
  readonly env?: NodeJS.ProcessEnv;
  /** Each must match some problem line. */
  readonly problems: readonly RegExp[];
}

const CASES: readonly Case[] = [
  { name: 'an empty file', config: '', problems: [/expected an inbound or an outbound section/] },
  {
    name: 'a template naming a path parameter the rule does not have',
    config: withRule({ resource: 'cloud:{path.proj}', permission: 'view' }),
    problems: [/view-cloud.*\{path\.proj\} is not a parameter of this rule's path/],
  },
  {
    name: 'a permission the schema does not have',
    config: withRule({ resource: 'cloud:{path.cloud}', permission: 'veiw' }),
    problems: [/inbound\.rules\[0\].*checks\[0\].*"veiw".*view-cloud|view-cloud.*"veiw"/, /did you mean "view"/],
  },
  {
    name: 'an object type the schema does not have',
    config: withRule({ resource: 'projekt:{path.cloud}', permission: 'view' }),
    problems: [/"projekt"/],
  },
  {
    name: 'a missing embedded schema file',
    config: { ...baseConfig(), spicedb: { embedded: { schemaFile: 'missing.zed' } } },
    problems: [/spicedb\.embedded\.schemaFile: cannot read .*missing\.zed: ENOENT/],
  },
  {
    name: 'a schema that does not parse',
    config: { ...baseConfig(), spicedb: { embedded: { schemaFile: 'broken.zed' } } },
    problems: [/spicedb\.embedded\.schemaFile: .*broken\.zed.*line 3/],
  },
  {
    name: 'a relationships file with a bad line',
    config: { ...baseConfig(), spicedb: { embedded: { relationshipsFile: 'bad-relationships.txt' } } },
    problems: [/spicedb\.embedded\.relationshipsFile: .*bad-relationships\.txt/],
  },
  {
    name: 'a missing JWKS file',
    config: { ...baseConfig(), issuers: [{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { file: 'nope.json' } }] },
    problems: [/issuers\[0\] \(corp\)\.jwks\.file: cannot read .*nope\.json: ENOENT/],
  },
  {
    name: 'a SpiceDB preshared key from an unset variable',
    config: { ...baseConfig(), spicedb: { endpoint: '127.0.0.1:1', tls: false, presharedKey: { env: 'JWTAUTH_TEST_UNSET_KEY' } } },
    problems: [/spicedb\.presharedKey: environment variable JWTAUTH_TEST_UNSET_KEY is not set/],
  },
  {
    name: 'a missing signing key',
    config: {
      ...baseConfig(),
      service: { name: 'gw' },
      tokens: { source: { kind: 'mint', issuer: 'https://gw.test', keys: [{ file: 'absent.pem' }] } },
      outbound: { upstreams: [{ audience: 'vmcontroller' }] },
    },
    problems: [/tokens\.source\.keys\[0\]\.file: .*absent\.pem/],
  },
];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'jwtauth-refusals-'));
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(jwks(await makeSigningKey())));
  writeFileSync(join(dir, 'broken.zed'), 'definition user {\n  relation x:\n}\n');
  writeFileSync(join(dir, 'bad-relationships.txt'), 'cloud:cl0#admin@user:alice\nthis is not a relationship\n');
});

describe('validate, serve and check refuse the same configurations the same way', () => {
  it('accepts the base configuration, so each refusal below is for its one change', async () => {
    const file = join(dir, 'base.yaml');
    writeFileSync(file, stringify(baseConfig()));
    const validated = await runCli(['validate', '--config', file]);
    expect(validated.stderr).toBe('');
    expect(validated.code).toBe(0);
  });

  it.each(CASES)('$name', async ({ name, config, env, problems }) => {
    const file = join(dir, `${name.replace(/\W+/g, '-')}.yaml`);
    writeFileSync(file, typeof config === 'string' ? config : stringify(config));
    const [validated, served, checked] = await Promise.all([
      runCli(['validate', '--config', file], env),
      runCli(['serve', '--config', file, '--grpc-address', '127.0.0.1:0', '--admin-address', '127.0.0.1:0'], env),
      runCli(['check', '--config', file, '--path', '/v1/clouds/cl0'], env),
    ]);
    const expected = problemLines(validated.stderr);
    for (const pattern of problems) expect(expected).toContainEqual(expect.stringMatching(pattern));
    expect(validated.code).toBe(1);
    expect(served.code).toBe(1);
    expect(served.ms).toBeLessThan(SERVE_EXITS_WITHIN_MS);
    expect(problemLines(served.stderr)).toEqual(expected);
    expect(checked.code).toBe(2);
    expect(problemLines(checked.stderr)).toEqual(expected);
  });
});
