/**
 * On-behalf-of: a background job (a saga) names the user it acts for in a request header, and the
 * sidecar gets a token with that user as `sub` and this service as `act.sub`, but only for callers
 * allowed to ask and only where every configured SpiceDB check allows it.
 */
import type { PermissionChecker } from '../core/ports.js';
import type { RequestContext } from '../core/request-context.js';
import { failure } from '../core/result.js';
import { compilePermissionCheck, MINIMIZE_LATENCY } from '../rules/permission-check-spec.js';
import type { CompiledPermissionCheck } from '../rules/permission-check-spec.js';
import { bodyPathsOf, CallBodyReaders } from '../rules/body-bindings.js';
import type { MessageTypes } from '../rules/body-bindings.js';
import { runPermissionChecks } from '../rules/run-permission-checks.js';
import type { PermissionVerdict } from '../rules/run-permission-checks.js';
import type { OnBehalfOfConfig } from './config.js';

/** Route config may name the local app making the call; otherwise it is this pod's service. */
const CALLER_EXTENSION = 'caller';
/** Visible ASCII only: a user id is an identifier, not free text, and it ends up in a JWT `sub`. */
const USER_ID = /^[\x21-\x7e]+$/;
const NO_PATH_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

export class OnBehalfOfPolicy {
  readonly header: string;
  readonly userType: string;
  readonly #callers: ReadonlySet<string>;
  readonly #checks: readonly CompiledPermissionCheck[];
  /** Set when a check reads the call's message: the user may be acted for only on that resource. */
  readonly #body: CallBodyReaders | undefined;

  constructor(
    private readonly config: OnBehalfOfConfig,
    private readonly serviceName: string,
    messages: MessageTypes,
  ) {
    this.header = config.header;
    this.userType = config.userType;
    this.#callers = new Set(config.allowedCallers);
    this.#checks = config.checks.map((spec, i) => compilePermissionCheck(spec, `outbound.onBehalfOf.checks[${i}]`));
    const paths = bodyPathsOf(this.#checks);
    this.#body = paths.length > 0 ? new CallBodyReaders(paths, messages, 'outbound.onBehalfOf.checks') : undefined;
  }

  callerOf(request: RequestContext): string {
    const named = request.contextExtensions[CALLER_EXTENSION];
    return named !== undefined && named !== '' ? named : this.serviceName;
  }

  /** Whether the caller may act for `user` (already trimmed) on this request. */
  async authorize(request: RequestContext, user: string, checker: PermissionChecker): Promise<PermissionVerdict> {
    const caller = this.callerOf(request);
    if (!this.#callers.has(caller)) return { denial: failure('on_behalf_of_not_allowed_for_caller', `${caller} may not act on behalf of users`) };
    if (this.#checks.length === 0) return { denial: failure('on_behalf_of_not_permitted', 'no on-behalf-of checks are configured') };
    if (user.length === 0 || user.length > this.config.maxUserIdLength || !USER_ID.test(user)) {
      return { denial: failure('invalid_header_value', `${this.header} must be a user id of 1-${this.config.maxUserIdLength} visible ASCII characters`) };
    }
    const reader = this.#body;
    return runPermissionChecks({
      checks: this.#checks,
      scope: { request, pathParams: NO_PATH_PARAMS, token: undefined, subjectOverride: { type: this.userType, id: user } },
      ...(reader === undefined ? {} : { readBody: () => reader.read(request) }),
      consistency: MINIMIZE_LATENCY,
      checker,
      deniedReason: 'on_behalf_of_not_permitted',
    });
  }
}
