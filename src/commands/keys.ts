/**
 * `jwtauth-sidecar keys generate|rotate`: signing keys for the mint token source. Rotation follows
 * the model in docs/outbound.md: the new key is added with a `notBefore` far enough ahead that
 * verifiers fetch it before it signs; the old key stays until its last token has expired.
 */
import { existsSync, renameSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { parseDocument } from 'yaml';
import { ConfigError, loadConfigFile, parseConfigText } from '../config/load.js';
import { SIGNING_ALGORITHMS } from '../tokens/config.js';
import type { SigningAlgorithm } from '../tokens/config.js';
import { generatePrivateKey, toSigningKey } from '../tokens/signing-keys.js';
import { UsageError, parseOptions } from './command.js';
import type { Command, CommandIO } from './command.js';

function algorithmOf(value: string | undefined, fallback: SigningAlgorithm): SigningAlgorithm {
  if (value === undefined) return fallback;
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(value)) throw new UsageError(`--algorithm: got ${value}; expected one of ${SIGNING_ALGORITHMS.join(', ')}`);
  return value as SigningAlgorithm;
}

/** Writes a new PKCS#8 private key readable by its owner only; never overwrites. Returns the kid. */
async function writeNewKey(path: string, alg: SigningAlgorithm): Promise<{ kid: string; publicJwk: object }> {
  if (existsSync(path)) throw new UsageError(`${path} exists; refusing to overwrite a key`);
  const privateKey = generatePrivateKey(alg);
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  const key = await toSigningKey(privateKey, alg, Number.NEGATIVE_INFINITY, path);
  return { kid: key.kid, publicJwk: key.publicJwk };
}

async function generate(args: readonly string[], io: CommandIO): Promise<number> {
  const { values } = parseOptions(args, { out: { type: 'string', short: 'o' }, algorithm: { type: 'string' } });
  if (!values.out) throw new UsageError('keys generate: --out FILE is required');
  const { kid, publicJwk } = await writeNewKey(values.out, algorithmOf(values.algorithm, 'ES256'));
  io.out(JSON.stringify({ file: values.out, kid, publicJwk }, null, 2));
  return 0;
}

async function rotate(args: readonly string[], io: CommandIO): Promise<number> {
  const { values } = parseOptions(args, { config: { type: 'string', short: 'c' }, out: { type: 'string', short: 'o' }, algorithm: { type: 'string' } });
  const configPath = values.config ?? io.env.JWTAUTH_CONFIG;
  if (!configPath) throw new UsageError('keys rotate: --config FILE is required');
  let loaded;
  try {
    loaded = loadConfigFile(configPath);
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(error.message);
      return 1;
    }
    throw error;
  }
  const source = loaded.config.tokens?.source;
  if (source?.kind !== 'mint') {
    io.err('keys rotate: tokens.source.kind must be mint; the exchange source has no keys of its own');
    return 1;
  }
  if (source.keys.length === 0) {
    // Nothing configured would sign until the new key's notBefore: start from a key that signs now.
    io.err('keys rotate: tokens.source.keys is empty (the development key is in use); create the first key with `keys generate` and list it without notBefore');
    return 1;
  }
  const alg = algorithmOf(values.algorithm, source.algorithm);
  const notBefore = new Date(Date.now() + source.publishBeforeUseSeconds * 1000);
  const keyPath = values.out ?? join(loaded.baseDir, `signing-key-${notBefore.toISOString().slice(0, 19).replace(/[:T]/g, '-')}.pem`);
  const { kid } = await writeNewKey(keyPath, alg);

  // Edit the document, not a re-serialised object, so the operator's comments and layout survive.
  const text = readFileSync(loaded.origin, 'utf8');
  const document = parseDocument(text);
  const entry: Record<string, string> = { file: relative(dirname(loaded.origin), keyPath), notBefore: notBefore.toISOString() };
  if (alg !== source.algorithm) entry.algorithm = alg;
  if (document.hasIn(['tokens', 'source', 'keys'])) document.addIn(['tokens', 'source', 'keys'], entry);
  else document.setIn(['tokens', 'source', 'keys'], [entry]);
  const updated = document.toString();
  // Validate before replacing: a rotation must never leave a file the sidecar would reject.
  parseConfigText(updated, loaded.origin, loaded.baseDir);
  const temp = `${loaded.origin}.rotate-${process.pid}`;
  writeFileSync(temp, updated, { mode: 0o600 });
  renameSync(temp, loaded.origin);

  const retireOld = new Date(notBefore.getTime() + ((loaded.config.tokens?.lifetimeSeconds ?? 0) + (loaded.config.tokens?.clockSkewSeconds ?? 0)) * 1000);
  io.out(
    [
      `new key ${kid} (${alg}) written to ${keyPath}`,
      `added to tokens.source.keys in ${loaded.origin}: published now, signs from ${notBefore.toISOString()}`,
      `older keys stop signing then, and stay published until ${retireOld.toISOString()}; remove them from the file after that`,
      'a running sidecar reloads the file by itself (or send it SIGHUP)',
    ].join('\n'),
  );
  return 0;
}

export const keysCommand: Command = {
  name: 'keys',
  summary: 'generate a signing key, or rotate the mint source to a new one',
  help: `Usage: jwtauth-sidecar keys generate --out FILE [--algorithm ES256|EdDSA|RS256]
       jwtauth-sidecar keys rotate --config FILE [--out FILE] [--algorithm ALG]

generate  writes a new private key (PKCS#8 PEM, mode 0600) and prints its kid (the JWK
          thumbprint) and public JWK. It never overwrites a file.
rotate    writes a new key and adds it to tokens.source.keys in the config file with
          notBefore = now + publishBeforeUseSeconds: verifiers see it in /.well-known/jwks.json
          before it signs, and the old key stays published until its last token has expired
          (docs/outbound.md, "Key rotation"). The edited file is validated before it replaces the
          old one; comments are kept.

Exit codes: 0 done, 1 refused (the configuration is invalid or uses the development key),
2 usage error (including an --out file that exists).`,
  async run(args, io) {
    const [action, ...rest] = args;
    if (action === 'generate') return generate(rest, io);
    if (action === 'rotate') return rotate(rest, io);
    throw new UsageError(`expected generate or rotate, got ${action === undefined ? 'nothing' : JSON.stringify(action)}`);
  },
};
