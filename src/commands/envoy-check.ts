/**
 * `validate --envoy FILE` and `validate --envoy-admin URL`: reads an Envoy configuration from a file
 * or a running Envoy's /config_dump, runs the pure analysis (src/envoy-config/analyse.ts) against
 * the sidecar's configuration and prints the findings. The reading and printing live here; the
 * analysis never touches a file or the network.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import type { Config } from '../config/schema.js';
import { analyseEnvoyConfig, ENVOY_CHECKS } from '../envoy-config/analyse.js';
import type { EnvoyCheckId, EnvoyFinding } from '../envoy-config/analyse.js';
import { collectEnvoyConfig, EnvoyConfigError } from '../envoy-config/collect.js';
import { sidecarExpectations } from '../envoy-config/sidecar-expectations.js';
import { UsageError } from './command.js';
import type { CommandIO } from './command.js';

export type EnvoySource = { readonly kind: 'file'; readonly path: string } | { readonly kind: 'admin'; readonly url: string };

export interface EnvoyCheckOptions {
  readonly strict: boolean;
  readonly accept: ReadonlySet<EnvoyCheckId>;
}

const ADMIN_TIMEOUT_MS = 10_000;

/** `--accept` values, refused when they name no check (a typo must not silently accept nothing). */
export function acceptedChecks(values: readonly string[]): Set<EnvoyCheckId> {
  const known: readonly string[] = ENVOY_CHECKS;
  for (const value of values) {
    if (!known.includes(value)) throw new UsageError(`--accept ${value}: not a check; one of ${ENVOY_CHECKS.join(', ')}`);
  }
  return new Set(values as EnvoyCheckId[]);
}

class EnvoyReadError extends Error {}

function readEnvoyFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new EnvoyReadError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  // Envoy's YAML uses anchors and merge keys (envoy/envoy.yaml shares one ext_authz block).
  const documents = parseAllDocuments(text, { merge: true });
  const broken = documents.find((document) => document.errors.length > 0);
  if (broken !== undefined) throw new EnvoyReadError(`${path} is not YAML or JSON: ${broken.errors[0]?.message ?? ''}`);
  const values = documents.map((document) => document.toJS({ maxAliasCount: 1000 }) as unknown).filter((value) => value !== null && value !== undefined);
  if (values.length === 1) return values[0];
  // `egctl x translate --to xds` writes one config dump per Gateway: read them as one.
  const dumps = values.map((value) => (typeof value === 'object' && value !== null && 'configs' in value ? (value as { configs: unknown }).configs : undefined));
  if (values.length > 1 && dumps.every(Array.isArray)) return { configs: dumps.flat() };
  throw new EnvoyReadError(`${path} holds ${values.length} YAML documents; give one Envoy configuration (several config dumps are read as one)`);
}

/** The admin endpoint's /config_dump, EDS endpoints included (they say where a cluster's Checks go). */
async function readEnvoyAdmin(url: string): Promise<unknown> {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new UsageError(`--envoy-admin ${url}: not a URL; e.g. http://127.0.0.1:15000`);
  }
  const dump = new URL('config_dump', base.href.endsWith('/') ? base : new URL(`${base.href}/`));
  dump.searchParams.set('include_eds', '');
  let response: Response;
  try {
    response = await fetch(dump, { signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS) });
  } catch (error) {
    const cause = (error as Error & { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
    throw new EnvoyReadError(`cannot reach Envoy’s admin at ${base.origin} (${cause}); is the port forwarded? (docs/envoy.md#check-your-envoy)`);
  }
  if (!response.ok) throw new EnvoyReadError(`${dump.href} answered ${response.status}: is this Envoy’s admin port?`);
  try {
    return (await response.json()) as unknown;
  } catch {
    throw new EnvoyReadError(`${dump.href} did not answer JSON: is this Envoy’s admin port?`);
  }
}

function formatFinding(finding: EnvoyFinding, accepted: boolean): string {
  const label = accepted ? `accepted ${finding.severity}` : finding.severity;
  return `${label} [${finding.check}] ${finding.at}\n  ${finding.problem}\n  fix: ${finding.fix}`;
}

/** Runs the check and prints it; resolves with the exit code (0 clean, 1 problems). */
export async function runEnvoyCheck(source: EnvoySource, config: Config, configOrigin: string, options: EnvoyCheckOptions, io: CommandIO): Promise<number> {
  const label = source.kind === 'file' ? source.path : `${source.url} (/config_dump)`;
  let analysis;
  try {
    const value = source.kind === 'file' ? readEnvoyFile(source.path) : await readEnvoyAdmin(source.url);
    analysis = analyseEnvoyConfig(collectEnvoyConfig(value), sidecarExpectations(config));
  } catch (error) {
    if (!(error instanceof EnvoyReadError) && !(error instanceof EnvoyConfigError)) throw error;
    io.err(`${label}: ${error.message}`);
    return 1;
  }
  let errors = 0;
  let warnings = 0;
  // Errors first: what breaks every call should not scroll past under what merely costs something.
  const ordered = [...analysis.findings].sort((a, b) => Number(a.severity === 'warning') - Number(b.severity === 'warning'));
  for (const finding of ordered) {
    const accepted = finding.severity === 'error' && options.accept.has(finding.check);
    if (finding.severity === 'error' && !accepted) errors += 1;
    else warnings += 1;
    (finding.severity === 'error' && !accepted ? io.err : io.out)(formatFinding(finding, accepted));
  }
  for (const note of analysis.notes) io.out(`note: ${note}`);
  const failed = errors > 0 || (options.strict && warnings > 0);
  const summary = `${label}: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'} (${analysis.filters} ext_authz filter${analysis.filters === 1 ? '' : 's'}, ${analysis.routes} routes, checked against ${configOrigin})${options.strict && warnings > 0 && errors === 0 ? '; --strict counts warnings' : ''}`;
  (failed ? io.err : io.out)(summary);
  return failed ? 1 : 0;
}
