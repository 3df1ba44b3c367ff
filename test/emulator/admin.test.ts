import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ADMIN_UPN, AZURE_CLI, CLUSTER_SCOPE, TENANT, call, claimsOf, startTestEmulator, type TestEmulator } from './helpers.js';

/** The admin API: faults, counters, reset, and state that survives a restart. */

let emu: TestEmulator;
let adminToken: string;
const listPath = `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments`;

beforeAll(async () => {
  emu = await startTestEmulator();
  adminToken = await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
});
afterAll(async () => {
  await emu.close();
});

describe('faults', () => {
  it('answers with an injected status for the next N calls of a family, then recovers', async () => {
    const f = await emu.admin('POST', '/faults', { family: 'arm', status: 503, count: 2 });
    expect(f.status).toBe(201);
    expect((await emu.arm('GET', listPath, adminToken)).status).toBe(503);
    const second = await emu.arm('GET', listPath, adminToken);
    expect(second.status).toBe(503);
    expect((second.json['error'] as { code: string }).code).toBe('InternalServerError');
    expect((await emu.arm('GET', listPath, adminToken)).status).toBe(200);
  });

  it('answers 429 with Retry-After in the family error shape', async () => {
    await emu.admin('POST', '/faults', { family: 'arm', status: 429, retryAfterSeconds: 7, count: 1 });
    const r = await emu.arm('GET', listPath, adminToken);
    expect(r.status).toBe(429);
    expect(r.headers.get('retry-after')).toBe('7');
    expect((r.json['error'] as { code: string }).code).toBe('SubscriptionRequestsThrottled');
    await emu.admin('POST', '/faults', { family: 'jwks', status: 429, count: 1 });
    const j = await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`);
    expect(j.status).toBe(429);
    expect(j.headers.get('retry-after')).toBe('1');
  });

  it('adds latency (then handles the request normally)', async () => {
    await emu.admin('POST', '/faults', { family: 'discovery', latencyMs: 300, count: 1 });
    const t0 = performance.now();
    const r = await call(`${emu.http}/${TENANT}/v2.0/.well-known/openid-configuration`);
    expect(r.status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(290);
  });

  it('drops the connection', async () => {
    await emu.admin('POST', '/faults', { family: 'msi', drop: true, count: 1 });
    await expect(
      call(`${emu.http}/msi/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/`, {
        headers: { Metadata: 'true' },
      }),
    ).rejects.toThrow();
    const ok = await call(`${emu.http}/msi/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com/`, {
      headers: { Metadata: 'true' },
    });
    expect(ok.status).toBe(200);
  });

  it('matches by method and path and can be listed and removed', async () => {
    const f = await emu.admin('POST', '/faults', { family: 'arm', status: 500, method: 'PUT', pathContains: 'roleAssignments' });
    expect((await emu.arm('GET', listPath, adminToken)).status).toBe(200);
    const listed = await emu.admin('GET', '/faults');
    expect((listed.json['value'] as Array<{ id: number }>).map((x) => x.id)).toContain(f.json['id']);
    expect((await emu.admin('DELETE', `/faults/${String(f.json['id'])}`)).status).toBe(204);
    expect((await emu.admin('GET', '/faults')).json['value']).toEqual([]);
  });
});

describe('counters', () => {
  it('counts calls per family and route, reads apart from writes', async () => {
    expect((await emu.admin('DELETE', '/counters')).status).toBe(204);
    await emu.arm('GET', listPath, adminToken);
    await emu.arm('GET', listPath, adminToken);
    await emu.arm('PUT', `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments/not-a-guid`, adminToken, {});
    await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`);
    const c = await emu.admin('GET', '/counters');
    const families = c.json['families'] as Record<string, { total: number; reads: number; writes: number }>;
    expect(families['arm']).toEqual({ total: 3, reads: 2, writes: 1 });
    expect(families['jwks']).toEqual({ total: 1, reads: 1, writes: 0 });
    expect(families['graph']).toEqual({ total: 0, reads: 0, writes: 0 });
    const routes = c.json['routes'] as Array<{ family: string; method: string; route: string; count: number; write: boolean }>;
    expect(routes).toContainEqual({
      family: 'arm',
      method: 'GET',
      route: '{scope}/providers/Microsoft.Authorization/roleAssignments',
      write: false,
      count: 2,
    });
    expect(routes).toContainEqual({
      family: 'arm',
      method: 'PUT',
      route: '{scope}/providers/Microsoft.Authorization/roleAssignments/{name}',
      write: true,
      count: 1,
    });
  });
});

