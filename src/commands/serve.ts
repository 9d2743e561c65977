import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { EMBEDDED_ORIGIN } from '../config/resolve.js';
import { listenAddressSchema } from '../config/schema.js';
import { createLogger } from '../observability/logger.js';
import { serve } from '../serve.js';
import type { RunningSidecar } from '../serve.js';
import { UsageError, loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the ext_authz gRPC server and the admin HTTP server',
  help: `Usage: jwtauth-sidecar serve [--config FILE] [--grpc-address HOST:PORT] [--admin-address HOST:PORT]

Runs the sidecar. The configuration comes from --config, else $JWTAUTH_CONFIG, else the
embedded development defaults (a generated signing key and an in-process SpiceDB with the
example schema; never use those in production).

  --config FILE              YAML configuration (see docs/configuration.md)
  --grpc-address HOST:PORT   ext_authz + gRPC health listener (default 127.0.0.1:9191)
  --admin-address HOST:PORT  /healthz, /readyz, /metrics, JWKS (default 127.0.0.1:9190)

Signals: SIGTERM/SIGINT drain and exit; SIGHUP reloads the configuration file (so does
saving it). A reload that fails validation is logged and the old configuration keeps serving.`,
  async run(args, io) {
    const { values } = parseOptions(args, {
      config: { type: 'string', short: 'c' },
      'grpc-address': { type: 'string' },
      'admin-address': { type: 'string' },
    });
    for (const flag of ['grpc-address', 'admin-address'] as const) {
      const value = values[flag];
      if (value !== undefined && !listenAddressSchema.safeParse(value).success) {
        throw new UsageError(`--${flag}: got ${JSON.stringify(value)}; expected host:port`);
      }
    }
    const initial = loadConfigOrReport(values.config, io);
    if (!initial) return 1;
    const loaded = initial;
    const logger = createLogger({ level: loaded.config.log.level });
    if (loaded.origin === EMBEDDED_ORIGIN) {
      logger.warn(
        '!!! RUNNING ON EMBEDDED DEVELOPMENT DEFAULTS: a locally generated signing key and an in-memory SpiceDB. ' +
          'Not for production: pass --config FILE or set JWTAUTH_CONFIG. !!!',
      );
    }
    // Signal handlers come first: SIGHUP's default action terminates the process, and /readyz
    // can answer before serve() returns, so a reload signal must never find them missing.
    let sidecar: RunningSidecar | undefined;
    let stopping = false;
    let watcher: FSWatcher | undefined;
    let debounce: NodeJS.Timeout | undefined;
    const reload = (why: string): void => {
      if (sidecar && !stopping) void sidecar.reload(why);
    };

    const stop = (signal: NodeJS.Signals): void => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'shutting down');
      watcher?.close();
      clearTimeout(debounce);
      const finished = (code: number) => () => {
        logger.flush();
        process.exit(code);
      };
      if (!sidecar) {
        finished(0)();
        return;
      }
      sidecar.drain().then(
        () => {
          logger.info('stopped');
          finished(0)();
        },
        (error: unknown) => {
          logger.error({ err: error }, 'error while draining');
          finished(1)();
        },
      );
    };
    process.on('SIGHUP', () => reload('SIGHUP'));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('uncaughtException', (error) => logger.fatal({ err: error }, 'uncaught exception'));
    process.on('unhandledRejection', (error) => logger.error({ err: error }, 'unhandled rejection'));

    sidecar = await serve({
      loaded,
      logger,
      env: io.env,
      ...(values['grpc-address'] ? { grpcAddress: values['grpc-address'] } : {}),
      ...(values['admin-address'] ? { adminAddress: values['admin-address'] } : {}),
    });
    if (loaded.origin !== EMBEDDED_ORIGIN) {
      // Editors often write a file in several steps (or replace it); wait for it to settle.
      watcher = watch(loaded.origin, { persistent: false }, () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => reload('file changed'), 200);
      });
      watcher.on('error', (error) => logger.warn({ err: error }, 'cannot watch the configuration file; SIGHUP still reloads'));
    }
    return -1;
  },
};
