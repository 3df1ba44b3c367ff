import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BUILT_IN_ROLES, ROLE_IDS } from '../../src/authz/roles.js';
import { ADMIN_ID, ADMIN_PASSWORD, ADMIN_UPN, CLUSTER_PRINCIPAL, CLUSTER_SCOPE, SUB, call, startTestEmulator, type TestEmulator } from './helpers.js';

/** ARM fidelity: role assignment filters and paging, role definitions, deny assignments, clusters, and ARM's own authentication and authorization. */

let emu: TestEmulator;
let adminToken: string;
const RG_SCOPE = `/subscriptions/${SUB}/resourceGroups/foundry-local-rg`;
const BELOW_CLUSTER = `${CLUSTER_SCOPE}/providers/Microsoft.KubernetesConfiguration/extensions/foundry`;
const ids: Record<string, string> = {};

function names(r: { json: Record<string, unknown> }): string[] {
  return (r.json['value'] as Array<{ name: string }>).map((v) => v.name).sort();
}

beforeAll(async () => {
  emu = await startTestEmulator();
  adminToken = await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
  ids['alice'] = await emu.user('alice');
  ids['bob'] = await emu.user('bob');
  ids['carol'] = await emu.user('carol');
  ids['inner'] = await emu.group('inner', [ids['bob'] ?? '']);
  ids['outer'] = await emu.group('outer', [ids['inner'] ?? '']);
  ids['aliceReader'] = String((await emu.roleAssignment(CLUSTER_SCOPE, 'Reader', ids['alice'] ?? ''))['name']);
  ids['outerUser'] = String((await emu.roleAssignment(RG_SCOPE, 'Cognitive Services OpenAI User', ids['outer'] ?? ''))['name']);
  ids['below'] = String((await emu.roleAssignment(BELOW_CLUSTER, 'Reader', ids['carol'] ?? ''))['name']);
});
afterAll(async () => {
  await emu.close();
});

