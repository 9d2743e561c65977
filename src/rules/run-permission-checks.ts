/**
 * Runs a list of compiled checks the one way both directions need: build every query first (one
 * that cannot be built denies without calling SpiceDB), ask them all at once, then combine. A
 * definite "no" outranks an outage, so a forbidden request is never told to retry; CONDITIONAL is
 * a "no" without more context; otherwise the first failure decides. When the checks read the
 * request message, it is read first, once, and a message that cannot be read denies before any
 * query is built.
 */
import type { BodyRead } from '../body/body-reader.js';
import type { PermissionCheckRecord, DenyReason } from '../core/decision.js';
import type { Consistency, PermissionAnswer, PermissionChecker, PermissionQuery } from '../core/ports.js';
import { andThen } from '../core/awaitable.js';
import type { Awaitable } from '../core/awaitable.js';
import { failure, settled } from '../core/result.js';
import type { Failure } from '../core/result.js';
import { formatObject } from './permission-check-spec.js';
import type { CompiledPermissionCheck } from './permission-check-spec.js';
import type { TemplateScope } from './template.js';

/** What a run found, for the decision and its facts. */
export interface PermissionVerdict {
  /** Why the run denies; absent when every check allowed. */
  readonly denial?: Failure;
  /** The checks asked and their answers; absent when none was (the message unreadable, a query unbuildable). */
  readonly checks?: readonly PermissionCheckRecord[];
  /** The message fields the checks read. */
  readonly body?: Readonly<Record<string, string>>;
}

export interface PermissionCheckRun {
  readonly checks: readonly CompiledPermissionCheck[];
  readonly scope: Omit<TemplateScope, 'body'>;
  /** Set when the checks read `{body.…}`: reads the request message. */
  readonly readBody?: () => BodyRead;
  readonly consistency: Consistency;
  readonly checker: PermissionChecker;
  /** The reason a definite denial gets (inbound: permission_denied). */
  readonly deniedReason: DenyReason;
}

function recordOf(query: PermissionQuery, answer: PermissionAnswer): PermissionCheckRecord {
  return {
    resource: formatObject(query.resource),
    permission: query.permission,
    subject: formatObject(query.subject),
    result: answer.ok ? answer.value.permissionship : answer.reason,
    cached: answer.ok && answer.value.cached,
  };
}

export function runPermissionChecks(run: PermissionCheckRun): Awaitable<PermissionVerdict> {
  if (run.readBody === undefined) return decide(run, run.scope);
  const fields = run.readBody();
  if (!fields.ok) return { denial: fields };
  return andThen(decide(run, { ...run.scope, body: fields.value }), (verdict) => ({ ...verdict, body: Object.fromEntries(fields.value) }));
}

function decide(run: PermissionCheckRun, scope: TemplateScope): Awaitable<PermissionVerdict> {
  // Most rules have one check: asked without Promise.all and its arrays, and a cached answer
  // decides at once (awaitable.ts).
  if (run.checks.length === 1) {
    const built = (run.checks[0] as CompiledPermissionCheck).build(scope, run.consistency);
    if (!built.ok) return { denial: built };
    const query = built.value;
    return andThen(settled(() => run.checker.check(query), 'permission check'), (answer) => combine(run, [answer], [recordOf(query, answer)]));
  }
  const queries: PermissionQuery[] = [];
  for (const check of run.checks) {
    const built = check.build(scope, run.consistency);
    if (!built.ok) return { denial: built };
    queries.push(built.value);
  }
  return Promise.all(queries.map((query) => settled(() => run.checker.check(query), 'permission check'))).then((answers) =>
    combine(run, answers, answers.map((answer, i) => recordOf(queries[i] as PermissionQuery, answer))),
  );
}

function combine(run: PermissionCheckRun, answers: readonly PermissionAnswer[], checks: readonly PermissionCheckRecord[]): PermissionVerdict {
  let conditional: PermissionCheckRecord | undefined;
  let failed: Failure | undefined;
  for (let i = 0; i < answers.length; i++) {
    const answer = answers[i] as PermissionAnswer;
    const record = checks[i] as PermissionCheckRecord;
    if (!answer.ok) {
      failed ??= failure(answer.reason, answer.detail ?? `check ${record.resource}#${record.permission} failed`);
    } else if (answer.value.permissionship === 'denied') {
      return { denial: failure(run.deniedReason, `${record.subject} lacks ${record.permission} on ${record.resource}`), checks };
    } else if (answer.value.permissionship === 'conditional') {
      conditional ??= record;
    }
  }
  if (conditional !== undefined) {
    return { denial: failure('conditional_permission', `${conditional.permission} on ${conditional.resource}: caveat context incomplete`), checks };
  }
  return failed === undefined ? { checks } : { denial: failed, checks };
}
