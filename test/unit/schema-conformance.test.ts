import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { embeddedDefaults } from '../../src/config/defaults.js';
import { parseConfigText, validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { checkConfigAgainstSchema } from '../../src/lifecycle/schema-conformance.js';
import { parseSchemaModel } from '../../src/spicedb/schema-model.js';
import type { SchemaModel } from '../../src/spicedb/schema-model.js';

const PACKAGED_SCHEMA = 'examples/schema.zed';

function modelOf(text: string, origin: string): SchemaModel {
  const parsed = parseSchemaModel(text, origin);
  if (!parsed.ok) throw new Error(parsed.problem);
  return parsed.model;
}

function problemOf(text: string): string {
  const parsed = parseSchemaModel(text, 'schema.zed');
  if (parsed.ok) throw new Error('expected the schema to be rejected');
  return parsed.problem;
}

const packagedModel = (): SchemaModel => modelOf(readFileSync(join(PACKAGE_ROOT, PACKAGED_SCHEMA), 'utf8'), PACKAGED_SCHEMA);

const INLINE_SCHEMA = `
caveat in_region(region string, allowed list<string>) {
  region in allowed
}

definition user {}

definition service {}

definition group {
  relation member: user | group#member
}

partial ownable {
  relation owner: user
  permission manage = owner
}

definition project {
  ...ownable
  relation viewer: user | user:* | group#member with in_region
  relation deployer: service
  permission view = viewer + owner
}
`;

const config = (yaml: string): Config => parseConfigText(yaml, 'test.yaml', '/tmp').config;

describe('SpiceDB schema model', () => {
  it('lists relations with their subject types (type#relation, wildcards, caveats), permissions, partials and caveat parameters', () => {
    const model = modelOf(INLINE_SCHEMA, 'inline.zed');
    expect([...model.definitions.keys()]).toEqual(['user', 'service', 'group', 'project']);
    const project = model.definitions.get('project')!;
    expect(project.relations.get('viewer')).toEqual([
      { type: 'user', wildcard: false, expiring: false },
      { type: 'user', wildcard: true, expiring: false },
      { type: 'group', relation: 'member', wildcard: false, caveat: 'in_region', expiring: false },
    ]);
    // `...ownable` brings the partial's names into the definition.
    expect([...project.relations.keys()]).toEqual(['owner', 'viewer', 'deployer']);
    expect([...project.permissions.keys()]).toEqual(['manage', 'view']);
    expect(model.definitions.get('group')!.relations.get('member')).toEqual([
      { type: 'user', wildcard: false, expiring: false },
      { type: 'group', relation: 'member', wildcard: false, expiring: false },
    ]);
    expect(model.caveats.get('in_region')?.parameters).toEqual(
      new Map([
        ['region', 'string'],
        ['allowed', 'list<string>'],
      ]),
    );
  });

  it('reads the packaged schema', () => {
    const cloud = packagedModel().definitions.get('cloud')!;
    expect([...cloud.permissions.keys()]).toEqual(['view', 'create_saga', 'create_namespace', 'write_namespace', 'act_for_users']);
    expect(cloud.permissions.get('create_saga')).toEqual({ kind: 'operation', operands: [{ kind: 'reference', name: 'saga_creator' }, { kind: 'reference', name: 'admin' }] });
    expect(packagedModel().definitions.get('namespace')!.permissions.get('view')).toEqual({ kind: 'arrow', tupleset: 'cloud', target: 'view' });
    expect(cloud.relations.get('delegate')).toEqual([{ type: 'service', wildcard: false, expiring: false }]);
  });

  it('reports a parse error as one readable line with line, column, what was expected and what was found', () => {
    expect(problemOf('definition user {}\ndefiniton cloud {}')).toBe(
      'schema.zed line 2, column 1: expected "caveat", "definition", "import", "partial", "use" or the end of the schema; found "definiton"',
    );
    expect(problemOf('definition user {}\ndefinition cloud {\n  relation admin:\n}')).toBe('schema.zed line 4, column 1: expected a type name; found "}"');
    expect(problemOf('definition cloud {\n  relation admin user\n}')).toBe('schema.zed line 2, column 18: expected ":"; found "user"');
    expect(problemOf('definition cloud {\n  permission = admin\n}')).toBe('schema.zed line 2, column 14: expected a permission name; found "="');
    expect(problemOf('definition cloud {\n  relation admin: user with\n}')).toBe('schema.zed line 3, column 1: expected "expiration" or a caveat name; found "}"');
    // Inside a caveat expression the parser's alternatives (every CEL token) collapse to one word.
    expect(problemOf('caveat c(a int) {\n  a ==\n}')).toBe('schema.zed line 3, column 1: expected a value; found "}"');
    expect(problemOf('definition cloud {')).toBe('schema.zed line 1, column 19: expected "...", "permission", "relation" or "}"; found the end of the schema');
  });

  it('refuses schemas whose names it cannot see: imports and missing partials', () => {
    expect(problemOf('import "common.zed"\ndefinition cloud {}')).toBe(
      'schema.zed line 1, column 1: import "common.zed" is not supported here; compile the schema into one file first (zed preview schema compile)',
    );
    expect(problemOf('definition cloud {\n  ...ownable\n}')).toBe('schema.zed line 2, column 3: "cloud" uses partial "ownable", which the schema does not define');
  });
});

describe('configuration against the SpiceDB schema', () => {
  it('reports every unknown name with its key path, rule, the schema and the closest existing name', () => {
    const problems = checkConfigAgainstSchema(
      config(`
service: { name: gw, subjectType: svc }
issuers:
  - { name: mesh, issuer: https://mesh, audience: gw, kind: internal, subjectType: servce, userSubjectType: uesr, jwks: { file: mesh.json } }
tokens: { source: { kind: mint } }
inbound:
  rules:
    - name: read-project
      match: { http: { path: "/projects/{id}" } }
      checks:
        - { resource: "projekt:{path.id}", permission: view }
        - { resource: "project:{path.id}", permission: veiw }
        - { resource: "project:{path.id}", permission: view, subject: "grop:{claim.g}#member" }
        - { resource: "project:{path.id}", permission: view, subject: "group:{claim.g}#membr" }
        - { resource: "project:{path.id}", permission: view, context: { regoin: "{claim.region}", allowed: "{claim.regions}" } }
        - { resource: "project:{path.id}", permission: manage, subject: "user:{subject}" }
outbound:
  onBehalfOf:
    userType: users
    allowedCallers: [gw]
    checks:
      - { resource: "project:{body.id}", permission: deploy, subject: "service:{subject}" }
`),
      modelOf(INLINE_SCHEMA, 'inline.zed'),
      'inline.zed',
    );
    expect(problems).toEqual([
      'issuers[0].subjectType (issuer "mesh"): "servce" is not a definition in inline.zed; did you mean "service"?',
      'issuers[0].userSubjectType (issuer "mesh"): "uesr" is not a definition in inline.zed; did you mean "user"?',
      // Nothing close: no suggestion rather than a wrong one.
      'service.subjectType: "svc" is not a definition in inline.zed',
      'outbound.onBehalfOf.userType: "users" is not a definition in inline.zed; did you mean "user"?',
      // The permission of an unknown type is not judged: the type is the mistake.
      'inbound.rules[0].checks[0].resource (rule "read-project"): "projekt" is not a definition in inline.zed; did you mean "project"?',
      'inbound.rules[0].checks[1].permission (rule "read-project"): "veiw" is not a relation or permission of definition "project" in inline.zed; did you mean "view"?',
      'inbound.rules[0].checks[2].subject (rule "read-project"): "grop" is not a definition in inline.zed; did you mean "group"?',
      'inbound.rules[0].checks[3].subject (rule "read-project"): "membr" is not a relation or permission of definition "group" in inline.zed; did you mean "member"?',
      'inbound.rules[0].checks[4].context.regoin (rule "read-project"): "regoin" is not a parameter of any caveat in inline.zed; did you mean "region"?',
      'outbound.onBehalfOf.checks[0].permission: "deploy" is not a relation or permission of definition "project" in inline.zed; did you mean "deployer"?',
    ]);
  });

  it('checks only the literal parts of templates', () => {
    const problems = checkConfigAgainstSchema(
      config(`
inbound:
  rules:
    - name: templated
      match: { http: { path: "/things/{id}" } }
      checks:
        - { resource: "{claim.kind}:{path.id}", permission: anything_at_all }
        - { resource: "project:{path.id}", permission: "{header.x-permission}" }
        - { resource: "project:{path.id}", permission: view, subject: "{claim.subject_kind}:{subject}#{claim.relation}" }
        - { resource: "project:{path.id}", permission: view, subject: "group:{claim.g}#{claim.relation}" }
        - { resource: "project:{path.id}", permission: view, subject: "grop:{claim.g}#{claim.relation}" }
`),
      modelOf(INLINE_SCHEMA, 'inline.zed'),
      'inline.zed',
    );
    // Only the written-out type of the last subject can be wrong here.
    expect(problems).toEqual(['inbound.rules[0].checks[4].subject (rule "templated"): "grop" is not a definition in inline.zed; did you mean "group"?']);
  });

  it('reports context keys when the schema defines no caveats at all', () => {
    const problems = checkConfigAgainstSchema(
      config(`
inbound:
  rules:
    - name: caveated
      match: { http: { path: "/clouds/{cloud}" } }
      checks: [{ resource: "cloud:{path.cloud}", permission: view, context: { region: eu } }]
`),
      packagedModel(),
      PACKAGED_SCHEMA,
    );
    expect(problems).toEqual(['inbound.rules[0].checks[0].context.region (rule "caveated"): "region" is not a caveat parameter: examples/schema.zed defines no caveats']);
  });

  it('finds nothing wrong with the embedded defaults against the packaged schema', () => {
    const { config: defaults } = validateConfig(embeddedDefaults('/tmp/jwtauth-defaults'), 'embedded defaults', '/tmp/jwtauth-defaults');
    expect(defaults.inbound?.rules.length).toBeGreaterThan(0);
    expect(checkConfigAgainstSchema(defaults, packagedModel(), PACKAGED_SCHEMA)).toEqual([]);
  });

  it.each(['gwadmin', 'vmcontroller', 'spicedb'])('finds nothing wrong with the demo’s %s sidecar against the packaged schema it runs with', (name) => {
    const dir = join(PACKAGE_ROOT, 'examples', 'demo', 'sidecars');
    const { config: sidecar } = parseConfigText(readFileSync(join(dir, `${name}.yaml`), 'utf8'), `${name}.yaml`, dir);
    expect(checkConfigAgainstSchema(sidecar, packagedModel(), PACKAGED_SCHEMA)).toEqual([]);
  });

  it('finds nothing wrong with the Kubernetes example against the packaged schema', () => {
    const documents = parseAllDocuments(readFileSync(join(PACKAGE_ROOT, 'examples', 'kubernetes', 'gateway-pod.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, unknown>);
    // The pod has two ConfigMaps (envoy.yaml and jwtauth.yaml); this reads the sidecar's.
    const configMap = documents.find((d) => d.kind === 'ConfigMap' && typeof (d.data as Record<string, unknown> | undefined)?.['jwtauth.yaml'] === 'string') as { data: Record<string, string> };
    const { config: example } = parseConfigText(configMap.data['jwtauth.yaml'] ?? '', 'gateway-pod.yaml', '/etc/jwtauth');
    expect(checkConfigAgainstSchema(example, packagedModel(), PACKAGED_SCHEMA)).toEqual([]);
  });
});
