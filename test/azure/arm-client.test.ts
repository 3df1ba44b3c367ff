import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ArmClient, ArmError } from '../../src/azure/arm.js';
import { createTokenProvider } from '../../src/azure/token-provider.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { ArmFixture, CLUSTER_SCOPE, OTHER_CLUSTER_SCOPE, ROLES, TEST_RESOURCE_GROUP_SCOPE, TEST_SUBSCRIPTION_ID } from '../fixtures/arm.js';
import { captureLog, oid } from './helpers.js';

const ALICE = oid(1);
const GROUP = oid(100);
const SUBSCRIPTION_SCOPE = `/subscriptions/${TEST_SUBSCRIPTION_ID}`;
const CUSTOM_ROLE = '3f2a6c1e-1111-4a2b-9c3d-abcdefabcdef';

let clock: ManualClock;
let arm: ArmFixture;
let metrics: Metrics;
let logs: ReturnType<typeof captureLog>;

function client(over: { timeoutMs?: number; endpoint?: string } = {}): ArmClient {
  const tokens = createTokenProvider({
    identity: 'msi-adapter',
    armEndpoint: arm.url,
    msiEndpoint: arm.msiEndpoint,
    timeoutMs: 5_000,
    clock,
    metrics,
  });
  return new ArmClient({ endpoint: over.endpoint ?? arm.url, tokens, timeoutMs: over.timeoutMs ?? 5_000, clock, metrics, log: logs.log });
}

beforeEach(async () => {
  clock = new ManualClock();
  arm = await ArmFixture.start({ clock });
  metrics = new Metrics({ defaultMetrics: false });
  logs = captureLog();
});

afterEach(async () => {
  await arm.close();
});

describe('role assignments', () => {
  it('sends the documented filter verbatim and returns assignments at and above the cluster, direct and through groups', async () => {
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    arm.assign(ALICE, ROLES.reader, SUBSCRIPTION_SCOPE);
    arm.assign(GROUP, ROLES.cognitiveServicesContributor, TEST_RESOURCE_GROUP_SCOPE, { principalType: 'Group' });
    arm.assign(ALICE, ROLES.openAiContributor, OTHER_CLUSTER_SCOPE);
    arm.assign(oid(2), ROLES.openAiUser, CLUSTER_SCOPE);
    arm.groups.set(GROUP, [ALICE]);

    const assignments = await client().listRoleAssignments(CLUSTER_SCOPE, ALICE.toUpperCase());

    const [request] = arm.requestsTo('roleAssignments');
    expect(request?.target).toBe(
      `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter=atScope()+and+assignedTo('${ALICE}')`,
    );
    expect(assignments.map((a) => [a.roleDefinitionGuid, a.principalId, a.scope]).sort()).toEqual(
      [
        [ROLES.openAiUser, ALICE, CLUSTER_SCOPE],
        [ROLES.reader, ALICE, SUBSCRIPTION_SCOPE],
        [ROLES.cognitiveServicesContributor, GROUP, TEST_RESOURCE_GROUP_SCOPE],
      ].sort(),
    );
  });

  it('follows nextLink until the last page', async () => {
    arm.pageSize = 2;
    for (let i = 0; i < 5; i++) arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE, { name: `0000000${i}-0000-4000-8000-000000000000` });

    const assignments = await client().listRoleAssignments(CLUSTER_SCOPE, ALICE);

    expect(assignments).toHaveLength(5);
    expect(arm.calls.roleAssignments).toBe(3);
    expect(arm.requestsTo('roleAssignments')[2]?.target).toContain('$skipToken=4');
  });

  it('refuses a nextLink on another origin, so the bearer token never leaves the ARM endpoint', async () => {
    arm.pageSize = 1;
    arm.nextLinkOrigin = 'http://127.0.0.2:9';
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    arm.assign(ALICE, ROLES.reader, CLUSTER_SCOPE);

    const failure = await client()
      .listRoleAssignments(CLUSTER_SCOPE, ALICE)
      .catch((e: unknown) => e);

    expect(failure).toBeInstanceOf(ArmError);
    expect(failure).toMatchObject({ reason: 'bad_response' });
    expect((failure as Error).message).toContain('another origin');
    expect(arm.calls.roleAssignments).toBe(1);
  });

  it('rejects an item of the wrong shape instead of ignoring it', async () => {
    arm.fault('roleAssignments', {
      status: 200,
      body: { value: [{ id: 'x', name: 'y', properties: { principalId: 'not-a-guid', scope: CLUSTER_SCOPE } }] },
    });
    await expect(client().listRoleAssignments(CLUSTER_SCOPE, ALICE)).rejects.toMatchObject({ reason: 'bad_response' });
  });

  it('never puts a principal ID that is not a GUID into the filter', async () => {
    await expect(client().listRoleAssignments(CLUSTER_SCOPE, "x') or atScope() or ('")).rejects.toMatchObject({ reason: 'bad_response' });
    expect(arm.calls.roleAssignments).toBe(0);
  });

  it('sends a fresh x-ms-correlation-request-id on every call and logs it, never the token', async () => {
    const c = client();
    await c.listRoleAssignments(CLUSTER_SCOPE, ALICE);
    await c.listRoleAssignments(CLUSTER_SCOPE, ALICE);

    const ids = arm.requestsTo('roleAssignments').map((r) => r.headers['x-ms-correlation-request-id']);
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(logs.lines.filter((l) => l['correlationId'] === ids[0])).not.toHaveLength(0);
    for (const token of arm.issuedTokens) expect(logs.text()).not.toContain(token);
  });
});

