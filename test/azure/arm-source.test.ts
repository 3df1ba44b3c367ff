import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createArmSource, type ArmAccessSource } from '../../src/authz/arm.js';
import { AccessSourceError, type AccessSnapshot } from '../../src/authz/source.js';
import type { RbacConfig } from '../../src/config/config.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { ArmFixture, CLUSTER_SCOPE, EVERYONE, OTHER_CLUSTER_SCOPE, ROLES, TEST_RESOURCE_GROUP_SCOPE, TEST_SUBSCRIPTION_ID } from '../fixtures/arm.js';
import { captureLog, closedPort, oid, rbacFor, user } from './helpers.js';

const ALICE = oid(1);
const BOB = oid(2);
const CAROL = oid(3);
const DAVE = oid(4);
const GROUP = oid(100);
const NESTED_GROUP = oid(101);
const CHAT = 'Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action';
const CUSTOM_ROLE = '3f2a6c1e-1111-4a2b-9c3d-abcdefabcdef';
const denyChat = [{ actions: [], notActions: [], dataActions: [CHAT], notDataActions: [] }];

let clock: ManualClock;
let arm: ArmFixture;
let metrics: Metrics;
let logs: ReturnType<typeof captureLog>;
let source: ArmAccessSource;

function makeSource(over: Partial<RbacConfig> = {}): ArmAccessSource {
  return createArmSource({ rbac: rbacFor(arm, over), scope: CLUSTER_SCOPE, clock, log: logs.log, metrics });
}

async function failure(promise: Promise<unknown>): Promise<AccessSourceError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AccessSourceError);
  return err as AccessSourceError;
}

function warnings(msg: string): Record<string, unknown>[] {
  return logs.lines.filter((l) => l['level'] === 40 && l['msg'] === msg);
}

beforeEach(async () => {
  clock = new ManualClock();
  arm = await ArmFixture.start({ clock });
  metrics = new Metrics({ defaultMetrics: false });
  logs = captureLog();
  source = makeSource();
});

afterEach(async () => {
  await source.close();
  await arm.close();
});

