import cluster from 'node:cluster';
import { watchConfig } from '../config/config-watcher.js';
import type { ConfigWatch } from '../config/config-watcher.js';
import { ConfigError } from '../config/load.js';
import { EMBEDDED_ORIGIN, resolveConfig } from '../config/resolve.js';
import { listenAddressSchema } from '../config/schema.js';
import { createLogger } from '../observability/logger.js';
import { preflight } from '../lifecycle/preflight.js';
import { serve } from '../serve.js';
import { startPrimary } from '../workers/primary.js';
import { PrimaryWatchRelay } from '../workers/watch-relay.js';
import { startWorker } from '../workers/worker.js';
import { UsageError, loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';

/** EX_SOFTWARE (sysexits.h): the process stopped on a bug, not on a signal or a bad configuration. */
export const CRASH_EXIT_CODE = 70;
/** Beyond drainSeconds, what a crashed process allows its drain before it exits regardless. */
const CRASH_DRAIN_GRACE_SECONDS = 5;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the ext_authz gRPC server and the admin HTTP server',
  help: `Usage: jwtauth-sidecar serve [--config FILE] [--grpc-address HOST:PORT] [--admin-address HOST:PORT] [--workers N]

Runs the sidecar. The configuration comes from --config, else $JWTAUTH_CONFIG, else the
embedded development defaults (a generated signing key and an in-process SpiceDB with the
example schema; never use those in production).

  --config FILE              YAML configuration (see docs/configuration.md)
  --grpc-address HOST:PORT   ext_authz + gRPC health listener (default 127.0.0.1:9191); the
                             direction comes from each route's context_extensions. Listeners
                             with a direction of their own (Istio, Envoy Gateway) are
                             server.listeners in the configuration (docs/integrations.md)
  --admin-address HOST:PORT  /healthz, /readyz, /metrics, JWKS (default 127.0.0.1:9190)
  --workers N                N processes answer Checks on the same addresses, one core each
                             (default server.workers, else 1); the primary serves the admin
                             listener for all. Needs a configuration file
                             (docs/configuration.md#worker-mode)

A configuration that \`validate\` refuses is refused here with the same problems: exit 1, before
any listener opens.

Signals: SIGTERM/SIGINT drain and exit. SIGHUP, or any change to the file (written in place,
replaced, renamed over, a Kubernetes ConfigMap update), reloads it once 200 ms pass without
another. A reload that fails preflight, or drops a serving inbound/outbound section without
reload.allowSectionRemoval: true, is logged and counted; the old configuration keeps serving.

An uncaught exception or an unhandled rejection is a bug: the sidecar logs it (fatal), drains
as on SIGTERM and exits 70, so the orchestrator restarts it.

Exit codes: 0 after a drain, 1 for a refused configuration or a failed start, 2 usage error, 70
after a crash (drained first).`,
  async run(args, io) {
    const { values } = parseOptions(args, {
      config: { type: 'string', short: 'c' },
      'grpc-address': { type: 'string' },
      'admin-address': { type: 'string' },
      workers: { type: 'string' },
    });
    for (const flag of ['grpc-address', 'admin-address'] as const) {
      const value = values[flag];
      if (value !== undefined && !listenAddressSchema.safeParse(value).success) {
        throw new UsageError(`--${flag}: got ${JSON.stringify(value)}; expected host:port`);
      }
    }
    const workersFlag = values.workers === undefined ? undefined : Number(values.workers);
    if (workersFlag !== undefined && !(Number.isInteger(workersFlag) && workersFlag >= 1 && workersFlag <= 64)) {
      throw new UsageError(`--workers: got ${JSON.stringify(values.workers)}; expected a whole number from 1 to 64`);
    }
    // The embedded defaults trust this sidecar's own JWKS, so they follow --admin-address.
    const loaded = loadConfigOrReport(values.config, io, values['admin-address']);
    if (!loaded) return 1;
    const worker = cluster.isWorker ? cluster.worker?.id : undefined;
    const workers = worker === undefined ? (workersFlag ?? loaded.config.server.workers) : 1;
    if (workers > 1 && loaded.origin === EMBEDDED_ORIGIN) {
      // Each worker would generate its own signing key and hold its own in-memory SpiceDB.
      throw new UsageError('--workers above 1 needs a configuration file (--config or JWTAUTH_CONFIG); the embedded defaults are one process');
    }
    const logger = createLogger({ level: loaded.config.log.level, ...(worker === undefined ? {} : { worker }) });
    if (loaded.origin === EMBEDDED_ORIGIN) {
      logger.warn(
        '!!! RUNNING ON EMBEDDED DEVELOPMENT DEFAULTS: a locally generated signing key and an in-memory SpiceDB. ' +
          'Not for production: pass --config FILE or set JWTAUTH_CONFIG. !!!',
      );
    }
    // Signal handlers come first: SIGHUP's default action terminates the process, and /readyz
    // can answer before the listeners are all up, so a reload signal must never find them missing.
    let running: { reload(why: string): unknown; drain(): Promise<void> } | undefined;
    let stopping = false;
    let configWatch: ConfigWatch | undefined;
    const reload = (why: string): void => {
      if (running && !stopping) void running.reload(why);
    };

    /** What the process exits with once drained: 0, or CRASH_EXIT_CODE after a crash (a failed drain: 1 at least). */
    let exitCode = 0;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ why }, 'shutting down');
      configWatch?.close();
      const finished = (code: number) => () => {
        logger.flush();
        process.exit(code);
      };
      if (!running) {
        finished(exitCode)();
        return;
      }
      running.drain().then(
        () => {
          logger.info('stopped');
          finished(exitCode)();
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while draining');
          finished(Math.max(exitCode, 1))();
        },
      );
    };
    // A throw nothing caught, or a rejection nothing handled, leaves a security component in a
    // state nobody reasoned about: it stops deciding. It drains (NOT_SERVING, Checks in flight
    // answer) and exits CRASH_EXIT_CODE for the orchestrator to restart it; in worker mode the
    // primary replaces the worker. If the drain itself hangs, the process exits anyway.
    const crashed = (kind: 'uncaught exception' | 'unhandled rejection', error: unknown): void => {
      logger.fatal({ err: error }, `${kind}: stopping, since the sidecar's state is unknown`);
      if (exitCode === CRASH_EXIT_CODE) return;
      exitCode = CRASH_EXIT_CODE;
      setTimeout(() => {
        logger.flush();
        process.exit(CRASH_EXIT_CODE);
      }, (loaded.config.server.drainSeconds + CRASH_DRAIN_GRACE_SECONDS) * 1000).unref();
      stop(kind);
    };
    // A worker's reloads come from its primary, which watches the file and takes SIGHUP. Elsewhere
    // SIGHUP goes through the file watch's debounce, so a SIGHUP sent for an edit the watch also
    // saw is one reload. Before the watch exists (or with no file to watch) there is nothing to reload.
    process.on('SIGHUP', () => configWatch?.trigger('SIGHUP'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('uncaughtException', (error) => crashed('uncaught exception', error));
    process.on('unhandledRejection', (error) => crashed('unhandled rejection', error));

    const serveOptions = {
      loaded,
      logger,
      env: io.env,
      ...(values['grpc-address'] ? { grpcAddress: values['grpc-address'] } : {}),
      ...(values['admin-address'] ? { adminAddress: values['admin-address'] } : {}),
    };
    try {
      if (worker !== undefined) {
        running = await startWorker(serveOptions, {
          onDrain: () => stop('primary asked to drain'),
          onOrphaned: () => {
            logger.error('the primary process is gone; exiting');
            logger.flush();
            process.exit(1);
          },
        });
        return -1;
      }
      if (workers > 1) {
        // Refused here with validate's problems, before any worker starts (each runs it again).
        await preflight(loaded, { env: io.env });
        // One SpiceDB Watch for the pod, relayed to the workers; a reload re-reads what it watches.
        const watchRelay = new PrimaryWatchRelay(logger);
        watchRelay.follow(loaded);
        const primary = await startPrimary({
          workers,
          adminAddress: values['admin-address'] ?? loaded.config.server.adminAddress,
          drainSeconds: loaded.config.server.drainSeconds,
          logger,
          watchRelay,
        });
        running = {
          reload(why) {
            try {
              watchRelay.follow(resolveConfig(loaded.origin, io.env));
            } catch {
              // The workers read the same file and report why it does not load.
            }
            primary.reload(why);
          },
          drain: () => primary.drain(),
        };
      } else {
        running = await serve(serveOptions);
      }
    } catch (error) {
      // Preflight refused the file: the same problems, and the same exit code, as `validate`.
      if (!(error instanceof ConfigError)) throw error;
      io.err(error.message);
      logger.flush();
      return 1;
    }
    if (loaded.origin !== EMBEDDED_ORIGIN) {
      // Sees in-place writes, replacements and ConfigMap symlink swaps alike; see config-watcher.ts.
      configWatch = watchConfig(loaded.origin, reload, logger);
    }
    return -1;
  },
};
