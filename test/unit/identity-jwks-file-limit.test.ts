/**
 * The 1 MiB bound on a key set, at its edge: a JWKS file of exactly 1 MiB is read, one character
 * more is refused (and, for a file, the sidecar does not start). The bound keeps a runaway or
 * hostile key set from being parsed at all.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { issuersSchema } from '../../src/identity/config.js';
import { createTokenVerifier } from '../../src/identity/token-verifier.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { jwks, makeSigningKey } from '../../dev/jwt-fixtures.js';

const MIB = 1 << 20;

describe('a JWKS file at the 1 MiB bound', () => {
  it('is read at exactly 1 MiB and refused one character over, naming the issuer', async () => {
    const key = await makeSigningKey('ES256');
    const dir = mkdtempSync(join(tmpdir(), 'jwks-limit-'));
    const document = JSON.stringify(jwks(key));
    // Trailing whitespace is still JSON, so only the size differs between the two files.
    writeFileSync(join(dir, 'exact.json'), document.padEnd(MIB, ' '));
    writeFileSync(join(dir, 'over.json'), document.padEnd(MIB + 1, ' '));
    const start = (file: string) =>
      createTokenVerifier(
        issuersSchema.parse([{ name: 'auth', issuer: 'https://auth.example', audience: 'gwadmin', kind: 'external', subjectType: 'user', jwks: { file }, algorithms: ['ES256'] }]),
        { metrics: new Metrics({ processMetrics: false }), logger: createLogger({ level: 'silent' }), baseDir: dir },
      );
    const exact = await start('exact.json');
    expect(exact.ready()).toBe(true);
    await exact.close();
    await expect(start('over.json')).rejects.toThrow('issuer auth: JWKS larger than 1 MiB');
  });
});
