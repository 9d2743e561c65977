/**
 * envoy/envoy.yaml with one precise change applied in text (each replacement must match exactly
 * once, so a drifted file fails loudly instead of silently testing something else). Used to show
 * that a change proposed to the owner of envoy.yaml does what it claims.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ENVOY_YAML = new URL('../../../envoy/envoy.yaml', import.meta.url).pathname;

export function variantOfEnvoyYaml(replacements: ReadonlyArray<readonly [from: string, to: string]>): string {
  let text = readFileSync(ENVOY_YAML, 'utf8');
  for (const [from, to] of replacements) {
    const at = text.indexOf(from);
    if (at < 0 || text.indexOf(from, at + 1) >= 0) throw new Error(`envoy.yaml: expected exactly one ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  const file = join(mkdtempSync(join(tmpdir(), 'jwtauth-envoy-variant-')), 'envoy.yaml');
  writeFileSync(file, text);
  return file;
}

/**
 * The change proposed for riding over a sidecar restart (docs/security.md, "Sidecar restart"):
 *  - the jwtauth_sidecar cluster allows many concurrent retries (Envoy's default circuit breaker
 *    allows 3 cluster-wide; under load every other retry overflows and fails at once);
 *  - the ext_authz call may retry for as long as a restart gap lasts: the grpc_service timeout
 *    bounds the whole call, retries included, so 0.5 s cannot cover a ~1.3 s gap.
 */
export const RESTART_PROOF_CHANGES: ReadonlyArray<readonly [string, string]> = [
  ['                        timeout: 0.5s\n', '                        timeout: 3s\n'],
  [
    '                          retry_back_off: { base_interval: 0.05s, max_interval: 0.5s }\n                          num_retries: 3\n',
    '                          retry_back_off: { base_interval: 0.025s, max_interval: 0.25s }\n                          num_retries: 20\n',
  ],
  [
    '    - name: jwtauth_sidecar\n      type: STATIC\n      connect_timeout: 0.25s\n',
    '    - name: jwtauth_sidecar\n      type: STATIC\n      connect_timeout: 0.25s\n      circuit_breakers:\n        thresholds:\n          - { priority: DEFAULT, max_retries: 1024 }\n',
  ],
];
