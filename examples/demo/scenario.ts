/**
 * The seed scenario, end to end, as seven expectations. `npm run demo` (run.ts) prints it;
 * test/e2e/demo.test.ts asserts it. Both run this module, so what the test checks is what the demo
 * shows.
 *
 * Each expectation acts the way a user or the saga would (HTTP to the gateway's Envoy, the saga
 * executor's own gRPC calls), then reads three independent sources: what the caller got back,
 * what SpiceDB now holds (read directly, as an operator), and the sidecars' decision log lines.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/base/package-root.js';
import { encodeSubjectId } from '../../src/core/subject-id.js';
import type { DecisionLine, SidecarName } from './decisions.js';
import type { Saga } from './gateway.js';
import { DEMO_RELATIONSHIPS_FILE, startStack } from './stack.js';
import type { Stack } from './stack.js';
import { VmControllerClient } from './vmcontroller-api.js';
import type { CallResult } from './vmcontroller-api.js';

export const CLOUD = 'cl0';
/** A cloud nobody in the demo has any relation to: what a forged call tries to reach. */
export const OTHER_CLOUD = 'cl1';
export const USERS = {
  /** admin of cl0. */
  admin: 'alice',
  /** saga_creator of cl0, a Teleport user id with a dot. */
  teleport: 'cloud-teleport-aleksander.rykalin',
  /** member of cl0: may view it, may not create namespaces or start sagas. */
  member: 'bob',
  /** no relation to cl0 at all. */
  outsider: 'eve',
} as const;

export type ExpectationId =
  | 'original-failure'
  | 'fix'
  | 'dotted-user-id'
  | 'forbidden-at-gateway'
  | 'on-behalf-of-limited'
  | 'token-exchange'
  | 'message-not-header';

export interface ExpectationResult {
  readonly id: ExpectationId;
  readonly title: string;
  readonly passed: boolean;
  /** Why it did not hold, one line each. Empty when it held. */
  readonly failures: readonly string[];
  /** What the callers did and saw, and what SpiceDB holds afterwards. */
  readonly narrative: readonly string[];
  /** Every sidecar decision made for this expectation's calls, in order. */
  readonly decisions: readonly DecisionLine[];
}

/** One HTTP call to the gateway, as the user saw it. */
interface HttpOutcome {
  readonly status: number;
  /** `x-jwtauth-reason`, present on sidecar denials. */
  readonly reason: string | null;
  readonly body: string;
}

/** A saga after it finished: what the executor's call got back. */
interface SagaOutcome {
  readonly id: string;
  readonly status: Saga['status'];
  readonly userId: string;
  readonly namespaceId: string;
  readonly errorCode: string | undefined;
  readonly errorReason: string | undefined;
  readonly errorDetails: string | undefined;
}

/** The raw facts each expectation was judged on, for the test to assert independently. */
export interface Observations {
  originalFailure?: { create: HttpOutcome; saga: SagaOutcome | undefined; spicedbClouds: string[]; vmcontrollerIngress: DecisionLine | undefined };
  fix?: { create: HttpOutcome; saga: SagaOutcome | undefined; spicedbClouds: string[]; hops: DecisionLine[] };
  dottedUserId?: {
    encoded: string | undefined;
    cliEncoded: string;
    inRelationshipsFile: boolean;
    rawIdAtSpicedb: string;
    create: HttpOutcome;
    saga: SagaOutcome | undefined;
    spicedbClouds: string[];
    checkedSubjects: string[];
  };
  forbiddenAtGateway?: { create: HttpOutcome; sagasBefore: number; sagasAfter: number; gatewayIngress: DecisionLine | undefined };
  onBehalfOfLimited?: {
    request: HttpOutcome;
    saga: SagaOutcome | undefined;
    spicedbClouds: string[];
    gatewayEgress: DecisionLine | undefined;
    vmcontrollerDecisions: number;
  };
  tokenExchange?: {
    namespaceId: string | undefined;
    get: HttpOutcome;
    gatewayEgress: DecisionLine | undefined;
    vmcontrollerIngress: DecisionLine | undefined;
    direct: CallResult;
    directDecision: DecisionLine | undefined;
  };
  messageNotHeader?: {
    /** CreateNamespace naming OTHER_CLOUD, on behalf of the admin of CLOUD, with `x-cloud-id: CLOUD`. */
    create: CallResult;
    createNamespaceId: string;
    createEgress: DecisionLine | undefined;
    /** Decisions about the forged CreateNamespace anywhere but gwadmin's sidecar. */
    createDownstream: number;
    /** Whether vmcontroller holds the namespace (it records only what it wrote). */
    createRecorded: boolean;
    spicedbClouds: string[];
    /** GetNamespace naming OTHER_CLOUD with the admin's own token (exchanged), with `x-cloud-id: CLOUD`. */
    get: CallResult;
    getEgress: DecisionLine | undefined;
    getIngress: DecisionLine | undefined;
  };
}