describe('lookup', () => {
  it('returns the assignments at and above the cluster with their role definitions, conditions kept', async () => {
    arm.roleDefinitions.set(CUSTOM_ROLE, {
      id: CUSTOM_ROLE,
      roleName: 'Edge chat only',
      type: 'CustomRole',
      permissions: [{ actions: [], notActions: [], dataActions: [CHAT], notDataActions: [] }],
    });
    arm.assign(ALICE, ROLES.openAiUser, `/subscriptions/${TEST_SUBSCRIPTION_ID}`);
    arm.assign(GROUP, CUSTOM_ROLE, TEST_RESOURCE_GROUP_SCOPE, { principalType: 'Group' });
    arm.assign(ALICE, ROLES.openAiContributor, CLUSTER_SCOPE, { condition: "@Resource[x] StringEquals 'y'" });
    arm.groups.set(NESTED_GROUP, [ALICE]);
    arm.groups.set(GROUP, [NESTED_GROUP]);

    const snapshot = await source.lookup(user(ALICE), CLUSTER_SCOPE);

    const byRole = Object.fromEntries(snapshot.assignments.map((a) => [a.roleName, a]));
    expect(Object.keys(byRole).sort()).toEqual(['Cognitive Services OpenAI Contributor', 'Cognitive Services OpenAI User', 'Edge chat only']);
    expect(byRole['Cognitive Services OpenAI User']).toMatchObject({
      roleDefinitionId: ROLES.openAiUser,
      principalId: ALICE,
      scope: `/subscriptions/${TEST_SUBSCRIPTION_ID}`,
    });
    expect(byRole['Edge chat only']).toMatchObject({ principalId: GROUP, scope: TEST_RESOURCE_GROUP_SCOPE, permissions: [{ dataActions: [CHAT] }] });
    expect(byRole['Cognitive Services OpenAI Contributor']?.condition).toBe("@Resource[x] StringEquals 'y'");
    expect(snapshot.denyAssignments).toEqual([]);
  });

  it('drops an assignment ARM returns for a scope that is not the cluster or above it', async () => {
    const item = (scope: string, name: string) => ({
      id: `${scope}/providers/Microsoft.Authorization/roleAssignments/${name}`,
      name,
      type: 'Microsoft.Authorization/roleAssignments',
      properties: {
        roleDefinitionId: `/subscriptions/${TEST_SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/${ROLES.openAiContributor}`,
        principalId: ALICE,
        principalType: 'User',
        scope,
      },
    });
    arm.fault('roleAssignments', {
      status: 200,
      body: { value: [item(OTHER_CLUSTER_SCOPE, 'a1'), item(`${CLUSTER_SCOPE}-evil`, 'a2'), item(CLUSTER_SCOPE.toLowerCase(), 'a3')] },
    });

    const snapshot = await source.lookup(user(ALICE), CLUSTER_SCOPE);

    expect(snapshot.assignments.map((a) => a.scope)).toEqual([CLUSTER_SCOPE.toLowerCase()]);
    expect(warnings('ARM returned a role assignment that is not at or above the cluster scope; ignored')).toHaveLength(2);
  });

  it('fetches each role definition once across many lookups of many principals', async () => {
    arm.roleDefinitions.set(CUSTOM_ROLE, { id: CUSTOM_ROLE, roleName: 'Edge chat only', type: 'CustomRole', permissions: denyChat });
    for (let i = 0; i < 20; i++) {
      arm.assign(oid(i + 10), ROLES.openAiUser, CLUSTER_SCOPE);
      arm.assign(oid(i + 10), CUSTOM_ROLE, CLUSTER_SCOPE);
    }
    await Promise.all(Array.from({ length: 20 }, (_, i) => source.lookup(user(oid(i + 10)), CLUSTER_SCOPE)));
    await Promise.all(Array.from({ length: 20 }, (_, i) => source.lookup(user(oid(i + 10)), CLUSTER_SCOPE)));

    expect(arm.calls.roleAssignments).toBe(40);
    expect(arm.calls.roleDefinitions).toBe(2);
    expect(arm.calls.denyAssignments).toBe(1);
  });

  it('does not look up API keys or principals without an object ID in ARM', async () => {
    const err = await failure(source.lookup({ type: 'api-key', oid: 'key-3f9a1c2e', tid: '' }, CLUSTER_SCOPE));
    expect(err.reason).toBe('source_unavailable');
    expect(arm.calls.roleAssignments).toBe(0);
  });
});

