/**
 * On-behalf-of: a background job (a saga) names the user it acts for in a request header, and the
 * sidecar gets a token with that user as `sub` and this service as `act.sub`, but only for callers
 * allowed to ask and only where every configured SpiceDB check allows it.
 */
import type { PermissionChecker } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import { failure } from '../core/result.js';
import { compileCheck, MINIMIZE_LATENCY } from '../rules/check-spec.js';
import type { CompiledCheck } from '../rules/check-spec.js';
import { runChecks } from '../rules/run-checks.js';
import type { ChecksVerdict } from '../rules/run-checks.js';
import type { OnBehalfOfConfig } from './config.js';

/** Route config may name the local app making the call; otherwise it is this pod's service. */
export const CALLER_EXTENSION = 'caller';
/** Visible ASCII only: a user id is an identifier, not free text, and it ends up in a JWT `sub`. */
const USER_ID = /^[\x21-\x7e]+$/;
const NO_PATH_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

export class OnBehalfOfPolicy {
  readonly header: string;
  readonly userType: string;
  readonly #callers: ReadonlySet<string>;
  readonly #checks: readonly CompiledCheck[];

  constructor(
    private readonly config: OnBehalfOfConfig,
    private readonly serviceName: string,
  ) {
    this.header = config.header;
    this.userType = config.userType;
    this.#callers = new Set(config.allowedCallers);
    this.#checks = config.checks.map((spec, i) => compileCheck(spec, `outbound.onBehalfOf.checks[${i}]`));
  }

  callerOf(request: RequestContext): string {
    const named = request.contextExtensions[CALLER_EXTENSION];
    return named !== undefined && named !== '' ? named : this.serviceName;
  }

  /** Whether the caller may act for `user` (already trimmed) on this request. */
  authorize(request: RequestContext, user: string, checker: PermissionChecker): Promise<ChecksVerdict> {
    const caller = this.callerOf(request);
    if (!this.#callers.has(caller)) {
      return Promise.resolve(failure('on_behalf_of_not_allowed_for_caller', `${caller} may not act on behalf of users`));
    }
    if (this.#checks.length === 0) {
      return Promise.resolve(failure('on_behalf_of_not_permitted', 'no on-behalf-of checks are configured'));
    }
    if (user.length === 0 || user.length > this.config.maxUserIdLength || !USER_ID.test(user)) {
      return Promise.resolve(
        failure('invalid_header_value', `${this.header} must be a user id of 1-${this.config.maxUserIdLength} visible ASCII characters`),
      );
    }
    return runChecks({
      checks: this.#checks,
      scope: { request, pathParams: NO_PATH_PARAMS, token: undefined, subjectOverride: { type: this.userType, id: user } },
      consistency: MINIMIZE_LATENCY,
      checker,
      deniedReason: 'on_behalf_of_not_permitted',
    });
  }
}
