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

export function createLogger(options: { level: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'jwtauth-sidecar' },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    options.destination ?? pino.destination({ fd: 2, sync: false }),
  );
}
