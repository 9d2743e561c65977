import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { problemsOf } from '../support/config-problems.js';
import { resolveConfig } from '../../src/config/resolve.js';
import { loadConfigFile, parseConfigText } from '../../src/config/load.js';


describe('configuration loading', () => {
  it('applies defaults to a file that names only its section', () => {
    const { config } = parseConfigText('inbound: {}', 'test.yaml', '/tmp');
    expect(config.server).toEqual({ grpcAddress: '127.0.0.1:9191', adminAddress: '127.0.0.1:9190', drainSeconds: 5, workers: 1 });
    expect(config.dryRun).toBe(false);
    expect(config.limits.maxTokenBytes).toBe(8192);
  });

  it('lists every problem at once, each with key path, bad value and expectation', () => {
    const problems = problemsOf(
      [
        'server:',
        '  grpcAddress: "localhost"',
        '  drainSeconds: -1',
        'log:',
        '  level: loud',
        'limits:',
        '  maxTokenBytes: "big"',
        'colour: blue',
      ].join('\n'),
    );
    expect(problems).toHaveLength(5);
    expect(problems).toContainEqual(expect.stringMatching(/^server\.grpcAddress: got "localhost"; expected host:port/));
    expect(problems).toContainEqual(expect.stringMatching(/^server\.drainSeconds: got -1; too small: expected number to be >=0$/));
    expect(problems).toContainEqual(expect.stringMatching(/^log\.level: got "loud"; invalid option: expected one of .*"info"/));
    expect(problems).toContainEqual(expect.stringMatching(/^limits\.maxTokenBytes: got "big"; invalid input: expected number, received string$/));
    expect(problems).toContainEqual('colour: unknown key; check its spelling and nesting');
  });

  it('says what a URL field wants, not what zod found wrong ("expected invalid URL" read as nonsense)', () => {
    const problems = problemsOf(
      [
        'issuers:',
        '  - { name: corp, issuer: "https://login.corp.example", audience: gwadmin, kind: external, subjectType: user, jwks: { discovery: "login.corp.example" } }',
        '  - { name: mesh, issuer: "https://mesh", audience: gwadmin, kind: internal, subjectType: service, jwks: { url: "mesh/jwks" } }',
        'inbound: { default: deny, rules: [] }',
      ].join('\n'),
    );
    expect(problems).toContain('issuers[0].jwks.discovery: got "login.corp.example"; expected true, or the http(s) URL of the discovery document');
    expect(problems).toContainEqual(expect.stringMatching(/^issuers\[1\]\.jwks(\.url)?: got .*expected a valid URL/));
    expect(problems.join('\n')).not.toMatch(/expected invalid/i);
  });

  it('reports YAML syntax errors with line numbers, and duplicate keys', () => {
    const problems = problemsOf('server:\n  grpcAddress: 127.0.0.1:1\n  grpcAddress: 127.0.0.1:2\nlog: [unclosed\n');
    expect(problems.length).toBeGreaterThanOrEqual(2);
    expect(problems.join('\n')).toMatch(/DUPLICATE_KEY at line 3/);
    expect(problems.every((p) => /^YAML \w+ at line \d+, column \d+: /.test(p))).toBe(true);
  });

  it('refuses an empty file, and one cut short before either section, instead of denying every Check', () => {
    const neither = /^\(top level\): .*expected an inbound or an outbound section/;
    expect(problemsOf('')).toEqual([expect.stringMatching(neither)]);
    expect(problemsOf('# only a comment\n')).toEqual([expect.stringMatching(neither)]);
    expect(problemsOf('server:\n  drainSeconds: 1\n')).toEqual([expect.stringMatching(neither)]);
    expect(parseConfigText('outbound: {}\nservice: { name: gw }\ntokens: { source: { kind: mint } }', 'test.yaml', '/tmp').config.outbound).toBeDefined();
  });

  it('rejects a port out of range', () => {
    expect(problemsOf('inbound: {}\nserver: { adminAddress: "127.0.0.1:70000" }')).toEqual([expect.stringMatching(/^server\.adminAddress: .*0-65535/)]);
  });

  it('names the file when it cannot be read, and resolves relative paths against its directory', () => {
    expect(() => loadConfigFile('/nonexistent/jwtauth.yaml')).toThrow(/\/nonexistent\/jwtauth\.yaml[\s\S]*ENOENT/);
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-cfg-'));
    writeFileSync(join(dir, 'c.yaml'), 'dryRun: true\ninbound: {}\n');
    const loaded = loadConfigFile(join(dir, 'c.yaml'));
    expect(loaded.baseDir).toBe(dir);
    expect(loaded.config.dryRun).toBe(true);
  });

  it('gives equal configurations the same hash and different ones different hashes', () => {
    const a = parseConfigText('dryRun: true\ninbound: {}', 'a', '/');
    const b = parseConfigText('{ dryRun: true, inbound: {} }', 'b', '/');
    const c = parseConfigText('dryRun: false\ninbound: {}', 'c', '/');
    expect(a.hash).toBe(b.hash);
    expect(a.hash).not.toBe(c.hash);
  });
});

