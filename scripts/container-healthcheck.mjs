#!/usr/bin/env node
// The container image's HEALTHCHECK: exit 0 if the running sidecar answers GET /healthz on its
// admin listener within 2 s, else 1. Liveness only; readiness (/readyz) is the orchestrator's.
//
// The admin address is never hard-coded: it is read the way `serve` resolved it, from the running
// `serve` process itself (found in /proc, so it works whether the sidecar is PID 1 or runs under an
// init): its `--admin-address` flag, else `server.adminAddress` of its `--config`/`-c` file, else
// of $JWTAUTH_CONFIG (from that process's environment), else the built-in 127.0.0.1:9190 (the
// embedded defaults). A wildcard listener (0.0.0.0, [::]) is probed on loopback.
//
// Listen addresses are read at start-up only, so a file edited since then could name another
// port than the one serving; the flag, or an unchanged file, is the reliable source.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { get } from 'node:http';
import { isAbsolute, resolve } from 'node:path';
import process from 'node:process';

const DEFAULT_ADMIN_ADDRESS = '127.0.0.1:9190'; // src/config/schema.ts DEFAULT_ADMIN_ADDRESS
const TIMEOUT_MS = 2000;

function fail(message) {
  process.stderr.write(`healthcheck: ${message}\n`);
  process.exit(1);
}

/** argv, environment and cwd of the `serve` process (PID 1 first, else any process that is one). */
function findServe() {
  const pids = ['1', ...readdirSync('/proc').filter((name) => /^\d+$/.test(name) && name !== '1' && name !== String(process.pid))];
  for (const pid of pids) {
    let argv;
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((part) => part !== '');
    } catch {
      continue;
    }
    const cli = argv.findIndex((part) => part.endsWith('/cli.js'));
    if (cli < 0 || argv[cli + 1] !== 'serve') continue;
    const env = {};
    try {
      for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
        const eq = entry.indexOf('=');
        if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
      }
    } catch {
      Object.assign(env, process.env); // another uid's process: the container's environment is the best guess
    }
    let cwd;
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      cwd = process.cwd();
    }
    return { args: argv.slice(cli + 2), env, cwd };
  }
  return undefined;
}

/** The value of `--name VALUE` / `--name=VALUE` (or a short alias), last one wins like parseArgs. */
function option(args, names) {
  let value;
  for (let i = 0; i < args.length; i++) {
    for (const name of names) {
      if (args[i] === name && i + 1 < args.length) value = args[i + 1];
      else if (args[i].startsWith(`${name}=`)) value = args[i].slice(name.length + 1);
    }
  }
  return value;
}

async function adminAddress() {
  const serve = findServe();
  if (!serve) fail('no `serve` process found in /proc');
  const flag = option(serve.args, ['--admin-address']);
  if (flag) return flag;
  const file = option(serve.args, ['--config', '-c']) ?? (serve.env.JWTAUTH_CONFIG || undefined);
  if (!file) return DEFAULT_ADMIN_ADDRESS;
  const path = isAbsolute(file) ? file : resolve(serve.cwd, file);
  let text;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    fail(`cannot read the sidecar's config ${path}: ${error.message}`);
  }
  // The sidecar's own YAML parser (a production dependency in the package's node_modules).
  const { parse } = await import('yaml');
  let config;
  try {
    config = parse(text);
  } catch (error) {
    fail(`cannot parse the sidecar's config ${path}: ${error.message}`);
  }
  return config?.server?.adminAddress ?? DEFAULT_ADMIN_ADDRESS;
}

const address = await adminAddress();
const colon = address.lastIndexOf(':');
let host = address.slice(0, colon);
const port = address.slice(colon + 1);
if (host === '0.0.0.0') host = '127.0.0.1';
else if (host === '[::]' || host === '[0:0:0:0:0:0:0:0]') host = '[::1]';
const url = `http://${host}:${port}/healthz`;
const status = await new Promise((done) => {
  const request = get(url, { timeout: TIMEOUT_MS }, (response) => {
    response.resume();
    done(response.statusCode);
  });
  request.on('timeout', () => request.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
  request.on('error', (error) => done(error.message));
});
if (status !== 200) fail(`${url}: ${typeof status === 'number' ? `answered ${status}` : status}`);
// Kept in the container's health log (docker/podman inspect): shows which address was probed.
process.stdout.write(`healthy: ${url}\n`);
