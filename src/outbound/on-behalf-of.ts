/**
 * On-behalf-of: a background job (a saga) names the user it acts for in a request header, and the
 * sidecar gets a token with that user as `sub` and this service as `act.sub`, but only for callers
 * allowed to ask and only where every configured SpiceDB check allows it.
 */
import type { CheckRecord, Reason } from '../core/decision.js';
import type { PermissionChecker, PermissionQuery } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import { compileCheck, formatObject, isBuildError, MINIMIZE_LATENCY } from '../rules/check-spec.js';
import type { CompiledCheck } from '../rules/check-spec.js';
import type { TemplateScope } from '../rules/template.js';
import type { OnBehalfOfConfig } from './config.js';

/** Route config may name the local app making the call; otherwise it is this pod's service. */
export const CALLER_EXTENSION = 'caller';
/** Visible ASCII only: a user id is an identifier, not free text, and it ends up in a JWT `sub`. */
const USER_ID = /^[\x21-\x7e]+$/;
const NO_PATH_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

export type OnBehalfOfOutcome =
  | { readonly ok: true; readonly user: string; readonly checks: CheckRecord[] }
  | { readonly ok: false; readonly reason: Reason; readonly detail: string; readonly checks?: CheckRecord[] };

export class OnBehalfOfPolicy {
  readonly header: string;
  readonly userType: string;
  private readonly callers: ReadonlySet<string>;
  private readonly checks: readonly CompiledCheck[];

  constructor(
    private readonly config: OnBehalfOfConfig,
    private readonly serviceName: string,
  ) {
    this.header = config.header;
    this.userType = config.userType;
    this.callers = new Set(config.allowedCallers);
    this.checks = config.checks.map((spec, i) => compileCheck(spec, `outbound.onBehalfOf.checks[${i}]`));
  }

  callerOf(request: RequestContext): string {
    const named = request.contextExtensions[CALLER_EXTENSION];
    return named !== undefined && named !== '' ? named : this.serviceName;
  }

  async authorize(request: RequestContext, rawUser: string, checker: PermissionChecker): Promise<OnBehalfOfOutcome> {
    const caller = this.callerOf(request);
    if (!this.callers.has(caller)) {
      return { ok: false, reason: 'on_behalf_of_not_allowed_for_caller', detail: `${caller} may not act on behalf of users` };
    }
    if (this.checks.length === 0) {
      return { ok: false, reason: 'on_behalf_of_not_permitted', detail: 'no on-behalf-of checks are configured' };
    }
    const user = rawUser.trim();
    if (user.length === 0 || user.length > this.config.maxUserIdLength || !USER_ID.test(user)) {
      return { ok: false, reason: 'invalid_header_value', detail: `${this.header} must be a user id of 1-${this.config.maxUserIdLength} visible ASCII characters` };
    }
    const scope: TemplateScope = {
      request,
      pathParams: NO_PATH_PARAMS,
      token: undefined,
      subjectOverride: { type: this.userType, id: user },
    };
    const queries: PermissionQuery[] = [];
    for (const check of this.checks) {
      const built = check.build(scope, MINIMIZE_LATENCY);
      if (isBuildError(built)) return { ok: false, reason: 'invalid_check_input', detail: built.error };
      queries.push(built);
    }
    const answers = await Promise.all(
      queries.map((query) =>
        checker.check(query).catch(() => ({ outcome: 'error' as const, reason: 'permission_backend_unavailable' as const, cached: false as const })),
      ),
    );
    const records: CheckRecord[] = [];
    let failure: { reason: Reason; detail: string } | undefined;
    answers.forEach((answer, i) => {
      const query = queries[i] as PermissionQuery;
      const resource = formatObject(query.resource);
      const subject = formatObject(query.subject);
      records.push({
        resource,
        permission: query.permission,
        subject,
        result: answer.outcome === 'error' ? answer.reason : answer.outcome,
        cached: answer.cached,
      });
      if (failure || answer.outcome === 'allowed') return;
      failure =
        answer.outcome === 'error'
          ? { reason: answer.reason, detail: `on-behalf-of check ${resource}#${query.permission} failed` }
          : { reason: 'on_behalf_of_not_permitted', detail: `${subject} lacks ${query.permission} on ${resource} (${answer.outcome})` };
    });
    if (failure) return { ok: false, ...failure, checks: records };
    return { ok: true, user, checks: records };
  }
}
