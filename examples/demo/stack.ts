/**
 * Starts the demo's whole topology, every part real and each in its own process except the two
 * demo apps: one SpiceDB server (memory datastore), and for each of gwadmin, vmcontroller and
 * SpiceDB an Envoy and a jwtauth-sidecar (the built CLI) configured by the files in
 * examples/demo/envoy and examples/demo/sidecars. The gateway and vmcontroller apps run inside
 * this process but reach each other, and SpiceDB, only through the Envoys.
 *
 * Everything starts in parallel: sidecars wait for the JWKS of the sidecar upstream of them, and
 * for SpiceDB, by themselves (readiness), so no ordering is needed.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { v1 } from '@authzed/authzed-node';
import { exportPKCS8, generateKeyPair } from 'jose';
import { freePort } from '../../dev/ports.js';
import { launchEnvoy } from '../../dev/envoy.js';
import { atExit, TOOLS_BIN } from '../../dev/processes.js';
import type { ManagedProcess } from '../../dev/processes.js';
import { launchSidecar } from '../../dev/sidecar.js';
import { startSpicedb } from '../../dev/spicedb.js';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { startAuthService } from './auth-service.js';
import type { AuthService } from './auth-service.js';
import { DecisionLog } from './decisions.js';
import type { SidecarName } from './decisions.js';
import { startGateway } from './gateway.js';
import type { RunningGateway } from './gateway.js';
import { PORT_PLAN, rewritePorts } from './topology.js';
import type { PortRole, Ports } from './topology.js';
import { DEMO_DIR } from './vmcontroller-api.js';
import { startVmController } from './vmcontroller.js';
import type { RunningVmController } from './vmcontroller.js';

const DEMO_SCHEMA_FILE = join(PACKAGE_ROOT, 'examples', 'schema.zed');
export const DEMO_RELATIONSHIPS_FILE = join(DEMO_DIR, 'relationships.txt');
const STARTUP_TIMEOUT_MS = 60_000;

export interface StackOptions {
  /** Progress messages ("starting ...", "ready in ..."). */
  readonly progress?: (message: string) => void;
}

export interface Stack {
  readonly ports: Ports;
  readonly decisions: DecisionLog;
  readonly authService: AuthService;
  readonly gateway: RunningGateway;
  readonly vmcontroller: RunningVmController;
  /** The gateway's public address (its Envoy ingress). */
  readonly gatewayUrl: string;
  /** vmcontroller's network address (its Envoy ingress). */
  readonly vmcontrollerAddress: string;
  /** The clouds a namespace belongs to, read straight from SpiceDB with the preshared key (the operator's view). */
  namespaceClouds(namespaceId: string): Promise<string[]>;
  /**
   * Asks SpiceDB directly (with the preshared key, as an operator would) whether `subject` has
   * `permission` on `resource`: 'allowed', 'denied', or the gRPC error SpiceDB answered.
   */
  operatorCheck(resource: string, permission: string, subject: string): Promise<string>;
  /** The output of a process, for failure messages. */
  outputOf(name: string): string;
  stop(): Promise<void>;
}

async function allocatePorts(): Promise<Ports> {
  const ports = {} as Ports;
  for (const role of Object.keys(PORT_PLAN) as PortRole[]) ports[role] = await freePort();
  return ports;
}

