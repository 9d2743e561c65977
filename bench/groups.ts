/**
 * A scenario group's processes: its SpiceDB (the run's shared one, or its own), and its authorizer
 * and Envoy, each started when a scenario first needs it and stopped when the group closes.
 */
import { launchEnvoy, writeEnvoyConfig } from '../dev/envoy.js';
import type { EnvoyProcess } from '../dev/envoy.js';
import { freePort } from '../dev/ports.js';
import { startPostgres } from '../dev/postgres.js';
import { startSpicedb } from '../dev/spicedb.js';
import type { SpicedbDatastore, SpicedbServer } from '../dev/spicedb.js';
import { startAuthorizer } from './authorizers.js';
import type { RunningAuthorizer } from './authorizers.js';
import { prepareDirectChecks } from './direct-checks.js';
import { benchEnvoyConfig, benchListener } from '../dev/bench/envoy-config.js';
import { SCHEMA } from '../dev/bench/fixtures.js';
import { FRONT_CPUS, pin } from './pinning.js';
import { summarizeProfile } from './profile.js';
import type { Findings, GroupProcesses, Run } from './run-state.js';
import { isDirect } from '../dev/bench/scenarios.js';
import type { DirectChecks, Scenario, ScenarioGroup, ThroughEnvoy } from '../dev/bench/scenarios.js';
import { prepareThroughEnvoy } from './through-envoy.js';
import type { Preparer } from './turns.js';

/** What the cached scenarios' checks need; every SpiceDB of the run starts with it. */
export const SEED_RELATIONSHIPS = 'cloud:cl0#admin@user:alice';

/** The group's Envoy on the front core, in front of the authorizer at `authzPort`. */
async function startGroupEnvoy(group: ScenarioGroup, authzPort: number | undefined, run: Run): Promise<EnvoyProcess> {
  const config = benchEnvoyConfig(group.envoy.map((listener) => benchListener(listener, run.ports[listener.port], run.keys.jwks)), await freePort(), authzPort);
  return launchEnvoy({ configFile: writeEnvoyConfig(config), cpus: FRONT_CPUS, concurrency: group.envoyConcurrency });
}

/** The run as a group sees it, with the SpiceDB its authorizer asks; stop() stops what the group started. */
interface GroupSpicedb {
  readonly run: Run;
  stop(): Promise<void>;
}

/**
 * The shared SpiceDB, or (scenarios.ts, `spicedbDatastore`) one of the group's own: on the memory
 * datastore, or on a throwaway PostgreSQL cluster. Each runs on the front core, as the shared one
 * does, every Postgres process included (they inherit the cluster's CPU list).
 */
async function startGroupSpicedb(group: ScenarioGroup, run: Run): Promise<GroupSpicedb> {
  const own = async (datastore: SpicedbDatastore, name: string): Promise<SpicedbServer> => {
    const spicedb = await startSpicedb({ schema: SCHEMA, relationships: SEED_RELATIONSHIPS, datastore, name });
    pin(spicedb.process.child.pid, FRONT_CPUS);
    return spicedb;
  };
  switch (group.spicedbDatastore) {
    case undefined:
      return { run, stop: () => Promise.resolve() };
    case 'memory': {
      run.log('starting a SpiceDB of its own on the memory datastore for this group');
      const spicedb = await own({ engine: 'memory' }, 'spicedb-memory');
      return { run: { ...run, spicedb, spicedbPid: spicedb.process.child.pid }, stop: () => spicedb.stop() };
    }
    case 'postgres': {
      run.log('starting PostgreSQL (a throwaway cluster) and a SpiceDB of its own on it for this group');
      const postgres = await startPostgres({ name: 'bench-postgres', cpus: FRONT_CPUS });
      try {
        const spicedb = await own({ engine: 'postgres', uri: postgres.uri }, 'spicedb-postgres');
        const stop = async (): Promise<void> => {
          await spicedb.stop();
          await postgres.stop();
        };
        return { run: { ...run, spicedb, spicedbPid: spicedb.process.child.pid }, stop };
      } catch (error) {
        await postgres.stop();
        throw error;
      }
    }
  }
}

/**
 * Written into the group's SpiceDB before its scenarios start; minimize_latency checks read a
 * revision quantized to 5 s, so the scenario's expectation waits for the last one to be visible.
 */
async function writeDistinctResources(run: Run, scenarios: readonly Scenario[]): Promise<void> {
  for (const scenario of scenarios) {
    const load = scenario.load;
    if (load.kind !== 'distinct-resources') continue;
    run.log(`writing ${load.resources} relationships (cloud:c<i>#member@user:alice) for the uncached scenario`);
    // SpiceDB takes at most 1,000 updates per WriteRelationships call by default.
    for (let from = 0; from < load.resources; from += 1000) {
      const lines: string[] = [];
      for (let i = from; i < Math.min(load.resources, from + 1000); i++) lines.push(`cloud:c${i}#member@user:alice`);
      await run.spicedb.write(lines.join('\n'));
    }
  }
}

/** A group's processes, started when its scenarios first need them; close() stops them all. */
export interface OpenGroup {
  readonly processes: GroupProcesses;
  readonly run: Run;
  preparer(scenario: ThroughEnvoy | DirectChecks): Preparer;
  close(): Promise<void>;
}

/**
 * The group's SpiceDB (and relationships) for `scenarios`, and its authorizer and Envoy on first
 * use. Each group gets listener ports of its own, so groups compared with --compare run side by side.
 */
export async function openGroup(group: ScenarioGroup, sharedRun: Run, scenarios: readonly Scenario[], findings: Findings): Promise<OpenGroup> {
  const groupSpicedb = await startGroupSpicedb(group, { ...sharedRun, ports: { ingress: await freePort(), egress: await freePort() } });
  try {
    await writeDistinctResources(groupSpicedb.run, scenarios);
  } catch (error) {
    await groupSpicedb.stop();
    throw error;
  }
  const run = groupSpicedb.run;
  let authorizer: Promise<RunningAuthorizer> | undefined;
  let envoy: Promise<EnvoyProcess> | undefined;
  const processes: GroupProcesses = {
    authorizer: () => (authorizer ??= startAuthorizer(group.starts, run)),
    envoy: () => (envoy ??= processes.authorizer().then((started) => startGroupEnvoy(group, started.grpcPort, run))),
  };
  return {
    processes,
    run,
    preparer: (scenario) => ({
      id: scenario.id,
      prepare: () => (isDirect(scenario) ? prepareDirectChecks(scenario, processes, run, findings) : prepareThroughEnvoy(scenario, processes, run, findings)),
    }),
    async close() {
      // A start that failed has been reported by the scenario that needed it.
      await envoy?.then((started) => started.stop(), () => undefined);
      const stopped = await authorizer?.then(
        async (started) => {
          await started.stop();
          return started;
        },
        () => undefined,
      );
      if (group.starts.kind === 'sidecar' && group.starts.profileInResults && stopped?.cpuProfile !== undefined) {
        findings.profiles[group.starts.name] = summarizeProfile(stopped.cpuProfile);
      }
      await groupSpicedb.stop();
    },
  };
}
