import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ADMIN_UPN, AZURE_CLI, claimsOf, startTestEmulator, TENANT, type TestEmulator } from './helpers.js';

/** Microsoft Graph subset: the calls setup, grant and doctor make, with Graph's shapes, permission checks and validation. */

let emu: TestEmulator;
let admin: string;
const GRAPH_SP_APP_ID = '00000003-0000-0000-c000-000000000000';
const SCOPE_ID = '8c5e1a44-0000-4000-8000-0000000000f1';
const ROLE_ID = '8c5e1a44-0000-4000-8000-0000000000f2';

const scope = (extra: Record<string, unknown> = {}) => ({
  id: SCOPE_ID,
  value: 'foundry_access',
  type: 'Admin',
  isEnabled: true,
  adminConsentDisplayName: 'Access Foundry Local',
  adminConsentDescription: 'Call Foundry Local inference endpoints',
  userConsentDisplayName: null,
  userConsentDescription: null,
  ...extra,
});
const role = (extra: Record<string, unknown> = {}) => ({
  id: ROLE_ID,
  value: 'FoundryInferenceAccess',
  displayName: 'Foundry inference',
  description: 'Apps may call Foundry Local',
  isEnabled: true,
  allowedMemberTypes: ['Application'],
  ...extra,
});

beforeAll(async () => {
  emu = await startTestEmulator();
  admin = await emu.graphTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
});
afterAll(async () => {
  await emu.close();
});

async function newApp(name: string): Promise<{ id: string; appId: string }> {
  const r = await emu.graph('POST', '/applications', admin, { displayName: name });
  expect(r.status, r.text).toBe(201);
  return { id: String(r.json['id']), appId: String(r.json['appId']) };
}

