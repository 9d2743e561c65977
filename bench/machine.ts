/** The machine and tool versions a bench run records beside its figures. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { TOOLS_BIN } from '../dev/processes.js';
import type { BenchResults } from './report.js';

/** The version a tool prints, by `pattern`'s first group; else its first line of output. */
export function versionOf(command: string, versionArgs: string[], pattern: RegExp): string {
  const out = spawnSync(command, versionArgs, { encoding: 'utf8' });
  const text = `${out.stdout ?? ''}${out.stderr ?? ''}`;
  return pattern.exec(text)?.[1] ?? text.trim().split('\n')[0] ?? 'unknown';
}

export function machineDescription(): BenchResults['machine'] {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    host: hostname(),
    cpuModel: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    ramMb: Math.round(totalmem() / 2 ** 20),
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    node: process.version,
    envoy: versionOf(join(TOOLS_BIN, 'envoy'), ['--version'], /version: \S+?\/([\d.]+)\//),
    opaEnvoy: versionOf(join(TOOLS_BIN, 'opa-envoy-plugin'), ['version'], /Version: (\S+)/),
    spicedb: versionOf(join(TOOLS_BIN, 'spicedb'), ['version'], /(v[\d.]+)/),
    h2load: versionOf('h2load', ['--version'], /nghttp2\/([\d.]+)/),
    vegeta: versionOf('go', ['version', '-m', join(TOOLS_BIN, 'vegeta')], /tsenart\/vegeta\/v12\s+(v\S+)/),
    ghz: versionOf(join(TOOLS_BIN, 'ghz'), ['--version'], /(\S+)/),
  };
}
