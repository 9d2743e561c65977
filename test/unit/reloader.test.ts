/**
 * The reload's branches, without I/O: which new configurations are swapped in, which are refused
 * (and counted and logged with their problems), and that a reload racing a drain never leaves
 * adapters open. The same rules under real load and real files are test/hardening/reload-storm and
 * reload-files, and test/integration/reload-section-guard.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import type { LoadedConfig } from '../../src/config/load.js';
import { Reloader } from '../../src/lifecycle/reloader.js';
import type { Fingerprint } from '../../src/lifecycle/named-files.js';
import type { ReloadSteps, ReloadTarget } from '../../src/lifecycle/reloader.js';
import type { SchemaConformance } from '../../src/lifecycle/schema-check.js';
import type { Logger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';

const ORIGIN = '/etc/jwtauth/jwtauth.yaml';
const base = {
  issuers: [{ name: 'corp', issuer: 'https://corp.test', audience: 'gw', kind: 'external', jwks: { file: 'jwks.json' } }],
  spicedb: { endpoint: '127.0.0.1:1', tls: false, presharedKey: { env: 'JWTAUTH_TEST_RELOADER_KEY' } },
};
const inbound = { rules: [{ name: 'public', match: { http: { path: '/v1/status' } }, auth: 'none' }] };
const outbound = { upstreams: [{ audience: 'vmcontroller' }] };
/** Outbound needs the pod's identity and a token source beside it. */
const mint = { service: { name: 'gwadmin' }, tokens: { source: { kind: 'mint', issuer: 'https://gw.test', keys: [{ file: 'k.pem' }] } } };
const config = (input: { inbound?: object; outbound?: object; reload?: object }): LoadedConfig =>
  validateConfig({ ...base, ...(input.outbound ? mint : {}), ...input }, ORIGIN, '/etc/jwtauth');
const CONFORMS: SchemaConformance = { state: 'conforms', origin: 'spicedb:50051' };

/** A generation is stood for by the configuration it was built from. */
class Serving implements ReloadTarget<LoadedConfig> {
  swaps: Array<{ hash: string; known: SchemaConformance }> = [];
  constructor(public loaded: LoadedConfig) {}
  get current(): LoadedConfig {
    return this.loaded;
  }
  /** These configurations name no file that exists: their hash alone is what a reload compares. */
  get files(): Fingerprint {
    return { id: this.loaded.hash, files: [] };
  }
  swap(next: LoadedConfig, known: SchemaConformance): void {
    this.loaded = next;
    this.swaps.push({ hash: next.hash, known });
  }
}

function harness(running: LoadedConfig, steps: Partial<ReloadSteps<LoadedConfig>> = {}) {
  let onDisk: LoadedConfig | Error = running;
  const logged: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  const log = (level: string) => (fields: Record<string, unknown>, message: string) => logged.push({ level, fields, message });
  const logger = { error: log('error'), info: log('info') } as unknown as Logger;
  const metrics = new Metrics({ processMetrics: false });
  const discarded: string[] = [];
  let swappedCalls = 0;
  const target = new Serving(running);
  const reloader = new Reloader<LoadedConfig>(
    target,
    {
      read: () => {
        if (onDisk instanceof Error) throw onDisk;
        return onDisk;
      },
      fingerprint: (next) => ({ id: next.hash, files: [] }),
      vet: () => Promise.resolve(CONFORMS),
      open: (next) => Promise.resolve(next),
      discard: (built) => {
        discarded.push(built.hash);
        return Promise.resolve();
      },
      ...steps,
    },
    { metrics, logger, swapped: () => swappedCalls++ },
  );
  const reloads = async (result: 'success' | 'failure'): Promise<number> => (await metrics.registry.getSingleMetric('jwtauth_config_reloads_total')?.get())?.values.find((v) => v.labels.result === result)?.value ?? 0;
  return {
    reloader,
    target,
    logged,
    discarded,
    reloads,
    swapped: () => swappedCalls,
    write: (next: LoadedConfig | Error) => (onDisk = next),
  };
}

