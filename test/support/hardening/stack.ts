/**
 * The whole pod for hardening tests: a real SpiceDB (optionally behind a StallProxy), two real
 * JWKS endpoints (an external user issuer, ES256, and an internal mesh issuer, RS256), the built
 * sidecar as its own process, Envoy running envoy/envoy.yaml, and echo upstreams for the app
 * (ingress) and for vmcontroller (egress).
 */
import { request as httpRequest } from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { startEchoUpstream } from '../../../dev/echo-upstream.js';
import type { EchoUpstream } from '../../../dev/echo-upstream.js';
import { startEnvoy } from '../../../dev/envoy.js';
import type { RunningEnvoy } from '../../../dev/envoy.js';
import { JwksServer, jwks, makeSigningKey } from '../../../dev/jwt-fixtures.js';
import type { SigningKey } from '../../../dev/jwt-fixtures.js';
import { startSidecar } from '../sidecar.js';
import type { RunningSidecar } from '../sidecar.js';
import { startSpicedb } from '../../../dev/spicedb.js';
import type { SpicedbDatastore, SpicedbServer } from '../../../dev/spicedb.js';
import { relationships, SCHEMA, sidecarConfig } from '../../../dev/hardening/fixtures.js';
import { StallProxy } from './stall-proxy.js';

export interface StackOptions {
  readonly overrides?: Readonly<Record<string, Record<string, unknown>>>;
  /** Put a StallProxy between the sidecar and SpiceDB. */
  readonly stallProxy?: boolean;
  readonly clouds?: number;
  /** SpiceDB's datastore; default memory. */
  readonly datastore?: SpicedbDatastore;
}

export interface Stack {
  readonly spicedb: SpicedbServer;
  readonly proxy: StallProxy | undefined;
  readonly externalKey: SigningKey;
  readonly internalKey: SigningKey;
  readonly externalJwks: JwksServer;
  readonly internalJwks: JwksServer;
  readonly app: EchoUpstream;
  readonly vmcontroller: EchoUpstream;
  readonly sidecar: RunningSidecar;
  readonly envoy: RunningEnvoy;
  readonly config: Record<string, unknown>;
  close(): Promise<void>;
}

let keyEnvCounter = 0;

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const closers: Array<() => Promise<unknown> | unknown> = [];
  const close = async (): Promise<void> => {
    for (const fn of closers.reverse()) {
      try {
        await fn();
      } catch {
        // best effort
      }
    }
  };
  try {
    const spicedb = await startSpicedb({ schema: SCHEMA, relationships: relationships(options.clouds ?? 64), datastore: options.datastore });
    closers.push(() => spicedb.stop());
    let proxy: StallProxy | undefined;
    if (options.stallProxy) {
      proxy = await new StallProxy(spicedb.port).start();
      closers.push(() => proxy?.close());
    }
    const externalKey = await makeSigningKey('ES256', 'ext-1');
    const internalKey = await makeSigningKey('RS256', 'mesh-1');
    const externalJwks = await new JwksServer().start(jwks(externalKey));
    const internalJwks = await new JwksServer().start(jwks(internalKey));
    closers.push(() => externalJwks.stop(), () => internalJwks.stop());
    const app = await startEchoUpstream();
    const vmcontroller = await startEchoUpstream();
    closers.push(() => app.close(), () => vmcontroller.close());

    const keyEnv = `HARDENING_SPICEDB_KEY_${process.pid}_${++keyEnvCounter}`;
    const config = sidecarConfig({
      spicedbEndpoint: proxy ? proxy.endpoint : spicedb.endpoint,
      spicedbKeyEnv: keyEnv,
      externalJwksUrl: externalJwks.url,
      internalJwksUrl: internalJwks.url,
      ...(options.overrides ? { overrides: options.overrides } : {}),
    });
    const sidecar = await startSidecar(config, { env: { [keyEnv]: spicedb.presharedKey } });
    closers.push(() => sidecar.stop('SIGKILL'));
    const envoy = await startEnvoy({ sidecar: sidecar.grpcPort, app: app.port, vmcontroller: vmcontroller.port });
    closers.push(() => envoy.stop());
    return { spicedb, proxy, externalKey, internalKey, externalJwks, internalJwks, app, vmcontroller, sidecar, envoy, config, close };
  } catch (error) {
    await close();
    throw error;
  }
}

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/**
 * One HTTP/1.1 request with node:http, which (unlike fetch) sends an array value as repeated
 * header lines: two Authorization headers really arrive as two.
 */
export function http1(port: number, path: string, headers: OutgoingHttpHeaders = {}, method = 'GET'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

/** The x-load-id values the echo upstream received. */
export function receivedIds(upstream: EchoUpstream): Set<string> {
  const ids = new Set<string>();
  for (const r of upstream.received) {
    const id = r.headers['x-load-id'];
    if (typeof id === 'string') ids.add(id);
  }
  return ids;
}
