/**
 * OpenID Connect Discovery 1.0 (and RFC 8414): where an issuer publishes its JWKS. The document is
 * trusted only when its `issuer` is exactly the configured one (Discovery 1.0 section 4.3): a
 * document for another issuer, served at this URL by mistake or by an attacker, would otherwise
 * hand us someone else's keys.
 */
import type { Agent } from 'node:https';
import { describeNetworkFailure } from '../base/network-error.js';
import { issuerRequest } from './issuer-http.js';
import type { IssuerAnswer } from './issuer-http.js';

const MAX_DOCUMENT_BYTES = 256 * 1024;

/** `discovery: true` means the issuer's own well-known URL: its trailing slashes dropped, then the path appended (section 4). */
export function discoveryUrlOf(issuer: string, discovery: true | string): string {
  return discovery === true ? `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration` : discovery;
}

export interface DiscoveryFetch {
  readonly agent: Agent | undefined;
  readonly timeoutMs: number;
}

/** The document's `jwks_uri`; throws an Error whose message says what is wrong, for the refresh log. */
export async function discoverJwksUri(documentUrl: string, expectedIssuer: string, fetching: DiscoveryFetch): Promise<string> {
  let answer: IssuerAnswer;
  try {
    answer = await issuerRequest(documentUrl, {
      method: 'GET',
      headers: { accept: 'application/json' },
      agent: fetching.agent,
      timeoutMs: fetching.timeoutMs,
      maxBytes: MAX_DOCUMENT_BYTES,
    });
  } catch (error) {
    throw new Error(`cannot fetch the discovery document: ${describeNetworkFailure(error).text}`, { cause: error });
  }
  if (answer.status < 200 || answer.status > 299) throw new Error(`the discovery endpoint answered HTTP ${answer.status}`);
  if (answer.text === undefined) throw new Error('discovery document larger than 256 KiB');
  let document: unknown;
  try {
    document = JSON.parse(answer.text);
  } catch (error) {
    throw new Error(`the discovery document is not JSON: ${(error as Error).message.slice(0, 120)}`, { cause: error });
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) throw new Error('the discovery document is not a JSON object');
  const { issuer, jwks_uri: jwksUri } = document as Record<string, unknown>;
  if (issuer !== expectedIssuer) {
    const named = typeof issuer === 'string' ? JSON.stringify(issuer.slice(0, 200)) : 'no issuer';
    throw new Error(`the discovery document names ${named}, not the configured issuer ${JSON.stringify(expectedIssuer)}; it must match exactly, so its keys are refused`);
  }
  if (typeof jwksUri !== 'string') throw new Error('the discovery document has no jwks_uri');
  let parsed: URL;
  try {
    parsed = new URL(jwksUri);
  } catch {
    throw new Error('the discovery document\'s jwks_uri is not a URL');
  }
  // A document fetched over TLS must not send us to fetch the keys in the clear.
  const allowed = new URL(documentUrl).protocol === 'https:' ? ['https:'] : ['https:', 'http:'];
  if (!allowed.includes(parsed.protocol)) throw new Error(`the discovery document's jwks_uri must be ${allowed.join(' or ')}, not ${parsed.protocol}`);
  return parsed.href;
}
