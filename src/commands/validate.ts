import { resolve } from 'node:path';
import { ConfigError } from '../config/load.js';
import { preflight } from '../lifecycle/preflight.js';
import { loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';
import { acceptedChecks, runEnvoyCheck } from './envoy-check.js';
import type { EnvoySource } from './envoy-check.js';

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a configuration file the way start-up does and list every problem in it',
  help: `Usage: jwtauth-sidecar validate --config FILE [--schema SCHEMA.zed]
                                [--envoy ENVOY.yaml | --envoy-admin URL] [--strict] [--accept CHECK]...

Runs every check \`serve\` runs at start-up, short of opening listeners and connections: FILE
(or $JWTAUTH_CONFIG) parses and validates; every file it names exists and parses (JWKS files,
signing keys, certificates, secrets, the embedded SpiceDB schema and relationships, message
descriptors); every rule and template compiles; and every literal SpiceDB type, permission,
relation and caveat parameter in the checks exists in the schema. Every problem is printed at
once: the key path, the value found and what was expected.

  --schema FILE   check the rules against this SpiceDB schema instead of the embedded one;
                  how a configuration for a SpiceDB server is checked offline (the server's own
                  schema is checked by \`serve\` at start-up and on reload)

Envoy (docs/envoy.md#check-your-envoy): after the configuration passes, check the Envoy in front of
the sidecar against it. Each problem names where it is in Envoy's configuration (listener → filter
chain → filter, or route), what goes wrong at run time, and the fix: the ext_authz filter's cluster
reaches a sidecar listener and speaks HTTP/2; transport_api_version; failure_mode_allow;
status_on_error; the timeout and the retry max_interval (Envoy's per-try timeout) against
spicedb.deadlineMs; the request body where rules read {body.…} and nowhere else; the direction and
audience in context_extensions; allowed_headers against the headers the sidecar reads; the health
check of the sidecar's cluster.

  --envoy FILE        an Envoy bootstrap, a saved /config_dump, a listener, or an ext_authz filter
                      (YAML or JSON)
  --envoy-admin URL   a running Envoy's admin address; reads its /config_dump (the filters Istio
                      and Envoy Gateway generate). Istio: kubectl port-forward POD 15000, then
                      --envoy-admin http://127.0.0.1:15000
  --strict            warnings count as problems (exit 1)
  --accept CHECK      accept a check's errors as intended (printed, exit 0), e.g. failure-mode-allow

Exit codes: 0 valid, 1 invalid, 2 usage error.`,
  async run(args, io) {
    const { values } = parseOptions(args, {
      config: { type: 'string', short: 'c' },
      schema: { type: 'string' },
      envoy: { type: 'string' },
      'envoy-admin': { type: 'string' },
      strict: { type: 'boolean', default: false },
      accept: { type: 'string', multiple: true, default: [] },
    });
    if (values.envoy !== undefined && values['envoy-admin'] !== undefined) {
      io.err('validate: give --envoy FILE or --envoy-admin URL, not both');
      return 2;
    }
    const envoy: EnvoySource | undefined =
      values.envoy !== undefined ? { kind: 'file', path: values.envoy }
      : values['envoy-admin'] !== undefined ? { kind: 'admin', url: values['envoy-admin'] }
      : undefined;
    const accept = acceptedChecks(values.accept);
    const path = values.config ?? io.env.JWTAUTH_CONFIG;
    if (!path) {
      io.err('validate: --config FILE is required');
      return 2;
    }
    const loaded = loadConfigOrReport(path, io);
    if (!loaded) return 1;
    let checkedAgainst: string | undefined;
    try {
      const result = await preflight(loaded, { env: io.env, ...(values.schema ? { schemaFile: resolve(values.schema) } : {}) });
      checkedAgainst = result.schemaOrigin;
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      io.err(error.message);
      // The file parsed and validated, so its Envoy-facing half (listeners, rules, deadline) is
      // known: still check Envoy against it, so one run lists every problem.
      if (envoy !== undefined) await runEnvoyCheck(envoy, loaded.config, loaded.origin, { strict: values.strict, accept }, io);
      return 1;
    }
    const schemaNote = checkedAgainst
      ? `rules checked against ${checkedAgainst}`
      : 'rules not checked against a schema: the SpiceDB server is checked at start-up; pass --schema FILE to check offline';
    io.out(`${loaded.origin}: valid (config hash ${loaded.hash}); ${schemaNote}`);
    if (envoy === undefined) return 0;
    return runEnvoyCheck(envoy, loaded.config, loaded.origin, { strict: values.strict, accept }, io);
  },
};
