/**
 * Every SpiceDB name the configuration spells out, checked against the schema at load: a resource
 * type, permission, subject type or caveat parameter that the schema lacks would otherwise be a
 * 403 (invalid_check_input) on every request the check guards. Only literal parts are checked;
 * what a template renders is known per request only.
 */
import type { Config } from '../config/schema.js';
import { didYouMean } from '../base/closest-name.js';
import type { PermissionCheckSpec } from '../rules/permission-check-spec.js';
import { literalType } from './checked-permissions.js';
import type { SchemaModel } from '../spicedb/schema-model.js';

/** The `#relation` of a subject template when it follows every reference (`group:{claim.g}#member`), else undefined. */
function literalRelation(template: string): string | undefined {
  const tail = template.slice(template.lastIndexOf('}') + 1);
  const hash = tail.lastIndexOf('#');
  return hash >= 0 ? tail.slice(hash + 1) : undefined;
}

class SchemaNames {
  private readonly caveatParameters: ReadonlySet<string>;

  constructor(
    private readonly model: SchemaModel,
    private readonly origin: string,
  ) {
    this.caveatParameters = new Set([...model.caveats.values()].flatMap((caveat) => [...caveat.parameters.keys()]));
  }

  /** Why `type` is not a definition, or undefined when it is one. */
  unknownDefinition(type: string): string | undefined {
    if (this.model.definitions.has(type)) return undefined;
    return `"${type}" is not a definition in ${this.origin}${didYouMean(type, this.model.definitions.keys())}`;
  }

  /** Why `name` is neither a relation nor a permission of the (known) definition `type`, or undefined. */
  unknownRelationOrPermission(type: string, name: string): string | undefined {
    const definition = this.model.definitions.get(type);
    if (definition === undefined) return undefined;
    if (definition.relations.has(name) || definition.permissions.has(name)) return undefined;
    const names = [...definition.relations.keys(), ...definition.permissions.keys()];
    return `"${name}" is not a relation or permission of definition "${type}" in ${this.origin}${didYouMean(name, names)}`;
  }

  /**
   * A check names no caveat (the relationships it meets decide which caveats apply), so a context
   * key can only be checked against every caveat: it must be a parameter of at least one of them.
   */
  unknownCaveatParameter(key: string): string | undefined {
    if (this.caveatParameters.has(key)) return undefined;
    if (this.model.caveats.size === 0) return `"${key}" is not a caveat parameter: ${this.origin} defines no caveats`;
    return `"${key}" is not a parameter of any caveat in ${this.origin}${didYouMean(key, this.caveatParameters)}`;
  }
}

function checkProblems(check: PermissionCheckSpec, where: string, label: string, names: SchemaNames): string[] {
  const problems: string[] = [];
  const report = (key: string, problem: string | undefined): void => {
    if (problem !== undefined) problems.push(`${where}.${key}${label}: ${problem}`);
  };

  const resourceType = literalType(check.resource);
  if (resourceType !== undefined) {
    const unknownType = names.unknownDefinition(resourceType);
    report('resource', unknownType);
    // The permission can only be judged against a definition that exists.
    if (unknownType === undefined && !check.permission.includes('{')) {
      report('permission', names.unknownRelationOrPermission(resourceType, check.permission));
    }
  }

  const subjectType = literalType(check.subject);
  if (subjectType !== undefined) {
    const unknownType = names.unknownDefinition(subjectType);
    report('subject', unknownType);
    const relation = literalRelation(check.subject);
    if (unknownType === undefined && relation !== undefined) report('subject', names.unknownRelationOrPermission(subjectType, relation));
  }

  for (const key of Object.keys(check.context ?? {})) report(`context.${key}`, names.unknownCaveatParameter(key));
  return problems;
}

/**
 * One line per name the configuration uses and the schema lacks, each naming the key path (and the
 * rule or issuer), what is missing and the closest existing name. Empty when everything conforms.
 */
export function checkConfigAgainstSchema(config: Config, model: SchemaModel, schemaOrigin: string): string[] {
  const names = new SchemaNames(model, schemaOrigin);
  const problems: string[] = [];
  const subjectTypeProblem = (where: string, type: string): void => {
    const problem = names.unknownDefinition(type);
    if (problem !== undefined) problems.push(`${where}: ${problem}`);
  };

  // The types that fill `{subject_type}`.
  config.issuers.forEach((issuer, i) => {
    subjectTypeProblem(`issuers[${i}].subjectType (issuer "${issuer.name}")`, issuer.subjectType);
    if (issuer.userSubjectType !== undefined) subjectTypeProblem(`issuers[${i}].userSubjectType (issuer "${issuer.name}")`, issuer.userSubjectType);
  });
  if (config.service) subjectTypeProblem('service.subjectType', config.service.subjectType);
  if (config.outbound) subjectTypeProblem('outbound.onBehalfOf.userType', config.outbound.onBehalfOf.userType);

  config.inbound?.rules.forEach((rule, i) => {
    rule.checks.forEach((check, j) => {
      problems.push(...checkProblems(check, `inbound.rules[${i}].checks[${j}]`, ` (rule "${rule.name}")`, names));
    });
  });
  config.outbound?.onBehalfOf.checks.forEach((check, j) => {
    problems.push(...checkProblems(check, `outbound.onBehalfOf.checks[${j}]`, '', names));
  });
  return problems;
}
