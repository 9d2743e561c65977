/**
 * A real OAuth 2.0 token service for integration tests: oidc-provider (panva) behind a node https
 * server that asks for client certificates. It answers
 *   - client_credentials with RFC 8705 `tls_client_auth` (the certificate checks are this host
 *     app's job, as oidc-provider expects), issuing ES256 `at+jwt` access tokens for RFC 8707
 *     resource indicators `urn:jwtauth:audience:<name>`;
 *   - RFC 8693 token exchange, registered as a custom grant: it verifies the subject token against
 *     an "external" issuer held here and issues a token for the user with `act.sub` = the client.
 *   - OpenID discovery (/.well-known/openid-configuration) and RFC 7662 introspection
 *     (/token/introspection) of opaque access tokens minted with opaqueToken(), for clients
 *     authenticated by certificate or, when `secretClients` are given, by HTTP Basic.
 * stop()/start() keep the port, so a test can take the issuer away mid-run and bring it back;
 * stall() makes it accept requests and never answer.
 */
import { randomUUID, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import type { JWK } from 'jose';
// @ts-expect-error -- oidc-provider ships no type declarations; the shapes used are typed below.
import * as ProviderModule from 'oidc-provider';
import type { TestPki } from './certs.js';

const RESOURCE_PREFIX = 'urn:jwtauth:audience:';
const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const EXTERNAL_ISSUER = 'https://public-auth.example';

// ------------------------------------------------------------- the parts of oidc-provider used here
interface OidcClient {
  readonly clientId: string;
}
interface OidcContext {
  readonly socket: TLSSocket;
  body: unknown;
  readonly oidc: {
    readonly client: OidcClient;
    readonly params: Readonly<Record<string, string | string[] | undefined>>;
    readonly provider: OidcProvider;
  };
}
interface AccessTokenInstance {
  resourceServer: unknown;
  readonly expiration: number;
  setAudience(audience: string): void;
  save(): Promise<string>;
}
interface GrantInstance {
  addOIDCScope(scope: string): void;
  save(): Promise<string>;
}
interface OidcProvider {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
  registerGrantType(name: string, handler: (ctx: OidcContext) => Promise<void>, params: string[]): void;
  on(event: string, listener: (...args: unknown[]) => void): void;
  readonly AccessToken: new (fields: Record<string, unknown>) => AccessTokenInstance;
  readonly Grant: new (fields: { accountId: string; clientId: string }) => GrantInstance;
  readonly Client: { find(clientId: string): Promise<OidcClient | undefined> };
  readonly ResourceServer: new (identifier: string, info: ResourceServerInfo) => unknown;
}
interface ResourceServerInfo {
  scope: string;
  audience: string;
  accessTokenTTL: number;
  accessTokenFormat: 'jwt';
  jwt: { sign: { alg: 'ES256' } };
}
type ErrorClass = new (description?: string) => Error;
const { Provider, errors } = ProviderModule as unknown as {
  Provider: new (issuer: string, configuration: Record<string, unknown>) => OidcProvider;
  errors: { InvalidGrant: ErrorClass; InvalidTarget: ErrorClass; InvalidRequest: ErrorClass; UnauthorizedClient: ErrorClass };
};

export interface OAuthServerOptions {
  readonly pki: TestPki;
  /** Registered clients: client_id = the DNS SAN their certificate must carry. */
  readonly clients: readonly string[];
  /** Audiences the token service issues tokens for. */
  readonly audiences: readonly string[];
  readonly accessTokenTtlSeconds?: number;
  /** Clients that authenticate with HTTP Basic (client_secret_basic), by client_id: secret. */
  readonly secretClients?: Readonly<Record<string, string>>;
}

interface OpaqueTokenOptions {
  /** The client the token is issued to; default the first certificate client. */
  readonly clientId?: string;
  readonly scope?: string;
  /** Set as the token's `aud`; default none. */
  readonly audience?: string;
  readonly expiresInSeconds?: number;
}

export interface OAuthServer {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  /** The token service's public keys, to verify what it issued. */
  jwks(): Promise<{ keys: JWK[] }>;
  /** The external (public) issuer whose user tokens the token service exchanges. */
  readonly externalIssuer: string;
  externalJwks(): Promise<{ keys: JWK[] }>;
  /** Signs a user token from the external issuer the token service accepts for exchange. */
  externalUserToken(sub: string, expiresInSeconds?: number): Promise<string>;
  /** Token requests answered so far (any outcome). */
  readonly requests: number;
  /** Requests answered so far whose path is `path` (e.g. /token/introspection). */
  requestsTo(path: string): number;
  readonly introspectionEndpoint: string;
  readonly discoveryUrl: string;
  /** An opaque access token for `sub` (user), which only introspection can check. */
  opaqueToken(sub: string, options?: OpaqueTokenOptions): Promise<string>;
  start(): Promise<void>;
  stop(): Promise<void>;
  stall(on: boolean): void;
  close(): Promise<void>;
}

export async function startOAuthServer(options: OAuthServerOptions): Promise<OAuthServer> {
  const { pki } = options;
  const ttl = options.accessTokenTtlSeconds ?? 300;
  const signing = await generateKeyPair('ES256', { extractable: true });
  const signingJwk = { ...(await exportJWK(signing.privateKey)), kid: 'ts-1', alg: 'ES256', use: 'sig' };
  const external = await generateKeyPair('ES256', { extractable: true });
  const externalJwks = createLocalJWKSet({ keys: [{ ...(await exportJWK(external.publicKey)), kid: 'ext-1', alg: 'ES256' }] });

  let port = 0;
  const issuerFor = (p: number) => `https://127.0.0.1:${p}`;
  // The issuer URL needs the port, so the provider is built once the port is known (first start).
  let provider: OidcProvider | undefined;
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  let stalled = false;
  let requests = 0;
  const requestsByPath = new Map<string, number>();
  const secretClients = Object.entries(options.secretClients ?? {});

  const resourceServer = (resource: string): ResourceServerInfo => {
    const audience = resource.startsWith(RESOURCE_PREFIX) ? resource.slice(RESOURCE_PREFIX.length) : '';
    if (!options.audiences.includes(audience)) throw new errors.InvalidTarget(`unknown resource ${resource}`);
    return { scope: '', audience, accessTokenTTL: ttl, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } };
  };

  function peerCertificate(ctx: OidcContext): X509Certificate | undefined {
    const raw = ctx.socket.getPeerCertificate();
    return raw && raw.raw ? new X509Certificate(raw.raw) : undefined;
  }

  function buildProvider(issuer: string): OidcProvider {
    const built = new Provider(issuer, {
      clients: [
        ...options.clients.map((name) => ({
          client_id: name,
          grant_types: ['client_credentials', TOKEN_EXCHANGE_GRANT],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'tls_client_auth',
          tls_client_auth_san_dns: name,
          id_token_signed_response_alg: 'ES256',
        })),
        ...secretClients.map(([clientId, secret]) => ({
          client_id: clientId,
          client_secret: secret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
          id_token_signed_response_alg: 'ES256',
        })),
      ],
      jwks: { keys: [signingJwk] },
      clientAuthMethods: secretClients.length > 0 ? ['tls_client_auth', 'client_secret_basic'] : ['tls_client_auth'],
      // RFC 8693 section 4.1: the exchanged token names the client as the current actor.
      extraTokenClaims: (_ctx: unknown, token: { gty?: string; clientId?: string }) =>
        token.gty === 'token_exchange' ? { act: { sub: token.clientId } } : undefined,
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => resourceServer(resource),
        },
        mTLS: {
          enabled: true,
          tlsClientAuth: true,
          getCertificate: (ctx: OidcContext) => peerCertificate(ctx),
          // The TLS layer checked the chain against the test CA; oidc-provider asks whether it did.
          certificateAuthorized: (ctx: OidcContext) => ctx.socket.authorized,
          certificateSubjectMatches: (ctx: OidcContext, property: string, expected: string) => {
            const cert = peerCertificate(ctx);
            if (!cert) return false;
            if (property === 'tls_client_auth_san_dns') {
              return (cert.subjectAltName ?? '').split(', ').includes(`DNS:${expected}`);
            }
            return false;
          },
        },
      },
    });

    built.registerGrantType(
      TOKEN_EXCHANGE_GRANT,
      async (ctx) => {
        const { params, client } = ctx.oidc;
        const subjectToken = params.subject_token;
        if (typeof subjectToken !== 'string' || params.subject_token_type !== ACCESS_TOKEN_TYPE) {
          throw new errors.InvalidRequest('subject_token of type access_token required');
        }
        let sub: string;
        try {
          const { payload } = await jwtVerify(subjectToken, externalJwks, { issuer: EXTERNAL_ISSUER, algorithms: ['ES256'] });
          if (typeof payload.sub !== 'string') throw new Error('no sub');
          sub = payload.sub;
        } catch {
          throw new errors.InvalidGrant('subject token is not valid');
        }
        const resource = typeof params.resource === 'string' ? params.resource : '';
        const info = resourceServer(resource);
        const token = new ctx.oidc.provider.AccessToken({
          accountId: sub,
          client,
          grantId: randomUUID(),
          gty: 'token_exchange',
        });
        token.resourceServer = new ctx.oidc.provider.ResourceServer(resource, info);
        const value = await token.save();
        ctx.body = { access_token: value, issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'Bearer', expires_in: token.expiration };
      },
      ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'actor_token', 'actor_token_type', 'scope'],
    );
    return built;
  }

  async function start(): Promise<void> {
    const tls = {
      cert: readFileSync(pki.server.certFile),
      key: readFileSync(pki.server.keyFile),
      ca: readFileSync(pki.caFile),
      requestCert: true,
      // Unverified certificates reach oidc-provider, which answers invalid_client (a clear OAuth
      // error) instead of a bare TLS alert.
      rejectUnauthorized: false,
    };
    const listening = createServer(tls, (req, res) => {
      if (stalled) return; // accept, never answer
      requests++;
      const path = (req.url ?? '').split('?')[0] ?? '';
      requestsByPath.set(path, (requestsByPath.get(path) ?? 0) + 1);
      if (!handler) {
        res.statusCode = 503;
        res.end();
        return;
      }
      handler(req, res);
    });
    listening.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(port, '127.0.0.1', () => resolve());
    });
    const address = listening.address();
    if (address === null || typeof address === 'string') throw new Error('no address');
    port = address.port;
    provider ??= buildProvider(issuerFor(port));
    handler ??= provider.callback();
    server = listening;
  }

  async function stop(): Promise<void> {
    const closing = server;
    server = undefined;
    if (!closing) return;
    const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await closed;
  }

  await start();

  return {
    get issuer() {
      return issuerFor(port);
    },
    get tokenEndpoint() {
      return `${issuerFor(port)}/token`;
    },
    get requests() {
      return requests;
    },
    requestsTo: (path) => requestsByPath.get(path) ?? 0,
    get introspectionEndpoint() {
      return `${issuerFor(port)}/token/introspection`;
    },
    get discoveryUrl() {
      return `${issuerFor(port)}/.well-known/openid-configuration`;
    },
    async opaqueToken(sub, opaque = {}) {
      if (!provider) throw new Error('not started');
      const clientId = opaque.clientId ?? options.clients[0] ?? '';
      const client = await provider.Client.find(clientId);
      if (!client) throw new Error(`no client ${clientId}`);
      // Introspection answers only for tokens whose grant exists and names the same account and client.
      const grant = new provider.Grant({ accountId: sub, clientId });
      grant.addOIDCScope(opaque.scope ?? 'openid');
      const grantId = await grant.save();
      const token = new provider.AccessToken({
        accountId: sub,
        client,
        grantId,
        scope: opaque.scope ?? 'openid',
        expiresIn: opaque.expiresInSeconds ?? ttl,
        gty: 'authorization_code',
      });
      if (opaque.audience !== undefined) token.setAudience(opaque.audience);
      return token.save();
    },
    jwks: async () => ({ keys: [{ ...(await exportJWK(signing.publicKey)), kid: 'ts-1', alg: 'ES256' }] }),
    externalIssuer: EXTERNAL_ISSUER,
    externalJwks: async () => ({ keys: [{ ...(await exportJWK(external.publicKey)), kid: 'ext-1', alg: 'ES256' }] }),
    externalUserToken: (sub, expiresInSeconds = 600) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'ext-1', typ: 'at+jwt' })
        .setIssuer(EXTERNAL_ISSUER)
        .setSubject(sub)
        .setAudience('public-api')
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
        .sign(external.privateKey),
    start,
    stop,
    stall: (on) => {
      stalled = on;
    },
    close: stop,
  };
}