async function writeSigningKey(file: string): Promise<void> {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(file, await exportPKCS8(privateKey), { mode: 0o600 });
}

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const progress = options.progress ?? ((): void => undefined);
  for (const tool of ['envoy', 'spicedb']) {
    if (!existsSync(join(TOOLS_BIN, tool))) throw new Error(`${join(TOOLS_BIN, tool)} is missing: run scripts/install-tools.sh`);
  }

  const ports = await allocatePorts();
  const dir = mkdtempSync(join(tmpdir(), 'jwtauth-demo-'));
  // The rendered sidecar configs sit in sidecars/ beside a copy of the proto, as in examples/demo,
  // so the paths they name relative to themselves (body.protoFiles: ../vmcontroller.proto) hold.
  const sidecarDir = join(dir, 'sidecars');
  mkdirSync(sidecarDir);
  copyFileSync(join(DEMO_DIR, 'vmcontroller.proto'), join(dir, 'vmcontroller.proto'));
  const presharedKey = randomBytes(24).toString('base64url');
  const env = { ...process.env, SPICEDB_PRESHARED_KEY: presharedKey };
  const decisions = new DecisionLog();
  const children: ManagedProcess[] = [];
  const stoppers: Array<() => Promise<void>> = [];

  const render = (source: string, target: string): string => {
    const file = join(dir, target);
    writeFileSync(file, rewritePorts(readFileSync(join(DEMO_DIR, source), 'utf8'), ports));
    return file;
  };

  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  // Ctrl-C kills the children from the exit handler; the keys and configs must go too.
  const forgetDir = atExit(removeDir);
  const stop = async (): Promise<void> => {
    await Promise.allSettled(stoppers.map((s) => s()));
    await Promise.allSettled(children.map((c) => c.stop('SIGTERM', 3000)));
    removeDir();
    forgetDir();
  };

  try {
    const [authService] = await Promise.all([
      startAuthService(sidecarDir),
      writeSigningKey(join(sidecarDir, 'gwadmin-signing-key.pem')),
      writeSigningKey(join(sidecarDir, 'vmcontroller-signing-key.pem')),
    ]);

    progress('starting SpiceDB, then 3 Envoys, 3 sidecars, gateway and vmcontroller');
    const spicedb = await startSpicedb({
      schema: readFileSync(DEMO_SCHEMA_FILE, 'utf8'),
      relationships: readFileSync(DEMO_RELATIONSHIPS_FILE, 'utf8'),
      presharedKey,
      port: ports.spicedbGrpc,
      startTimeoutMs: STARTUP_TIMEOUT_MS,
    });
    children.push(spicedb.process);
    stoppers.push(() => spicedb.stop());

    // Not waited for yet: each needs the JWKS of the sidecar upstream of it, so all must be running first.
    const sidecars = await Promise.all(
      (['gwadmin', 'vmcontroller', 'spicedb'] as const satisfies readonly SidecarName[]).map(async (name) => {
        const role = name === 'gwadmin' ? 'gateway' : name;
        const sidecar = await launchSidecar({
          configFile: render(join('sidecars', `${name}.yaml`), join('sidecars', `${name}.jwtauth.yaml`)),
          // The demo's files are complete configurations, addresses included.
          portsInConfigFile: true,
          grpcPort: ports[`${role}SidecarGrpc`],
          adminPort: ports[`${role}SidecarAdmin`],
          name: `${name}-sidecar`,
          env,
          cwd: sidecarDir,
          onLine: (line) => decisions.accept(name, line),
          waitUntil: 'spawned',
          startTimeoutMs: STARTUP_TIMEOUT_MS,
        });
        children.push(sidecar.process);
        return sidecar;
      }),
    );

    const envoys = await Promise.all(
      (['gwadmin', 'vmcontroller', 'spicedb'] as const).map(async (name) => {
        const envoy = await launchEnvoy({
          configFile: render(join('envoy', `${name}.envoy.yaml`), `${name}.envoy.yaml`),
          name: `${name}-envoy`,
          // Only SpiceDB's Envoy needs the key (it replaces the caller's JWT with it).
          env: name === 'spicedb' ? env : process.env,
          waitUntil: 'spawned',
          startTimeoutMs: STARTUP_TIMEOUT_MS,
        });
        children.push(envoy.process);
        return envoy;
      }),
    );

    const [gateway, vmcontroller] = await Promise.all([
      startGateway({
        port: ports.gatewayApp,
        egress: `127.0.0.1:${ports.gatewayEgress}`,
        vmcontrollerDirect: `127.0.0.1:${ports.vmcontrollerIngress}`,
      }),
      startVmController({ port: ports.vmcontrollerApp, egress: `127.0.0.1:${ports.vmcontrollerEgress}` }),
    ]);
    stoppers.push(() => gateway.stop(), () => vmcontroller.stop());

    const started = Date.now();
    // A process that dies during start-up will never become ready: fail at once, with its output.
    const deaths = children.map((child) =>
      child.exited.then((code) => {
        throw new Error(`${child.name} exited (${code}) during start-up:\n${child.output().slice(-4000)}`);
      }),
    );
    const ready = Promise.all([
      ...sidecars.map((sidecar) => sidecar.untilReady()),
      ...envoys.map((envoy) => envoy.untilReady()),
    ]);
    // The losers of the race must not surface later as unhandled rejections; and once started, an
    // exit is reported by the scenario's failures, not as a start-up error.
    for (const outcome of [ready, ...deaths]) outcome.catch(() => undefined);
    await Promise.race([ready, ...deaths]);
    progress(`all up in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    return {
      ports,
      decisions,
      authService,
      gateway,
      vmcontroller,
      gatewayUrl: `http://127.0.0.1:${ports.gatewayIngress}`,
      vmcontrollerAddress: `127.0.0.1:${ports.vmcontrollerIngress}`,
      async namespaceClouds(namespaceId) {
        const request = v1.ReadRelationshipsRequest.create({
          consistency: v1.Consistency.create({ requirement: { oneofKind: 'fullyConsistent', fullyConsistent: true } }),
          relationshipFilter: v1.RelationshipFilter.create({ resourceType: 'namespace', optionalResourceId: namespaceId, optionalRelation: 'cloud' }),
        });
        const rows = await spicedb.client.promises.readRelationships(request);
        return rows.map((row) => `${row.relationship?.subject?.object?.objectType}:${row.relationship?.subject?.object?.objectId}`);
      },
      async operatorCheck(resource, permission, subject) {
        const [resourceType = '', resourceId = ''] = resource.split(':');
        const at = subject.indexOf(':');
        const request = v1.CheckPermissionRequest.create({
          consistency: v1.Consistency.create({ requirement: { oneofKind: 'fullyConsistent', fullyConsistent: true } }),
          resource: v1.ObjectReference.create({ objectType: resourceType, objectId: resourceId }),
          permission,
          subject: v1.SubjectReference.create({ object: v1.ObjectReference.create({ objectType: subject.slice(0, at), objectId: subject.slice(at + 1) }) }),
        });
        try {
          const response = await spicedb.client.promises.checkPermission(request);
          return response.permissionship === v1.CheckPermissionResponse_Permissionship.HAS_PERMISSION ? 'allowed' : 'denied';
        } catch (error) {
          const failure = error as ServiceError;
          return `${status[failure.code] ?? failure.code}: ${failure.details}`;
        }
      },
      outputOf(name) {
        return children.find((c) => c.name === name)?.output() ?? '';
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
