/**
 * `jwtauth-sidecar check`: explains one request offline, the way `opa eval` does for OPA. It runs
 * the same decision pipeline as `serve` (same config, same SpiceDB, same keys), on a request
 * described by flags instead of an Envoy CheckRequest, and prints every step.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import type { LoadedConfig } from '../config/load.js';
import type { Decision } from '../core/decision.js';
import type { RequestContext } from '../core/request-context.js';
import { parseCheckRequest } from '../envoy/request-context-parser.js';
import type { CheckRequest__Output } from '../generated/envoy/service/auth/v3/CheckRequest.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { newDecisionId } from '../observability/tracing-ids.js';
import { frameMessage } from '../body/grpc-frame.js';
import { fromProto3Json, ProtoJsonError } from '../body/proto-json.js';
import { loadMessageTypes } from '../rules/body-bindings.js';
import { openDecisionRuntime } from '../lifecycle/runtime.js';
import { UsageError, loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';

const GRPC_METHOD = /^\/?([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/;

/** Builds the CheckRequest Envoy would send, so `check` goes through the same parser as `serve`. */
function checkRequestFromFlags(flags: {
  direction: string;
  method?: string;
  path?: string;
  grpc?: string;
  authority?: string;
  headers: readonly string[];
  token?: string;
  audience?: string;
  extensions: readonly string[];
  /** The request body exactly as Envoy would pass it with pack_as_bytes. */
  body?: Uint8Array;
}): CheckRequest__Output {
  const headers: { key: string; value: string }[] = [];
  for (const header of flags.headers) {
    const at = header.indexOf(':');
    if (at <= 0) throw new UsageError(`--header: got ${JSON.stringify(header)}; expected "name: value"`);
    headers.push({ key: header.slice(0, at).trim().toLowerCase(), value: header.slice(at + 1).trim() });
  }
  if (flags.token) headers.push({ key: 'authorization', value: `Bearer ${flags.token}` });
  let method = (flags.method ?? 'GET').toUpperCase();
  let path = flags.path ?? '/';
  if (flags.grpc) {
    const match = GRPC_METHOD.exec(flags.grpc);
    if (!match) throw new UsageError(`--grpc: got ${JSON.stringify(flags.grpc)}; expected package.Service/Method`);
    method = 'POST';
    path = `/${match[1]}/${match[2]}`;
    headers.push({ key: 'content-type', value: 'application/grpc' });
  }
  const contextExtensions: Record<string, string> = { direction: flags.direction };
  if (flags.audience) contextExtensions.audience = flags.audience;
  for (const extension of flags.extensions) {
    const at = extension.indexOf('=');
    if (at <= 0) throw new UsageError(`--ext: got ${JSON.stringify(extension)}; expected key=value`);
    contextExtensions[extension.slice(0, at)] = extension.slice(at + 1);
  }
  return {
    attributes: {
      request: {
        http: {
          method,
          path,
          host: flags.authority ?? 'localhost',
          header_map: { headers: headers.map((h) => ({ ...h, raw_value: Buffer.from(h.value, 'latin1') })) },
          ...(flags.body ? { raw_body: Buffer.from(flags.body) } : {}),
        },
      },
      context_extensions: contextExtensions,
    },
  } as CheckRequest__Output;
}

