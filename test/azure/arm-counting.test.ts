import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createArmSource } from '../../src/authz/arm.js';
import { createAuthorizer, type CachingAuthorizer } from '../../src/authz/authorizer.js';
import type { Decision } from '../../src/contracts/decision.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { ArmFixture, CLUSTER_SCOPE, ROLES } from '../fixtures/arm.js';
import { ROUTES } from '../authz/helpers.js';
import { captureLog, oid, rbacFor, user } from './helpers.js';

/** ARM calls made through the decision cache in front of the ARM source (SPEC section 6, threat 136). */

const CUSTOM_ROLE = '3f2a6c1e-1111-4a2b-9c3d-abcdefabcdef';

let clock: ManualClock;
let arm: ArmFixture;
let authorizer: CachingAuthorizer;

beforeEach(async () => {
  clock = new ManualClock();
  arm = await ArmFixture.start({ clock });
  arm.roleDefinitions.set(CUSTOM_ROLE, {
    id: CUSTOM_ROLE,
    roleName: 'Edge chat only',
    type: 'CustomRole',
    permissions: [{ actions: [], notActions: [], dataActions: [ROUTES.chat.action], notDataActions: [] }],
  });
  const metrics = new Metrics({ defaultMetrics: false });
  const { log } = captureLog('info');
  const rbac = rbacFor(arm);
  const source = createArmSource({ rbac, scope: CLUSTER_SCOPE, clock, log, metrics });
  authorizer = createAuthorizer({ rbac, source, scope: CLUSTER_SCOPE, clock, log, metrics });
});

afterEach(async () => {
  await authorizer.close();
  await arm.close();
});

function kinds(decisions: Decision[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const d of decisions) counts[d.kind] = (counts[d.kind] ?? 0) + 1;
  return counts;
}

describe('ARM calls through the decision cache', () => {
  it('1,000 concurrent first requests of one principal make exactly 1 role-assignments call', async () => {
    const alice = oid(1);
    arm.assign(alice, ROLES.openAiUser, CLUSTER_SCOPE);

    const decisions = await Promise.all(Array.from({ length: 1_000 }, async () => authorizer.authorize(user(alice), ROUTES.chat)));

    expect(kinds(decisions)).toEqual({ allow: 1_000 });
    expect(arm.calls.roleAssignments).toBe(1);
    expect(arm.calls.roleDefinitions).toBe(1);
    expect(arm.calls.denyAssignments).toBe(1);
    expect(arm.calls.imds).toBe(1);

    await Promise.all(Array.from({ length: 100 }, async () => authorizer.authorize(user(alice), ROUTES.embeddings)));
    clock.advance(299_000);
    await authorizer.authorize(user(alice), ROUTES.chat);
    expect(arm.calls.roleAssignments).toBe(1);
  });

  it('100 principals make 100 role-assignments calls, and role definitions are fetched once each', async () => {
    for (let i = 0; i < 100; i++) {
      arm.assign(oid(i + 10), i % 2 ? ROLES.openAiUser : CUSTOM_ROLE, CLUSTER_SCOPE);
      arm.assign(oid(i + 10), ROLES.reader, CLUSTER_SCOPE);
    }

    const decisions = await Promise.all(
      Array.from({ length: 100 }, (_, i) => Array.from({ length: 10 }, async () => authorizer.authorize(user(oid(i + 10)), ROUTES.chat))).flat(),
    );

    expect(kinds(decisions)).toEqual({ allow: 1_000 });
    expect(arm.calls.roleAssignments).toBe(100);
    expect(arm.calls.roleDefinitions).toBe(3);
    expect(arm.calls.denyAssignments).toBe(1);
  });

  it('a 429 makes the decision unavailable with Retry-After for everyone, caches nothing, and calls resume after it', async () => {
    const alice = oid(1);
    arm.assign(alice, ROLES.openAiUser, CLUSTER_SCOPE);
    arm.fault('roleAssignments', { status: 429, headers: { 'retry-after': '5' }, times: 1 });

    const first = await Promise.all(Array.from({ length: 50 }, async () => authorizer.authorize(user(alice), ROUTES.chat)));
    expect(first[0]).toMatchObject({ kind: 'unavailable', reason: 'arm_throttled', retryAfterSeconds: 5 });
    expect(kinds(first)).toEqual({ unavailable: 50 });
    expect(await authorizer.authorize(user(oid(2)), ROUTES.chat)).toMatchObject({ kind: 'unavailable', reason: 'arm_throttled' });
    expect(arm.calls.roleAssignments).toBe(1);

    clock.advance(5_000);
    expect(await authorizer.authorize(user(alice), ROUTES.chat)).toMatchObject({ kind: 'allow', cache: 'miss' });
    expect(arm.calls.roleAssignments).toBe(2);
  });
});
