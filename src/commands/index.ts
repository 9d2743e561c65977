import { checkCommand } from './check.js';
import type { Command } from './command.js';
import { keysCommand } from './keys.js';
import { serveCommand } from './serve.js';
import { subjectIdCommand } from './subject-id.js';
import { tokenCommand } from './token.js';
import { validateCommand } from './validate.js';

export const COMMANDS: readonly Command[] = [serveCommand, validateCommand, checkCommand, tokenCommand, keysCommand, subjectIdCommand];