describe('role definitions', () => {
  it('fetches each definition once for any number of concurrent and later callers, custom roles included', async () => {
    arm.roleDefinitions.set(CUSTOM_ROLE, {
      id: CUSTOM_ROLE,
      roleName: 'Edge chat only',
      type: 'CustomRole',
      permissions: [
        {
          actions: [],
          notActions: [],
          dataActions: ['Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action'],
          notDataActions: [],
        },
      ],
    });
    const c = client();
    const builtIn = `/subscriptions/${TEST_SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${ROLES.openAiUser}`;
    const custom = `/subscriptions/${TEST_SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${CUSTOM_ROLE}`;

    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => c.getRoleDefinition(i % 2 ? builtIn : custom, CLUSTER_SCOPE)));
    await c.getRoleDefinition(`/providers/Microsoft.Authorization/roleDefinitions/${ROLES.openAiUser.toUpperCase()}`, CLUSTER_SCOPE);

    expect(arm.calls.roleDefinitions).toBe(2);
    // Read at the cluster: roleDefinitions/read there is all the documented minimal role grants.
    expect(
      arm
        .requestsTo('roleDefinitions')
        .map((r) => r.target)
        .sort(),
    ).toEqual(
      [
        `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/${ROLES.openAiUser}?api-version=2022-04-01`,
        `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/${CUSTOM_ROLE}?api-version=2022-04-01`,
      ].sort(),
    );
    expect(results[0]).toMatchObject({ guid: CUSTOM_ROLE, roleName: 'Edge chat only', roleType: 'CustomRole' });
    expect(results[1]).toMatchObject({ guid: ROLES.openAiUser, roleName: 'Cognitive Services OpenAI User' });
    expect(results[1]?.permissions[0]?.notDataActions).toEqual(['Microsoft.CognitiveServices/accounts/OpenAI/stored-completions/read']);

    clock.advance(6 * 60 * 60_000);
    await c.getRoleDefinition(builtIn, CLUSTER_SCOPE);
    expect(arm.calls.roleDefinitions).toBe(3);
  });

  it('refuses an answer that is another role definition than the one asked for', async () => {
    arm.fault('roleDefinitions', { status: 200, body: { id: 'x', name: ROLES.reader, properties: { roleName: 'Reader', permissions: [] } } });
    const asked = `/subscriptions/${TEST_SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${ROLES.openAiUser}`;
    await expect(client().getRoleDefinition(asked, CLUSTER_SCOPE)).rejects.toMatchObject({ reason: 'bad_response' });
  });

  it('answers null for a definition ARM does not have (a deleted custom role), and does not cache the failure', async () => {
    const c = client();
    const missing = `/subscriptions/${TEST_SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${CUSTOM_ROLE}`;
    expect(await c.getRoleDefinition(missing, CLUSTER_SCOPE)).toBeNull();
    expect(await c.getRoleDefinition(missing, CLUSTER_SCOPE)).toBeNull();
    expect(arm.calls.roleDefinitions).toBe(2);
  });
});

describe('throttling', () => {
  it('a 429 with Retry-After suppresses every ARM call for that long, then calls resume', async () => {
    const c = client();
    arm.fault('roleAssignments', { status: 429, headers: { 'retry-after': '5' }, times: 1 });

    await expect(c.listRoleAssignments(CLUSTER_SCOPE, ALICE)).rejects.toMatchObject({ reason: 'throttled', details: { retryAfterSeconds: 5 } });
    await expect(c.listRoleAssignments(CLUSTER_SCOPE, oid(2))).rejects.toMatchObject({ reason: 'throttled', details: { retryAfterSeconds: 5 } });
    await expect(c.listDenyAssignmentsAtScope(CLUSTER_SCOPE)).rejects.toMatchObject({ reason: 'throttled' });
    clock.advance(4_000);
    await expect(c.listRoleAssignments(CLUSTER_SCOPE, ALICE)).rejects.toMatchObject({ reason: 'throttled', details: { retryAfterSeconds: 1 } });
    expect(arm.calls.roleAssignments).toBe(1);
    expect(arm.calls.denyAssignments).toBe(0);

    clock.advance(1_000);
    await expect(c.listRoleAssignments(CLUSTER_SCOPE, ALICE)).resolves.toEqual([]);
    expect(arm.calls.roleAssignments).toBe(2);
  });

  it('honours Retry-After given as an HTTP date', async () => {
    const c = client();
    arm.fault('roleAssignments', { status: 429, headers: { 'retry-after': new Date(clock.now() + 30_000).toUTCString() }, times: 1 });
    await expect(c.listRoleAssignments(CLUSTER_SCOPE, ALICE)).rejects.toMatchObject({ reason: 'throttled', details: { retryAfterSeconds: 30 } });
    expect(c.throttledForSeconds()).toBe(30);
  });
});

describe('metrics', () => {
  it('counts ARM calls by operation and outcome, and their latency', async () => {
    const c = client();
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    await c.listRoleAssignments(CLUSTER_SCOPE, ALICE);
    arm.fault('roleAssignments', { status: 500, times: 1 });
    await c.listRoleAssignments(CLUSTER_SCOPE, ALICE).catch(() => undefined);
    await c.getRoleDefinition(
      `/subscriptions/${TEST_SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${ROLES.openAiUser}`,
      CLUSTER_SCOPE,
    );

    const text = await metrics.registry.metrics();
    expect(text).toContain('foundry_auth_arm_calls_total{operation="role_assignments",outcome="ok"} 1');
    expect(text).toContain('foundry_auth_arm_calls_total{operation="role_assignments",outcome="http_5xx"} 1');
    expect(text).toContain('foundry_auth_arm_calls_total{operation="role_definition",outcome="ok"} 1');
    expect(text).toContain('foundry_auth_arm_calls_total{operation="token",outcome="ok"} 1');
    expect(text).toContain('foundry_auth_arm_call_duration_seconds_count{operation="role_assignments"} 2');
  });
});