function explain(request: RequestContext | undefined, decision: Decision): string {
  const f = decision.facts;
  const lines: string[] = [];
  if (request) {
    const what = request.grpc ? `gRPC ${request.grpc.service}/${request.grpc.method}` : `${request.method} ${request.path}`;
    lines.push(`request:   ${request.direction} ${what} (authority ${request.authority || '-'})`);
  }
  lines.push(`rule:      ${f.rule ?? '(none matched)'}${f.dryRun ? ' [dry-run]' : ''}`);
  const token = f.subject
    ? `${f.tokenKind ?? 'token'} ${f.subjectType ?? '?'}:${f.subject}${f.issuer ? ` from ${f.issuer}` : ''}${f.audience ? `, audience ${f.audience}` : ''}`
    : f.tokenKind === 'none' || f.tokenKind === undefined
      ? 'none accepted'
      : f.tokenKind;
  lines.push(`token:     ${token}`);
  if (f.body) lines.push(`message:   ${Object.entries(f.body).map(([path, value]) => `${path}=${JSON.stringify(value)}`).join(', ')}`);
  if (f.conditions && f.conditions.length > 0) {
    lines.push('conditions:');
    for (const c of f.conditions) lines.push(`  ${c.condition} -> ${c.met ? 'met' : 'not met'}`);
  }
  if (f.checks && f.checks.length > 0) {
    lines.push('checks:');
    for (const c of f.checks) lines.push(`  ${c.resource}#${c.permission}@${c.subject} -> ${c.result}${c.cached ? ' (cached)' : ''}`);
  } else {
    lines.push('checks:    none');
  }
  const status = decision.kind === 'deny' ? ` ${decision.status}` : '';
  lines.push(`decision:  ${decision.kind.toUpperCase()}${status} ${decision.reason}${f.wouldDeny ? ` (would deny: ${f.wouldDeny})` : ''}`);
  if (f.detail) lines.push(`detail:    ${f.detail}`);
  if (decision.kind === 'allow') {
    for (const [name, value] of decision.setHeaders) lines.push(`  set    ${name}: ${name === 'authorization' ? '[token]' : value}`);
    if (decision.removeHeaders.length > 0) lines.push(`  remove ${decision.removeHeaders.join(', ')}`);
  }
  return lines.join('\n');
}