export interface ScenarioResult {
  readonly expectations: readonly ExpectationResult[];
  readonly observations: Observations;
  readonly startupMs: number;
  readonly totalMs: number;
}

export interface ScenarioOptions {
  readonly progress?: (message: string) => void;
  /** Called as soon as each expectation has been judged (the demo prints it at once). */
  readonly onExpectation?: (result: ExpectationResult) => void;
}

const CLI = join(PACKAGE_ROOT, 'dist', 'src', 'cli.js');
const SAGA_TIMEOUT_MS = 15_000;

/** Collects the failed conditions of one expectation. */
class Judge {
  readonly failures: string[] = [];
  readonly narrative: string[] = [];
  that(condition: boolean, failure: string): void {
    if (!condition) this.failures.push(failure);
  }
  say(line: string): void {
    this.narrative.push(line);
  }
}

function describeHttp(outcome: HttpOutcome): string {
  return `${outcome.status}${outcome.reason ? ` (x-jwtauth-reason: ${outcome.reason})` : ''}`;
}

function describeSaga(saga: SagaOutcome | undefined): string {
  if (!saga) return 'did not finish';
  if (saga.status === 'done') return 'done';
  const details = saga.errorDetails?.trim();
  return `${saga.status}: ${saga.errorCode ?? '?'}${saga.errorReason ? ` (x-jwtauth-reason: ${saga.errorReason})` : ''}${details ? ` "${details}"` : ''}`;
}

function describeCall(result: CallResult): string {
  if (result.ok) return 'OK';
  const { code, reason, details } = result.failure;
  return `${code}${reason ? ` (x-jwtauth-reason: ${reason})` : ''}${details ? ` "${details}"` : ''}`;
}

function describeClouds(namespaceId: string, clouds: readonly string[]): string {
  return clouds.length === 0 ? `SpiceDB holds no namespace:${namespaceId}#cloud relation` : clouds.map((c) => `SpiceDB holds namespace:${namespaceId}#cloud@${c}`).join('; ');
}

class Scenario {
  private nextRequest = 1;
  readonly observations: Observations = {};

  constructor(private readonly stack: Stack) {}

  /** A request id of our own, so every sidecar's decision about this call can be found. */
  requestId(label: string): string {
    return `${label}-${this.nextRequest++}`;
  }

