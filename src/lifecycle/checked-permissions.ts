/**
 * What the configuration's checks ask SpiceDB, as far as it is written out: the resource type and
 * permission of every inbound rule's and on-behalf-of check. The SpiceDB Watch is filtered to what
 * those permissions depend on.
 */
import type { Config } from '../config/schema.js';
import type { PermissionCheckSpec } from '../rules/permission-check-spec.js';

/** The type of an object template when it is written out (`cloud` in `cloud:{path.cloud}`), else undefined. */
export function literalType(template: string): string | undefined {
  const colon = template.indexOf(':');
  const brace = template.indexOf('{');
  return colon >= 0 && (brace < 0 || colon < brace) ? template.slice(0, colon) : undefined;
}

/**
 * Every checked `type#permission`, sorted; undefined when some check renders its resource type or
 * permission per request, so what it asks is not known up front.
 */
export function checkedPermissions(config: Config): readonly string[] | undefined {
  const checks: PermissionCheckSpec[] = [...(config.inbound?.rules.flatMap((rule) => rule.checks) ?? []), ...(config.outbound?.onBehalfOf.checks ?? [])];
  const permissions = new Set<string>();
  for (const check of checks) {
    const type = literalType(check.resource);
    if (type === undefined || check.permission.includes('{')) return undefined;
    permissions.add(`${type}#${check.permission}`);
  }
  return [...permissions].sort();
}
