import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createArmSource, type ArmAccessSource } from '../../src/authz/arm.js';
import { DEFAULT_SEED, startEmulator, type RunningEmulator } from '../../src/offline/emulator/index.js';
import { systemClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { captureLog, oid, rbacFor, user } from './helpers.js';

/**
 * The ARM source against the emulator (plain HTTP, msi-adapter identity), as `serve --rbac arm`
 * would use it: proves the wire requests the clients send are the ones the emulator (and ARM)
 * understand, including its permission checks on the sidecar's own identity.
 */

const SUBSCRIPTION = `/subscriptions/${DEFAULT_SEED.subscriptionId}`;
const RESOURCE_GROUP = `${SUBSCRIPTION}/resourceGroups/${DEFAULT_SEED.clusterResourceGroup}`;
const CLUSTER = `${RESOURCE_GROUP}/providers/Microsoft.Kubernetes/connectedClusters/${DEFAULT_SEED.clusterName}`;
const CHAT = 'Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action';
const ALICE = oid(1);
const BOB = oid(2);

let emulator: RunningEmulator;
let group: string;

async function admin(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${emulator.endpoints.admin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(json)).toBeLessThan(300);
  return json;
}

function source(logs: ReturnType<typeof captureLog>): ArmAccessSource {
  const e = emulator.endpoints;
  const rbac = rbacFor({ url: e.armHttp, msiEndpoint: e.msiHttp }, { scope: CLUSTER });
  return createArmSource({ rbac, scope: CLUSTER, clock: systemClock, log: logs.log, metrics: new Metrics({ defaultMetrics: false }) });
}

beforeAll(async () => {
  emulator = await startEmulator();
  group = String((await admin('/groups', { displayName: 'edge inference', members: [ALICE] }))['id']);
  await admin('/role-assignments', { scope: SUBSCRIPTION, roleName: 'Cognitive Services OpenAI User', principalId: ALICE, principalType: 'User' });
  await admin('/role-assignments', { scope: RESOURCE_GROUP, roleName: 'Cognitive Services Contributor', principalId: group, principalType: 'Group' });
});

afterAll(async () => {
  await emulator.close();
});

describe('against the emulator', () => {
  it('without a role for the cluster identity: identity_refused with the fix', async () => {
    const logs = captureLog();
    const s = source(logs);
    expect(await s.readiness()).toBeNull();
    await expect(s.lookup(user(ALICE), CLUSTER)).rejects.toMatchObject({ reason: 'identity_refused' });
    await s.close();
  });

  it('with Cognitive Services OpenAI User at the cluster: inherited and group assignments, deny assignments skipped with one warning', async () => {
    await admin('/role-assignments', {
      scope: CLUSTER,
      roleName: 'Cognitive Services OpenAI User',
      principalId: DEFAULT_SEED.clusterPrincipalId,
      principalType: 'ServicePrincipal',
    });
    const logs = captureLog();
    const s = source(logs);

    const snapshot = await s.lookup(user(ALICE), CLUSTER);

    expect(snapshot.assignments.map((a) => [a.roleName, a.scope, a.principalId]).sort()).toEqual(
      [
        ['Cognitive Services Contributor', RESOURCE_GROUP, group],
        ['Cognitive Services OpenAI User', SUBSCRIPTION, ALICE],
      ].sort(),
    );
    expect(snapshot.denyAssignments).toEqual([]);
    expect(logs.lines.filter((l) => l['msg'] === 'the sidecar identity may not read deny assignments (403); deciding without them')).toHaveLength(1);
    expect((await s.lookup(user(BOB), CLUSTER)).assignments).toEqual([]);
    await s.close();
  });

  it('with Reader at the cluster as well: a deny assignment on a group applies to its members only', async () => {
    await admin('/role-assignments', {
      scope: CLUSTER,
      roleName: 'Reader',
      principalId: DEFAULT_SEED.clusterPrincipalId,
      principalType: 'ServicePrincipal',
    });
    await admin('/deny-assignments', {
      denyAssignmentName: 'no chat for the group',
      scope: RESOURCE_GROUP,
      permissions: [{ dataActions: [CHAT] }],
      principals: [{ id: group, type: 'Group' }],
    });
    const logs = captureLog();
    const s = source(logs);

    const alice = await s.lookup(user(ALICE), CLUSTER);
    const bob = await s.lookup(user(BOB), CLUSTER);

    expect(alice.denyAssignments.map((d) => [d.scope, d.permissions[0]?.dataActions])).toEqual([[RESOURCE_GROUP, [CHAT]]]);
    expect(bob.denyAssignments).toEqual([]);
    expect(logs.lines.filter((l) => l['level'] === 40)).toEqual([]);
    await s.close();
  });
});