describe('applications and service principals (the setup flow)', () => {
  it('creates, patches and reads an app registration, then issues the tokens it describes', async () => {
    const created = await emu.graph('POST', '/applications', admin, { displayName: 'foundry-local-auth', signInAudience: 'AzureADMyOrg' });
    expect(created.status, created.text).toBe(201);
    expect(created.json['@odata.context']).toBe(`${emu.http}/graph/v1.0/$metadata#applications/$entity`);
    expect(created.json['api']).toEqual({
      acceptMappedClaims: null,
      knownClientApplications: [],
      requestedAccessTokenVersion: null,
      oauth2PermissionScopes: [],
      preAuthorizedApplications: [],
    });
    const id = String(created.json['id']);
    const appId = String(created.json['appId']);

    const patch = await emu.graph('PATCH', `/applications/${id}`, admin, {
      identifierUris: [`api://${appId}`],
      api: {
        requestedAccessTokenVersion: 2,
        oauth2PermissionScopes: [scope()],
        preAuthorizedApplications: [{ appId: AZURE_CLI, delegatedPermissionIds: [SCOPE_ID] }],
      },
      appRoles: [role()],
    });
    expect(patch.status, patch.text).toBe(204);

    const byFilter = await emu.graph('GET', `/applications?$filter=appId eq '${appId}'`, admin);
    expect(byFilter.json['@odata.context']).toBe(`${emu.http}/graph/v1.0/$metadata#applications`);
    const listed = (byFilter.json['value'] as Array<Record<string, unknown>>)[0];
    expect(listed?.['identifierUris']).toEqual([`api://${appId}`]);
    expect((listed?.['api'] as Record<string, unknown>)['requestedAccessTokenVersion']).toBe(2);
    const byKey = await emu.graph('GET', `/applications(appId='${appId}')`, admin);
    expect(byKey.json['id']).toBe(id);
    expect((await emu.graph('GET', `/applications?$filter=displayName eq 'foundry-local-auth'&$select=id,appId`, admin)).json['value']).toEqual([
      { id, appId },
    ]);

    const sp = await emu.graph('POST', '/servicePrincipals', admin, { appId });
    expect(sp.status, sp.text).toBe(201);
    expect(sp.json['servicePrincipalType']).toBe('Application');
    expect(sp.json['servicePrincipalNames']).toEqual([appId, `api://${appId}`]);
    expect((sp.json['appRoles'] as Array<{ value: string }>)[0]?.value).toBe('FoundryInferenceAccess');
    const again = await emu.graph('POST', '/servicePrincipals', admin, { appId });
    expect(again.status).toBe(409);
    expect((again.json['error'] as { code: string }).code).toBe('Request_MultipleObjectsWithSameKeyValue');
    const spList = await emu.graph('GET', `/servicePrincipals?$filter=appId eq '${appId}'`, admin);
    expect((spList.json['value'] as unknown[]).length).toBe(1);

    // The Azure CLI is pre-authorized: a user gets scp foundry_access in a v2 token.
    await emu.user('frank');
    const userToken = claimsOf(
      await emu.accessToken({
        grant_type: 'password',
        client_id: AZURE_CLI,
        username: 'frank@emulator.onmicrosoft.com',
        password: 'frank-password',
        scope: `api://${appId}/.default`,
      }),
    );
    expect(userToken).toMatchObject({ aud: appId, ver: '2.0', scp: 'foundry_access' });

    // A client app with a secret from addPassword gets the app role once it is assigned through appRoleAssignedTo.
    const client = await newApp('inference-client-app');
    const clientSp = await emu.graph('POST', '/servicePrincipals', admin, { appId: client.appId });
    const pw = await emu.graph('POST', `/applications/${client.id}/addPassword`, admin, { passwordCredential: { displayName: 'ci' } });
    expect(pw.status, pw.text).toBe(200);
    const secret = String(pw.json['secretText']);
    expect(pw.json['hint']).toBe(secret.slice(0, 3));
    const form = { grant_type: 'client_credentials', client_id: client.appId, client_secret: secret, scope: `api://${appId}/.default` };
    expect(claimsOf(await emu.accessToken(form))['roles']).toBeUndefined();
    const assign = await emu.graph('POST', `/servicePrincipals/${String(sp.json['id'])}/appRoleAssignedTo`, admin, {
      principalId: clientSp.json['id'],
      resourceId: sp.json['id'],
      appRoleId: ROLE_ID,
    });
    expect(assign.status, assign.text).toBe(201);
    expect(assign.json).toMatchObject({
      principalId: clientSp.json['id'],
      principalType: 'ServicePrincipal',
      resourceId: sp.json['id'],
      appRoleId: ROLE_ID,
      resourceDisplayName: 'foundry-local-auth',
    });
    expect(claimsOf(await emu.accessToken(form))['roles']).toEqual(['FoundryInferenceAccess']);
    const dup = await emu.graph('POST', `/servicePrincipals/${String(sp.json['id'])}/appRoleAssignedTo`, admin, {
      principalId: clientSp.json['id'],
      resourceId: sp.json['id'],
      appRoleId: ROLE_ID,
    });
    expect(dup.status).toBe(400);
    const assignedTo = await emu.graph('GET', `/servicePrincipals/${String(sp.json['id'])}/appRoleAssignedTo`, admin);
    expect((assignedTo.json['value'] as unknown[]).length).toBe(1);
    const fromPrincipal = await emu.graph('GET', `/servicePrincipals/${String(clientSp.json['id'])}/appRoleAssignments`, admin);
    expect((fromPrincipal.json['value'] as Array<{ id: string }>)[0]?.id).toBe(assign.json['id']);
    expect(
      (await emu.graph('DELETE', `/servicePrincipals/${String(sp.json['id'])}/appRoleAssignedTo/${String(assign.json['id'])}`, admin)).status,
    ).toBe(204);
    expect(claimsOf(await emu.accessToken(form))['roles']).toBeUndefined();
  });

  it('refuses to remove or change an enabled scope or app role in one PATCH (CannotDeleteOrUpdateEnabledEntitlement)', async () => {
    const { id } = await newApp('entitlements');
    expect((await emu.graph('PATCH', `/applications/${id}`, admin, { api: { oauth2PermissionScopes: [scope()] }, appRoles: [role()] })).status).toBe(
      204,
    );
    const remove = await emu.graph('PATCH', `/applications/${id}`, admin, { api: { oauth2PermissionScopes: [] } });
    expect(remove.status).toBe(400);
    expect((remove.json['error'] as { code: string; message: string }).code).toBe('CannotDeleteOrUpdateEnabledEntitlement');
    const rename = await emu.graph('PATCH', `/applications/${id}`, admin, { appRoles: [role({ value: 'Renamed' })] });
    expect((rename.json['error'] as { code: string }).code).toBe('CannotDeleteOrUpdateEnabledEntitlement');
    // Disable first, then remove: accepted.
    expect((await emu.graph('PATCH', `/applications/${id}`, admin, { api: { oauth2PermissionScopes: [scope({ isEnabled: false })] } })).status).toBe(
      204,
    );
    expect((await emu.graph('PATCH', `/applications/${id}`, admin, { api: { oauth2PermissionScopes: [] } })).status).toBe(204);
    // Resending the same enabled role is not a change.
    expect((await emu.graph('PATCH', `/applications/${id}`, admin, { appRoles: [role()] })).status).toBe(204);
  });

  it('validates the manifest: version, unknown properties, pre-authorized scope IDs, identifier URI domains', async () => {
    const { id } = await newApp('validation');
    const bad = async (body: Record<string, unknown>) => emu.graph('PATCH', `/applications/${id}`, admin, body);
    expect((await bad({ api: { requestedAccessTokenVersion: 3 } })).status).toBe(400);
    expect((await bad({ accessTokenAcceptedVersion: 2 })).status).toBe(400);
    expect((await bad({ api: { preAuthorizedApplications: [{ appId: AZURE_CLI, delegatedPermissionIds: [SCOPE_ID] }] } })).status).toBe(400);
    const domain = await bad({ identifierUris: ['https://contoso.example/api'] });
    expect((domain.json['error'] as { code: string }).code).toBe('HostNameNotOnVerifiedDomain');
    expect((await bad({ identifierUris: ['https://api.emulator.onmicrosoft.com/foundry'] })).status).toBe(204);
  });

  it('answers an unknown object with 404 Request_ResourceNotFound and a missing token with 401', async () => {
    const r = await emu.graph('GET', '/applications/11111111-2222-3333-4444-555555555555', admin);
    expect(r.status).toBe(404);
    expect((r.json['error'] as { code: string }).code).toBe('Request_ResourceNotFound');
    expect((r.json['error'] as { innerError: Record<string, unknown> }).innerError['request-id']).toBeTypeOf('string');
    const none = await emu.graph('GET', '/applications', undefined);
    expect(none.status).toBe(401);
    expect((none.json['error'] as { code: string }).code).toBe('InvalidAuthenticationToken');
  });
});

