import { describe, expect, it } from 'vitest';
import { createAuthorizer } from '../../src/authz/authorizer.js';
import { BUILT_IN_ROLES, ROLE_IDS } from '../../src/authz/roles.js';
import type { AccessSnapshot } from '../../src/authz/source.js';
import type { Principal } from '../../src/contracts/principal.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { CLUSTER, CountingSource, ROUTES, TENANT, capturingLogger, oid, rbacConfig, user } from './helpers.js';

function conditionalOpenAiUser(principalId: string): AccessSnapshot {
  const role = BUILT_IN_ROLES.find((r) => r.id === ROLE_IDS.openAiUser)!;
  return {
    assignments: [
      {
        roleDefinitionId: role.id,
        roleName: role.roleName,
        scope: CLUSTER,
        principalId,
        condition: "@Resource[x] StringEquals 'y'",
        permissions: role.permissions,
      },
    ],
    denyAssignments: [],
  };
}

function setup(answer: (p: Principal) => AccessSnapshot = () => ({ assignments: [], denyAssignments: [] })) {
  const clock = new ManualClock();
  const source = new CountingSource(answer);
  const { log, lines } = capturingLogger();
  const metrics = new Metrics({ defaultMetrics: false });
  const authorizer = createAuthorizer({ rbac: rbacConfig({ mode: 'arm', scope: CLUSTER }), source, scope: CLUSTER, clock, log, metrics });
  return { clock, source, lines, metrics, authorizer };
}

const API_KEY: Principal = { type: 'api-key', oid: 'key-3f9a1c2e', tid: '' };

describe('API-key principals', () => {
  it('are allowed the data plane without RBAC', async () => {
    const { authorizer, source } = setup();
    for (const route of [ROUTES.chat, ROUTES.embeddings, ROUTES.models]) {
      expect(await authorizer.authorize(API_KEY, route)).toEqual({ kind: 'allow', source: 'api-key', cache: 'none' });
    }
    expect(source.lookups).toBe(0);
  });

  it('are denied the control plane, with a message that says why and what works instead', async () => {
    const { authorizer, source, metrics } = setup();
    const decision = await authorizer.authorize(API_KEY, ROUTES.deploymentsRead);
    expect(decision).toMatchObject({ kind: 'deny', source: 'api-key', cache: 'none', reason: 'api_key_control_plane' });
    expect(decision.kind === 'deny' && decision.message).toContain('API keys authorize the data plane only');
    expect(decision.kind === 'deny' && decision.message).toContain(ROUTES.deploymentsRead.action);
    expect(decision.kind === 'deny' && decision.message).toContain('Entra ID access token');
    expect(source.lookups).toBe(0);
    const counted = (await metrics.rbacLookups.get()).values.find((v) => v.labels.source === 'api-key');
    expect(counted).toMatchObject({ labels: { cache: 'none', decision: 'deny' }, value: 1 });
  });
});

describe('Entra principals', () => {
  it('are refused without a lookup when the object or tenant ID is not a GUID', async () => {
    const { authorizer, source } = setup();
    for (const p of [user('not-a-guid'), user(oid(1), 'common'), user(`${oid(1)}/x`)]) {
      expect(await authorizer.authorize(p, ROUTES.chat)).toMatchObject({ kind: 'deny', reason: 'invalid_principal' });
    }
    expect(source.lookups).toBe(0);
  });

  it('get a 403 with the ARM fix when the source is ARM', async () => {
    const { authorizer } = setup();
    const decision = await authorizer.authorize(user(oid(1)), ROUTES.deploymentsWrite);
    expect(decision.kind === 'deny' && decision.message).toBe(
      `principal ${oid(1)} (user) lacks action ${ROUTES.deploymentsWrite.action} at ${CLUSTER}; assign one of: Cognitive Services OpenAI Contributor, ` +
        `Cognitive Services Contributor, Contributor, Owner (foundry-auth grant --cluster-id ${CLUSTER} --assignee ${oid(1)} --access admin)`,
    );
    const data = await authorizer.authorize(user(oid(1)), ROUTES.chat);
    expect(data.kind === 'deny' && data.message).toContain('--access inference)');
  });

  it('warn about an ignored conditional assignment once per principal per interval', async () => {
    const { authorizer, lines, clock } = setup((p) => conditionalOpenAiUser(p.oid));
    const warnings = () => lines.filter((l) => l.level === 40 && String(l.msg).includes('condition ignored'));
    expect(await authorizer.authorize(user(oid(1)), ROUTES.chat)).toMatchObject({ kind: 'deny', reason: 'condition_only' });
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    await authorizer.authorize(user(oid(1)), ROUTES.embeddings);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ oid: oid(1), tid: TENANT, assignments: [{ role: 'Cognitive Services OpenAI User', scope: CLUSTER }] });
    await authorizer.authorize(user(oid(2)), ROUTES.chat);
    expect(warnings()).toHaveLength(2);
    clock.advance(10 * 60_000);
    await authorizer.authorize(user(oid(1)), ROUTES.chat);
    expect(warnings()).toHaveLength(3);
  });

  it('delegate readiness and close to the source', async () => {
    let closed = false;
    const source = new CountingSource(() => ({ assignments: [], denyAssignments: [] }));
    source.readiness = async () => 'the sidecar ARM token was never obtained';
    source.close = async () => {
      closed = true;
    };
    const authorizer = createAuthorizer({
      rbac: rbacConfig({ mode: 'arm', scope: CLUSTER }),
      source,
      scope: CLUSTER,
      clock: new ManualClock(),
      log: capturingLogger().log,
      metrics: new Metrics({ defaultMetrics: false }),
    });
    expect(await authorizer.readiness()).toBe('the sidecar ARM token was never obtained');
    await authorizer.close();
    expect(closed).toBe(true);
  });
});