export const checkCommand: Command = {
  name: 'check',
  summary: 'explain offline how a request would be decided (matched rule, token, SpiceDB checks)',
  help: `Usage: jwtauth-sidecar check [--config FILE] [--direction inbound|outbound]
         (--method M --path P | --grpc pkg.Service/Method) [--token JWT | --token-file F]
         [--header "name: value"]... [--authority HOST] [--audience NAME] [--ext key=value]...
         [--message JSON | --body TEXT | --body-file FILE]

Runs the request through the same decision pipeline as \`serve\` (same rules, keys and SpiceDB)
and prints the matched rule, the token verdict, each SpiceDB check with its answer, and the
decision with its reason. Nothing is sent to the app. Example:

  jwtauth-sidecar check --method POST --path /v1/clouds/cl0/namespaces \\
    --token "$(jwtauth-sidecar token --audience gwadmin)"

For rules that read the request message ({body.…}):
  --message JSON    a gRPC request message as JSON, encoded with the configured descriptors
                    (body.protoFiles or body.descriptorSet) into the method's request type
  --body TEXT       the raw body, e.g. a JSON document for an HTTP route
  --body-file FILE  the raw body from a file, e.g. a length-prefixed gRPC message
The message fields the rule used are shown on the "message:" line.

Exit codes: 0 allow, 1 deny, 2 usage or configuration error.`,
  async run(args, io) {
    const { values } = parseOptions(args, {
      config: { type: 'string', short: 'c' },
      direction: { type: 'string', default: 'inbound' },
      method: { type: 'string', short: 'X' },
      path: { type: 'string' },
      grpc: { type: 'string' },
      authority: { type: 'string' },
      header: { type: 'string', short: 'H', multiple: true, default: [] },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      audience: { type: 'string' },
      ext: { type: 'string', multiple: true, default: [] },
      message: { type: 'string' },
      body: { type: 'string' },
      'body-file': { type: 'string' },
    });
    const bodies = [values.message, values.body, values['body-file']].filter((v) => v !== undefined);
    if (bodies.length > 1) throw new UsageError('give at most one of --message, --body and --body-file');
    if (values.message !== undefined && !values.grpc) throw new UsageError('--message is a gRPC request message: give --grpc too (for HTTP routes use --body)');
    if (!values.path && !values.grpc) throw new UsageError('give --path (HTTP) or --grpc (gRPC method)');
    const token = values.token ?? (values['token-file'] ? readFileSync(values['token-file'], 'utf8').trim() : undefined);
    const loaded = loadConfigOrReport(values.config, io);
    if (!loaded) return 2;
    let body: Uint8Array | undefined;
    if (values.message !== undefined) body = encodeMessage(loaded, values.grpc ?? '', values.message);
    else if (values.body !== undefined) body = Buffer.from(values.body, 'utf8');
    else if (values['body-file'] !== undefined) body = readFileSync(values['body-file']);
    const check = checkRequestFromFlags({
      direction: values.direction,
      ...(values.method ? { method: values.method } : {}),
      ...(values.path ? { path: values.path } : {}),
      ...(values.grpc ? { grpc: values.grpc } : {}),
      ...(values.authority ? { authority: values.authority } : {}),
      headers: values.header,
      ...(token ? { token } : {}),
      ...(values.audience ? { audience: values.audience } : {}),
      extensions: values.ext,
      ...(body ? { body } : {}),
    });
    const logger = createLogger({ level: 'error' });
    let runtime;
    try {
      runtime = await openDecisionRuntime(loaded, new Metrics({ processMetrics: false }), logger, io.env);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      io.err(error.message);
      return 2;
    }
    try {
      const deadline = Date.now() + 5_000;
      // Also for an issuer that is not required: its tokens would get keys_unavailable, which the warning explains.
      while (runtime.notReady().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
      const notReady = runtime.notReady();
      if (notReady.length > 0) io.err(`warning: not ready after 5 s: ${notReady.join('; ')}; the decision below reflects that`);
      const parsed = parseCheckRequest(check, runtime.pipeline.limits);
      if (!parsed.ok) {
        io.out(`decision:  DENY ${parsed.reason}\ndetail:    ${parsed.detail ?? '-'}\ndecision id: ${newDecisionId()}`);
        return 1;
      }
      const decision = await runtime.pipeline.authorizer.decide(parsed.value);
      // Offline, nothing is traced: the id is only what a served answer would carry in its place.
      io.out(`${explain(parsed.value, decision)}\ndecision id: ${newDecisionId()}`);
      return decision.kind === 'allow' ? 0 : 1;
    } finally {
      await runtime.close();
    }
  },
};

/** A JSON message → the length-prefixed gRPC frame a client would send for `method`. */
function encodeMessage(loaded: LoadedConfig, method: string, json: string): Uint8Array {
  const match = GRPC_METHOD.exec(method);
  if (!match) throw new UsageError(`--grpc: got ${JSON.stringify(method)}; expected package.Service/Method`);
  const root = loadMessageTypes(loaded.config.body, loaded.baseDir).root;
  if (root === undefined) throw new UsageError('--message needs body.protoFiles or body.descriptorSet in the configuration');
  let object: unknown;
  try {
    object = JSON.parse(json);
  } catch (error) {
    throw new UsageError(`--message: not JSON (${(error as Error).message})`);
  }
  if (object === null || typeof object !== 'object' || Array.isArray(object)) throw new UsageError('--message: expected a JSON object');
  let service;
  try {
    service = root.lookupService(match[1] as string);
  } catch {
    throw new UsageError(`--grpc: no service ${match[1]} in the configured descriptors`);
  }
  const rpc = service.methods[match[2] as string];
  if (rpc === undefined) throw new UsageError(`--grpc: ${match[1]} has no method ${match[2]}`);
  const type = root.lookupType(rpc.requestType);
  let message: Record<string, unknown>;
  try {
    message = fromProto3Json(type, object, '--message');
  } catch (error) {
    if (error instanceof ProtoJsonError) throw new UsageError(error.message);
    throw error;
  }
  const problem = type.verify(message);
  if (problem) throw new UsageError(`--message: ${problem}`);
  return frameMessage(type.encode(type.fromObject(message)).finish());
}
