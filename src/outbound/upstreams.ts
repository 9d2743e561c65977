/**
 * The upstream allow-list, compiled once: which audience a request may get a token for. The
 * audience comes from route config (`context_extensions.audience`) or from the request's
 * :authority, and must be on the list either way; a token never goes anywhere else.
 */
import type { RequestContext } from '../core/request-context.js';
import type { UpstreamConfig } from './config.js';

const AUDIENCE_EXTENSION = 'audience';

export interface Upstream {
  readonly audience: string;
}

export type UpstreamMatch = { readonly ok: true; readonly upstream: Upstream } | { readonly ok: false; readonly detail: string };

export class UpstreamAllowList {
  private readonly byAudience = new Map<string, Upstream & { readonly authorities: ReadonlySet<string> }>();
  private readonly byAuthority = new Map<string, Upstream>();

  constructor(upstreams: readonly UpstreamConfig[]) {
    for (const config of upstreams) {
      const upstream = { audience: config.audience, authorities: new Set(config.authorities) };
      this.byAudience.set(config.audience, upstream);
      for (const authority of config.authorities) this.byAuthority.set(authority, upstream);
    }
  }

  /** The upstream whose audience is `audience`, wherever the call goes (the `token` command's question). */
  named(audience: string): UpstreamMatch {
    const upstream = this.byAudience.get(audience);
    return upstream ? { ok: true, upstream } : { ok: false, detail: `audience ${audience} is not on the outbound upstream list` };
  }

  match(request: RequestContext): UpstreamMatch {
    const named = request.contextExtensions[AUDIENCE_EXTENSION];
    const byAuthority = this.byAuthority.get(request.authority);
    if (named !== undefined && named !== '') {
      const upstream = this.byAudience.get(named);
      if (!upstream) return this.named(named);
      // A route that names one upstream while the request goes to an authority listed for another
      // is a routing mistake; refusing it keeps one upstream's token away from the other.
      if (byAuthority !== undefined && byAuthority !== upstream) {
        return { ok: false, detail: `route names audience ${named} but ${request.authority} is ${byAuthority.audience}` };
      }
      if (upstream.authorities.size > 0 && !upstream.authorities.has(request.authority)) {
        return { ok: false, detail: `${request.authority} is not an authority of ${named}` };
      }
      return { ok: true, upstream };
    }
    if (byAuthority !== undefined) return { ok: true, upstream: byAuthority };
    return { ok: false, detail: `no audience for authority ${request.authority || '(none)'}` };
  }
}
