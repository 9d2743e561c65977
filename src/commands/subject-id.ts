import { decodeSubjectId, encodeSubjectId } from '../core/subject-id.js';
import { parseOptions } from './command.js';
import type { Command } from './command.js';

export const subjectIdCommand: Command = {
  name: 'subject-id',
  summary: 'encode a user or service id for SpiceDB (or --decode one back)',
  help: `Usage: jwtauth-sidecar subject-id [--decode] ID...

Prints the SpiceDB object id the sidecar uses for each token subject ID, one per line. Use it
wherever relationships are written, so they name subjects the way the sidecar checks them:

  jwtauth-sidecar subject-id cloud-teleport-aleksander.rykalin

--decode turns an encoded id back into the original subject. The escaping is described in
docs/inbound.md.

Exit codes: 0 every id converted, 1 some id could not be (named on stderr), 2 usage error.`,
  async run(args, io) {
    const { values, positionals } = parseOptions(args, { decode: { type: 'boolean', default: false } }, true);
    if (positionals.length === 0) {
      io.err('subject-id: give at least one ID');
      return 2;
    }
    let failed = false;
    for (const id of positionals) {
      const result = values.decode ? decodeSubjectId(id) : encodeSubjectId(id);
      if (result === undefined) {
        io.err(`${JSON.stringify(id)}: ${values.decode ? 'not a valid encoded subject id' : 'cannot be encoded (empty, or longer than SpiceDB allows)'}`);
        failed = true;
      } else {
        io.out(result);
      }
    }
    return failed ? 1 : 0;
  },
};
