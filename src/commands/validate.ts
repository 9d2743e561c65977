import { loadConfigOrReport, parseOptions } from './command.js';
import type { Command } from './command.js';

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a configuration file and list every problem in it',
  help: `Usage: jwtauth-sidecar validate --config FILE

Parses and validates FILE (or $JWTAUTH_CONFIG) exactly as \`serve\` would at start-up, and
prints every problem at once: the key path, the value found and what was expected.

Exit codes: 0 valid, 1 invalid, 2 usage error.`,
  async run(args, io) {
    const { values } = parseOptions(args, { config: { type: 'string', short: 'c' } });
    const path = values.config ?? io.env.JWTAUTH_CONFIG;
    if (!path) {
      io.err('validate: --config FILE is required');
      return 2;
    }
    const loaded = loadConfigOrReport(path, io);
    if (!loaded) return 1;
    io.out(`${loaded.origin}: valid (config hash ${loaded.hash})`);
    return 0;
  },
};
