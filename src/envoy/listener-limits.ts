/**
 * The limits of the gRPC listeners (grpc-server.ts): the `limits.*` keys they read at start
 * (config/schema.ts composes them into the `limits` section). Each default is far above what Envoy
 * needs, so none throttles it: Envoy keeps a few connections per worker thread and opens another
 * when one reaches SETTINGS_MAX_CONCURRENT_STREAMS. docs/security.md ("Listener limits") says
 * what happens past each one.
 */
import { z } from 'zod';

const MiB = 1024 * 1024;

export const listenerLimitsShape = {
  maxConnections: z.int().min(1).max(1_000_000).default(1024).describe('open connections per gRPC listener and process; the next one is closed at once. Read at start'),
  maxConcurrentStreams: z
    .int()
    .min(1)
    .max(2 ** 31 - 1)
    .default(1000)
    .describe('calls one connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS); Envoy opens another connection for more. Read at start'),
  maxMessageBytes: z
    .int()
    .min(1024)
    .max(64 * MiB)
    .default(4 * MiB)
    .describe('largest request message; a longer one is refused from its length prefix with RESOURCE_EXHAUSTED. Read at start'),
  maxRequestMemoryBytes: z
    .int()
    .min(MiB)
    .max(2 ** 40)
    .default(64 * MiB)
    .describe('memory all open calls of the process may hold (8 KiB each, plus its message); past it new calls are refused (REFUSED_STREAM). Read at start'),
  maxConnectionMemoryMB: z
    .int()
    .min(1)
    .max(100_000)
    .default(32)
    .describe("node:http2's maxSessionMemory per connection, in MB (10^6 bytes); past it new calls on it are refused (ENHANCE_YOUR_CALM). Read at start"),
  requestTimeoutMs: z
    .int()
    .min(100)
    .max(600_000)
    .default(10_000)
    .describe("time from a call's HEADERS to its complete message; then it is answered DEADLINE_EXCEEDED and reset. Keep it above Envoy's ext_authz timeout. Read at start"),
  idleConnectionTimeoutMs: z
    .int()
    .min(100)
    .max(86_400_000)
    .default(300_000)
    .describe('a connection with no call open for this long is closed with GOAWAY. Read at start'),
  handshakeTimeoutMs: z.int().min(100).max(60_000).default(5000).describe('time for a new connection to send the HTTP/2 preface and SETTINGS; then it is closed. Read at start'),
  pingAfterSilenceMs: z.int().min(100).max(3_600_000).default(2000).describe('a connection that has sent nothing for this long is sent a PING. Read at start'),
  pingTimeoutMs: z
    .int()
    .min(100)
    .max(60_000)
    .default(5000)
    .describe('a pinged connection that has sent nothing for this long after is closed (Envoy answers at once: this is room for a stalled peer). Read at start'),
};

export type ListenerLimits = { readonly [Key in keyof typeof listenerLimitsShape]: number };

/** The defaults, for a listener started without a configuration (tests, the bench's floor). */
export const DEFAULT_LISTENER_LIMITS: ListenerLimits = z.strictObject(listenerLimitsShape).parse({});
