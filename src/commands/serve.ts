import cluster from 'node:cluster';
import { watchConfig } from '../lifecycle/config-watcher.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import { EMBEDDED_ORIGIN } from '../config/resolve.js';
import { listenAddressSchema } from '../config/schema.js';
import type { Lifecycle } from '../lifecycle/lifecycle.js';
import { namedFiles } from '../lifecycle/named-files.js';
import { ProcessControl } from '../lifecycle/process-control.js';
import { createLogger } from '../observability/logger.js';
import type { Logger } from '../observability/logger.js';
import { serve } from '../serve.js';
import { startPrimary } from '../workers/primary.js';
import { startWorker } from '../workers/worker.js';
import { UsageError, loadConfigOrReport, parseOptions } from './command.js';
import type { Command, CommandIO } from './command.js';

interface ServeFlags {
  readonly config: string | undefined;
  readonly grpcAddress: string | undefined;
  readonly adminAddress: string | undefined;
  readonly workers: number | undefined;
}

/** How this process serves: alone, as worker mode's primary, or as one of its workers. */
type ProcessRole = { readonly kind: 'single' } | { readonly kind: 'primary'; readonly workers: number } | { readonly kind: 'worker'; readonly id: number };

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
replaced, renamed over, a Kubernetes ConfigMap update) or to a certificate, key, CA bundle, JWKS
or secret file it names (renewed at the same path), reloads it once 200 ms pass without
another; only what uses a changed file is rebuilt. A reload that fails preflight, or drops a
serving inbound/outbound section without reload.allowSectionRemoval: true, is logged and
counted; the old configuration keeps serving.

An uncaught exception or an unhandled rejection is a bug: the sidecar logs it (fatal), drains
as on SIGTERM and exits 70, so the orchestrator restarts it.

Exit codes: 0 after a drain, 1 for a refused configuration or a failed start, 2 usage error, 70
after a crash (drained first).`,
  async run(args, io) {
    const flags = parseServeFlags(args);
    // The embedded defaults trust this sidecar's own JWKS, so they follow --admin-address.
    const loaded = loadConfigOrReport(flags.config, io, flags.adminAddress);
    if (!loaded) return 1;
    const role = processRole(flags, loaded);
    const logger = createLogger({ level: loaded.config.log.level, ...(role.kind === 'worker' ? { worker: role.id } : {}) });
    if (loaded.origin === EMBEDDED_ORIGIN) {
      logger.warn(
        '!!! RUNNING ON EMBEDDED DEVELOPMENT DEFAULTS: a locally generated signing key and an in-memory SpiceDB. ' +
          'Not for production: pass --config FILE or set JWTAUTH_CONFIG. !!!',
      );
    }
    // Signals first: /readyz can answer before every listener is up, so a SIGHUP or SIGTERM must
    // never find them missing.
    const control = new ProcessControl(logger, loaded.config.server.drainSeconds).install();
    const started = start(role, loaded, flags, io.env, logger, control).then(
      (lifecycle) => {
        control.attach(lifecycle);
        // Sees in-place writes, replacements and ConfigMap symlink swaps alike, of the file and of
        // every certificate, key, CA bundle, JWKS and secret file it names; see config-watcher.ts.
        // A worker's reloads come from its primary.
        if (role.kind !== 'worker' && loaded.origin !== EMBEDDED_ORIGIN) {
          const filesNamed = (): string[] => namedFiles(loadConfigFile(loaded.origin)).map((file) => file.path);
          control.watch(watchConfig(loaded.origin, (why) => control.reload(why), logger, {}, filesNamed));
        }
        return control.exited;
      },
      (error: unknown) => {
        // Preflight refused the file: the same problems, and the same exit code, as `validate`.
        if (!(error instanceof ConfigError)) throw error;
        io.err(error.message);
        logger.flush();
        return 1;
      },
    );
    // A stop asked while starting ends the process at once, as it did before anything started.
    return Promise.race([control.exited, started]);
  },
};

function parseServeFlags(args: readonly string[]): ServeFlags {
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
  const workers = values.workers === undefined ? undefined : Number(values.workers);
  if (workers !== undefined && !(Number.isInteger(workers) && workers >= 1 && workers <= 64)) {
    throw new UsageError(`--workers: got ${JSON.stringify(values.workers)}; expected a whole number from 1 to 64`);
  }
  return { config: values.config, grpcAddress: values['grpc-address'], adminAddress: values['admin-address'], workers };
}

function processRole(flags: ServeFlags, loaded: LoadedConfig): ProcessRole {
  const worker = cluster.isWorker ? cluster.worker?.id : undefined;
  if (worker !== undefined) return { kind: 'worker', id: worker };
  const workers = flags.workers ?? loaded.config.server.workers;
  if (workers === 1) return { kind: 'single' };
  if (loaded.origin === EMBEDDED_ORIGIN) {
    // Each worker would generate its own signing key and hold its own in-memory SpiceDB.
    throw new UsageError('--workers above 1 needs a configuration file (--config or JWTAUTH_CONFIG); the embedded defaults are one process');
  }
  return { kind: 'primary', workers };
}

function start(role: ProcessRole, loaded: LoadedConfig, flags: ServeFlags, env: CommandIO['env'], logger: Logger, control: ProcessControl): Promise<Lifecycle> {
  const serveOptions = {
    loaded,
    logger,
    env,
    ...(flags.grpcAddress ? { grpcAddress: flags.grpcAddress } : {}),
    ...(flags.adminAddress ? { adminAddress: flags.adminAddress } : {}),
  };
  switch (role.kind) {
    case 'single':
      return serve(serveOptions);
    case 'worker':
      return startWorker(serveOptions, {
        onDrain: () => control.stop('primary asked to drain'),
        onOrphaned: () => {
          logger.error('the primary process is gone; exiting');
          control.exit(1);
        },
      });
    case 'primary':
      return startPrimary({ loaded, workers: role.workers, adminAddress: flags.adminAddress ?? loaded.config.server.adminAddress, logger, env });
  }
}
