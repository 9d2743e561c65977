import type { Command } from './command.js';
import { serveCommand } from './serve.js';
import { subjectIdCommand } from './subject-id.js';
import { validateCommand } from './validate.js';

export const COMMANDS: readonly Command[] = [serveCommand, validateCommand, subjectIdCommand];
