import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ADMIN_UPN, AZURE_CLI, SUB, TENANT, call, claimsOf, headerOf, startTestEmulator, type TestEmulator } from './helpers.js';

/** Entra ID fidelity: discovery, JWKS, token shapes and the rules for version, scp and roles, and the AADSTS errors. */

let emu: TestEmulator;

beforeAll(async () => {
  emu = await startTestEmulator();
});
afterAll(async () => {
  await emu.close();
});

interface SeededApp {
  appId: string;
  spId: string;
  secret: string;
}

async function seedApp(body: Record<string, unknown>): Promise<SeededApp> {
  const r = await emu.admin('POST', '/applications', body);
  expect(r.status, r.text).toBe(201);
  const app = r.json['application'] as Record<string, unknown>;
  const sp = r.json['servicePrincipal'] as Record<string, unknown>;
  return { appId: String(app['appId']), spId: String(sp['id']), secret: String(r.json['secret']) };
}

async function resourceApi(version: number | null, extra: Record<string, unknown> = {}): Promise<SeededApp & { scopeId: string; roleId: string }> {
  const r = await emu.admin('POST', '/applications', {
    displayName: `api-${Math.random()}`,
    requestedAccessTokenVersion: version,
    scopes: [{ value: 'foundry_access' }, { value: 'disabled_scope', isEnabled: false }],
    appRoles: [
      { value: 'FoundryInferenceAccess', allowedMemberTypes: ['Application', 'User'] },
      { value: 'Disabled', isEnabled: false },
    ],
    ...extra,
  });
  expect(r.status, r.text).toBe(201);
  const app = r.json['application'] as { appId: string; api: { oauth2PermissionScopes: Array<{ id: string }> }; appRoles: Array<{ id: string }> };
  const sp = r.json['servicePrincipal'] as { id: string };
  return { appId: app.appId, spId: sp.id, secret: '', scopeId: app.api.oauth2PermissionScopes[0]?.id ?? '', roleId: app.appRoles[0]?.id ?? '' };
}