describe('failures', () => {
  it('ARM unreachable (ECONNREFUSED) -> arm_unreachable', async () => {
    source = makeSource({ armEndpoint: `http://127.0.0.1:${await closedPort()}` });
    const err = await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(err.reason).toBe('arm_unreachable');
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.message).toContain('Fix:');
  });

  it('a dropped connection -> arm_unreachable', async () => {
    arm.fault('roleAssignments', { drop: true });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('arm_unreachable');
  });

  it('no answer within --rbac-timeout -> arm_timeout', async () => {
    source = makeSource({ timeoutMs: 150 });
    await source.readiness();
    arm.fault('roleAssignments', { latencyMs: 2_000 });
    const started = performance.now();
    const err = await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(err.reason).toBe('arm_timeout');
    expect(err.message).toContain('--rbac-timeout');
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('ARM 500 -> arm_server_error, and the next good answer recovers at once', async () => {
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    arm.fault('roleAssignments', { status: 500, times: 1 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('arm_server_error');
    expect((await source.lookup(user(ALICE), CLUSTER_SCOPE)).assignments).toHaveLength(1);
  });

  it('ARM 429 with Retry-After: 5 -> arm_throttled for every principal, no ARM call for 5 s, then calls resume', async () => {
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    await source.lookup(user(CAROL), CLUSTER_SCOPE);
    arm.resetCounters();
    arm.fault('roleAssignments', { status: 429, headers: { 'retry-after': '5' }, times: 1 });

    expect(await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).toMatchObject({ reason: 'arm_throttled', retryAfterSeconds: 5 });
    expect(await failure(source.lookup(user(BOB), CLUSTER_SCOPE))).toMatchObject({ reason: 'arm_throttled', retryAfterSeconds: 5 });
    clock.advance(4_999);
    expect(await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).toMatchObject({ reason: 'arm_throttled', retryAfterSeconds: 1 });
    expect(arm.calls.roleAssignments).toBe(1);

    clock.advance(1);
    expect((await source.lookup(user(ALICE), CLUSTER_SCOPE)).assignments).toHaveLength(1);
    expect(arm.calls.roleAssignments).toBe(2);
  });

  it('ARM 403 for the sidecar identity -> identity_refused naming the identity, the permission and the fix', async () => {
    arm.fault('roleAssignments', { status: 403 });
    const err = await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(err.reason).toBe('identity_refused');
    expect(err.message).toContain(`msi-adapter (${arm.msiEndpoint})`);
    expect(err.message).toContain('Microsoft.Authorization/roleAssignments/read');
    expect(err.message).toContain('Cognitive Services OpenAI User or Reader');
    expect(err.message).toContain(`foundry-auth setup --app-name <app name> --cluster-id ${CLUSTER_SCOPE}`);
  });

  it('ARM 401 -> identity_refused, and the rejected token is replaced on the next lookup', async () => {
    await source.readiness();
    expect(arm.calls.imds).toBe(1);
    arm.fault('roleAssignments', { status: 401, times: 1 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('identity_refused');
    await source.lookup(user(ALICE), CLUSTER_SCOPE);
    expect(arm.calls.imds).toBe(2);
  });

  it('malformed JSON or an unexpected shape -> arm_bad_response', async () => {
    arm.fault('roleAssignments', { status: 200, body: '{"value": [', times: 1 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('arm_bad_response');
    arm.fault('roleAssignments', { status: 200, body: { value: 'none' }, times: 1 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('arm_bad_response');
    arm.fault('roleAssignments', { status: 200, body: `{"value":[],"pad":"${'x'.repeat(5 * 1024 * 1024)}"}`, times: 1 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('arm_bad_response');
  });

  it('a role definition that cannot be read fails the lookup (closed)', async () => {
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    arm.fault('roleDefinitions', { status: 503, headers: { 'retry-after': '7' } });
    expect(await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).toMatchObject({ reason: 'arm_server_error', retryAfterSeconds: 7 });
    arm.fault('roleDefinitions', { status: 403 });
    const err = await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(err.reason).toBe('identity_refused');
    expect(err.message).toContain('Microsoft.Authorization/roleDefinitions/read');
  });

  it('msi-adapter down -> identity_token_unavailable with the fix, asked again after a 5 s cool-down; readiness says why until a token is obtained', async () => {
    arm.fault('imds', { status: 500 });
    expect(await source.readiness()).toMatch(
      /^the sidecar's ARM token was never obtained: msi-adapter .* HTTP 500.*Fix: check that the Azure Arc msi-adapter is running/,
    );
    const err = await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(err.reason).toBe('identity_token_unavailable');
    expect(err.message).toContain('--msi-endpoint');
    expect(arm.calls.roleAssignments).toBe(0);

    expect(arm.calls.imds).toBe(1);

    arm.fault('imds', undefined);
    expect(await source.readiness()).not.toBeNull();
    expect(arm.calls.imds).toBe(1);
    clock.advance(5_000);
    expect(await source.readiness()).toBeNull();
    expect(arm.calls.imds).toBe(2);
    arm.fault('imds', { status: 500 });
    expect(await source.readiness()).toBeNull();
  });

  it('start() fetches the token in the background so readiness turns ready without a request', async () => {
    source.start();
    const deadline = Date.now() + 5_000;
    while (arm.calls.imds === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(arm.calls.imds).toBe(1);
    expect(await source.readiness()).toBeNull();
    expect(arm.calls.imds).toBe(1);
  });

  it('logs one warning per failure reason per minute, never a token', async () => {
    arm.fault('roleAssignments', { status: 500 });
    for (let i = 0; i < 20; i++) await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(warnings('RBAC check unavailable')).toHaveLength(1);
    expect(warnings('RBAC check unavailable')[0]).toMatchObject({ reason: 'arm_server_error' });
    clock.advance(60_000);
    await failure(source.lookup(user(ALICE), CLUSTER_SCOPE));
    expect(warnings('RBAC check unavailable')).toHaveLength(2);
    expect(warnings('RBAC check unavailable')[1]).toMatchObject({ suppressedSinceLast: 19 });
    for (const token of arm.issuedTokens) expect(logs.text()).not.toContain(token);
  });
});

describe('deny assignments', () => {
  function denyIds(snapshot: AccessSnapshot): string[] {
    return snapshot.denyAssignments.map((d) => d.name).sort();
  }

  it('Everyone with an exclusion: applies to everyone but the excluded principal', async () => {
    arm.denyAssignments.push({
      name: 'd0000000-0000-4000-8000-000000000001',
      scope: `/subscriptions/${TEST_SUBSCRIPTION_ID}`,
      principals: [{ id: EVERYONE, type: 'Everyone' }],
      excludePrincipals: [{ id: BOB, type: 'User' }],
      permissions: denyChat,
    });
    expect(denyIds(await source.lookup(user(ALICE), CLUSTER_SCOPE))).toEqual(['d0000000-0000-4000-8000-000000000001']);
    expect((await source.lookup(user(ALICE), CLUSTER_SCOPE)).denyAssignments[0]).toMatchObject({
      scope: `/subscriptions/${TEST_SUBSCRIPTION_ID}`,
      doNotApplyToChildScopes: false,
      permissions: denyChat,
    });
    expect(denyIds(await source.lookup(user(BOB), CLUSTER_SCOPE))).toEqual([]);
    expect(arm.requestsTo('denyAssignments').map((r) => r.target)).toEqual([
      `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/denyAssignments?api-version=2022-04-01&$filter=atScope()`,
    ]);
  });

  it('a principal named directly: applies to that principal only', async () => {
    arm.denyAssignments.push({
      name: 'd0000000-0000-4000-8000-000000000002',
      scope: CLUSTER_SCOPE,
      principals: [{ id: CAROL, type: 'User' }],
      permissions: denyChat,
    });
    expect(denyIds(await source.lookup(user(CAROL), CLUSTER_SCOPE))).toEqual(['d0000000-0000-4000-8000-000000000002']);
    expect(denyIds(await source.lookup(user(ALICE), CLUSTER_SCOPE))).toEqual([]);
    expect(arm.calls.denyAssignments).toBe(1);
  });

  it('a group: resolved through assignedTo() for the principal, in the same lookup', async () => {
    arm.denyAssignments.push({
      name: 'd0000000-0000-4000-8000-000000000003',
      scope: TEST_RESOURCE_GROUP_SCOPE,
      principals: [{ id: GROUP, type: 'Group' }],
      permissions: denyChat,
    });
    arm.groups.set(NESTED_GROUP, [DAVE]);
    arm.groups.set(GROUP, [NESTED_GROUP]);

    expect(denyIds(await source.lookup(user(DAVE), CLUSTER_SCOPE))).toEqual(['d0000000-0000-4000-8000-000000000003']);
    expect(denyIds(await source.lookup(user(ALICE), CLUSTER_SCOPE))).toEqual([]);
    expect(arm.requestsTo('denyAssignments').map((r) => r.target)).toEqual([
      `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/denyAssignments?api-version=2022-04-01&$filter=atScope()`,
      `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/denyAssignments?api-version=2022-04-01&$filter=assignedTo('${DAVE}')`,
      `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/denyAssignments?api-version=2022-04-01&$filter=assignedTo('${ALICE}')`,
    ]);
  });

  it('a group whose members cannot be read (403 on assignedTo) applies to everyone (closed)', async () => {
    arm.denyAssignments.push({
      name: 'd0000000-0000-4000-8000-000000000004',
      scope: CLUSTER_SCOPE,
      principals: [{ id: GROUP, type: 'Group' }],
      permissions: denyChat,
    });
    arm.fault('denyAssignments', { status: 403, when: (url) => (url.searchParams.get('$filter') ?? '').startsWith('assignedTo') });
    expect(denyIds(await source.lookup(user(ALICE), CLUSTER_SCOPE))).toEqual(['d0000000-0000-4000-8000-000000000004']);
  });

  it('a deny assignment below the cluster or on another cluster does not apply', async () => {
    arm.denyAssignments.push({ scope: OTHER_CLUSTER_SCOPE, principals: [{ id: EVERYONE, type: 'Everyone' }], permissions: denyChat });
    expect(denyIds(await source.lookup(user(ALICE), CLUSTER_SCOPE))).toEqual([]);
  });

  it('the scope list is read once per allow TTL for all principals', async () => {
    arm.denyAssignments.push({ scope: CLUSTER_SCOPE, principals: [{ id: EVERYONE, type: 'Everyone' }], permissions: denyChat });
    await Promise.all(Array.from({ length: 50 }, (_, i) => source.lookup(user(oid(i + 10)), CLUSTER_SCOPE)));
    expect(arm.calls.denyAssignments).toBe(1);
    clock.advance(300_000);
    await source.lookup(user(ALICE), CLUSTER_SCOPE);
    expect(arm.calls.denyAssignments).toBe(2);
  });

  it('403 on deny assignments (minimal role): one warning with the fix, counted, lookups continue without them until the next refresh', async () => {
    arm.assign(ALICE, ROLES.openAiUser, CLUSTER_SCOPE);
    arm.denyAssignments.push({ scope: CLUSTER_SCOPE, principals: [{ id: EVERYONE, type: 'Everyone' }], permissions: denyChat });
    arm.fault('denyAssignments', {
      status: 403,
      body: {
        error: {
          code: 'AuthorizationFailed',
          message: "The client does not have authorization to perform action 'Microsoft.Authorization/denyAssignments/read'.",
        },
      },
    });

    for (let i = 0; i < 5; i++) {
      const snapshot = await source.lookup(user(ALICE), CLUSTER_SCOPE);
      expect(snapshot.assignments).toHaveLength(1);
      expect(snapshot.denyAssignments).toEqual([]);
    }
    const warned = warnings('the sidecar identity may not read deny assignments (403); deciding without them');
    expect(warned).toHaveLength(1);
    expect(String(warned[0]?.['fix'])).toContain('assign Reader to the cluster identity at the cluster so deny assignments are honoured');
    expect(await metrics.registry.metrics()).toContain('foundry_auth_arm_deny_assignments_unreadable_total 5');
    expect(arm.calls.denyAssignments).toBe(1);

    arm.fault('denyAssignments', undefined);
    clock.advance(300_000);
    expect((await source.lookup(user(ALICE), CLUSTER_SCOPE)).denyAssignments).toHaveLength(1);
  });

  it('any other deny-assignment failure fails the lookup (closed)', async () => {
    arm.fault('denyAssignments', { status: 500 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('arm_server_error');
    arm.fault('denyAssignments', { status: 401 });
    expect((await failure(source.lookup(user(ALICE), CLUSTER_SCOPE))).reason).toBe('identity_refused');
  });
});
