/**
 * A rule's `require`: OAuth scopes and simple conditions on the verified token's claims, checked
 * before any SpiceDB call. Validated by zod at load and compiled into plain predicates, so a
 * request only walks claims and compares values; the RFC 6750 challenge for missing scopes is
 * rendered once per rule, not per request.
 *
 *   require:
 *     scopes: [vm.read, vm.write]            all must be granted (`scope` string and/or `scp`)
 *     claims:
 *       tenant: { equals: acme }             same type and value
 *       org.tier: { oneOf: [gold, silver] }  dots walk into objects, as in {claim.A.B}
 *       groups: { contains: admins }         an array element, or a word of a space-separated string
 *       email_verified: { present: true }    exists and is not null
 *
 * Conditions gate the rule they belong to; they never take part in choosing it (docs/inbound.md).
 */
import { z } from 'zod';
import type { ConditionRecord, DenyReason, HeaderList } from '../core/decision.js';

/** RFC 6749 §3.3 scope-token; also what makes the quoted `scope="…"` challenge safe without escaping. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
/** The claim names `{claim.A.B}` accepts, dot-separated, no empty step. */
const CLAIM_PATH = /^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/;
const OPERATORS = ['equals', 'oneOf', 'contains', 'present'] as const;
const OPERATOR_LIST = 'equals, oneOf, contains or present';

type ClaimScalar = string | number | boolean;

function isClaimScalar(value: unknown): value is ClaimScalar {
  return typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value));
}

const claimScalarSchema = z.custom<ClaimScalar>(isClaimScalar, 'a string, number or boolean');

type ClaimCondition =
  | { readonly operator: 'equals'; readonly value: ClaimScalar }
  | { readonly operator: 'oneOf'; readonly values: readonly ClaimScalar[] }
  | { readonly operator: 'contains'; readonly value: ClaimScalar }
  | { readonly operator: 'present' };

const claimConditionSchema = z
  .looseObject({
    equals: claimScalarSchema.optional(),
    oneOf: z.array(claimScalarSchema).min(1, 'at least one value').optional(),
    contains: claimScalarSchema.optional(),
    present: z.literal(true, 'present: true; a claim cannot be required to be absent').optional(),
  })
  .transform((condition, ctx): ClaimCondition => {
    // A loose object, so an unknown operator gets its own message instead of a generic "unknown key".
    const given = Object.keys(condition);
    const unknown = given.filter((key) => !(OPERATORS as readonly string[]).includes(key));
    for (const key of unknown) ctx.addIssue({ code: 'custom', path: [key], message: `not an operator; expected ${OPERATOR_LIST}` });
    if (given.length - unknown.length !== 1) {
      if (unknown.length === 0) ctx.addIssue({ code: 'custom', message: `expected exactly one operator (${OPERATOR_LIST}) per claim` });
      return z.NEVER;
    }
    if (unknown.length > 0) return z.NEVER;
    if (condition.equals !== undefined) return { operator: 'equals', value: condition.equals };
    if (condition.oneOf !== undefined) return { operator: 'oneOf', values: condition.oneOf };
    if (condition.contains !== undefined) return { operator: 'contains', value: condition.contains };
    return { operator: 'present' };
  });

export const requirementSchema = z
  .strictObject({
    scopes: z
      .array(z.string().regex(SCOPE_TOKEN, 'a scope: printable ASCII without spaces, `"` or `\\`'))
      .min(1, 'at least one scope (to require none, drop scopes)')
      .refine((scopes) => new Set(scopes).size === scopes.length, 'each scope once')
      .optional()
      .describe('OAuth scopes the token must all have, from `scope` (space-separated) or `scp` (array)'),
    claims: z
      .record(z.string(), claimConditionSchema)
      .superRefine((claims, ctx) => {
        // Checked here rather than as the record's key schema, so the message names the key.
        for (const name of Object.keys(claims)) {
          if (!CLAIM_PATH.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: 'a claim name of letters, digits, _ : -; dots walk into objects, e.g. org.tier' });
        }
      })
      .refine((claims) => Object.keys(claims).length > 0, 'at least one claim condition (to require none, drop claims)')
      .optional()
      .describe(`claim path → one condition: ${OPERATOR_LIST}`),
  })
  .refine((requirement) => requirement.scopes !== undefined || requirement.claims !== undefined, 'scopes, claims or both (to require nothing, drop require)');

export type RequirementSpec = z.infer<typeof requirementSchema>;

type Claims = Readonly<Record<string, unknown>>;

type RequirementVerdict =
  | { readonly met: true; readonly records: readonly ConditionRecord[] }
  | {
      readonly met: false;
      readonly reason: Extract<DenyReason, 'insufficient_scope' | 'claim_condition_failed'>;
      /** Names scopes and claims, never a claim's value. */
      readonly detail: string;
      /** The `www-authenticate` challenge for missing scopes; empty for claim conditions. */
      readonly challenge: HeaderList;
      readonly records: readonly ConditionRecord[];
    };

export interface CompiledRequirement {
  evaluate(claims: Claims): RequirementVerdict;
}

const NO_CHALLENGE: HeaderList = Object.freeze([]) as HeaderList;

/**
 * The scopes a token grants: `scope` (RFC 8693 §4.2, RFC 9068: one space-separated string) and
 * `scp` (an array in Okta and others, a space-separated string in Entra ID), both read, either
 * form in either claim. A token that has both grants their union: both are signed by its issuer.
 */
