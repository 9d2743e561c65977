/**
 * The listeners of one sidecar: the admin HTTP listener (unless a worker's primary serves it) and
 * every gRPC one, `server.grpcAddress` first, then `server.listeners` in configuration order. Each
 * registers its own teardown as it starts, so a start that fails half-way closes what it opened.
 */
import { startAdminListener } from '../admin/admin-server.js';
import type { AdminState } from '../admin/admin-server.js';
import type { Config } from '../config/schema.js';
import type { Direction } from '../core/request-context.js';
import { createCheckHandler } from '../envoy/authorization-service.js';
import type { CheckHandlerOptions } from '../envoy/authorization-service.js';
import { listenerOptions, startGrpcListener } from '../envoy/grpc-server.js';
import type { GrpcListener } from '../envoy/grpc-server.js';
import type { Metrics } from '../observability/metrics.js';
import type { Teardown } from './teardown.js';

/** How long a closing gRPC listener lets the Checks in flight answer. */
const GRPC_SHUTDOWN_GRACE_MS = 2_000;

export interface ListenerPlan {
  readonly config: Config;
  /** Command-line overrides of the configured addresses. */
  readonly grpcAddress?: string | undefined;
  readonly adminAddress?: string | undefined;
  /** Undefined for a worker: its primary serves /healthz, /readyz, /metrics and the JWKS. */
  readonly admin: AdminState | undefined;
  /** Shared by every gRPC listener: one pipeline, one decision log, whichever port a Check used. */
  readonly checks: CheckHandlerOptions;
  readonly metrics: Metrics;
}

export interface Listeners {
  readonly grpc: readonly GrpcListener[];
  readonly ports: {
    readonly grpc: number;
    readonly admin: number | undefined;
    /** The `server.listeners` as bound (useful when a configured port is 0), in configuration order. */
    readonly listeners: readonly { readonly direction: Direction; readonly port: number }[];
  };
}

export async function startListeners(plan: ListenerPlan, teardown: Teardown): Promise<Listeners> {
  const { config } = plan;
  const admin = plan.admin && (await startAdminListener(plan.adminAddress ?? config.server.adminAddress, plan.admin));
  if (admin) teardown.add('admin listener', () => admin.close());
  const grpc: GrpcListener[] = [];
  // One step for every gRPC listener, registered before the first starts: all stop taking Checks
  // at once and let those in flight answer before the adapters close.
  teardown.add('gRPC listeners', async () => {
    await Promise.all(grpc.map((listener) => listener.shutdown(GRPC_SHUTDOWN_GRACE_MS)));
  });
  // limits.* of the listeners are read here, at start; every listener shares one request memory.
  const listening = listenerOptions(config.limits, (cause) => plan.metrics.listenerRefusals.inc({ cause }));
  const main = await startGrpcListener(plan.grpcAddress ?? config.server.grpcAddress, createCheckHandler(plan.checks), listening);
  grpc.push(main);
  const listeners: { direction: Direction; port: number }[] = [];
  for (const { address, direction } of config.server.listeners ?? []) {
    // The direction is bound into this listener's handler here, not looked up per Check.
    const listener = await startGrpcListener(address, createCheckHandler({ ...plan.checks, listenerDirection: direction }), listening);
    grpc.push(listener);
    listeners.push({ direction, port: listener.port });
  }
  return { grpc, ports: { grpc: main.port, admin: admin?.port, listeners } };
}