describe('role assignment lists', () => {
  const list = (scope: string, filter?: string, token = adminToken) =>
    emu.arm(
      'GET',
      `${scope}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01${filter === undefined ? '' : `&$filter=${filter}`}`,
      token,
    );

  it('atScope() returns assignments at the scope and above, not below', async () => {
    const r = await list(CLUSTER_SCOPE, 'atScope()');
    expect(r.status, r.text).toBe(200);
    expect(names(r)).toEqual([ids['aliceReader'], ids['outerUser'], 'c0ffee00-0000-4000-8000-00000000000b'].sort());
  });

  it('no filter also returns assignments below the scope', async () => {
    const r = await list(CLUSTER_SCOPE);
    expect(names(r)).toContain(ids['below']);
    expect(names(r)).toContain(ids['aliceReader']);
  });

  it("assignedTo('{id}') includes assignments through nested groups (decoded as ARM does: + is a space, %27 a quote)", async () => {
    const r = await list(CLUSTER_SCOPE, `atScope()+and+assignedTo(%27${ids['bob'] ?? ''}%27)`);
    expect(r.status, r.text).toBe(200);
    expect(names(r)).toEqual([ids['outerUser']]);
    const v = (r.json['value'] as Array<{ properties: Record<string, unknown>; id: string; type: string }>)[0];
    expect(v?.properties['principalId']).toBe(ids['outer']);
    expect(v?.properties['roleDefinitionId']).toBe(`/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${ROLE_IDS.openAiUser}`);
    expect(v?.properties['scope']).toBe(RG_SCOPE);
    expect(v?.type).toBe('Microsoft.Authorization/roleAssignments');
    expect(v?.id).toBe(`${RG_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${ids['outerUser'] ?? ''}`);
  });

  it("principalId eq '{id}' returns direct assignments only", async () => {
    expect(names(await list(CLUSTER_SCOPE, `principalId eq '${ids['bob'] ?? ''}'`))).toEqual([]);
    expect(names(await list(CLUSTER_SCOPE, `principalId%20eq%20%27${ids['outer'] ?? ''}%27`))).toEqual([ids['outerUser']]);
  });

  it('rejects an unsupported filter', async () => {
    const r = await list(CLUSTER_SCOPE, `roleName eq 'Reader'`);
    expect(r.status).toBe(400);
    expect((r.json['error'] as { code: string }).code).toBe('UnsupportedQuery');
  });

  it('pages with nextLink when there are more items than the page size', async () => {
    await emu.admin('PUT', '/settings', { armPageSize: 2 });
    try {
      const first = await list(CLUSTER_SCOPE);
      expect((first.json['value'] as unknown[]).length).toBe(2);
      const next = String(first.json['nextLink']);
      expect(next.startsWith(`${emu.http}/arm${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments?`)).toBe(true);
      const second = await call(next, { headers: { authorization: `Bearer ${adminToken}` } });
      expect((second.json['value'] as unknown[]).length).toBe(2);
      expect(second.json['nextLink']).toBeUndefined();
    } finally {
      await emu.admin('PUT', '/settings', { armPageSize: 100 });
    }
  });

  it('refuses a caller without roleAssignments/read with 403 AuthorizationFailed naming the action and scope', async () => {
    const carol = await emu.armTokenFor('carol@emulator.onmicrosoft.com', 'carol-password');
    const r = await list(CLUSTER_SCOPE, 'atScope()', carol);
    expect(r.status).toBe(403);
    expect(r.json['error']).toEqual({
      code: 'AuthorizationFailed',
      message: `The client 'carol@emulator.onmicrosoft.com' with object id '${ids['carol'] ?? ''}' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/read' over scope '${CLUSTER_SCOPE}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    });
  });

  it("lets the cluster's Arc identity list assignments once it holds Cognitive Services OpenAI User at the cluster (the sidecar's call)", async () => {
    const msi = await call(`${emu.http}/msi/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/`, {
      headers: { Metadata: 'true' },
    });
    const token = String(msi.json['access_token']);
    expect((await list(CLUSTER_SCOPE, `atScope() and assignedTo('${ids['bob'] ?? ''}')`, token)).status).toBe(403);
    await emu.roleAssignment(CLUSTER_SCOPE, 'Cognitive Services OpenAI User', CLUSTER_PRINCIPAL);
    const r = await list(CLUSTER_SCOPE, `atScope() and assignedTo('${ids['bob'] ?? ''}')`, token);
    expect(r.status, r.text).toBe(200);
    expect(names(r)).toEqual([ids['outerUser']]);
    expect((await list(RG_SCOPE, 'atScope()', token)).status).toBe(403);
  });

  it('sends the rate-limit header on reads and echoes x-ms-correlation-request-id', async () => {
    const r = await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, adminToken, undefined, {
      'x-ms-correlation-request-id': 'corr-123',
    });
    expect(Number(r.headers.get('x-ms-ratelimit-remaining-subscription-reads'))).toBeGreaterThan(0);
    expect(r.headers.get('x-ms-correlation-request-id')).toBe('corr-123');
  });
});

describe('role assignment writes', () => {
  const path = (name: string) => `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments/${name}`;
  const body = (principalId: string, role: string = ROLE_IDS.openAiUser) => ({
    properties: {
      roleDefinitionId: `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${role}`,
      principalId,
      principalType: 'User',
    },
  });

  it('creates (201), refuses the same principal+role+scope under another name (409 RoleAssignmentExists), deletes (200 then 204)', async () => {
    const name = '0b6f1e2a-1111-4a5b-9c8d-000000000001';
    const created = await emu.arm('PUT', path(name), adminToken, body(ids['carol'] ?? ''));
    expect(created.status, created.text).toBe(201);
    expect(created.json['name']).toBe(name);
    expect((created.json['properties'] as Record<string, unknown>)['principalType']).toBe('User');
    const again = await emu.arm('PUT', path(name), adminToken, body(ids['carol'] ?? ''));
    expect(again.status).toBe(200);
    const dup = await emu.arm('PUT', path('0b6f1e2a-1111-4a5b-9c8d-000000000002'), adminToken, body(ids['carol'] ?? ''));
    expect(dup.status).toBe(409);
    expect((dup.json['error'] as { code: string }).code).toBe('RoleAssignmentExists');
    const got = await emu.arm('GET', path(name), adminToken);
    expect(got.status).toBe(200);
    const del = await emu.arm('DELETE', path(name), adminToken);
    expect(del.status).toBe(200);
    expect(del.json['name']).toBe(name);
    expect((await emu.arm('DELETE', path(name), adminToken)).status).toBe(204);
    expect((await emu.arm('GET', path(name), adminToken)).status).toBe(404);
  });

  it('refuses a name that is not a GUID with InvalidRoleAssignmentId', async () => {
    const r = await emu.arm('PUT', path('not-a-guid'), adminToken, body(ids['carol'] ?? ''));
    expect(r.status).toBe(400);
    expect((r.json['error'] as { code: string }).code).toBe('InvalidRoleAssignmentId');
  });

  it('refuses a writer without roleAssignments/write (Reader) with AuthorizationFailed', async () => {
    const alice = await emu.armTokenFor('alice@emulator.onmicrosoft.com', 'alice-password');
    const r = await emu.arm('PUT', path('0b6f1e2a-1111-4a5b-9c8d-000000000003'), alice, body(ids['carol'] ?? ''));
    expect(r.status).toBe(403);
    expect(String((r.json['error'] as { message: string }).message)).toContain("'Microsoft.Authorization/roleAssignments/write'");
  });

  it('refuses an unknown principal (PrincipalNotFound) and a wrong principalType (UnmatchedPrincipalType)', async () => {
    const unknown = await emu.arm('PUT', path('0b6f1e2a-1111-4a5b-9c8d-000000000004'), adminToken, body('11111111-2222-3333-4444-555555555555'));
    expect((unknown.json['error'] as { code: string }).code).toBe('PrincipalNotFound');
    const wrong = await emu.arm('PUT', path('0b6f1e2a-1111-4a5b-9c8d-000000000005'), adminToken, {
      properties: { ...body(ids['outer'] ?? '').properties, principalType: 'User' },
    });
    expect((wrong.json['error'] as { code: string }).code).toBe('UnmatchedPrincipalType');
  });
});

describe('role definitions', () => {
  it('serves every built-in role with its real ID and permission blocks, under a subscription and at the root', async () => {
    for (const role of BUILT_IN_ROLES) {
      const r = await emu.arm('GET', `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${role.id}`, adminToken);
      expect(r.status, r.text).toBe(200);
      expect(r.json['id']).toBe(`/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${role.id}`);
      expect(r.json['name']).toBe(role.id);
      const p = r.json['properties'] as Record<string, unknown>;
      expect(p['roleName']).toBe(role.roleName);
      expect(p['type']).toBe('BuiltInRole');
      expect(p['assignableScopes']).toEqual(['/']);
      expect(p['permissions']).toEqual(
        role.permissions.map((b) => ({ actions: b.actions, notActions: b.notActions, dataActions: b.dataActions, notDataActions: b.notDataActions })),
      );
    }
    const root = await emu.arm('GET', `/providers/Microsoft.Authorization/roleDefinitions/${ROLE_IDS.openAiUser}`, adminToken);
    expect(root.json['id']).toBe(`/providers/Microsoft.Authorization/roleDefinitions/${ROLE_IDS.openAiUser}`);
    const byName = await emu.arm(
      'GET',
      `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName%20eq%20'Cognitive%20Services%20Contributor'`,
      adminToken,
    );
    expect(names(byName)).toEqual([ROLE_IDS.cognitiveServicesContributor]);
  });

  it('creates a custom role by PUT and grants through it', async () => {
    const id = '7c0a1b2c-3d4e-4f50-8a6b-7c8d9e0f1a2b';
    const r = await emu.arm('PUT', `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${id}`, adminToken, {
      properties: {
        roleName: 'Assignment Reader',
        type: 'CustomRole',
        permissions: [{ actions: ['Microsoft.Authorization/roleAssignments/read'] }],
        assignableScopes: [`/subscriptions/${SUB}`],
      },
    });
    expect(r.status, r.text).toBe(201);
    const dave = await emu.user('dave');
    await emu.roleAssignment(RG_SCOPE, 'Assignment Reader', dave);
    const token = await emu.armTokenFor('dave@emulator.onmicrosoft.com', 'dave-password');
    expect((await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, token)).status).toBe(200);
    expect((await emu.arm('GET', `/subscriptions/${SUB}/providers/Microsoft.Authorization/roleAssignments`, token)).status).toBe(403);
  });
});

describe('deny assignments', () => {
  it('lists with atScope()/assignedTo() (groups, Everyone, excludePrincipals) and denies the action', async () => {
    const erin = await emu.user('erin');
    const grp = await emu.group('deny-group', [erin]);
    await emu.roleAssignment(CLUSTER_SCOPE, 'Reader', erin);
    const d = await emu.admin('POST', '/deny-assignments', {
      denyAssignmentName: 'no role reads',
      scope: CLUSTER_SCOPE,
      permissions: [{ actions: ['*/read'] }],
      principals: [{ id: grp, type: 'Group' }],
    });
    expect(d.status, d.text).toBe(201);
    const everyone = await emu.admin('POST', '/deny-assignments', {
      denyAssignmentName: 'everyone but admin',
      scope: CLUSTER_SCOPE,
      permissions: [{ actions: ['Microsoft.Kubernetes/connectedClusters/delete'] }],
      principals: [{ id: '00000000-0000-0000-0000-000000000000', type: 'SystemDefined' }],
      excludePrincipals: [{ id: ADMIN_ID, type: 'User' }],
    });
    const listFor = (id: string) =>
      emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/denyAssignments?$filter=atScope()+and+assignedTo('${id}')`, adminToken);
    const forErin = await listFor(erin);
    expect(forErin.status, forErin.text).toBe(200);
    expect(names(forErin)).toEqual([String(d.json['id']), String(everyone.json['id'])].sort());
    const item = (forErin.json['value'] as Array<{ properties: Record<string, unknown> }>).find(
      (v) => v.properties['denyAssignmentName'] === 'no role reads',
    );
    expect(item?.properties).toMatchObject({
      scope: CLUSTER_SCOPE,
      doNotApplyToChildScopes: false,
      isSystemProtected: true,
      principals: [{ id: grp, type: 'Group' }],
      excludePrincipals: [],
    });
    expect(names(await listFor(ADMIN_ID))).toEqual([]);
    const erinToken = await emu.armTokenFor('erin@emulator.onmicrosoft.com', 'erin-password');
    const cluster = await emu.arm('GET', CLUSTER_SCOPE, erinToken);
    expect(cluster.status).toBe(403);
  });
});

describe('resources', () => {
  it('GETs the connected cluster with its system-assigned identity', async () => {
    const r = await emu.arm('GET', `${CLUSTER_SCOPE}?api-version=2024-01-01`, adminToken);
    expect(r.status, r.text).toBe(200);
    expect(r.json['id']).toBe(CLUSTER_SCOPE);
    expect(r.json['type']).toBe('microsoft.kubernetes/connectedclusters');
    expect(r.json['identity']).toEqual({ type: 'SystemAssigned', principalId: CLUSTER_PRINCIPAL, tenantId: 'c0ffee00-0000-4000-8000-000000000001' });
    const missing = await emu.arm('GET', `${RG_SCOPE}/providers/Microsoft.Kubernetes/connectedClusters/nope?api-version=2024-01-01`, adminToken);
    expect(missing.status).toBe(404);
    expect((missing.json['error'] as { code: string }).code).toBe('ResourceNotFound');
  });

  it('GETs a user-assigned identity with clientId and principalId', async () => {
    const mi = await emu.admin('POST', '/managed-identities', { name: 'inference-client' });
    const r = await emu.arm('GET', `${String(mi.json['resourceId'])}?api-version=2023-01-31`, adminToken);
    expect(r.status, r.text).toBe(200);
    expect(r.json['properties']).toMatchObject({
      clientId: mi.json['clientId'],
      principalId: mi.json['principalId'],
      tenantId: 'c0ffee00-0000-4000-8000-000000000001',
    });
  });
});

describe('authentication', () => {
  it('answers no token with 401 AuthenticationFailed, a Graph token with InvalidAuthenticationTokenAudience, a missing api-version with 400', async () => {
    const none = await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, undefined);
    expect(none.status).toBe(401);
    expect((none.json['error'] as { code: string }).code).toBe('AuthenticationFailed');
    expect(none.headers.get('www-authenticate')).toContain('Bearer');
    const graph = await emu.graphTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
    const wrongAud = await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, graph);
    expect(wrongAud.status).toBe(401);
    expect((wrongAud.json['error'] as { code: string }).code).toBe('InvalidAuthenticationTokenAudience');
    const noVersion = await call(`${emu.http}/arm${CLUSTER_SCOPE}`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(noVersion.status).toBe(400);
    expect((noVersion.json['error'] as { code: string }).code).toBe('MissingApiVersionParameter');
    const forged = await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, `${adminToken.slice(0, -4)}AAAA`);
    expect((forged.json['error'] as { code: string }).code).toBe('InvalidAuthenticationToken');
  });

  it('refuses a token from another tenant with InvalidAuthenticationTokenTenant', async () => {
    const other = await emu.admin('POST', '/tenants', { id: 'c0ffee00-0000-4000-8000-0000000000ff' });
    expect(other.status, other.text).toBe(201);
    const u = await emu.admin('POST', '/users', {
      tenantId: 'c0ffee00-0000-4000-8000-0000000000ff',
      userPrincipalName: 'mallory',
      password: 'mallory-password',
    });
    const token = await emu.accessToken(
      {
        grant_type: 'password',
        client_id: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
        username: String(u.json['userPrincipalName']),
        password: 'mallory-password',
        scope: 'https://management.azure.com//.default',
      },
      'c0ffee00-0000-4000-8000-0000000000ff',
    );
    const r = await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, token);
    expect(r.status).toBe(401);
    expect((r.json['error'] as { code: string }).code).toBe('InvalidAuthenticationTokenTenant');
  });

  it('refuses a token once the emulator clock passes its exp (ExpiredAuthenticationToken)', async () => {
    const token = await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
    await emu.admin('POST', '/clock', { advanceSeconds: 3 * 3600 });
    try {
      const r = await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, token);
      expect(r.status).toBe(401);
      expect((r.json['error'] as { code: string }).code).toBe('ExpiredAuthenticationToken');
    } finally {
      await emu.admin('POST', '/clock', { advanceSeconds: -3 * 3600 });
    }
    expect((await emu.arm('GET', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`, token)).status).toBe(200);
  });
});
