/**
 * The gRPC listeners' `limits.*` keys as the configuration file gives them: their defaults, and a
 * value out of range or one that would make the largest message impossible refused at load with
 * the key named.
 */
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ConfigError, parseConfigText } from '../../src/config/load.js';
import { DEFAULT_LISTENER_LIMITS } from '../../src/envoy/listener-limits.js';

const inbound = { default: 'deny', rules: [{ name: 'public', match: { http: { path: '/public' } }, auth: 'none' }] };

function problemsOf(limits: Record<string, number>): readonly string[] {
  try {
    parseConfigText(stringify({ limits, inbound }), 'limits.yaml', '/');
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.problems;
  }
}

describe('listener limits in the configuration', () => {
  it('default to the listener defaults when the file names none', () => {
    const { config } = parseConfigText(stringify({ inbound }), 'limits.yaml', '/');
    expect(config.limits).toMatchObject(DEFAULT_LISTENER_LIMITS);
    expect(DEFAULT_LISTENER_LIMITS).toMatchObject({ maxConnections: 1024, maxConcurrentStreams: 1000, maxMessageBytes: 4 * 1024 * 1024, requestTimeoutMs: 10_000 });
  });

  it.each([
    ['limits.maxConnections', { maxConnections: 0 }],
    ['limits.maxConcurrentStreams', { maxConcurrentStreams: 2 ** 31 }],
    ['limits.requestTimeoutMs', { requestTimeoutMs: 10 }],
    ['limits.pingTimeoutMs', { pingTimeoutMs: 1.5 }],
    ['limits.maxRequestMemoryBytes', { maxMessageBytes: 8 * 1024 * 1024, maxRequestMemoryBytes: 8 * 1024 * 1024 }],
  ])('refuses %s out of range, naming it', (key, limits) => {
    const problems = problemsOf(limits);
    expect(problems.some((line) => line.startsWith(`${key}:`)), problems.join(' | ')).toBe(true);
  });
});
