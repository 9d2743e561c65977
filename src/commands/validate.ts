import { resolve } from 'node:path';
import { ConfigError } from '../config/load.js';
import { preflight } from '../lifecycle/preflight.js';
import { loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a configuration file the way start-up does and list every problem in it',
  help: `Usage: jwtauth-sidecar validate --config FILE [--schema SCHEMA.zed]

Runs every check \`serve\` runs at start-up, short of opening listeners and connections: FILE
(or $JWTAUTH_CONFIG) parses and validates; every file it names exists and parses (JWKS files,
signing keys, certificates, secrets, the embedded SpiceDB schema and relationships, message
descriptors); every rule and template compiles; and every literal SpiceDB type, permission,
relation and caveat parameter in the checks exists in the schema. Every problem is printed at
once: the key path, the value found and what was expected.

  --schema FILE   check the rules against this SpiceDB schema instead of the embedded one;
                  how a configuration for a SpiceDB server is checked offline (the server's own
                  schema is checked by \`serve\` at start-up and on reload)

Exit codes: 0 valid, 1 invalid, 2 usage error.`,
  async run(args, io) {
    const { values } = parseOptions(args, { config: { type: 'string', short: 'c' }, schema: { type: 'string' } });
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
      return 1;
    }
    const schemaNote = checkedAgainst
      ? `rules checked against ${checkedAgainst}`
      : 'rules not checked against a schema: the SpiceDB server is checked at start-up; pass --schema FILE to check offline';
    io.out(`${loaded.origin}: valid (config hash ${loaded.hash}); ${schemaNote}`);
    return 0;
  },
};