describe('discovery and keys', () => {
  it('serves v2 discovery whose issuer and endpoints use the listener the request came in on', async () => {
    const r = await call(`${emu.http}/${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(r.status).toBe(200);
    expect(r.json['issuer']).toBe(`${emu.http}/${TENANT}/v2.0`);
    expect(r.json['token_endpoint']).toBe(`${emu.http}/${TENANT}/oauth2/v2.0/token`);
    expect(r.json['jwks_uri']).toBe(`${emu.http}/${TENANT}/discovery/v2.0/keys`);
    expect(r.json['authorization_endpoint']).toBeTypeOf('string');
  });

  it('serves v1 discovery with the real v1 issuer', async () => {
    const r = await call(`${emu.http}/${TENANT}/.well-known/openid-configuration`);
    expect(r.json['issuer']).toBe(`https://sts.windows.net/${TENANT}/`);
    expect(r.json['token_endpoint']).toBe(`${emu.http}/${TENANT}/oauth2/token`);
  });

  it('publishes at least two RSA-2048 signing keys with x5c and kid = x5t', async () => {
    const r = await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`);
    const keys = r.json['keys'] as Array<Record<string, unknown>>;
    expect(keys.length).toBeGreaterThanOrEqual(2);
    for (const k of keys) {
      expect(k['kty']).toBe('RSA');
      expect(k['use']).toBe('sig');
      expect(k['kid']).toBe(k['x5t']);
      expect(Buffer.from(String(k['n']), 'base64url').length).toBe(256);
      expect((k['x5c'] as string[]).length).toBe(1);
      expect(k['issuer']).toBe(`${emu.http}/${TENANT}/v2.0`);
    }
  });

  it('answers an unknown tenant with AADSTS90002', async () => {
    const r = await call(`${emu.http}/00000000-1111-2222-3333-444444444444/v2.0/.well-known/openid-configuration`);
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('invalid_tenant');
    expect(r.json['error_codes']).toEqual([90002]);
  });

  it('key rotation adds a new active key to the JWKS and signs new tokens with it; retireOldest removes one', async () => {
    const before = ((await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    const rot = await emu.admin('POST', '/keys/rotate', {});
    expect(rot.status).toBe(200);
    const kid = String(rot.json['activeKid']);
    const after = ((await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    expect(after).toEqual([...before, kid]);
    const token = await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
    expect(headerOf(token)['kid']).toBe(kid);
    const retire = await emu.admin('POST', '/keys/rotate', { retireOldest: true });
    expect(retire.json['retiredKid']).toBe(before[0]);
    const last = ((await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    expect(last).not.toContain(before[0]);
    expect(last).toContain(retire.json['activeKid']);
  });
});

describe('client credentials', () => {
  it('issues a v2 token (aud = appId GUID, v2 issuer) when the resource manifest asks for version 2', async () => {
    const api = await resourceApi(2);
    const client = await seedApp({ displayName: 'client', secret: 's3cret-value' });
    await emu.admin('POST', '/app-role-assignments', { principalId: client.spId, resourceAppId: api.appId, appRoleValue: 'FoundryInferenceAccess' });
    const r = await emu.token({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: 's3cret-value',
      scope: `api://${api.appId}/.default`,
    });
    // The resource is found by appId only when api://<appId> is an identifier URI; it is not set yet.
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('invalid_resource');
    const ok = await emu.token({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: 's3cret-value',
      scope: `${api.appId}/.default`,
    });
    expect(ok.status, ok.text).toBe(200);
    expect(ok.json['token_type']).toBe('Bearer');
    expect(ok.json['expires_in']).toBe(3599);
    const c = claimsOf(String(ok.json['access_token']));
    expect(c['ver']).toBe('2.0');
    expect(c['aud']).toBe(api.appId);
    expect(c['iss']).toBe(`${emu.http}/${TENANT}/v2.0`);
    expect(c['azp']).toBe(client.appId);
    expect(c['azpacr']).toBe('1');
    expect(c['idtyp']).toBe('app');
    expect(c['oid']).toBe(client.spId);
    expect(c['sub']).toBe(client.spId);
    expect(c['tid']).toBe(TENANT);
    expect(c['roles']).toEqual(['FoundryInferenceAccess']);
    expect(c['scp']).toBeUndefined();
    expect(Number(c['exp']) - Number(c['iat'])).toBeGreaterThanOrEqual(3600);
    expect(Number(c['exp']) - Number(c['iat'])).toBeLessThanOrEqual(5400);
    expect(headerOf(String(ok.json['access_token']))).toMatchObject({ typ: 'JWT', alg: 'RS256' });
  });

  it('issues a v1 token (aud exactly as requested, sts.windows.net issuer, appid/appidacr) when requestedAccessTokenVersion is not 2', async () => {
    const r0 = await emu.admin('POST', '/applications', { displayName: 'api-v1', identifierUris: ['api://foundry-v1-api'] });
    expect(r0.status).toBe(201);
    const client = await seedApp({ displayName: 'client-v1', secret: 'another-secret' });
    const ok = await emu.token({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: 'another-secret',
      scope: 'api://foundry-v1-api/.default',
    });
    expect(ok.status, ok.text).toBe(200);
    const c = claimsOf(String(ok.json['access_token']));
    expect(c['ver']).toBe('1.0');
    expect(c['aud']).toBe('api://foundry-v1-api');
    expect(c['iss']).toBe(`https://sts.windows.net/${TENANT}/`);
    expect(c['appid']).toBe(client.appId);
    expect(c['appidacr']).toBe('1');
    expect(c['idp']).toBe(`https://sts.windows.net/${TENANT}/`);
    expect(c['azp']).toBeUndefined();
    expect(headerOf(String(ok.json['access_token']))['x5t']).toBeTypeOf('string');
  });

  it('carries no roles claim when no app role is assigned, and never a disabled role', async () => {
    const api = await resourceApi(2);
    const client = await seedApp({ displayName: 'no-roles', secret: 'no-roles-secret' });
    const t1 = claimsOf(
      await emu.accessToken({
        grant_type: 'client_credentials',
        client_id: client.appId,
        client_secret: 'no-roles-secret',
        scope: `${api.appId}/.default`,
      }),
    );
    expect(t1['roles']).toBeUndefined();
    await emu.admin('POST', '/app-role-assignments', { principalId: client.spId, resourceAppId: api.appId, appRoleValue: 'Disabled' });
    const t2 = claimsOf(
      await emu.accessToken({
        grant_type: 'client_credentials',
        client_id: client.appId,
        client_secret: 'no-roles-secret',
        scope: `${api.appId}/.default`,
      }),
    );
    expect(t2['roles']).toBeUndefined();
  });

  it('rejects a wrong secret with invalid_client AADSTS7000215 (401) in Entra error shape', async () => {
    const client = await seedApp({ displayName: 'bad-secret', secret: 'right' });
    const r = await emu.token({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: 'wrong',
      scope: 'https://management.azure.com/.default',
    });
    expect(r.status).toBe(401);
    expect(r.json['error']).toBe('invalid_client');
    expect(r.json['error_codes']).toEqual([7000215]);
    expect(String(r.json['error_description'])).toMatch(
      /^AADSTS7000215: .*\r\nTrace ID: [0-9a-f-]{36}\r\nCorrelation ID: [0-9a-f-]{36}\r\nTimestamp: \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ$/s,
    );
    expect(r.json['trace_id']).toBeTypeOf('string');
    expect(r.json['correlation_id']).toBeTypeOf('string');
    expect(r.json['timestamp']).toBeTypeOf('string');
  });

  it('rejects an unknown client with unauthorized_client AADSTS700016', async () => {
    const r = await emu.token({
      grant_type: 'client_credentials',
      client_id: '11111111-2222-3333-4444-555555555555',
      client_secret: 'x',
      scope: 'https://management.azure.com/.default',
    });
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('unauthorized_client');
    expect(r.json['error_codes']).toEqual([700016]);
  });

  it('rejects an unknown resource with AADSTS500011', async () => {
    const client = await seedApp({ displayName: 'c500011', secret: 'x1' });
    const r = await emu.token({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: 'x1',
      scope: 'api://does-not-exist/.default',
    });
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('invalid_resource');
    expect(r.json['error_codes']).toEqual([500011]);
    expect(String(r.json['error_description'])).toContain('The resource principal named api://does-not-exist was not found in the tenant');
  });

  it('rejects a non-.default scope in client credentials with AADSTS1002012 invalid_scope', async () => {
    const api = await resourceApi(2);
    const client = await seedApp({ displayName: 'c1002012', secret: 'x2' });
    const r = await emu.token({
      grant_type: 'client_credentials',
      client_id: client.appId,
      client_secret: 'x2',
      scope: `${api.appId}/foundry_access`,
    });
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('invalid_scope');
    expect(r.json['error_codes']).toEqual([1002012]);
  });

  it('issues ARM tokens as v1 with aud as requested', async () => {
    const client = await seedApp({ displayName: 'arm-caller', secret: 'x3' });
    for (const [scope, aud] of [
      ['https://management.azure.com/.default', 'https://management.azure.com'],
      ['https://management.core.windows.net//.default', 'https://management.core.windows.net/'],
      [`${emu.running.endpoints.arm}/.default`, emu.running.endpoints.arm],
    ] as const) {
      const c = claimsOf(await emu.accessToken({ grant_type: 'client_credentials', client_id: client.appId, client_secret: 'x3', scope }));
      expect(c['aud']).toBe(aud);
      expect(c['ver']).toBe('1.0');
    }
  });

  it('accepts a federated client assertion from a cluster service account matching a user-assigned identity credential', async () => {
    const endpoints = await emu.admin('GET', '/endpoints');
    const issuer = `${String(endpoints.json['http'])}/_emulator/k8s/arc-cluster`;
    const mi = await emu.admin('POST', '/managed-identities', {
      name: 'workload-mi',
      federatedIdentityCredentials: [{ name: 'fic', issuer, subject: 'system:serviceaccount:foundry:sidecar' }],
    });
    expect(mi.status, mi.text).toBe(201);
    const clientId = String(mi.json['clientId']);
    const discovery = await call(`${issuer}/.well-known/openid-configuration`);
    expect(discovery.json['issuer']).toBe(issuer);
    const minted = await emu.admin('POST', '/federated-token', { subject: 'system:serviceaccount:foundry:sidecar' });
    const assertion = String(minted.json['token']);
    const ok = await emu.token({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: assertion,
      scope: 'https://management.azure.com/.default',
    });
    expect(ok.status, ok.text).toBe(200);
    const c = claimsOf(String(ok.json['access_token']));
    expect(c['appid']).toBe(clientId);
    expect(c['appidacr']).toBe('2');
    expect(c['oid']).toBe(mi.json['principalId']);
    expect(c['xms_mirid']).toBe(mi.json['resourceId']);
    const wrongSubject = await emu.admin('POST', '/federated-token', { subject: 'system:serviceaccount:other:sa' });
    const bad = await emu.token({
      grant_type: 'client_credentials',
      client_id: clientId,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: String(wrongSubject.json['token']),
      scope: 'https://management.azure.com/.default',
    });
    expect(bad.status).toBe(400);
    expect(bad.json['error_codes']).toEqual([700213]);
  });
});