describe('permissions', () => {
  it('refuses writes without Application.ReadWrite.All (app-only) or an admin role (delegated) with 403 Authorization_RequestDenied', async () => {
    const seeded = await emu.admin('POST', '/applications', { displayName: 'automation', secret: 'automation-secret' });
    const appId = String((seeded.json['application'] as { appId: string }).appId);
    const spId = String((seeded.json['servicePrincipal'] as { id: string }).id);
    const form = {
      grant_type: 'client_credentials',
      client_id: appId,
      client_secret: 'automation-secret',
      scope: 'https://graph.microsoft.com/.default',
    };
    const noRole = await emu.accessToken(form);
    const denied = await emu.graph('POST', '/applications', noRole, { displayName: 'x' });
    expect(denied.status).toBe(403);
    expect(denied.json['error']).toMatchObject({
      code: 'Authorization_RequestDenied',
      message: 'Insufficient privileges to complete the operation.',
    });
    expect((await emu.graph('GET', '/applications', noRole)).status).toBe(403);
    await emu.admin('POST', '/app-role-assignments', {
      principalId: spId,
      resourceAppId: GRAPH_SP_APP_ID,
      appRoleValue: 'Application.ReadWrite.All',
    });
    const withRole = await emu.accessToken(form);
    expect(claimsOf(withRole)['roles']).toEqual(['Application.ReadWrite.All']);
    expect((await emu.graph('POST', '/applications', withRole, { displayName: 'by-automation' })).status).toBe(201);
    // Application.ReadWrite.All does not cover app role assignments.
    const graphSp = (await emu.graph('GET', `/servicePrincipals?$filter=appId eq '${GRAPH_SP_APP_ID}'`, withRole)).json['value'] as Array<{
      id: string;
    }>;
    const assign = await emu.graph('POST', `/servicePrincipals/${spId}/appRoleAssignments`, withRole, {
      principalId: spId,
      resourceId: graphSp[0]?.id,
      appRoleId: '06b708a9-e830-4db3-a914-8e69da51d44f',
    });
    expect(assign.status).toBe(403);

    await emu.user('grace');
    const member = await emu.graphTokenFor('grace@emulator.onmicrosoft.com', 'grace-password');
    expect((await emu.graph('GET', '/applications', member)).status).toBe(200);
    expect((await emu.graph('POST', '/applications', member, { displayName: 'y' })).status).toBe(403);
    await emu.user('henry', 'henry-password', { directoryRoles: ['Application Administrator'] });
    const appAdmin = await emu.graphTokenFor('henry@emulator.onmicrosoft.com', 'henry-password');
    expect((await emu.graph('POST', '/applications', appAdmin, { displayName: 'z' })).status).toBe(201);
  });
});

