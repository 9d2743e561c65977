/**
 * One sidecar's readiness from its workers' (worker mode): ready only when every configured worker
 * is running and ready, so a pod whose worker crashed, or is still starting, takes no new traffic
 * until it is whole. Pure, so the rule is tested without processes.
 */
import type { SchemaConformance } from '../lifecycle/schema-check.js';
import type { ReadinessDetail, SidecarStatus } from '../lifecycle/readiness.js';

export interface CombinedReadiness {
  readonly ready: boolean;
  readonly detail: ReadinessDetail & {
    readonly workers: number;
    readonly workersReady: number;
    /**
     * Distinct configurations among the workers: more than 1 for the moment a reload takes to
     * reach all, or after one that some accepted and some refused (each worker logs which).
     * Reported, not a reason to be unready: every worker still serves a validated configuration.
     */
    readonly configHashes: number;
  };
}

/** The worst state wins: one worker whose rules contradict the schema makes the sidecar mismatch. */
const SCHEMA_SEVERITY: Readonly<Record<SchemaConformance['state'], number>> = { conforms: 0, unchecked: 1, mismatch: 2 };

/** `statuses`: the last status of each running worker (none yet for one still starting). */
export function combineReadiness(statuses: readonly (SidecarStatus | undefined)[], configured: number, draining: boolean): CombinedReadiness {
  const reported = statuses.filter((status): status is SidecarStatus => status !== undefined);
  let schema: SchemaConformance['state'] = 'conforms';
  for (const { detail } of reported) if (SCHEMA_SEVERITY[detail.schema] > SCHEMA_SEVERITY[schema]) schema = detail.schema;
  const workersReady = reported.filter((status) => status.ready).length;
  const detail = {
    keys: reported.length > 0 && reported.every((status) => status.detail.keys),
    permissions: reported.length > 0 && reported.every((status) => status.detail.permissions),
    schema,
    draining,
    workers: configured,
    workersReady,
    configHashes: new Set(reported.map((status) => status.hash)).size,
  };
  return { ready: !draining && workersReady === configured, detail };
}
