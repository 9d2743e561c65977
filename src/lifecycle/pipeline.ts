/**
 * The decision pipeline for one configuration: (dry-run →) direction router → inbound and
 * outbound authorizers over the adapters. Built once per configuration; serve, `check` and the
 * tests all build it here.
 */
import { serviceIdentityOf } from '../config/schema.js';
import type { LoadedConfig } from '../config/load.js';
import { DirectionRouter } from '../core/direction-router.js';
import { DryRunAuthorizer } from '../core/dry-run.js';
import type { Authorizer, PermissionChecker, TokenSource, TokenVerifier } from '../core/ports.js';
import type { CheckPipeline } from '../envoy/authorization-service.js';
import { createInboundAuthorizer } from '../inbound/inbound-authorizer.js';
import type { RuleMatcher } from '../inbound/rule-index.js';
import { createOutboundAuthorizer } from '../outbound/outbound-authorizer.js';
import { loadMessageTypes } from '../rules/body-bindings.js';

export interface PipelinePorts {
  readonly verifier: TokenVerifier;
  readonly checker: PermissionChecker;
  readonly tokens: TokenSource | undefined;
}

/** Decorators around parts of the pipeline that are not ports (tracing installs one). */
export interface PipelineDecorators {
  readonly ruleMatcher?: (rules: RuleMatcher) => RuleMatcher;
}

/** Compiles every rule and template of `loaded`; throws on a mistake, naming where it is. */
export function buildPipeline(loaded: Pick<LoadedConfig, 'config' | 'baseDir'>, ports: PipelinePorts, decorators: PipelineDecorators = {}): CheckPipeline {
  const { config } = loaded;
  const maxTokenBytes = config.limits.maxTokenBytes;
  const messages = loadMessageTypes(config.body, loaded.baseDir);
  const inbound = config.inbound
    ? createInboundAuthorizer(config.inbound, { verifier: ports.verifier, checker: ports.checker, maxTokenBytes }, messages, decorators.ruleMatcher)
    : undefined;
  let outbound: Authorizer | undefined;
  if (config.outbound) {
    if (!ports.tokens) throw new Error('outbound is configured but tokens.source is not'); // unreachable after validation
    const service = serviceIdentityOf(config);
    outbound = createOutboundAuthorizer(config.outbound, {
      verifier: ports.verifier,
      checker: ports.checker,
      tokens: ports.tokens,
      serviceName: service.name,
      serviceSubjectType: service.subjectType,
      maxTokenBytes,
    }, messages);
  }
  const router = new DirectionRouter(inbound, outbound);
  // The dry-run layer costs an extra await per Check; add it only where some decision can be dry-run.
  const anyDryRun = config.dryRun || (config.inbound?.rules.some((rule) => rule.dryRun) ?? false);
  const authorizer = anyDryRun ? new DryRunAuthorizer(router, config.dryRun) : router;
  return { authorizer, limits: { maxHeaderBytes: config.limits.maxHeaderBytes } };
}
