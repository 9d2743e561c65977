import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, VERSION } from '../../src/commands/dispatch.js';
import { COMMANDS } from '../../src/commands/index.js';

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(argv, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`), env: {} });
  return { code, out, err };
}

describe('jwtauth-sidecar CLI', () => {
  it('prints the package version', async () => {
    expect(await run('--version')).toEqual({ code: 0, out: `${VERSION}\n`, err: '' });
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('has --help on every command', async () => {
    for (const command of COMMANDS) {
      const result = await run(command.name, '--help');
      expect(result.code).toBe(0);
      expect(result.out).toContain(`Usage: jwtauth-sidecar ${command.name}`);
    }
  });

  it('refuses an unknown command or option with exit code 2', async () => {
    expect((await run('frobnicate')).code).toBe(2);
    const bad = await run('validate', '--colour', 'blue');
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--colour/);
  });

  it('validate: exit 0 for a valid file, 1 with every problem for a bad one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'jwtauth-cli-'));
    writeFileSync(join(dir, 'good.yaml'), 'dryRun: true\n');
    writeFileSync(join(dir, 'bad.yaml'), 'server: { grpcAddress: nowhere }\nlog: { level: loud }\n');
    const good = await run('validate', '--config', join(dir, 'good.yaml'));
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/valid \(config hash [0-9a-f]{12}\)/);
    const bad = await run('validate', '--config', join(dir, 'bad.yaml'));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/server\.grpcAddress: got "nowhere"/);
    expect(bad.err).toMatch(/log\.level: got "loud"/);
  });

  it('subject-id: encodes a Teleport user id for SpiceDB and decodes it back', async () => {
    const encoded = await run('subject-id', 'cloud-teleport-aleksander.rykalin', 'plain_user');
    expect(encoded.code).toBe(0);
    const [teleport, plain] = encoded.out.trim().split('\n');
    expect(teleport).toMatch(/^[a-zA-Z0-9/_|\-=+]+$/);
    expect(plain).toBe('plain_user');
    const decoded = await run('subject-id', '--decode', teleport ?? '');
    expect(decoded.out.trim()).toBe('cloud-teleport-aleksander.rykalin');
  });
});