describe('reset', () => {
  it('returns to the default seed but keeps the signing keys', async () => {
    const kids = ((await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    await emu.user('temporary');
    expect((await emu.admin('POST', '/reset')).status).toBe(200);
    const state = await emu.admin('GET', '/state');
    expect((state.json['users'] as unknown[]).length).toBe(1);
    const after = ((await call(`${emu.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    expect(after).toEqual(kids);
    expect((await emu.arm('GET', listPath, adminToken)).status).toBe(200);
  });
});

describe('state file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'emulator-state-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('restores CA, signing keys, directory and ARM after a restart with the same --state', async () => {
    const file = join(dir, 'state.json');
    const first = await startTestEmulator({ stateFile: file });
    const userId = await first.user('persisted');
    await first.roleAssignment(CLUSTER_SCOPE, 'Reader', userId);
    await first.admin('POST', '/clock', { advanceSeconds: 60 });
    const token = await first.armTokenFor('persisted@emulator.onmicrosoft.com', 'persisted-password');
    const kids = ((await call(`${first.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    const ca = first.running.caCertPem;
    await first.close();

    const second = await startTestEmulator({ stateFile: file });
    try {
      expect(second.running.caCertPem).toBe(ca);
      expect(second.running.endpoints.caCert).toBe(join(dir, 'state.ca.pem'));
      const kids2 = ((await call(`${second.http}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
      expect(kids2).toEqual(kids);
      // A token issued before the restart is still accepted, and the assignment is still there.
      const r = await second.arm(
        'GET',
        `${CLUSTER_SCOPE}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '${userId}'`,
        await second.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD),
      );
      expect((r.json['value'] as unknown[]).length).toBe(1);
      expect((await second.admin('GET', '/clock')).json['offsetSeconds']).toBeGreaterThanOrEqual(60);
      const check = second.running.emulator.checkToken(token);
      expect(check.ok).toBe(true);
    } finally {
      await second.close();
    }
  });
});

describe('test tokens', () => {
  it('mints tokens for seeded principals by the token endpoint rules, with the issuer of the listener asked for', async () => {
    const api = await emu.admin('POST', '/applications', {
      displayName: 'tokens-api',
      identifierUris: ['api://tokens-api'],
      requestedAccessTokenVersion: 2,
      scopes: [{ value: 'foundry_access', id: '3f7a0000-0000-4000-8000-000000000001' }],
      appRoles: [{ value: 'FoundryInferenceAccess' }],
      preAuthorizedApplications: [
        { appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46', delegatedPermissionIds: ['3f7a0000-0000-4000-8000-000000000001'] },
      ],
    });
    expect(api.status, api.text).toBe(201);
    await emu.user('kate');
    const user = await emu.admin('POST', '/tokens', {
      principal: 'kate@emulator.onmicrosoft.com',
      scope: 'api://tokens-api/.default',
      listener: 'https',
    });
    expect(user.status, user.text).toBe(200);
    const uc = claimsOf(String(user.json['access_token']));
    expect(uc['scp']).toBe('foundry_access');
    expect(uc['iss']).toBe(`${emu.running.endpoints.https}/${TENANT}/v2.0`);
    const mi = await emu.admin('POST', '/managed-identities', { name: 'tokens-mi' });
    await emu.admin('POST', '/app-role-assignments', {
      principalId: mi.json['principalId'],
      resourceAppId: (api.json['application'] as { appId: string }).appId,
      appRoleValue: 'FoundryInferenceAccess',
    });
    const app = await emu.admin('POST', '/tokens', { principal: mi.json['clientId'], scope: 'api://tokens-api/.default' });
    const ac = claimsOf(String(app.json['access_token']));
    expect(ac).toMatchObject({
      idtyp: 'app',
      oid: mi.json['principalId'],
      azp: mi.json['clientId'],
      azpacr: '2',
      roles: ['FoundryInferenceAccess'],
      iss: `${emu.http}/${TENANT}/v2.0`,
    });
  });
});

describe('admin API guard', () => {
  it('rejects bad bodies with a clear error', async () => {
    const r = await emu.admin('POST', '/users', { userPrincipalName: 'xavier' });
    expect(r.status).toBe(400);
    expect((r.json['error'] as { message: string }).message).toContain('password');
  });

  it('answers each kind of refusal with its status and code', async () => {
    const errorOf = (r: { json: Record<string, unknown> }): { code: string; message: string } => r.json['error'] as { code: string; message: string };
    const notJson = await call(`${emu.http}/_emulator/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[1,2]' });
    expect(notJson.status).toBe(400);
    expect(errorOf(notJson).code).toBe('invalid_json');
    const noTenant = await emu.admin('POST', '/users', {
      tenantId: 'c0ffee00-0000-4000-8000-0000000000ee',
      userPrincipalName: 'nobody',
      password: 'p',
    });
    expect(noTenant.status).toBe(404);
    expect(errorOf(noTenant)).toEqual({ code: 'tenant_not_found', message: "no tenant 'c0ffee00-0000-4000-8000-0000000000ee'" });
    const taken = await emu.admin('POST', '/users', { userPrincipalName: 'admin', password: 'p' });
    expect(taken.status).toBe(409);
    expect(errorOf(taken)).toEqual({ code: 'conflict', message: `user ${ADMIN_UPN} exists` });
    const role = await emu.admin('POST', '/users', { userPrincipalName: 'roleless', password: 'p', directoryRoles: ['No Such Role'] });
    expect(role.status).toBe(400);
    expect(errorOf(role)).toEqual({ code: 'invalid_request', message: "unknown directory role 'No Such Role'" });
    const noFault = await emu.admin('DELETE', '/faults/999');
    expect(noFault.status).toBe(404);
    expect(errorOf(noFault).code).toBe('not_found');
    const method = await emu.admin('PUT', '/users');
    expect(method.status).toBe(405);
    expect(errorOf(method).code).toBe('method_not_allowed');
    const sp = await emu.admin('POST', '/oauth2-permission-grants', {
      clientAppId: AZURE_CLI,
      resourceAppId: 'c0ffee00-0000-4000-8000-0000000000ef',
      scope: 'x',
    });
    expect(sp.status).toBe(404);
    expect(errorOf(sp).code).toBe('not_found');
    expect((await emu.admin('POST', '/clock', {})).status).toBe(400);
  });
});
