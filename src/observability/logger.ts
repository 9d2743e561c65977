/**
 * The structured logger. pino writes one JSON line per event, cheaply enough for the request path.
 * Redaction is a second line of defence: code must never pass a token, but if a header map or a
 * token field slips into a log call, these paths are censored.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';

export type { Logger };

const REDACTED_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'subjectToken',
  '*.subjectToken',
  'access_token',
  '*.access_token',
  'presharedKey',
  '*.presharedKey',
  'privateKey',
  '*.privateKey',
];

export interface LoggerOptions {
  readonly level: string;
  readonly destination?: pino.DestinationStream;
  /**
   * A worker's number (worker mode): every line says which worker wrote it, and each line is one
   * write(2) of its own, so the workers' lines on the shared stderr never interleave mid-line (a
   * batched write may exceed PIPE_BUF, where the kernel stops keeping writers apart).
   */
  readonly worker?: number;
}

export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: options.worker === undefined ? { service: 'jwtauth-sidecar' } : { service: 'jwtauth-sidecar', worker: options.worker },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ fd: 2, sync: options.worker !== undefined }),
  );
}