describe('reload', () => {
  it('swaps in a changed configuration with the conformance the vetting found, and counts it', async () => {
    const h = harness(config({ inbound }));
    const next = config({ inbound, outbound });
    h.write(next);
    await h.reloader.reload('file changed');
    expect(h.target.swaps).toEqual([{ hash: next.hash, known: CONFORMS }]);
    expect(await h.reloads('success')).toBe(1);
    expect(h.swapped()).toBe(1);
  });

  it('does nothing when the file says what is already serving', async () => {
    const h = harness(config({ inbound }));
    await h.reloader.reload('SIGHUP');
    expect(h.target.swaps).toEqual([]);
    expect(await h.reloads('success')).toBe(0);
    expect(await h.reloads('failure')).toBe(0);
  });

  it('keeps serving, and counts and logs the problems, when the new file does not load', async () => {
    const h = harness(config({ inbound }));
    h.write(new ConfigError(ORIGIN, ['spicedb.endpoint: expected host:port']));
    await h.reloader.reload('file changed');
    expect(h.target.swaps).toEqual([]);
    expect(await h.reloads('failure')).toBe(1);
    expect(h.logged).toContainEqual(expect.objectContaining({ level: 'error', fields: { why: 'file changed', problems: ['spicedb.endpoint: expected host:port'] } }));
  });

  it('refuses a file that drops a serving section, unless that file allows it', async () => {
    const h = harness(config({ inbound, outbound }));
    h.write(config({ outbound }));
    await h.reloader.reload('file changed');
    expect(h.target.swaps).toEqual([]);
    expect(await h.reloads('failure')).toBe(1);
    const allowed = config({ outbound, reload: { allowSectionRemoval: true } });
    h.write(allowed);
    await h.reloader.reload('file changed');
    expect(h.target.swaps.map((s) => s.hash)).toEqual([allowed.hash]);
  });

  it('refuses what the vetting refuses (preflight, a schema that contradicts the rules) and builds nothing', async () => {
    let opened = 0;
    const h = harness(config({ inbound }), {
      vet: () => Promise.reject(new ConfigError(ORIGIN, ['inbound.rules[0]: no permission view on cloud'])),
      open: (next) => {
        opened++;
        return Promise.resolve(next);
      },
    });
    h.write(config({ inbound, outbound }));
    await h.reloader.reload('file changed');
    expect(opened).toBe(0);
    expect(h.target.swaps).toEqual([]);
    expect(await h.reloads('failure')).toBe(1);
    expect(h.logged.find((entry) => entry.level === 'error')?.fields.problems).toEqual(['inbound.rules[0]: no permission view on cloud']);
  });

  it('keeps serving when the new adapters fail to build, with the error as the problem', async () => {
    const h = harness(config({ inbound }), { open: () => Promise.reject(new Error('cannot read signing key: ENOENT')) });
    h.write(config({ inbound, outbound }));
    await h.reloader.reload('file changed');
    expect(h.target.swaps).toEqual([]);
    expect(h.logged.find((entry) => entry.level === 'error')?.fields.problems).toEqual(['cannot read signing key: ENOENT']);
  });

  it('discards a generation finished after the drain began, and swaps nothing', async () => {
    let finishBuild: (built: LoadedConfig) => void = () => undefined;
    const h = harness(config({ inbound }), { open: () => new Promise((resolve) => (finishBuild = resolve)) });
    const next = config({ inbound, outbound });
    h.write(next);
    const reload = h.reloader.reload('file changed');
    await new Promise((resolve) => setImmediate(resolve));
    h.reloader.stop();
    finishBuild(next);
    await reload;
    expect(h.target.swaps).toEqual([]);
    expect(h.discarded).toEqual([next.hash]);
  });

  it('applies no reload queued after a stop', async () => {
    const h = harness(config({ inbound }));
    h.write(config({ inbound, outbound }));
    h.reloader.stop();
    await h.reloader.reload('SIGHUP');
    expect(h.target.swaps).toEqual([]);
  });

  it('runs one reload at a time, in order, so the last write wins', async () => {
    const order: string[] = [];
    const h = harness(config({ inbound }), {
      open: async (next) => {
        order.push(`open ${next.hash}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        order.push(`built ${next.hash}`);
        return next;
      },
    });
    const first = config({ inbound, outbound });
    h.write(first);
    const a = h.reloader.reload('edit 1');
    const b = h.reloader.reload('SIGHUP for edit 1');
    await Promise.all([a, b]);
    expect(order).toEqual([`open ${first.hash}`, `built ${first.hash}`]);
    expect(h.target.swaps.map((s) => s.hash)).toEqual([first.hash]);
  });
});