describe('directory objects', () => {
  it('reads users by ID and UPN, filters, groups with members and transitive members, and /me', async () => {
    const ivy = await emu.user('ivy');
    const inner = await emu.group('ivy-inner', [ivy]);
    const outer = await emu.group('ivy-outer', [inner]);
    expect((await emu.graph('GET', `/users/${ivy}`, admin)).json['userPrincipalName']).toBe('ivy@emulator.onmicrosoft.com');
    expect((await emu.graph('GET', '/users/ivy@emulator.onmicrosoft.com', admin)).json['id']).toBe(ivy);
    expect(
      (
        (await emu.graph('GET', `/users?$filter=userPrincipalName eq 'ivy@emulator.onmicrosoft.com'`, admin)).json['value'] as Array<{ id: string }>
      ).map((u) => u.id),
    ).toEqual([ivy]);
    expect((await emu.graph('GET', '/users/nobody@emulator.onmicrosoft.com', admin)).status).toBe(404);
    expect(
      ((await emu.graph('GET', `/groups?$filter=displayName eq 'ivy-outer'`, admin)).json['value'] as Array<{ id: string }>).map((g) => g.id),
    ).toEqual([outer]);
    const direct = (await emu.graph('GET', `/groups/${outer}/members`, admin)).json['value'] as Array<Record<string, unknown>>;
    expect(direct.map((m) => [m['@odata.type'], m['id']])).toEqual([['#microsoft.graph.group', inner]]);
    const transitive = (await emu.graph('GET', `/groups/${outer}/transitiveMembers`, admin)).json['value'] as Array<Record<string, unknown>>;
    expect(transitive.map((m) => m['id']).sort()).toEqual([inner, ivy].sort());
    expect(
      ((await emu.graph('GET', `/users/${ivy}/transitiveMemberOf`, admin)).json['value'] as Array<{ id: string }>).map((g) => g.id).sort(),
    ).toEqual([inner, outer].sort());
    expect((await emu.graph('GET', '/me', admin)).json['userPrincipalName']).toBe(ADMIN_UPN);
    const org = await emu.graph('GET', '/organization', admin);
    expect((org.json['value'] as Array<{ id: string }>)[0]?.id).toBe(TENANT);
  });

  it('lists managed identities as service principals of type ManagedIdentity with appId = client ID', async () => {
    const mi = await emu.admin('POST', '/managed-identities', { name: 'inference-client' });
    const r = await emu.graph('GET', `/servicePrincipals?$filter=appId eq '${String(mi.json['clientId'])}'`, admin);
    const sp = (r.json['value'] as Array<Record<string, unknown>>)[0];
    expect(sp).toMatchObject({
      id: mi.json['principalId'],
      appId: mi.json['clientId'],
      servicePrincipalType: 'ManagedIdentity',
      displayName: 'inference-client',
    });
    expect(sp?.['alternativeNames']).toEqual(['isExplicit=True', mi.json['resourceId']]);
  });

  it('pages lists with @odata.nextLink', async () => {
    for (const n of ['p1', 'p2', 'p3']) await emu.user(`page-${n}`);
    const first = await emu.graph('GET', `/users?$top=2`, admin);
    expect((first.json['value'] as unknown[]).length).toBe(2);
    const next = String(first.json['@odata.nextLink']);
    expect(next.startsWith(`${emu.http}/graph/v1.0/users?`)).toBe(true);
  });
});

describe('admin consent (oauth2PermissionGrants)', () => {
  it('creates a grant that puts the scope in user tokens, lists it by clientId, and deletes it', async () => {
    const api = await newApp('consent-api');
    await emu.graph('PATCH', `/applications/${api.id}`, admin, {
      identifierUris: [`api://${api.appId}`],
      api: { requestedAccessTokenVersion: 2, oauth2PermissionScopes: [scope()] },
    });
    const apiSp = await emu.graph('POST', '/servicePrincipals', admin, { appId: api.appId });
    const cliSp =
      ((await emu.graph('GET', `/servicePrincipals?$filter=appId eq '${AZURE_CLI}'`, admin)).json['value'] as Array<{ id: string }>)[0]?.id ?? '';
    await emu.user('jack');
    const form = {
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: 'jack@emulator.onmicrosoft.com',
      password: 'jack-password',
      scope: `api://${api.appId}/.default`,
    };
    expect((await emu.token(form)).json['error_codes']).toEqual([65001]);
    const grant = await emu.graph('POST', '/oauth2PermissionGrants', admin, {
      clientId: cliSp,
      consentType: 'AllPrincipals',
      principalId: null,
      resourceId: apiSp.json['id'],
      scope: 'foundry_access',
    });
    expect(grant.status, grant.text).toBe(201);
    expect(claimsOf(await emu.accessToken(form))['scp']).toBe('foundry_access');
    const listed = await emu.graph(
      'GET',
      `/oauth2PermissionGrants?$filter=clientId eq '${cliSp}' and resourceId eq '${String(apiSp.json['id'])}'`,
      admin,
    );
    expect((listed.json['value'] as Array<{ id: string }>).map((g) => g.id)).toEqual([grant.json['id']]);
    const dup = await emu.graph('POST', '/oauth2PermissionGrants', admin, {
      clientId: cliSp,
      consentType: 'AllPrincipals',
      principalId: null,
      resourceId: apiSp.json['id'],
      scope: 'foundry_access',
    });
    expect(dup.status).toBe(409);
    expect((await emu.graph('DELETE', `/oauth2PermissionGrants/${String(grant.json['id'])}`, admin)).status).toBe(204);
    expect((await emu.token(form)).json['error_codes']).toEqual([65001]);
  });
});