describe('cross-section validation', () => {
  it('requires this pod’s service identity and a token source wherever tokens go out', () => {
    const problems = problemsOf('outbound: { upstreams: [{ audience: vmcontroller }] }');
    expect(problems).toContainEqual(expect.stringMatching(/^service: .*service\.name/));
    expect(problems).toContainEqual(expect.stringMatching(/^tokens: .*token source/));
  });

  it('refuses on-behalf-of with a token service as the source, which cannot issue those tokens', () => {
    const exchange = 'tokens: { source: { kind: exchange, tokenEndpoint: "https://ts", clientCertFile: c.pem, clientKey: { file: k.pem }, caFile: ca.pem } }';
    const onBehalfOf = 'onBehalfOf: { allowedCallers: [saga-runner], checks: [{ resource: "cloud:{header.x-cloud-id}", permission: create_saga }] }';
    const problems = problemsOf(['service: { name: gwadmin }', exchange, `outbound: { upstreams: [{ audience: vmcontroller }], ${onBehalfOf} }`].join('\n'));
    expect(problems).toEqual([expect.stringMatching(/^outbound\.onBehalfOf\.allowedCallers: .*tokens\.source\.kind: mint/)]);
    // The same token service without on-behalf-of is a valid configuration.
    expect(() => parseConfigText(['service: { name: gwadmin }', exchange, 'outbound: { upstreams: [{ audience: vmcontroller }] }'].join('\n'), 'test.yaml', '/tmp')).not.toThrow();
  });

  it('refuses an inbound rule naming an issuer that is not configured', () => {
    const problems = problemsOf(
      [
        'issuers: [{ name: auth, issuer: "https://auth", audience: gw, kind: external, jwks: { file: k.json } }]',
        'inbound:',
        '  rules:',
        '    - { name: r, match: { http: { path: /x } }, auth: token, issuers: [auth, atuh] }',
      ].join('\n'),
    );
    expect(problems).toEqual([expect.stringMatching(/^inbound\.rules\[0\]\.issuers\[1\]: got "atuh"; expected the name of an entry in issuers \(auth\)$/)]);
  });
});

describe('embedded defaults', () => {
  it('follow --admin-address: the sidecar trusts the JWKS it serves there, so it becomes ready on any port', () => {
    const { config } = resolveConfig(undefined, {}, { cwd: '/tmp', adminAddress: '127.0.0.1:20290' });
    expect(config.server.adminAddress).toBe('127.0.0.1:20290');
    const self = config.issuers.find((issuer) => issuer.name === 'self');
    expect(self?.jwks).toMatchObject({ url: 'http://127.0.0.1:20290/.well-known/jwks.json' });
    expect(self?.issuer).toBe('http://127.0.0.1:20290');
    expect(config.tokens?.source).toMatchObject({ kind: 'mint', issuer: 'http://127.0.0.1:20290' });
  });
});

describe('directional listeners', () => {
  it('refuses a listener for a direction the file does not configure', () => {
    const problems = problemsOf('inbound: {}\nserver:\n  listeners: [{ address: "127.0.0.1:9193", direction: outbound }]\n');
    expect(problems).toEqual([expect.stringMatching(/^server\.listeners\[0\]\.direction: .*there is no outbound section/)]);
  });
});
