/**
 * A configuration turned into something that decides: its adapters, behind tracing decorators when
 * it traces, and the decision pipeline over them. `serve` keeps one current (a Generation) and
 * swaps it on reload; `check` opens one without listeners to explain a decision offline.
 */
import type { LoadedConfig } from '../config/load.js';
import type { CheckPipeline } from '../envoy/authorization-service.js';
import { TracingVerifier } from '../identity/tracing-verifier.js';
import { TracingRuleMatcher } from '../observability/tracing-rule-matcher.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { TracingChecker } from '../spicedb/tracing-checker.js';
import { TracingTokenSource } from '../tokens/tracing-token-source.js';
import { buildAdapters, closablesOf } from './adapters.js';
import type { AdapterDeps, AdapterSet } from './adapters.js';
import { Generation } from './generations.js';
import { fingerprintOf } from './named-files.js';
import type { Fingerprint } from './named-files.js';
import { buildPipeline } from './pipeline.js';
import type { PipelinePorts } from './pipeline.js';
import { preflight } from './preflight.js';

/** The adapters behind tracing decorators, so verification, permission checks and tokens get spans (and rule lookups, below). */
function tracedPorts(adapters: AdapterSet): PipelinePorts {
  return {
    verifier: new TracingVerifier(adapters.verifier),
    checker: new TracingChecker(adapters.checker),
    tokens: adapters.tokens && new TracingTokenSource(adapters.tokens),
  };
}

/** Closes the adapters of `adapters` that `previous` does not share: a generation that never served. */
export async function discardAdapters(adapters: AdapterSet, previous: AdapterSet | undefined): Promise<void> {
  const fresh = closablesOf(adapters).filter((adapter) => previous === undefined || !closablesOf(previous).includes(adapter));
  await Promise.allSettled(fresh.map((adapter) => adapter.close()));
}

/** Builds the adapters (reusing those of `previous` whose section and files are unchanged) and the pipeline over them. */
export async function openGeneration(loaded: LoadedConfig, deps: AdapterDeps, previous?: AdapterSet, files: Fingerprint = fingerprintOf(loaded)): Promise<Generation> {
  // `files` is read before building (a reload passes the one it decided on): a file that changes
  // while the adapters read it then differs from it at the next reload.
  const adapters = await buildAdapters(loaded, files, deps, previous);
  let pipeline: CheckPipeline;
  try {
    // Tracing decorators only when this configuration traces: off, the ports are the adapters themselves.
    pipeline = adapters.tracing
      ? { ...buildPipeline(loaded, tracedPorts(adapters), { ruleMatcher: (rules) => new TracingRuleMatcher(rules) }), tracing: adapters.tracing }
      : buildPipeline(loaded, adapters);
  } catch (error) {
    await discardAdapters(adapters, previous);
    throw error;
  }
  return new Generation(loaded, pipeline, adapters, files);
}

/** A decision pipeline without listeners: what `check` explains offline. */
export interface DecisionRuntime {
  readonly pipeline: CheckPipeline;
  /** Keys loaded and permission backend reachable. */
  ready(): boolean;
  /** What is not ready, one phrase each (an issuer by name, the permission backend); empty when all is. */
  notReady(): string[];
  close(): Promise<void>;
}

export async function openDecisionRuntime(loaded: LoadedConfig, metrics: Metrics, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<DecisionRuntime> {
  await preflight(loaded, { env });
  const generation = await openGeneration(loaded, { metrics, logger, env });
  const { verifier, checker } = generation.adapters;
  return {
    pipeline: generation.pipeline,
    ready: () => verifier.ready() && checker.ready(),
    notReady: () => [
      ...verifier.issuersWithoutKeys().map((issuer) => `issuer ${issuer.name} has no keys${issuer.required ? '' : ' (required: false: its tokens get keys_unavailable)'}`),
      ...(checker.ready() ? [] : ['the permission backend is not reachable']),
    ],
    close: () => discardAdapters(generation.adapters, undefined),
  };
}

