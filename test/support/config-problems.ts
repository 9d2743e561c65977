import { ConfigError, parseConfigText } from '../../src/config/load.js';

/** The problems the loader reports for `text`; fails the test when the text is accepted. */
export function problemsOf(text: string): readonly string[] {
  try {
    parseConfigText(text, 'test.yaml', '/tmp');
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('expected the configuration to be rejected');
}
