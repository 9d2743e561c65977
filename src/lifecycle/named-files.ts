/**
 * The files a configuration names, which adapter reads each, and a fingerprint of their contents.
 *
 * cert-manager, Vault agents and SPIRE renew a certificate, key or CA bundle at the SAME path (a
 * ConfigMap/Secret `..data` symlink swap), so the configuration's own hash does not change when
 * they do. A reload therefore compares the configuration hash PLUS the content digest of every
 * file listed here, and each adapter's section key carries the digests of its own files: a
 * rotated client certificate rebuilds the token source and nothing else.
 *
 * The same list tells the watcher (config-watcher.ts) which directories to watch, and the metrics
 * which certificates to report `notAfter` for.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolveConfigPath } from '../base/paths.js';
import type { SecretRef } from '../base/secret.js';
import type { LoadedConfig } from '../config/load.js';
import { embeddedSpicedbFiles } from '../spicedb/permission-checker.js';

/** The adapter (adapters.ts) that reads a file, and so is rebuilt when it changes. */
export type FileReader = 'verifier' | 'checker' | 'tokens';

/**
 * What a file holds. A client certificate must be valid now (preflight refuses an expired one); a
 * CA bundle may hold expired certificates beside current ones. Both have their notAfter reported.
 */
type FileKind = 'client certificate' | 'CA bundle' | 'private key' | 'secret' | 'JWKS' | 'signing key' | 'SpiceDB schema' | 'relationships';

export interface NamedFile {
  /** The configuration key that names it, e.g. `tokens.source.clientCertFile`: the metrics' `use` label. */
  readonly use: string;
  /** Absolute. */
  readonly path: string;
  readonly kind: FileKind;
  readonly reader: FileReader;
}

/** Every file the configuration names that an adapter reads, in configuration order. */
export function namedFiles(loaded: LoadedConfig): NamedFile[] {
  const { config, baseDir } = loaded;
  const files: NamedFile[] = [];
  const add = (use: string, file: string | undefined, kind: FileKind, reader: FileReader): void => {
    if (file !== undefined) files.push({ use, path: resolveConfigPath(baseDir, file), kind, reader });
  };
  const addSecret = (use: string, ref: SecretRef | undefined, kind: FileKind, reader: FileReader): void => {
    if (ref !== undefined && 'file' in ref) add(use, ref.file, kind, reader);
  };

  for (const issuer of config.issuers) {
    const where = `issuers[${issuer.name}]`;
    const { jwks, introspection } = issuer;
    if (jwks !== undefined && 'file' in jwks) add(`${where}.jwks.file`, jwks.file, 'JWKS', 'verifier');
    if (jwks !== undefined && !('file' in jwks)) add(`${where}.jwks.caFile`, jwks.caFile, 'CA bundle', 'verifier');
    if (introspection !== undefined) {
      add(`${where}.introspection.clientCertFile`, introspection.clientCertFile, 'client certificate', 'verifier');
      addSecret(`${where}.introspection.clientKey`, introspection.clientKey, 'private key', 'verifier');
      addSecret(`${where}.introspection.clientSecret`, introspection.clientSecret, 'secret', 'verifier');
      add(`${where}.introspection.caFile`, introspection.caFile, 'CA bundle', 'verifier');
    }
  }

  const { spicedb } = config;
  if (spicedb.endpoint !== undefined) {
    addSecret('spicedb.presharedKey', spicedb.presharedKey, 'secret', 'checker');
    if (typeof spicedb.tls === 'object') add('spicedb.tls.caFile', spicedb.tls.caFile, 'CA bundle', 'checker');
  } else {
    const embedded = embeddedSpicedbFiles(spicedb, baseDir);
    add('spicedb.embedded.schemaFile', embedded.schemaFile, 'SpiceDB schema', 'checker');
    add('spicedb.embedded.relationshipsFile', embedded.relationshipsFile, 'relationships', 'checker');
  }

  const source = config.tokens?.source;
  if (source?.kind === 'mint') {
    // Not devKeyFile: the sidecar writes that one itself, once.
    source.keys.forEach((key, index) => add(`tokens.source.keys[${index}].file`, key.file, 'signing key', 'tokens'));
  } else if (source?.kind === 'exchange') {
    add('tokens.source.clientCertFile', source.clientCertFile, 'client certificate', 'tokens');
    addSecret('tokens.source.clientKey', source.clientKey, 'private key', 'tokens');
    add('tokens.source.caFile', source.caFile, 'CA bundle', 'tokens');
  }
  return files;
}

/** One named file as it was read. */
interface FileState extends NamedFile {
  /** sha256 of the content (16 hex), or `unreadable: CODE`. Never the content itself. */
  readonly digest: string;
  /** For certificates and CA bundles that parse: the earliest notAfter among them, in unix seconds. */
  readonly notAfterSeconds: number | undefined;
}

/** The configuration and the content of every file it names: what a reload compares. */
export interface Fingerprint {
  /** Equal for two reads exactly when the configuration and every named file's content are. */
  readonly id: string;
  readonly files: readonly FileState[];
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The earliest notAfter of the PEM certificates in `text`; undefined when none parses (preflight says why). */
function earliestNotAfter(text: string): number | undefined {
  let earliest: number | undefined;
  for (const pem of text.match(PEM_CERTIFICATE) ?? []) {
    try {
      // validTo is OpenSSL's text (`Dec  8 23:26:30 2026 GMT`), which Date.parse reads.
      const seconds = Math.floor(Date.parse(new X509Certificate(pem).validTo) / 1000);
      if (!Number.isFinite(seconds)) return undefined;
      earliest = earliest === undefined ? seconds : Math.min(earliest, seconds);
    } catch {
      return undefined;
    }
  }
  return earliest;
}

function readState(file: NamedFile): FileState {
  let content: Buffer;
  try {
    content = readFileSync(file.path);
  } catch (error) {
    return { ...file, digest: `unreadable: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, notAfterSeconds: undefined };
  }
  const digest = createHash('sha256').update(content).digest('hex').slice(0, 16);
  const hasCertificates = file.kind === 'client certificate' || file.kind === 'CA bundle';
  return { ...file, digest, notAfterSeconds: hasCertificates ? earliestNotAfter(content.toString('utf8')) : undefined };
}

/** Reads every named file now. Read before the adapters are built, so a later change is always a difference. */
export function fingerprintOf(loaded: LoadedConfig): Fingerprint {
  const files = namedFiles(loaded).map(readState);
  return { id: JSON.stringify([loaded.hash, files.map((file) => [file.use, file.path, file.digest])]), files };
}

/** The part of an adapter's section key that changes with its files' contents. */
export function digestsFor(fingerprint: Fingerprint, reader: FileReader): string {
  return JSON.stringify(fingerprint.files.filter((file) => file.reader === reader).map((file) => [file.use, file.digest]));
}

/** `use (path)` of each file whose content differs between two fingerprints, or that only one names: for logs. */
export function changedFiles(before: Fingerprint, after: Fingerprint): string[] {
  const previous = new Map(before.files.map((file) => [`${file.use} ${file.path}`, file.digest]));
  return after.files.filter((file) => previous.get(`${file.use} ${file.path}`) !== file.digest).map((file) => `${file.use} (${file.path})`);
}