describe('delegated tokens (password grant)', () => {
  async function delegatedSetup(
    version: number | null,
  ): Promise<{ api: Awaited<ReturnType<typeof resourceApi>>; upn: string; password: string; userId: string }> {
    const api = await resourceApi(version);
    const name = `u${Math.floor(Math.random() * 1e9)}`;
    const userId = await emu.user(name, 'pw-1');
    return { api, upn: `${name}@emulator.onmicrosoft.com`, password: 'pw-1', userId };
  }

  it('refuses with consent_required AADSTS65001 when the Azure CLI is neither pre-authorized nor consented', async () => {
    const { api, upn, password } = await delegatedSetup(2);
    const r = await emu.token({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: `${api.appId}/.default` });
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('invalid_grant');
    expect(r.json['suberror']).toBe('consent_required');
    expect(r.json['error_codes']).toEqual([65001]);
  });

  it('puts the scope in scp once the Azure CLI is pre-authorized for it (v2 token with name and preferred_username)', async () => {
    const { api, upn, password, userId } = await delegatedSetup(2);
    const app = await emu.admin('POST', '/applications', {
      displayName: 'pre-authorized-api',
      requestedAccessTokenVersion: 2,
      scopes: [
        { value: 'foundry_access', id: '5a6b1c2d-0000-4000-8000-000000000001' },
        { value: 'other', id: '5a6b1c2d-0000-4000-8000-000000000002' },
      ],
      preAuthorizedApplications: [{ appId: AZURE_CLI, delegatedPermissionIds: ['5a6b1c2d-0000-4000-8000-000000000001'] }],
    });
    const appId = (app.json['application'] as { appId: string }).appId;
    const r = await emu.token({
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: upn,
      password,
      scope: `${appId}/foundry_access openid profile offline_access`,
      client_info: '1',
    });
    expect(r.status, r.text).toBe(200);
    const c = claimsOf(String(r.json['access_token']));
    expect(c['scp']).toBe('foundry_access');
    expect(c['ver']).toBe('2.0');
    expect(c['aud']).toBe(appId);
    expect(c['azp']).toBe(AZURE_CLI);
    expect(c['azpacr']).toBe('0');
    expect(c['idtyp']).toBe('user');
    expect(c['oid']).toBe(userId);
    expect(c['preferred_username']).toBe(upn);
    expect(c['name']).toBeTypeOf('string');
    expect(c['roles']).toBeUndefined();
    expect(r.json['refresh_token']).toBeTypeOf('string');
    expect(r.json['id_token']).toBeTypeOf('string');
    expect(r.json['client_info']).toBeTypeOf('string');
    // A scope that exists but is not pre-authorized: consent required.
    const other = await emu.token({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: `${appId}/other` });
    expect(other.json['error_codes']).toEqual([65001]);
    // A scope that does not exist on the resource.
    const missing = await emu.token({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: `${appId}/nope` });
    expect(missing.json['error_codes']).toEqual([650053]);
    expect(api.appId).not.toBe(appId);
  });

  it('puts only consented, enabled scopes in scp after an admin consent grant (v1 token with upn)', async () => {
    const { api, upn, password } = await delegatedSetup(null);
    await emu.admin('POST', '/oauth2-permission-grants', {
      clientAppId: AZURE_CLI,
      resourceAppId: api.appId,
      scope: 'foundry_access disabled_scope',
    });
    const r = await emu.token({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: `${api.appId}/.default` });
    expect(r.status, r.text).toBe(200);
    const c = claimsOf(String(r.json['access_token']));
    expect(c['scp']).toBe('foundry_access');
    expect(c['ver']).toBe('1.0');
    expect(c['aud']).toBe(api.appId);
    expect(c['upn']).toBe(upn);
    expect(c['unique_name']).toBe(upn);
    expect(c['appid']).toBe(AZURE_CLI);
  });

  it('gives a user roles only through an assignment (directly or through a group)', async () => {
    const { api, upn, password, userId } = await delegatedSetup(2);
    await emu.admin('POST', '/oauth2-permission-grants', { clientAppId: AZURE_CLI, resourceAppId: api.appId, scope: 'foundry_access' });
    const before = claimsOf(
      await emu.accessToken({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: `${api.appId}/.default` }),
    );
    expect(before['roles']).toBeUndefined();
    const group = await emu.group(`g-${userId}`, [userId]);
    await emu.admin('POST', '/app-role-assignments', { principalId: group, resourceAppId: api.appId, appRoleValue: 'FoundryInferenceAccess' });
    const after = claimsOf(
      await emu.accessToken({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: `${api.appId}/.default` }),
    );
    expect(after['roles']).toEqual(['FoundryInferenceAccess']);
  });

  it('rejects a wrong password with AADSTS50126 and an unknown user with AADSTS50034', async () => {
    const bad = await emu.token({
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: ADMIN_UPN,
      password: 'wrong',
      scope: 'https://management.azure.com//.default',
    });
    expect(bad.status).toBe(400);
    expect(bad.json['error']).toBe('invalid_grant');
    expect(bad.json['error_codes']).toEqual([50126]);
    const unknown = await emu.token({
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: 'nobody@emulator.onmicrosoft.com',
      password: 'x',
      scope: 'https://management.azure.com//.default',
    });
    expect(unknown.json['error_codes']).toEqual([50034]);
  });

  it('gives the Azure CLI first-party scopes (ARM user_impersonation) and directory roles in wids', async () => {
    const c = claimsOf(await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD));
    expect(c['scp']).toBe('user_impersonation');
    expect(c['aud']).toBe('https://management.azure.com/');
    expect(c['wids']).toContain('62e90394-69f5-4237-9190-012177145e10');
  });

  it('redeems a refresh token for another resource', async () => {
    const r = await emu.token({
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: ADMIN_UPN,
      password: ADMIN_PASSWORD,
      scope: 'https://management.azure.com//.default offline_access',
    });
    const rt = String(r.json['refresh_token']);
    const g = await emu.token({
      grant_type: 'refresh_token',
      client_id: AZURE_CLI,
      refresh_token: rt,
      scope: 'https://graph.microsoft.com/.default',
    });
    expect(g.status, g.text).toBe(200);
    expect(claimsOf(String(g.json['access_token']))['aud']).toBe('https://graph.microsoft.com');
  });
});