  async callGateway(method: 'GET' | 'POST', path: string, user: string, requestId: string, headers: Record<string, string> = {}): Promise<HttpOutcome> {
    const token = await this.stack.authService.issue(user);
    const response = await fetch(`${this.stack.gatewayUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'x-request-id': requestId, ...headers },
    });
    return { status: response.status, reason: response.headers.get('x-jwtauth-reason'), body: await response.text() };
  }

  sagaIdOf(outcome: HttpOutcome): string | undefined {
    if (outcome.status !== 202) return undefined;
    const parsed = JSON.parse(outcome.body) as { sagaId?: unknown };
    return typeof parsed.sagaId === 'string' ? parsed.sagaId : undefined;
  }

  async awaitSaga(sagaId: string | undefined): Promise<SagaOutcome | undefined> {
    if (sagaId === undefined) return undefined;
    const deadline = Date.now() + SAGA_TIMEOUT_MS;
    for (;;) {
      const saga = this.stack.gateway.sagas.get(sagaId);
      if (saga && (saga.status === 'done' || saga.status === 'failed')) {
        return {
          id: saga.id,
          status: saga.status,
          userId: saga.state.userId,
          namespaceId: saga.state.namespaceId,
          errorCode: saga.error?.code,
          errorReason: saga.error?.reason,
          errorDetails: saga.error?.details,
        };
      }
      if (Date.now() > deadline) return undefined;
      await sleep(25);
    }
  }

  decision(requestId: string | undefined, sidecar: SidecarName, direction: 'inbound' | 'outbound'): Promise<DecisionLine | undefined> {
    if (requestId === undefined) return Promise.resolve(undefined);
    return this.stack.decisions.waitFor((l) => l.requestId === requestId && l.sidecar === sidecar && l.direction === direction);
  }

  /** Decision lines trail the responses a little: give stragglers a moment, then collect. */
  async decisionsFor(ids: ReadonlyArray<string | undefined>): Promise<DecisionLine[]> {
    await sleep(150);
    return this.stack.decisions.forRequests(ids.filter((id): id is string => id !== undefined));
  }

  async run(id: ExpectationId, title: string, body: (judge: Judge) => Promise<ReadonlyArray<string | undefined>>): Promise<ExpectationResult> {
    const judge = new Judge();
    let ids: ReadonlyArray<string | undefined> = [];
    try {
      ids = await body(judge);
    } catch (error) {
      judge.that(false, `threw: ${error instanceof Error ? error.message : String(error)}`);
    }
    const decisions = await this.decisionsFor(ids);
    return { id, title, passed: judge.failures.length === 0, failures: judge.failures, narrative: judge.narrative, decisions };
  }

  // ---------------------------------------------------------------------------------------- 1
  originalFailure(): Promise<ExpectationResult> {
    return this.run('original-failure', 'The original failure: a saga call without injection has no jwtauth context', async (judge) => {
      const requestId = this.requestId('create');
      // The seed's saga: its gRPC client dials vmcontroller directly, so no sidecar attaches a token.
      const create = await this.callGateway('POST', `/v1/clouds/${CLOUD}/namespaces`, USERS.admin, requestId, { 'x-demo-saga-client': 'native' });
      judge.say(`${USERS.admin} ─► gwadmin  POST /v1/clouds/${CLOUD}/namespaces (user token from auth-service) → ${describeHttp(create)}`);
      const sagaId = this.sagaIdOf(create);
      const saga = await this.awaitSaga(sagaId);
      judge.say(`${sagaId ?? 'saga'} runs later, from the saga state only, and calls vmcontroller with the "native" client (no egress, no sidecar) → ${describeSaga(saga)}`);
      const vmcontrollerIngress = await this.decision(sagaId, 'vmcontroller', 'inbound');
      const spicedbClouds = saga ? await this.stack.namespaceClouds(saga.namespaceId) : [];
      if (saga) judge.say(describeClouds(saga.namespaceId, spicedbClouds));
      this.observations.originalFailure = { create, saga, spicedbClouds, vmcontrollerIngress };

      judge.that(create.status === 202, `the gateway should accept the request (202), got ${describeHttp(create)}`);
      judge.that(saga?.status === 'failed', `the saga should fail, it ${describeSaga(saga)}`);
      judge.that(saga?.errorCode === 'UNAUTHENTICATED', `the saga's call should get UNAUTHENTICATED, got ${saga?.errorCode}`);
      judge.that(saga?.errorReason === 'missing_token', `the saga's call should be refused with missing_token, got ${saga?.errorReason}`);
      judge.that(
        vmcontrollerIngress?.decision === 'deny' && vmcontrollerIngress.reason === 'missing_token' && vmcontrollerIngress.status === 401,
        `vmcontroller's sidecar should deny the call 401 missing_token, logged ${vmcontrollerIngress ? `${vmcontrollerIngress.decision} ${vmcontrollerIngress.reason}` : 'nothing'}`,
      );
      judge.that(spicedbClouds.length === 0, `SpiceDB should hold no relation for the namespace, holds ${spicedbClouds.join(', ')}`);
      return [requestId, sagaId];
    });
  }

  // ---------------------------------------------------------------------------------------- 2
  /** The fixed path for one user: create a namespace, let the saga run, read the relation back. */
  private async createThroughSaga(judge: Judge, user: string): Promise<{ create: HttpOutcome; saga: SagaOutcome | undefined; spicedbClouds: string[]; ids: string[] }> {
    const requestId = this.requestId('create');
    const create = await this.callGateway('POST', `/v1/clouds/${CLOUD}/namespaces`, user, requestId);
    judge.say(`${user} ─► gwadmin  POST /v1/clouds/${CLOUD}/namespaces (user token from auth-service) → ${describeHttp(create)}`);
    const sagaId = this.sagaIdOf(create);
    const saga = await this.awaitSaga(sagaId);
    judge.say(`${sagaId ?? 'saga'} runs later, from the saga state only, through gwadmin's egress with x-jwtauth-on-behalf-of: ${user} → ${describeSaga(saga)}`);
    // The last hop of the chain: once SpiceDB's sidecar has logged, every earlier hop has too.
    await this.decision(sagaId, 'spicedb', 'inbound');
    const spicedbClouds = saga ? await this.stack.namespaceClouds(saga.namespaceId) : [];
    if (saga) judge.say(describeClouds(saga.namespaceId, spicedbClouds));
    judge.that(create.status === 202, `the gateway should accept the request (202), got ${describeHttp(create)}`);
    judge.that(saga?.status === 'done', `the saga should complete, it ${describeSaga(saga)}`);
    judge.that(
      spicedbClouds.length === 1 && spicedbClouds[0] === `cloud:${CLOUD}`,
      `SpiceDB should hold namespace#cloud@cloud:${CLOUD}, holds ${spicedbClouds.join(', ') || 'nothing'}`,
    );
    return { create, saga, spicedbClouds, ids: sagaId === undefined ? [requestId] : [requestId, sagaId] };
  }

  fix(): Promise<ExpectationResult> {
    return this.run('fix', 'The fix: with injection on, the saga creates the namespace and the relation is in SpiceDB', async (judge) => {
      const { create, saga, spicedbClouds, ids } = await this.createThroughSaga(judge, USERS.admin);
      const sagaId = ids[1];
      const hops = (await this.decisionsFor([sagaId])).filter((l) => l.requestId === sagaId);
      this.observations.fix = { create, saga, spicedbClouds, hops };
      const find = (sidecar: SidecarName, direction: 'inbound' | 'outbound'): DecisionLine | undefined =>
        hops.find((l) => l.sidecar === sidecar && l.direction === direction);
      const obo = find('gwadmin', 'outbound');
      judge.that(obo?.reason === 'on_behalf_of_token_attached', `gwadmin's sidecar should attach an on-behalf-of token, logged ${obo?.reason ?? 'nothing'}`);
      const atVm = find('vmcontroller', 'inbound');
      judge.that(
        atVm?.decision === 'allow' && atVm.subject === USERS.admin && atVm.subjectType === 'user' && atVm.tokenKind === 'internal',
        `vmcontroller's sidecar should allow ${USERS.admin}'s internal token, logged ${atVm ? `${atVm.decision} ${atVm.reason} ${atVm.subjectType}:${atVm.subject}` : 'nothing'}`,
      );
      // The saga sends no header naming the cloud: both sidecars can only have read it from the message.
      const checkedClouds = [...new Set([obo, atVm].flatMap((line) => line?.checks.map((c) => c.resource) ?? []))];
      judge.that(
        checkedClouds.length === 1 && checkedClouds[0] === `cloud:${CLOUD}`,
        `the on-behalf-of and vmcontroller checks should be on the message's cloud:${CLOUD}, were on ${checkedClouds.join(', ') || 'nothing'}`,
      );
      const service = find('vmcontroller', 'outbound');
      judge.that(service?.reason === 'service_token_attached', `vmcontroller's sidecar should attach its service token, logged ${service?.reason ?? 'nothing'}`);
      const atSpicedb = find('spicedb', 'inbound');
      judge.that(
        atSpicedb?.decision === 'allow' && atSpicedb.subject === 'vmcontroller' && atSpicedb.rule === 'spicedb-write-relationships',
        `SpiceDB's sidecar should allow vmcontroller's WriteRelationships, logged ${atSpicedb ? `${atSpicedb.decision} ${atSpicedb.reason}` : 'nothing'}`,
      );
      return ids;
    });
  }

  // ---------------------------------------------------------------------------------------- 3
  dottedUserId(): Promise<ExpectationResult> {
    return this.run('dotted-user-id', `A user id with a dot (${USERS.teleport}) can create a namespace`, async (judge) => {
      const encoded = encodeSubjectId(USERS.teleport);
      const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'subject-id', USERS.teleport]);
      const cliEncoded = stdout.trim();
      const inRelationshipsFile = readFileSync(DEMO_RELATIONSHIPS_FILE, 'utf8').includes(`@user:${cliEncoded}`);
      judge.say(`jwtauth-sidecar subject-id ${USERS.teleport} → ${cliEncoded} (written so in examples/demo/relationships.txt: ${inRelationshipsFile ? 'yes' : 'no'})`);
      // The seed's second bug, shown on SpiceDB itself: the raw id is not a valid object id.
      const rawIdAtSpicedb = await this.stack.operatorCheck(`cloud:${CLOUD}`, 'create_saga', `user:${USERS.teleport}`);
      judge.say(`SpiceDB asked directly with the raw id user:${USERS.teleport} → ${rawIdAtSpicedb.split('\n')[0]?.slice(0, 140)}`);

      const { create, saga, spicedbClouds, ids } = await this.createThroughSaga(judge, USERS.teleport);
      const lines = await this.decisionsFor(ids);
      const checkedSubjects = [...new Set(lines.flatMap((l) => l.checks.map((c) => c.subject)))];
      this.observations.dottedUserId = { encoded, cliEncoded, inRelationshipsFile, rawIdAtSpicedb, create, saga, spicedbClouds, checkedSubjects };

      judge.that(encoded === '=cloud-teleport-aleksander=2Erykalin', `encodeSubjectId should escape the dot, gave ${encoded}`);
      judge.that(cliEncoded === encoded, `the CLI should print what the sidecar checks (${encoded}), printed ${cliEncoded}`);
      judge.that(inRelationshipsFile, `examples/demo/relationships.txt should name the user as user:${cliEncoded}`);
      judge.that(rawIdAtSpicedb.startsWith('INVALID_ARGUMENT'), `SpiceDB should reject the raw id, answered ${rawIdAtSpicedb}`);
      judge.that(saga?.userId === USERS.teleport, `the saga should carry the user id unchanged, carried ${saga?.userId}`);
      judge.that(
        checkedSubjects.includes(`user:${encoded}`) && !checkedSubjects.includes(`user:${USERS.teleport}`),
        `every SpiceDB check should use user:${encoded}, saw ${checkedSubjects.join(', ')}`,
      );
      return ids;
    });
  }

  // ---------------------------------------------------------------------------------------- 4
  forbiddenAtGateway(): Promise<ExpectationResult> {
    return this.run('forbidden-at-gateway', `A user without permission on the cloud (${USERS.outsider}) gets 403 from the gateway`, async (judge) => {
      const requestId = this.requestId('create');
      const sagasBefore = this.stack.gateway.sagas.size;
      const create = await this.callGateway('POST', `/v1/clouds/${CLOUD}/namespaces`, USERS.outsider, requestId);
      judge.say(`${USERS.outsider} ─► gwadmin  POST /v1/clouds/${CLOUD}/namespaces (user token from auth-service) → ${describeHttp(create)}`);
      const gatewayIngress = await this.decision(requestId, 'gwadmin', 'inbound');
      const sagasAfter = this.stack.gateway.sagas.size;
      judge.say(`sagas started by the gateway: ${sagasAfter - sagasBefore} (the request never reached it)`);
      this.observations.forbiddenAtGateway = { create, sagasBefore, sagasAfter, gatewayIngress };
      judge.that(create.status === 403, `the gateway's Envoy should answer 403, answered ${create.status}`);
      judge.that(create.reason === 'permission_denied', `x-jwtauth-reason should be permission_denied, was ${create.reason}`);
      judge.that(sagasAfter === sagasBefore, 'the gateway app should never see the request (no saga started)');
      const check = gatewayIngress?.checks[0];
      judge.that(
        check?.resource === `cloud:${CLOUD}` && check.permission === 'create_namespace' && check.subject === `user:${USERS.outsider}` && check.result === 'denied',
        `the sidecar should have checked cloud:${CLOUD}#create_namespace@user:${USERS.outsider} and been denied, logged ${check ? `${check.resource}#${check.permission}@${check.subject} ${check.result}` : 'no check'}`,
      );
      return [requestId];
    });
  }

  // ---------------------------------------------------------------------------------------- 5
  onBehalfOfLimited(): Promise<ExpectationResult> {
    return this.run('on-behalf-of-limited', `A saga acting for ${USERS.member} cannot do more than ${USERS.member} could`, async (judge) => {
      const requestId = this.requestId('request');
      // The gateway's own rule for namespace requests only asks for view: bob gets a saga started.
      const request = await this.callGateway('POST', `/v1/clouds/${CLOUD}/namespace-requests`, USERS.member, requestId);
      judge.say(`${USERS.member} ─► gwadmin  POST /v1/clouds/${CLOUD}/namespace-requests (needs only view on ${CLOUD}) → ${describeHttp(request)}`);
      const sagaId = this.sagaIdOf(request);
      const saga = await this.awaitSaga(sagaId);
      judge.say(`${sagaId ?? 'saga'} runs later through gwadmin's egress with x-jwtauth-on-behalf-of: ${USERS.member} → ${describeSaga(saga)}`);
      const gatewayEgress = await this.decision(sagaId, 'gwadmin', 'outbound');
      const spicedbClouds = saga ? await this.stack.namespaceClouds(saga.namespaceId) : [];
      if (saga) judge.say(describeClouds(saga.namespaceId, spicedbClouds));
      const vmcontrollerDecisions = (await this.decisionsFor([sagaId])).filter((l) => l.sidecar !== 'gwadmin').length;
      this.observations.onBehalfOfLimited = { request, saga, spicedbClouds, gatewayEgress, vmcontrollerDecisions };

      judge.that(request.status === 202, `the gateway should accept the request (202), got ${describeHttp(request)}`);
      judge.that(saga?.status === 'failed' && saga.errorCode === 'PERMISSION_DENIED', `the saga's call should get PERMISSION_DENIED, it ${describeSaga(saga)}`);
      judge.that(saga?.errorReason === 'on_behalf_of_not_permitted', `the reason should be on_behalf_of_not_permitted, was ${saga?.errorReason}`);
      const check = gatewayEgress?.checks[0];
      judge.that(
        gatewayEgress?.decision === 'deny' && check?.resource === `cloud:${CLOUD}` && check.permission === 'create_saga' && check.subject === `user:${USERS.member}` && check.result === 'denied',
        `gwadmin's sidecar should deny after checking cloud:${CLOUD}#create_saga@user:${USERS.member}, logged ${gatewayEgress ? `${gatewayEgress.decision} ${gatewayEgress.reason}` : 'nothing'}`,
      );
      judge.that(vmcontrollerDecisions === 0, `the call should never leave the gateway's pod, but ${vmcontrollerDecisions} decisions were made downstream`);
      judge.that(spicedbClouds.length === 0, `SpiceDB should hold no relation for the namespace, holds ${spicedbClouds.join(', ')}`);
      return [requestId, sagaId];
    });
  }

  // ---------------------------------------------------------------------------------------- 6
  tokenExchange(): Promise<ExpectationResult> {
    return this.run('token-exchange', 'An external user token is exchanged on the way out and accepted downstream', async (judge) => {
      const namespaceId = this.observations.fix?.saga?.status === 'done' ? this.observations.fix.saga.namespaceId : undefined;
      judge.that(namespaceId !== undefined, 'needs the namespace created by the fix expectation');
      const requestId = this.requestId('get');
      const get = await this.callGateway('GET', `/v1/clouds/${CLOUD}/namespaces/${namespaceId ?? 'none'}`, USERS.admin, requestId);
      judge.say(`${USERS.admin} ─► gwadmin  GET /v1/clouds/${CLOUD}/namespaces/${namespaceId ?? 'none'} (user token from auth-service); the gateway passes the token on to vmcontroller → ${describeHttp(get)}`);
      const gatewayEgress = await this.decision(requestId, 'gwadmin', 'outbound');
      const vmcontrollerIngress = await this.decision(requestId, 'vmcontroller', 'inbound');

      // The same kind of token, sent straight to vmcontroller: nothing there trusts the auth service.
      const directId = this.requestId('direct');
      const client = new VmControllerClient(this.stack.vmcontrollerAddress);
      let direct: CallResult;
      try {
        const token = await this.stack.authService.issue(USERS.admin);
        direct = await client.call(
          'GetNamespace',
          { cloud_id: CLOUD, namespace_id: namespaceId ?? 'none' },
          { authorization: `Bearer ${token}`, 'x-request-id': directId },
        );
      } finally {
        client.close();
      }
      const directDecision = await this.decision(directId, 'vmcontroller', 'inbound');
      judge.say(
        `${USERS.admin} ─► vmcontroller directly, GetNamespace with the same kind of auth-service token → ${direct.ok ? 'OK' : `${direct.failure.code}${direct.failure.reason ? ` (x-jwtauth-reason: ${direct.failure.reason})` : ''}`}`,
      );
      this.observations.tokenExchange = { namespaceId, get, gatewayEgress, vmcontrollerIngress, direct, directDecision };

      judge.that(get.status === 200, `the gateway should answer 200, answered ${describeHttp(get)}`);
      judge.that(
        gatewayEgress?.reason === 'user_token_exchanged' && gatewayEgress.tokenKind === 'external' && gatewayEgress.subject === USERS.admin,
        `gwadmin's sidecar should exchange ${USERS.admin}'s external token, logged ${gatewayEgress ? `${gatewayEgress.decision} ${gatewayEgress.reason}` : 'nothing'}`,
      );
      judge.that(
        vmcontrollerIngress?.decision === 'allow' && vmcontrollerIngress.tokenKind === 'internal' && vmcontrollerIngress.issuer === 'gwadmin' && vmcontrollerIngress.subject === USERS.admin,
        `vmcontroller's sidecar should accept an internal token from gwadmin for ${USERS.admin}, logged ${vmcontrollerIngress ? `${vmcontrollerIngress.decision} ${vmcontrollerIngress.reason} ${vmcontrollerIngress.tokenKind}` : 'nothing'}`,
      );
      judge.that(
        !direct.ok && direct.failure.code === 'UNAUTHENTICATED' && direct.failure.reason === 'unknown_issuer',
        `the unexchanged token should be refused at vmcontroller (UNAUTHENTICATED, unknown_issuer), got ${direct.ok ? 'OK' : `${direct.failure.code} ${direct.failure.reason}`}`,
      );
      return [requestId, directId];
    });
  }

  // ---------------------------------------------------------------------------------------- 7
  /**
   * The mismatch vmcontroller used to guard against itself: a header naming one cloud, the message
   * another. The gateway never builds such a call (it sends no x-cloud-id at all), so the scenario
   * sends it as a bug in the gateway, or an attacker inside its pod, would: through gwadmin's
   * egress, like every call the gateway makes.
   */
  messageNotHeader(): Promise<ExpectationResult> {
    const title = `A forged x-cloud-id cannot redirect a call: the sidecars check the cloud the message names (${OTHER_CLOUD})`;
    return this.run('message-not-header', title, async (judge) => {
      const egress = new VmControllerClient(`127.0.0.1:${this.stack.ports.gatewayEgress}`);
      const createId = this.requestId('forged-create');
      const getId = this.requestId('forged-get');
      const createNamespaceId = `ns-forged-${Date.now().toString(36)}`;
      let create: CallResult;
      let get: CallResult;
      try {
        // On behalf of alice, who may create namespaces in cl0 (which the header names), and
        // not in cl1 (which the message names, and where the namespace would be recorded).
        create = await egress.call(
          'CreateNamespace',
          { cloud_id: OTHER_CLOUD, namespace_id: createNamespaceId },
          { 'x-jwtauth-on-behalf-of': USERS.admin, 'x-cloud-id': CLOUD, 'x-request-id': createId },
        );
        judge.say(
          `code in gwadmin's pod ─► its egress  CreateNamespace{cloud_id: ${OTHER_CLOUD}} with x-jwtauth-on-behalf-of: ${USERS.admin} and a forged x-cloud-id: ${CLOUD} → ${describeCall(create)}`,
        );
        // alice's own token, passed on the way the gateway's GET passes it: exchanged, so vmcontroller accepts it.
        const token = await this.stack.authService.issue(USERS.admin);
        get = await egress.call(
          'GetNamespace',
          { cloud_id: OTHER_CLOUD, namespace_id: `ns-in-${OTHER_CLOUD}` },
          { authorization: `Bearer ${token}`, 'x-cloud-id': CLOUD, 'x-request-id': getId },
        );
        judge.say(
          `code in gwadmin's pod ─► its egress  GetNamespace{cloud_id: ${OTHER_CLOUD}} with ${USERS.admin}'s auth-service token and a forged x-cloud-id: ${CLOUD} → ${describeCall(get)}`,
        );
      } finally {
        egress.close();
      }
      const createEgress = await this.decision(createId, 'gwadmin', 'outbound');
      const getEgress = await this.decision(getId, 'gwadmin', 'outbound');
      const getIngress = await this.decision(getId, 'vmcontroller', 'inbound');
      const createDownstream = (await this.decisionsFor([createId])).filter((l) => l.sidecar !== 'gwadmin').length;
      const createRecorded = this.stack.vmcontroller.namespaces.has(createNamespaceId);
      const spicedbClouds = await this.stack.namespaceClouds(createNamespaceId);
      judge.say(
        `${describeClouds(createNamespaceId, spicedbClouds)}; decisions about the forged CreateNamespace past gwadmin's egress: ${createDownstream}; vmcontroller recorded it: ${createRecorded ? 'yes' : 'no'}`,
      );
      this.observations.messageNotHeader = { create, createNamespaceId, createEgress, createDownstream, createRecorded, spicedbClouds, get, getEgress, getIngress };

      const checked = (line: DecisionLine | undefined): string => (line ? line.checks.map((c) => `${c.resource}#${c.permission}@${c.subject} ${c.result}`).join(', ') || 'no check' : 'nothing');
      const onlyChecks = (line: DecisionLine | undefined, resource: string, permission: string, subject: string): boolean =>
        line !== undefined && line.checks.length > 0 && line.checks.every((c) => c.resource === resource && c.subject === subject) && line.checks.some((c) => c.permission === permission && c.result === 'denied');

      judge.that(
        !create.ok && create.failure.code === 'PERMISSION_DENIED' && create.failure.reason === 'on_behalf_of_not_permitted',
        `the forged CreateNamespace should get PERMISSION_DENIED (on_behalf_of_not_permitted), got ${describeCall(create)}`,
      );
      judge.that(
        createEgress?.decision === 'deny' && onlyChecks(createEgress, `cloud:${OTHER_CLOUD}`, 'create_saga', `user:${USERS.admin}`),
        `gwadmin's sidecar should check the message's cloud (cloud:${OTHER_CLOUD}#create_saga@user:${USERS.admin}) and deny, checked ${checked(createEgress)}`,
      );
      judge.that(createDownstream === 0, `the forged CreateNamespace should never leave the gateway's pod, but ${createDownstream} decisions were made downstream`);
      judge.that(!createRecorded, 'vmcontroller should not have recorded the forged namespace');
      judge.that(spicedbClouds.length === 0, `SpiceDB should hold no relation for ${createNamespaceId}, holds ${spicedbClouds.join(', ')}`);
      judge.that(
        !get.ok && get.failure.code === 'PERMISSION_DENIED' && get.failure.reason === 'permission_denied',
        `the forged GetNamespace should get PERMISSION_DENIED (permission_denied) from vmcontroller's sidecar, got ${describeCall(get)}`,
      );
      judge.that(getEgress?.decision === 'allow' && getEgress.reason === 'user_token_exchanged', `gwadmin's sidecar should exchange ${USERS.admin}'s token, logged ${getEgress ? `${getEgress.decision} ${getEgress.reason}` : 'nothing'}`);
      judge.that(
        getIngress?.decision === 'deny' && getIngress.rule === 'get-namespace' && onlyChecks(getIngress, `cloud:${OTHER_CLOUD}`, 'view', `user:${USERS.admin}`),
        `vmcontroller's sidecar should check cloud:${OTHER_CLOUD}#view@user:${USERS.admin} and deny, checked ${checked(getIngress)}`,
      );
      return [createId, getId];
    });
  }
}

export async function runScenario(options: ScenarioOptions = {}): Promise<ScenarioResult> {
  const began = Date.now();
  const stack = await startStack(options.progress ? { progress: options.progress } : {});
  const startupMs = Date.now() - began;
  const expectations: ExpectationResult[] = [];
  const scenario = new Scenario(stack);
  try {
    const steps = [
      () => scenario.originalFailure(),
      () => scenario.fix(),
      () => scenario.dottedUserId(),
      () => scenario.forbiddenAtGateway(),
      () => scenario.onBehalfOfLimited(),
      () => scenario.tokenExchange(),
      () => scenario.messageNotHeader(),
    ];
    for (const step of steps) {
      const result = await step();
      expectations.push(result);
      options.onExpectation?.(result);
    }
  } finally {
    await stack.stop();
  }
  return { expectations, observations: scenario.observations, startupMs, totalMs: Date.now() - began };
}
