import { serviceIdentityOf } from '../config/schema.js';
import { createLogger } from '../observability/logger.js';
import { issueServiceTokenForCli } from '../tokens/cli-token.js';
import { loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';

export const tokenCommand: Command = {
  name: 'token',
  summary: 'print a service token for an upstream, from the configured token source',
  help: `Usage: jwtauth-sidecar token --audience NAME [--config FILE]

Prints one service token (sub = this service, aud = NAME) from the configured token source, for a
CLI such as vmctl calling the gateway by hand, or for debugging. NAME must be on the
outbound.upstreams list, exactly as for the sidecar itself.

With the embedded defaults the token is signed with the same development key as \`npm start\`,
so it verifies against http://127.0.0.1:9190/.well-known/jwks.json:

  curl -H "authorization: Bearer $(jwtauth-sidecar token --audience vmcontroller)" ...

Exit codes: 0 printed, 1 refused (the reason goes to stderr), 2 usage error.`,
  async run(args, io) {
    const { values } = parseOptions(args, { audience: { type: 'string', short: 'a' }, config: { type: 'string', short: 'c' } });
    if (!values.audience) {
      io.err('token: --audience NAME is required');
      return 2;
    }
    const loaded = loadConfigOrReport(values.config, io);
    if (!loaded) return 1;
    const { config } = loaded;
    if (!config.tokens) {
      io.err('token: this configuration has no tokens.source');
      return 1;
    }
    const result = await issueServiceTokenForCli({
      tokens: config.tokens,
      outbound: config.outbound,
      serviceName: serviceIdentityOf(config).name,
      audience: values.audience,
      baseDir: loaded.baseDir,
      // Keep stdout for the token alone; warnings (development key) go to stderr.
      logger: createLogger({ level: 'warn' }),
    });
    if (!result.ok) {
      io.err(`token: ${result.reason}${result.detail ? ` (${result.detail})` : ''}`);
      return 1;
    }
    io.out(result.value.token);
    return 0;
  },
};
