/** PEM CA bundles named by the configuration (`caFile` keys). Config load only. */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * The certificates of a PEM CA bundle. Node accepts any text as `ca` without a word, and a bundle
 * with no usable certificate would then fail every fetch as if the server's certificate were at
 * fault; reading it here names the file's own problem at load. Used for every caFile the
 * configuration names, by the preflight and by the JWKS fetcher.
 */
export function readCaBundle(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, { cause: error });
  }
  const certificates = text.match(PEM_CERTIFICATE) ?? [];
  if (certificates.length === 0) throw new Error(`${path} holds no PEM certificate`);
  for (const [index, pem] of certificates.entries()) {
    try {
      new X509Certificate(pem); // parsed only to find a damaged certificate now rather than at the first fetch
    } catch (error) {
      throw new Error(`${path}: certificate ${index + 1} does not parse (${(error as Error).message})`, { cause: error });
    }
  }
  return certificates;
}
