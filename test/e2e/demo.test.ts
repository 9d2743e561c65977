/**
 * The seed scenario end to end, the same run `npm run demo` prints (examples/demo/scenario.ts):
 * real SpiceDB, three real Envoys and three sidecar processes (built CLI), the demo gateway and
 * vmcontroller. Each test asserts what a user or operator of the platform depends on, from the
 * raw observations (responses, SpiceDB contents, decision log lines), not from the scenario's own
 * verdict alone.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CLOUD, OTHER_CLOUD, runScenario, USERS } from '../../examples/demo/scenario.js';
import type { ExpectationId, Observations, ScenarioResult } from '../../examples/demo/scenario.js';

let result: ScenarioResult;
let seen: Observations;

beforeAll(async () => {
  result = await runScenario();
  seen = result.observations;
}, 120_000);

/** The scenario's own verdict, with its reasons as the failure message. */
function held(id: ExpectationId): void {
  const expectation = result.expectations.find((e) => e.id === id);
  expect(expectation, `expectation ${id} did not run`).toBeDefined();
  expect(expectation?.failures ?? [], `${id} failed`).toEqual([]);
}

describe('demo: the seed scenario through Envoy, the sidecars and SpiceDB', () => {
  it('without outbound injection the saga call has no jwtauth context: 401 missing_token at vmcontroller, nothing written', () => {
    const o = seen.originalFailure;
    expect(o?.create.status).toBe(202);
    expect(o?.saga).toMatchObject({ status: 'failed', errorCode: 'UNAUTHENTICATED', errorReason: 'missing_token' });
    // A denial's body (grpc-message for gRPC callers) reads `<reason>: <text>`.
    expect(o?.saga?.errorDetails).toMatch(/^missing_token: /);
    expect(o?.vmcontrollerIngress).toMatchObject({ decision: 'deny', reason: 'missing_token', status: 401, tokenKind: 'none' });
    expect(o?.spicedbClouds).toEqual([]);
    held('original-failure');
  });

  it('with injection the saga acts for its user, vmcontroller writes with its service token, and the relation is in SpiceDB', () => {
    const o = seen.fix;
    expect(o?.saga).toMatchObject({ status: 'done', userId: USERS.admin });
    expect(o?.spicedbClouds).toEqual([`cloud:${CLOUD}`]);
    const hop = (sidecar: string, direction: string) => o?.hops.find((l) => l.sidecar === sidecar && l.direction === direction);
    expect(hop('gwadmin', 'outbound')).toMatchObject({ decision: 'allow', reason: 'on_behalf_of_token_attached', tokenKind: 'on_behalf_of', subject: USERS.admin });
    expect(hop('gwadmin', 'outbound')?.checks).toEqual([expect.objectContaining({ resource: `cloud:${CLOUD}`, permission: 'create_saga', subject: `user:${USERS.admin}`, result: 'allowed' })]);
    expect(hop('vmcontroller', 'inbound')).toMatchObject({ decision: 'allow', tokenKind: 'internal', issuer: 'gwadmin', subject: USERS.admin, subjectType: 'user' });
    // The saga sends no header naming the cloud: these checks read it from the CreateNamespace message.
    expect(hop('vmcontroller', 'inbound')?.checks).toEqual([
      expect.objectContaining({ resource: `cloud:${CLOUD}`, permission: 'create_namespace', subject: `user:${USERS.admin}`, result: 'allowed' }),
      expect.objectContaining({ resource: `cloud:${CLOUD}`, permission: 'act_for_users', subject: 'service:gwadmin', result: 'allowed' }),
    ]);
    expect(hop('vmcontroller', 'outbound')).toMatchObject({ decision: 'allow', reason: 'service_token_attached', subject: 'vmcontroller', audience: 'spicedb' });
    expect(hop('spicedb', 'inbound')).toMatchObject({ decision: 'allow', rule: 'spicedb-write-relationships', subject: 'vmcontroller', subjectType: 'service' });
    held('fix');
  });

  it('a Teleport user id with a dot is checked in its escaped form and can create a namespace', () => {
    const o = seen.dottedUserId;
    expect(o?.cliEncoded).toBe('=cloud-teleport-aleksander=2Erykalin');
    expect(o?.encoded).toBe(o?.cliEncoded);
    expect(o?.inRelationshipsFile).toBe(true);
    expect(o?.rawIdAtSpicedb).toMatch(/^INVALID_ARGUMENT/);
    expect(o?.saga).toMatchObject({ status: 'done', userId: USERS.teleport });
    expect(o?.spicedbClouds).toEqual([`cloud:${CLOUD}`]);
    expect(o?.checkedSubjects).toContain('user:=cloud-teleport-aleksander=2Erykalin');
    expect(o?.checkedSubjects).not.toContain(`user:${USERS.teleport}`);
    held('dotted-user-id');
  });

  it('a user without permission on the cloud gets 403 from the gateway and the gateway app never sees the request', () => {
    const o = seen.forbiddenAtGateway;
    expect(o?.create).toMatchObject({ status: 403, reason: 'permission_denied' });
    expect(o?.sagasAfter).toBe(o?.sagasBefore);
    expect(o?.gatewayIngress?.checks).toEqual([expect.objectContaining({ resource: `cloud:${CLOUD}`, permission: 'create_namespace', subject: `user:${USERS.outsider}`, result: 'denied' })]);
    held('forbidden-at-gateway');
  });

  it("a saga acting for a user is refused where the user lacks create_saga, before the call leaves the gateway's pod", () => {
    const o = seen.onBehalfOfLimited;
    expect(o?.request.status).toBe(202);
    expect(o?.saga).toMatchObject({ status: 'failed', errorCode: 'PERMISSION_DENIED', errorReason: 'on_behalf_of_not_permitted' });
    expect(o?.saga?.errorDetails).toMatch(/^on_behalf_of_not_permitted: /);
    expect(o?.gatewayEgress).toMatchObject({ decision: 'deny', reason: 'on_behalf_of_not_permitted', status: 403 });
    expect(o?.gatewayEgress?.checks).toEqual([expect.objectContaining({ resource: `cloud:${CLOUD}`, permission: 'create_saga', subject: `user:${USERS.member}`, result: 'denied' })]);
    expect(o?.vmcontrollerDecisions).toBe(0);
    expect(o?.spicedbClouds).toEqual([]);
    held('on-behalf-of-limited');
  });

  it('an external user token is exchanged on the way out and accepted downstream, while the raw token is not', () => {
    const o = seen.tokenExchange;
    expect(o?.get.status).toBe(200);
    expect(JSON.parse(o?.get.body ?? '{}')).toMatchObject({ cloudId: CLOUD, namespaceId: o?.namespaceId });
    expect(o?.gatewayEgress).toMatchObject({ decision: 'allow', reason: 'user_token_exchanged', tokenKind: 'external', issuer: 'auth-service', subject: USERS.admin });
    expect(o?.vmcontrollerIngress).toMatchObject({ decision: 'allow', tokenKind: 'internal', issuer: 'gwadmin', subject: USERS.admin, rule: 'get-namespace' });
    expect(o?.direct).toMatchObject({ ok: false, failure: { code: 'UNAUTHENTICATED', reason: 'unknown_issuer' } });
    held('token-exchange');
  });

  it('a call whose message names another cloud than its forged x-cloud-id is checked against the message, and refused', () => {
    const o = seen.messageNotHeader;
    // On behalf of a user: refused at the gateway's egress, on the message's cloud; nothing leaves the pod.
    expect(o?.create).toMatchObject({ ok: false, failure: { code: 'PERMISSION_DENIED', reason: 'on_behalf_of_not_permitted' } });
    expect(o?.createEgress).toMatchObject({ decision: 'deny', reason: 'on_behalf_of_not_permitted', status: 403 });
    expect(o?.createEgress?.checks).toEqual([expect.objectContaining({ resource: `cloud:${OTHER_CLOUD}`, permission: 'create_saga', subject: `user:${USERS.admin}`, result: 'denied' })]);
    expect(o?.createDownstream).toBe(0);
    expect(o?.createRecorded).toBe(false);
    expect(o?.spicedbClouds).toEqual([]);
    // With the user's own (exchanged) token: vmcontroller's sidecar refuses it, on the message's cloud.
    expect(o?.get).toMatchObject({ ok: false, failure: { code: 'PERMISSION_DENIED', reason: 'permission_denied', details: 'permission_denied: permission denied' } });
    expect(o?.getEgress).toMatchObject({ decision: 'allow', reason: 'user_token_exchanged' });
    expect(o?.getIngress).toMatchObject({ decision: 'deny', reason: 'permission_denied', status: 403, rule: 'get-namespace', subject: USERS.admin, tokenKind: 'internal' });
    expect(o?.getIngress?.checks).toEqual([expect.objectContaining({ resource: `cloud:${OTHER_CLOUD}`, permission: 'view', subject: `user:${USERS.admin}`, result: 'denied' })]);
    held('message-not-header');
  });
});
