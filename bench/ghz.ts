/**
 * ghz straight at an ext_authz server (no Envoy): one CheckRequest shaped like the one Envoy sends
 * with the deployed filter settings (encode_raw_headers: header_map with raw_value bytes). It
 * isolates the authorizer's per-Check cost, which is what the hot-path before/after compares.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TOOLS_BIN } from '../dev/processes.js';

export interface GhzResult {
  readonly rps: number;
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly okCount: number;
}

interface GhzJson {
  readonly count: number;
  readonly rps: number;
  readonly latencyDistribution: ReadonlyArray<{ readonly percentage: number; readonly latency: number }> | null;
  readonly statusCodeDistribution: Readonly<Record<string, number>> | null;
}

/** A request as Envoy describes it in a Check. */
export interface CheckedRequest {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The buffered body, as `pack_as_bytes` sends it (raw_body); absent where the route does not buffer. */
  readonly rawBody?: Uint8Array;
}

/** The CheckRequest, in protojson, Envoy would send for this request. */
export function checkRequestJson(request: CheckedRequest, contextExtensions: Readonly<Record<string, string>>): string {
  const { method, path } = request;
  const all: Record<string, string> = { ':authority': 'bench.local', ':path': path, ':method': method, ':scheme': 'http', 'x-request-id': 'bench', ...request.headers };
  return JSON.stringify({
    attributes: {
      contextExtensions,
      request: {
        http: {
          id: '1',
          method,
          path,
          host: 'bench.local',
          scheme: 'http',
          protocol: 'HTTP/2',
          headerMap: { headers: Object.entries(all).map(([key, value]) => ({ key, rawValue: Buffer.from(value).toString('base64') })) },
          ...(request.rawBody === undefined ? {} : { rawBody: Buffer.from(request.rawBody).toString('base64') }),
        },
      },
    },
  });
}

/** `connections`: HTTP/2 connections ghz spreads its calls over (default 1, as one Envoy thread). */
export async function runGhz(port: number, data: string, options: { total: number; concurrency: number; connections?: number; cpus?: string }): Promise<GhzResult> {
  const deps = join(dirname(createRequire(import.meta.url).resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const args = [
    '--insecure', '--proto', 'envoy/service/auth/v3/external_auth.proto',
    '-i', ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)).join(','),
    '--call', 'envoy.service.auth.v3.Authorization.Check',
    '-d', data, '-n', String(options.total), '-c', String(options.concurrency), '--connections', String(options.connections ?? 1),
    '--skipFirst', String(Math.min(1000, Math.floor(options.total / 10))), '-O', 'json',
    `127.0.0.1:${port}`,
  ];
  const command = options.cpus ? ['taskset', '-c', options.cpus, join(TOOLS_BIN, 'ghz'), ...args] : [join(TOOLS_BIN, 'ghz'), ...args];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(command[0] as string, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    child.once('exit', (exit) => resolve({ code: exit, stdout: out, stderr: err }));
  });
  if (code !== 0) throw new Error(`ghz failed (${code}): ${stderr.slice(-1000)}${stdout.slice(-500)}`);
  const json = JSON.parse(stdout) as GhzJson;
  const at = (p: number): number => (json.latencyDistribution?.find((d) => d.percentage === p)?.latency ?? Number.NaN) / 1e6;
  return { rps: json.rps, count: json.count, p50: at(50), p90: at(90), p99: at(99), okCount: json.statusCodeDistribution?.OK ?? 0 };
}