describe('clock', () => {
  it('moving the emulator clock moves iat/exp of new tokens', async () => {
    const t1 = claimsOf(await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD));
    const moved = await emu.admin('POST', '/clock', { advanceSeconds: 7200 });
    expect(moved.status).toBe(200);
    const t2 = claimsOf(await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD));
    expect(Number(t2['exp']) - Number(t1['exp'])).toBeGreaterThanOrEqual(7200);
    expect(Number(t2['exp']) - Number(t1['exp'])).toBeLessThan(7260);
    await emu.admin('POST', '/clock', { advanceSeconds: -7200 });
  });
});

describe('managed identity endpoint (IMDS shape)', () => {
  const path = '/msi/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/';

  it('rejects a request without Metadata: true with 400 as IMDS does', async () => {
    const r = await call(`${emu.http}${path}`);
    expect(r.status).toBe(400);
    expect(r.json).toEqual({ error: 'invalid_request', error_description: 'Required metadata header not specified' });
  });

  it("returns the cluster's Arc identity token with IMDS fields as strings", async () => {
    const r = await call(`${emu.http}${path}`, { headers: { Metadata: 'true' } });
    expect(r.status).toBe(200);
    for (const f of ['expires_in', 'expires_on', 'not_before', 'resource', 'token_type']) expect(r.json[f]).toBeTypeOf('string');
    expect(r.json['resource']).toBe('https://management.azure.com/');
    const c = claimsOf(String(r.json['access_token']));
    expect(c['oid']).toBe('c0ffee00-0000-4000-8000-00000000000c');
    expect(c['aud']).toBe('https://management.azure.com/');
    expect(c['idtyp']).toBe('app');
    expect(c['xms_mirid']).toBe(`/subscriptions/${SUB}/resourceGroups/foundry-local-rg/providers/Microsoft.Kubernetes/connectedClusters/arc-cluster`);
    const perCluster = await call(
      `${emu.http}/msi/clusters/arc-cluster/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/`,
      { headers: { Metadata: 'true' } },
    );
    expect(claimsOf(String(perCluster.json['access_token']))['oid']).toBe('c0ffee00-0000-4000-8000-00000000000c');
  });

  it('serves a user-assigned identity by client_id and says Identity not found for an unknown one', async () => {
    const mi = await emu.admin('POST', '/managed-identities', { name: 'imds-mi' });
    const r = await call(`${emu.http}${path}&client_id=${String(mi.json['clientId'])}`, { headers: { Metadata: 'true' } });
    expect(r.status).toBe(200);
    expect(claimsOf(String(r.json['access_token']))['oid']).toBe(mi.json['principalId']);
    const unknown = await call(`${emu.http}${path}&client_id=11111111-2222-3333-4444-555555555555`, { headers: { Metadata: 'true' } });
    expect(unknown.status).toBe(400);
    expect(unknown.json['error_description']).toBe('Identity not found');
  });
});