export function grantedScopes(claims: Claims): Set<string> {
  const granted = new Set<string>();
  for (const name of ['scope', 'scp']) {
    const value = Object.hasOwn(claims, name) ? claims[name] : undefined;
    if (typeof value === 'string') {
      for (const scope of value.split(' ')) if (scope !== '') granted.add(scope);
    } else if (Array.isArray(value)) {
      for (const scope of value) if (typeof scope === 'string') granted.add(scope);
    }
  }
  return granted;
}

/** The `WWW-Authenticate` value for a token without every scope of `scopes`. */
export function insufficientScopeChallenge(scopes: readonly string[]): string {
  return `Bearer realm="jwtauth", error="insufficient_scope", scope="${scopes.join(' ')}"`;
}

const ABSENT = Symbol('absent');

function claimAt(claims: Claims, path: readonly string[]): unknown {
  let value: unknown = claims;
  for (const key of path) {
    if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.hasOwn(value, key)) return ABSENT;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** `value` as a set member: an array's element, or a word of a space-separated string (like `scope`). */
function containsMember(value: unknown, member: ClaimScalar): boolean {
  if (Array.isArray(value)) return value.includes(member);
  if (typeof value === 'string' && typeof member === 'string') return value.split(' ').includes(member);
  return false;
}

interface CompiledClaimCondition {
  readonly description: string;
  /** Undefined when the claims meet it; else why not, naming the claim and never its value. */
  readonly unmet: (claims: Claims) => string | undefined;
}

function compileClaimCondition(name: string, condition: ClaimCondition): CompiledClaimCondition {
  const path = name.split('.');
  const label = `claim ${name}`;
  const absent = `${label} is absent`;
  switch (condition.operator) {
    case 'equals': {
      const wanted = condition.value;
      return {
        description: `${label} equals ${JSON.stringify(wanted)}`,
        unmet: (claims) => {
          const value = claimAt(claims, path);
          if (value === ABSENT) return absent;
          if (typeof value !== typeof wanted) return `${label} is ${kindOf(value)}; equals wants ${kindOf(wanted)}`;
          return value === wanted ? undefined : `${label} is not the required value`;
        },
      };
    }
    case 'oneOf': {
      const allowed = condition.values;
      return {
        description: `${label} oneOf ${JSON.stringify(allowed)}`,
        unmet: (claims) => {
          const value = claimAt(claims, path);
          if (value === ABSENT) return absent;
          return allowed.includes(value as ClaimScalar) ? undefined : `${label} is not one of the ${allowed.length} allowed values`;
        },
      };
    }
    case 'contains': {
      const member = condition.value;
      return {
        description: `${label} contains ${JSON.stringify(member)}`,
        unmet: (claims) => {
          const value = claimAt(claims, path);
          if (value === ABSENT) return absent;
          if (!Array.isArray(value) && typeof value !== 'string') return `${label} is ${kindOf(value)}; contains wants an array or a space-separated string`;
          return containsMember(value, member) ? undefined : `${label} does not contain the required value`;
        },
      };
    }
    case 'present':
      return {
        description: `${label} present`,
        unmet: (claims) => {
          const value = claimAt(claims, path);
          return value === ABSENT || value === null ? absent : undefined;
        },
      };
  }
}

export function compileRequirement(spec: RequirementSpec): CompiledRequirement {
  const scopes = spec.scopes ?? [];
  const challenge: HeaderList =
    scopes.length === 0 ? NO_CHALLENGE : Object.freeze([['www-authenticate', insufficientScopeChallenge(scopes)] as const]);
  const claimConditions = Object.entries(spec.claims ?? {}).map(([name, condition]) => compileClaimCondition(name, condition));
  const descriptions = [...scopes.map((scope) => `scope ${scope}`), ...claimConditions.map((c) => c.description)];
  // Allows are the common case, and their records are the same every time: built once.
  const met: RequirementVerdict = Object.freeze({
    met: true,
    records: Object.freeze(descriptions.map((condition) => Object.freeze({ condition, met: true }))),
  });

  /** The deny path: every condition is re-evaluated and reported, so `check` shows all that failed. */
  function unmet(claims: Claims): RequirementVerdict {
    const granted = grantedScopes(claims);
    const missingScopes = scopes.filter((scope) => !granted.has(scope));
    const claimFailures = claimConditions.map((c) => c.unmet(claims));
    const records: ConditionRecord[] = [
      ...scopes.map((scope) => ({ condition: `scope ${scope}`, met: granted.has(scope) })),
      ...claimConditions.map((c, i) => ({ condition: c.description, met: claimFailures[i] === undefined })),
    ];
    if (missingScopes.length > 0) {
      return { met: false, reason: 'insufficient_scope', detail: `the token lacks scope ${missingScopes.join(' ')}`, challenge, records };
    }
    const detail = claimFailures.filter((why) => why !== undefined).join('; ');
    return { met: false, reason: 'claim_condition_failed', detail, challenge: NO_CHALLENGE, records };
  }

  return {
    evaluate(claims) {
      if (scopes.length > 0) {
        const granted = grantedScopes(claims);
        for (const scope of scopes) if (!granted.has(scope)) return unmet(claims);
      }
      for (const condition of claimConditions) if (condition.unmet(claims) !== undefined) return unmet(claims);
      return met;
    },
  };
}
