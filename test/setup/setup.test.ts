/**
 * `foundry-auth setup` end to end against the emulator over HTTPS, signed in through the default
 * `--credential azure-cli` (a fake `az` on PATH): what a user sees per step, that a rerun writes
 * nothing (the emulator's counters), that a dry run writes nothing, that existing settings are
 * merged rather than replaced, and that the printed settings start a sidecar.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServeConfig } from '../../src/config/load.js';
import { runSetup, SetupError } from '../../src/setup/setup.js';
import { AZURE_CLI, CLUSTER, CLUSTER_PRINCIPAL, jsonOut, startSetupEmulator, SUB, TENANT, type SetupEmulator } from './helpers.js';

let emu: SetupEmulator;

beforeAll(async () => {
  emu = await startSetupEmulator();
});

afterAll(async () => {
  await emu?.close();
});

interface Step {
  step: string;
  outcome: string;
  seedStep?: number;
}

function outcomes(doc: Record<string, unknown>): Array<[string, string]> {
  return (doc['steps'] as Step[]).map((s) => [s.step, s.outcome]);
}

describe('setup on an empty tenant', () => {
  let clientId = '';

  it('creates the app, its service principal, the URI, the scope, v2 tokens, the app role, the Azure CLI pre-authorization and the cluster role', async () => {
    const out = await emu.cli(['setup', '--app-name', 'foundry-local', '--cluster-id', CLUSTER, ...emu.flags]);
    expect(out.code, out.stderr).toBe(0);
    const lines = out.stdout.split('\n');
    const step = (text: string): string | undefined => lines.find((l) => l.includes(text));
    expect(step('[1] app registration foundry-local')).toMatch(/^created /);
    expect(step('[1] service principal')).toMatch(/^created /);
    expect(step('[2] identifier URI api://')).toMatch(/^created /);
    expect(step('[2] scope foundry_access')).toMatch(/^created /);
    expect(step('[3] access token version 2')).toMatch(/^updated /);
    expect(step('[4] app role FoundryInferenceAccess')).toMatch(/^created /);
    expect(step('[5] Azure CLI pre-authorized')).toMatch(/^created /);
    expect(step('[7] Cognitive Services OpenAI User for the cluster identity')).toMatch(/^created /);
    clientId = /FOUNDRY_AUTH_CLIENT_ID=([0-9a-f-]{36})/.exec(out.stdout)?.[1] ?? '';
    expect(out.stdout).toContain(`FOUNDRY_AUTH_TENANT_ID=${TENANT}`);
    expect(out.stdout).toContain(`FOUNDRY_AUTH_RBAC_SCOPE=${CLUSTER}`);
    expect(out.stdout).toContain(`FOUNDRY_AUTH_AUTHORITY=${emu.endpoints.authority}`);
    expect(out.stdout).toContain(`FOUNDRY_AUTH_ARM_ENDPOINT=${emu.endpoints.arm}`);
    expect(out.stdout).not.toMatch(/\x1b\[/); // NO_COLOR / not a terminal: plain text

    // What Graph and ARM now hold, read back independently.
    const app = await emu.application(clientId);
    expect(app['identifierUris']).toEqual([`api://${clientId}`]);
    const api = app['api'] as {
      requestedAccessTokenVersion: number;
      oauth2PermissionScopes: Array<Record<string, unknown>>;
      preAuthorizedApplications: Array<{ appId: string; delegatedPermissionIds: string[] }>;
    };
    expect(api.requestedAccessTokenVersion).toBe(2);
    expect(api.oauth2PermissionScopes).toEqual([
      expect.objectContaining({
        value: 'foundry_access',
        type: 'Admin',
        isEnabled: true,
        adminConsentDisplayName: 'Access Foundry Local',
        adminConsentDescription: 'Allows the app to access Foundry Local inference endpoints',
      }),
    ]);
    expect(api.preAuthorizedApplications).toEqual([{ appId: AZURE_CLI, delegatedPermissionIds: [api.oauth2PermissionScopes[0]!['id']] }]);
    expect(app['appRoles']).toEqual([
      expect.objectContaining({ value: 'FoundryInferenceAccess', allowedMemberTypes: ['Application'], isEnabled: true }),
    ]);
    expect((await emu.graph('GET', `/servicePrincipals?$filter=appId eq '${clientId}'`)).json['value']).toHaveLength(1);
    const assignments = (
      await emu.arm('GET', `${CLUSTER}/providers/Microsoft.Authorization/roleAssignments?$filter=principalId eq '${CLUSTER_PRINCIPAL}'`)
    ).json['value'] as Array<{ properties: Record<string, string> }>;
    expect(
      assignments.map((a) => [a.properties['roleDefinitionId']?.split('/').pop(), a.properties['scope'], a.properties['principalType']]),
    ).toEqual([['5e0bd9bd-7b93-4f28-af87-19fc36ad61bd', CLUSTER, 'ServicePrincipal']]);
  });

  it('a second run reports every step unchanged and writes nothing to Graph or ARM', async () => {
    await emu.resetCounters();
    const out = await emu.cli(['setup', '--app-name', 'foundry-local', '--cluster-id', CLUSTER, '--json', ...emu.flags]);
    expect(out.code, out.stderr).toBe(0);
    const doc = jsonOut(out);
    expect(doc['clientId']).toBe(clientId);
    expect(outcomes(doc).every(([, o]) => o === 'unchanged')).toBe(true);
    expect(outcomes(doc)).toHaveLength(8);
    expect(doc['changed']).toBe(false);
    const counters = await emu.counters();
    expect(counters.families['graph']).toMatchObject({ writes: 0 });
    expect(counters.families['graph']!.reads).toBeGreaterThan(0);
    expect(counters.families['arm']).toMatchObject({ writes: 0 });
    expect((doc['serve'] as { config: Record<string, string> }).config).toEqual({
      tenantId: TENANT,
      clientId,
      rbacScope: CLUSTER,
      authority: emu.endpoints.authority,
      armEndpoint: emu.endpoints.arm,
    });
  });

  it('the printed --config file starts a valid serve configuration', async () => {
    const doc = jsonOut(await emu.cli(['setup', '--app-name', 'foundry-local', '--json', ...emu.flags]));
    const dir = mkdtempSync(join(tmpdir(), 'fa-setup-config-'));
    writeFileSync(join(dir, 'foundry-auth.yaml'), (doc['serve'] as { configYaml: string }).configYaml + `rbacScope: ${CLUSTER}\n`);
    const loaded = loadServeConfig({ flags: { config: join(dir, 'foundry-auth.yaml'), upstream: 'http://127.0.0.1:5000' }, env: {} });
    expect(loaded.ok && loaded.config.entra).toMatchObject({
      tenantId: TENANT,
      clientId,
      authority: emu.endpoints.authority,
      audiences: [clientId, `api://${clientId}`],
    });
    expect(loaded.ok && loaded.config.rbac).toMatchObject({ scope: CLUSTER, armEndpoint: emu.endpoints.arm });
  });
});

describe('--dry-run', () => {
  it('plans every step for a new app and writes nothing', async () => {
    await emu.resetCounters();
    const out = await emu.cli(['setup', '--app-name', 'not-yet', '--cluster-id', CLUSTER, '--dry-run', ...emu.flags]);
    expect(out.code, out.stderr).toBe(0);
    for (const text of [
      '[1] app registration not-yet',
      '[1] service principal',
      '[2] identifier URI',
      '[2] scope foundry_access',
      '[4] app role',
      '[5] Azure CLI pre-authorized',
    ]) {
      expect(out.stdout.split('\n').find((l) => l.includes(text))).toMatch(/^would create /);
    }
    expect(out.stdout.split('\n').find((l) => l.includes('[3] access token version'))).toMatch(/^would update /);
    // The cluster identity already has its role (the first describe block).
    expect(out.stdout.split('\n').find((l) => l.includes('[7]'))).toMatch(/^unchanged /);
    expect(out.stdout).toContain('Dry run: rerun without --dry-run to make these changes.');
    const counters = await emu.counters();
    expect(counters.families['graph']).toMatchObject({ writes: 0 });
    expect(counters.families['arm']).toMatchObject({ writes: 0 });
    expect((await emu.graph('GET', "/applications?$filter=displayName eq 'not-yet'")).json['value']).toEqual([]);
  });
});

describe('merge, never clobber', () => {
  it('keeps other identifier URIs, scopes, app roles and pre-authorized clients; fixes a user-consentable scope by disabling it first', async () => {
    const otherClient = 'a11ce000-0000-4000-8000-0000000000c1';
    const seeded = await emu.admin('POST', '/applications', {
      displayName: 'brownfield',
      identifierUris: ['api://brownfield-legacy'],
      scopes: [
        { value: 'foundry_access', type: 'User', isEnabled: true, displayName: 'Their wording', description: 'Their description' },
        { value: 'user_impersonation', type: 'User' },
      ],
      appRoles: [{ value: 'Reader.All', allowedMemberTypes: ['User'] }],
    });
    expect(seeded.status).toBe(201);
    const appId = String((seeded.json['application'] as Record<string, unknown>)['appId']);
    const before = await emu.application(appId);
    const scopes = (before['api'] as { oauth2PermissionScopes: Array<{ id: string; value: string }> }).oauth2PermissionScopes;
    const other = scopes.find((s) => s.value === 'user_impersonation')!;
    expect(
      (
        await emu.graph('PATCH', `/applications/${String(before['id'])}`, {
          api: { preAuthorizedApplications: [{ appId: otherClient, delegatedPermissionIds: [other.id] }] },
        })
      ).status,
    ).toBe(204);

    const result = await runSetup({ appName: 'ignored when pinned', clientId: appId }, emu.clients());
    expect(result.steps.map((s) => [s.step, s.outcome, s.detail ?? ''])).toEqual([
      ['app', 'unchanged', `client ID ${appId}`],
      ['service_principal', 'unchanged', expect.any(String)],
      ['identifier_uri', 'created', ''],
      ['scope', 'updated', 'type User -> Admin (admin consent only)'],
      ['token_version', 'updated', 'requestedAccessTokenVersion null -> 2'],
      ['app_role', 'created', 'for applications, enabled'],
      ['preauthorized_client', 'created', expect.any(String)],
    ]);
    const after = await emu.application(appId);
    expect(after['identifierUris']).toEqual(['api://brownfield-legacy', `api://${appId}`]);
    const api = after['api'] as {
      oauth2PermissionScopes: Array<Record<string, unknown>>;
      preAuthorizedApplications: Array<{ appId: string; delegatedPermissionIds: string[] }>;
    };
    const foundry = api.oauth2PermissionScopes.find((s) => s['value'] === 'foundry_access')!;
    expect(foundry).toMatchObject({
      type: 'Admin',
      isEnabled: true,
      adminConsentDisplayName: 'Their wording',
      adminConsentDescription: 'Their description',
    });
    expect(api.oauth2PermissionScopes.find((s) => s['value'] === 'user_impersonation')).toMatchObject({
      id: other.id,
      type: 'User',
      isEnabled: true,
    });
    expect(api.preAuthorizedApplications).toEqual([
      { appId: otherClient, delegatedPermissionIds: [other.id] },
      { appId: AZURE_CLI, delegatedPermissionIds: [foundry['id']] },
    ]);
    expect((after['appRoles'] as Array<{ value: string }>).map((r) => r.value)).toEqual(['Reader.All', 'FoundryInferenceAccess']);

    const again = await runSetup({ appName: 'ignored when pinned', clientId: appId }, emu.clients());
    expect(again.changed).toBe(false);
  });

  it('an app role that exists but is disabled and user-only is enabled for applications, in two writes as Graph requires', async () => {
    const seeded = await emu.admin('POST', '/applications', {
      displayName: 'role-fix',
      appRoles: [{ value: 'FoundryInferenceAccess', allowedMemberTypes: ['User'], isEnabled: true }],
    });
    const appId = String((seeded.json['application'] as Record<string, unknown>)['appId']);
    const result = await runSetup({ appName: 'role-fix' }, emu.clients());
    expect(result.steps.find((s) => s.step === 'app_role')).toMatchObject({ outcome: 'updated', detail: 'allowed member types + Application' });
    const roles = (await emu.application(appId))['appRoles'] as Array<Record<string, unknown>>;
    expect(roles).toEqual([
      expect.objectContaining({ value: 'FoundryInferenceAccess', allowedMemberTypes: ['User', 'Application'], isEnabled: true }),
    ]);
  });

  it('waits for Entra to replicate a new app before creating its service principal', async () => {
    const fault = await emu.admin('POST', '/faults', {
      family: 'graph',
      method: 'POST',
      pathContains: '/servicePrincipals',
      count: 2,
      status: 400,
      body: {
        error: {
          code: 'Request_BadRequest',
          message: "The appId '00000000-0000-0000-0000-000000000000' of the service principal does not reference a valid application object.",
        },
      },
    });
    expect(fault.status).toBe(201);
    const result = await runSetup({ appName: 'fresh-app', replicationRetryDelaysMs: [5, 5, 5] }, emu.clients());
    expect(result.steps.find((s) => s.step === 'service_principal')).toMatchObject({ outcome: 'created' });
    expect((await emu.admin('GET', '/faults')).json['value']).toEqual([]);

    await emu.admin('POST', '/faults', {
      family: 'graph',
      method: 'POST',
      pathContains: '/servicePrincipals',
      status: 400,
      count: 5,
      body: { error: { code: 'Request_BadRequest', message: 'does not reference a valid application object' } },
    });
    const err = await runSetup({ appName: 'never-replicated', replicationRetryDelaysMs: [5, 5] }, emu.clients()).catch((e: unknown) => e);
    expect(err).toMatchObject({ api: 'graph', status: 400 });
    await emu.admin('DELETE', '/faults');
  });

  it('refuses to guess between several apps with the same name, and lists them', async () => {
    const a = await emu.admin('POST', '/applications', { displayName: 'twin' });
    const b = await emu.admin('POST', '/applications', { displayName: 'twin' });
    const ids = [a, b].map((r) => String((r.json['application'] as Record<string, unknown>)['appId']));
    const err = await runSetup({ appName: 'twin' }, emu.clients()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SetupError);
    expect((err as SetupError).message).toContain(ids[0]);
    expect((err as SetupError).message).toContain(ids[1]);
    expect((err as SetupError).fix).toContain('--client-id');
  });
});

describe('--credential environment (a pipeline with a client secret)', () => {
  it('an app with Graph application permissions and Owner sets up another app', async () => {
    const deployer = await emu.admin('POST', '/applications', { displayName: 'ci-deployer', secret: 'ci-deployer-secret' });
    const appId = String((deployer.json['application'] as Record<string, unknown>)['appId']);
    const spId = String((deployer.json['servicePrincipal'] as Record<string, unknown>)['id']);
    for (const role of ['Application.ReadWrite.All', 'AppRoleAssignment.ReadWrite.All']) {
      expect(
        (
          await emu.admin('POST', '/app-role-assignments', {
            principalId: spId,
            resourceAppId: '00000003-0000-0000-c000-000000000000',
            appRoleValue: role,
          })
        ).status,
      ).toBe(201);
    }
    await emu.admin('POST', '/role-assignments', { scope: `/subscriptions/${SUB}`, roleName: 'Owner', principalId: spId });
    const out = await emu.cli(['setup', '--app-name', 'ci-app', '--cluster-id', CLUSTER, '--credential', 'environment', '--json', ...emu.flags], {
      AZURE_CLIENT_ID: appId,
      AZURE_CLIENT_SECRET: 'ci-deployer-secret',
      AZURE_TENANT_ID: TENANT,
    });
    expect(out.code, out.stderr).toBe(0);
    expect(outcomes(jsonOut(out)).slice(0, 2)).toEqual([
      ['app', 'created'],
      ['service_principal', 'created'],
    ]);
  });
});

describe('failures a user can act on', () => {
  it('a user without an admin directory role: exit 1, Graph code Authorization_RequestDenied and the role it needs', async () => {
    await emu.admin('POST', '/users', { userPrincipalName: 'plain@emulator.onmicrosoft.com', password: 'plain-password' });
    const out = await emu.cli(['setup', '--app-name', 'denied-app', ...emu.flags], { FAKE_AZ_PRINCIPAL: 'plain@emulator.onmicrosoft.com' });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain('Authorization_RequestDenied');
    expect(out.stderr).toContain('Application Administrator or Cloud Application Administrator');
    expect(out.stderr).toContain('Application.ReadWrite.All');
  });

  it('an app administrator without an Azure role to assign roles: ARM AuthorizationFailed and the roles that may assign', async () => {
    const user = await emu.admin('POST', '/users', {
      userPrincipalName: 'appadmin@emulator.onmicrosoft.com',
      password: 'x-password',
      directoryRoles: ['Application Administrator'],
    });
    await emu.admin('POST', '/role-assignments', { scope: `/subscriptions/${SUB}`, roleName: 'Reader', principalId: String(user.json['id']) });
    expect((await emu.admin('POST', '/clusters', { name: 'second-cluster' })).status).toBe(201);
    const out = await emu.cli(
      ['setup', '--app-name', 'appadmin-app', '--cluster-id', CLUSTER.replace('arc-cluster', 'second-cluster'), ...emu.flags],
      { FAKE_AZ_PRINCIPAL: 'appadmin@emulator.onmicrosoft.com' },
    );
    expect(out.code).toBe(1);
    expect(out.stdout).toMatch(/^created +\[5\] Azure CLI pre-authorized/m);
    expect(out.stderr).toContain('AuthorizationFailed');
    expect(out.stderr).toContain('needs Owner, User Access Administrator or Role Based Access Control Administrator');
  });

  it('a cluster ID that does not exist: exit 1 before anything is written', async () => {
    await emu.resetCounters();
    const missing = CLUSTER.replace('arc-cluster', 'no-such-cluster');
    const out = await emu.cli(['setup', '--app-name', 'never-written', '--cluster-id', missing, '--json', ...emu.flags]);
    expect(out.code).toBe(1);
    expect(jsonOut(out)['error']).toMatchObject({ kind: 'setup', fix: expect.stringContaining('az connectedk8s show') });
    expect((await emu.counters()).families['graph']).toMatchObject({ writes: 0 });
  });

  it('usage errors exit 2 and name the flag', async () => {
    const cases: Array<[string[], string]> = [
      [['setup', ...emu.flags], '--app-name is required'],
      [['setup', '--app-name', 'x', '--credential', 'password'], "option '--credential <kind>' argument 'password' is invalid"],
      [['setup', '--app-name', 'x', '--credential', 'environment'], '--credential environment needs AZURE_CLIENT_ID'],
    ];
    for (const [args, message] of cases) {
      const out = await emu.cli(args);
      expect({ args, code: out.code }).toEqual({ args, code: 2 });
      expect(out.stderr).toContain(message);
    }
  });
});
