import { describe, expect, it } from 'vitest';
import { problemsOf } from '../support/config-problems.js';
import { parseConfigText } from '../../src/config/load.js';


function rule(...lines: string[]): string {
  return ['inbound:', '  rules:', '    - name: view-cloud', ...lines.map((line) => `      ${line}`)].join('\n');
}

describe('unquoted templates', () => {
  it('in a flow collection: one problem naming the line, showing it, and quoting the value', () => {
    const problems = problemsOf(rule('match: { http: { path: "/v1/clouds/{cloud}" } }', 'checks: [{ resource: cloud:{path.cloud}, permission: view }]'));
    expect(problems).toEqual([
      'YAML BLOCK_IN_FLOW at line 5, column 28: line 5 reads `checks: [{ resource: cloud:{path.cloud}, permission: view }]`; ' +
        '{ } outside quotes are YAML syntax, so quote the value: resource: "cloud:{path.cloud}"',
    ]);
  });

  it('folds the several errors YAML reports for one line into one problem, quoting every template on it', () => {
    const problems = problemsOf(rule('match: { http: { methods: [POST], path: /v1/clouds/{cloud}/sagas } }', 'checks: [{ resource: "cloud:{path.cloud}", permission: create_saga }]'));
    expect(problems).toEqual([
      expect.stringMatching(/^YAML UNEXPECTED_TOKEN at line 4, column \d+: line 4 reads `match: \{ http: .*`; .*quote the value: path: "\/v1\/clouds\/\{cloud\}\/sagas"$/),
      // YAML ends the document at the broken line and reports every later token: one problem, not one per word.
      'YAML UNEXPECTED_TOKEN at line 5, column 7: YAML could not read line 5 as part of the configuration: the problem above ended the document early; fix it first',
    ]);

    const later = problemsOf(rule('match: { http: { path: /v1/clouds/{cloud}/sagas } }', 'auth: token', 'checks: [{ resource: cloud:{path.cloud}, permission: view }]', 'dryRun: true'));
    expect(later).toEqual([
      expect.stringMatching(/^YAML \w+ at line 4, .*quote the value: path: "\/v1\/clouds\/\{cloud\}\/sagas"$/),
      expect.stringMatching(/^YAML \w+ at line 5, .*could not read line 5 as part/),
      expect.stringMatching(/^YAML \w+ at line 6, .*quote the value: resource: "cloud:\{path\.cloud\}"$/),
      expect.stringMatching(/^YAML \w+ at line 7, .*could not read line 7 as part/),
    ]);

    const two = problemsOf(rule('match: { http: { path: "/v1/{ns}" } }', 'checks: [{ resource: namespace:{path.ns}, permission: view, subject: user:{claim.email|id} }]'));
    expect(two).toEqual([expect.stringMatching(/quote the values: resource: "namespace:\{path\.ns\}", subject: "user:\{claim\.email\|id\}"$/)]);
  });

  it('in block style: the mapping YAML made of it is explained where validation expected text', () => {
    const problems = problemsOf(rule('match: { http: { path: "/v1/clouds/{cloud}" } }', 'checks:', '  - resource: {path.cloud}', '    permission: view'));
    expect(problems).toEqual([
      'inbound.rules[0].checks[0].resource: got a mapping where text was expected: line 6 reads `- resource: {path.cloud}`; ' +
        'YAML read the unquoted { } as a mapping, so quote the value: resource: "{path.cloud}"',
    ]);
  });

  it('in block style inside a map of strings and a union branch', () => {
    const problems = problemsOf(
      rule(
        'match:',
        '  http: { path: "/v1/{ns}" }',
        '  headers:',
        '    x-tenant: {claim.tenant}',
        'checks:',
        '  - resource: "namespace:{path.ns}"',
        '    permission: view',
        '    consistency:',
        '      atLeastAsFresh: {header.x-zedtoken}',
      ),
    );
    expect(problems).toContainEqual(expect.stringMatching(/^inbound\.rules\[0\]\.match\.headers\.x-tenant: .*line 7 .*quote the value: x-tenant: "\{claim\.tenant\}"$/));
    expect(problems).toContainEqual(expect.stringMatching(/^ {2}inbound\.rules\[0\]\.checks\[0\]\.consistency\.atLeastAsFresh: .*line 12 .*quote the value: atLeastAsFresh: "\{header\.x-zedtoken\}"$/));
  });

  it('keeps the plain message for a mapping that holds no template, and for syntax errors with no template on the line', () => {
    expect(problemsOf(rule('match: { http: { path: { a: b } } }', 'auth: none'))).toEqual([
      expect.stringMatching(/^inbound\.rules\[0\]\.match\.http\.path: got \{"a":"b"\}; invalid input: expected string, received object$/),
    ]);
    const unclosed = problemsOf('inbound: { default: [deny }\n');
    expect(unclosed.length).toBeGreaterThan(0);
    expect(unclosed.every((problem) => /^YAML \w+ at line 1, column \d+: [A-Z][^:`]*$/.test(problem))).toBe(true);
  });

  it('accepts a quoted template, and a template in block style that YAML reads as text', () => {
    const text = rule('match: { http: { path: "/v1/clouds/{cloud}" } }', 'checks:', '  - resource: cloud:{path.cloud}', '    permission: view', '  - { resource: "cloud:{path.cloud}", permission: admin }');
    expect(parseConfigText(text, 'test.yaml', '/tmp').config.inbound?.rules[0]?.checks.map((check) => check.resource)).toEqual(['cloud:{path.cloud}', 'cloud:{path.cloud}']);
  });
});

describe('several YAML documents in one file', () => {
  it('says how many there are, where they start, and what to do, instead of the library’s API hint', () => {
    const problems = problemsOf('inbound: {}\n---\noutbound: {}\n---\nlog: { level: info }\n');
    expect(problems).toEqual([
      'YAML MULTIPLE_DOCS at line 2, column 1: the file holds 3 YAML documents separated by --- (new ones start at lines 2, 4); ' +
        'a configuration is one document: remove the extra --- or split the file',
    ]);
    expect(problems.join()).not.toMatch(/parseAllDocuments/);
    expect(problemsOf('inbound: {}\n---\n')).toEqual([expect.stringMatching(/holds 2 YAML documents separated by --- \(a second one starts at line 2\); /)]);
  });

  it('accepts one document that opens with ---', () => {
    expect(parseConfigText('---\ninbound: {}\n', 'test.yaml', '/tmp').config.inbound).toBeDefined();
  });
});

describe('problems never quote more of a line than a glance needs', () => {
  it('cuts a long line short', () => {
    const long = `checks: [{ resource: cloud:{path.cloud}, permission: view, context: { note: "${'x'.repeat(200)}" } }]`;
    const [problem] = problemsOf(rule('match: { http: { path: "/v1/clouds/{cloud}" } }', long));
    expect(problem).toMatch(/reads `checks: .{80,}\.\.\.`; /);
    expect(problem).not.toMatch(/x{120}/);
  });
});
