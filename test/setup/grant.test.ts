/**
 * `grant` (and setup's token version) proven through a real sidecar: an in-process `serve` with
 * `--rbac arm` against the emulator and a ManualClock, so a revocation is shown to take effect
 * exactly when the decision cache's TTL runs out, without sleeping. Commands run as a user would
 * run them (spawned CLI over HTTPS); the sidecar reads ARM as the cluster's Arc identity.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServeConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { runGrant } from '../../src/setup/grant.js';
import { runDoctor } from '../../src/setup/doctor.js';
import { runSetup } from '../../src/setup/setup.js';
import { startSidecar, type Sidecar } from '../../src/sidecar.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { AZURE_CLI, CLUSTER, jsonOut, startSetupEmulator, TENANT, type SetupEmulator } from './helpers.js';

const ALLOW_TTL_MS = 300_000;
const DENY_TTL_MS = 30_000;

let emu: SetupEmulator;
let up: Upstream;
let sidecar: Sidecar;
let clock: ManualClock;
let clientId: string;
let appObjectId: string;
let alice: string;
let bob: string;
let carol: string;
let admins: string;
let mi: { clientId: string; principalId: string };

async function seed(path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await emu.admin('POST', path, body);
  if (r.status !== 201) throw new Error(`${path}: ${r.text}`);
  return r.json;
}

beforeAll(async () => {
  emu = await startSetupEmulator();
  const setup = await runSetup({ appName: 'grant-tests', clusterId: CLUSTER }, emu.clients());
  clientId = setup.clientId!;
  appObjectId = setup.applicationObjectId!;
  alice = String((await seed('/users', { userPrincipalName: 'alice@emulator.onmicrosoft.com', password: 'alice-password' }))['id']);
  bob = String((await seed('/users', { userPrincipalName: 'bob@emulator.onmicrosoft.com', password: 'bob-password' }))['id']);
  carol = String((await seed('/users', { userPrincipalName: 'carol@emulator.onmicrosoft.com', password: 'carol-password' }))['id']);
  admins = String((await seed('/groups', { displayName: 'foundry-admins', members: [bob] }))['id']);
  const identity = await seed('/managed-identities', { name: 'inference-client' });
  mi = { clientId: String(identity['clientId']), principalId: String(identity['principalId']) };

  up = await startUpstream();
  clock = new ManualClock(Date.now());
  const e = emu.endpoints;
  const loaded = loadServeConfig({
    flags: {
      upstream: up.url,
      listen: '127.0.0.1:0',
      'admin-listen': '127.0.0.1:0',
      'tenant-id': TENANT,
      'client-id': clientId,
      authority: e.authorityHttp,
      'rbac-scope': CLUSTER,
      'arm-endpoint': e.armHttp,
      identity: 'msi-adapter',
      'msi-endpoint': e.msiHttp,
      'rbac-allow-ttl': `${ALLOW_TTL_MS / 1000}s`,
      'rbac-deny-ttl': `${DENY_TTL_MS / 1000}s`,
      'log-level': 'silent',
    },
    env: {},
  });
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  sidecar = await startSidecar(loaded.config, { clock, log: silentLogger() });
});

afterAll(async () => {
  await sidecar?.shutdown();
  await up?.close();
  await emu?.close();
});

/** A user token as `az account get-access-token --scope api://<client>/foundry_access` gets it: the password grant as the Azure CLI. */
async function userToken(upn: string, password: string): Promise<string> {
  const res = await request(`${emu.endpoints.authorityHttp}/${TENANT}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: upn,
      password,
      scope: `api://${clientId}/foundry_access`,
    }).toString(),
  });
  const json = (await res.body.json()) as Record<string, unknown>;
  if (res.statusCode !== 200) throw new Error(JSON.stringify(json));
  return String(json['access_token']);
}

/** The managed identity's app-only token for the API (what IMDS would give it). */
function miToken(): Promise<string> {
  return emu.token(mi.clientId, `api://${clientId}/.default`, { listener: 'http' });
}

async function call(
  path: string,
  token: string,
  method: 'GET' | 'POST' = 'GET',
): Promise<{ status: number; code?: string; message?: string; wwwAuthenticate?: string }> {
  const res = await request(`${sidecar.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(method === 'POST' ? { body: '{}' } : {}),
  });
  const text = await res.body.text();
  const body = res.statusCode >= 400 ? (JSON.parse(text) as { error: { code: string; message: string } }) : undefined;
  const www = res.headers['www-authenticate'];
  return {
    status: res.statusCode,
    ...(body ? { code: body.error.code, message: body.error.message } : {}),
    ...(typeof www === 'string' ? { wwwAuthenticate: www } : {}),
  };
}

function grantCli(args: string[]): ReturnType<SetupEmulator['cli']> {
  return emu.cli(['grant', '--client-id', clientId, '--cluster-id', CLUSTER, '--json', ...args, ...emu.flags]);
}

function steps(doc: Record<string, unknown>): Array<[string, string]> {
  return (doc['steps'] as Array<{ step: string; outcome: string }>).map((s) => [s.step, s.outcome]);
}

describe('grant --access inference to a user (by UPN)', () => {
  it('the user can call the data plane, not change the control plane', async () => {
    const token = await userToken('alice@emulator.onmicrosoft.com', 'alice-password');
    expect(await call('/v1/models', token)).toMatchObject({ status: 403, code: 'insufficient_permissions' });
    clock.advance(DENY_TTL_MS + 1000);

    const out = await grantCli(['--assignee', 'alice@emulator.onmicrosoft.com', '--access', 'inference']);
    expect(out.code, out.stderr).toBe(0);
    const doc = jsonOut(out);
    expect(steps(doc)).toEqual([['role_assignment', 'created']]);
    expect(doc['principal']).toMatchObject({ kind: 'user', id: alice, principalType: 'User' });

    expect((await call('/v1/models', token)).status).toBe(200);
    // Cognitive Services OpenAI User is data plane only (the seed's access table): no control-plane read or write.
    expect(await call('/api/v1/models', token)).toMatchObject({ status: 403, code: 'insufficient_permissions' });
    expect(await call('/api/v1/models', token, 'POST')).toMatchObject({ status: 403, code: 'insufficient_permissions' });
  });

  it('a second grant changes nothing', async () => {
    await emu.resetCounters();
    const doc = jsonOut(await grantCli(['--assignee', 'alice@emulator.onmicrosoft.com', '--access', 'inference']));
    expect(steps(doc)).toEqual([['role_assignment', 'unchanged']]);
    expect((await emu.counters()).families['arm']).toMatchObject({ writes: 0 });
  });
});

describe('grant --access admin to a group (by object ID)', () => {
  it("the group's members can call both planes", async () => {
    const token = await userToken('bob@emulator.onmicrosoft.com', 'bob-password');
    const doc = jsonOut(await grantCli(['--assignee', admins, '--access', 'admin']));
    expect(steps(doc)).toEqual([['role_assignment', 'created']]);
    expect(doc['principal']).toMatchObject({ kind: 'group', principalType: 'Group' });
    expect((await call('/v1/models', token)).status).toBe(200);
    expect((await call('/api/v1/models', token, 'POST')).status).toBe(200);
  });
});

describe('grant --access inference to a managed identity (by client ID)', () => {
  it("assigns the RBAC role and the app role; the identity's new token carries FoundryInferenceAccess and passes", async () => {
    const before = await miToken();
    expect(await call('/v1/models', before)).toMatchObject({ status: 401, code: 'invalid_token' });

    const doc = jsonOut(await grantCli(['--assignee', mi.clientId, '--access', 'inference']));
    expect(steps(doc)).toEqual([
      ['role_assignment', 'created'],
      ['app_role_assignment', 'created'],
    ]);
    expect(doc['principal']).toMatchObject({
      kind: 'servicePrincipal',
      id: mi.principalId,
      servicePrincipalType: 'ManagedIdentity',
      principalType: 'ServicePrincipal',
    });
    const token = await miToken();
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['roles']).toEqual(['FoundryInferenceAccess']);
    expect((await call('/v1/models', token)).status).toBe(200);
  });
});

describe('--revoke', () => {
  it("takes a user's access away once the cached allow expires", async () => {
    const token = await userToken('alice@emulator.onmicrosoft.com', 'alice-password');
    expect((await call('/v1/models', token)).status).toBe(200);
    const doc = jsonOut(await grantCli(['--assignee', alice, '--access', 'inference', '--revoke']));
    expect(steps(doc)).toEqual([['role_assignment', 'removed']]);
    expect((await call('/v1/models', token)).status).toBe(200); // still cached
    clock.advance(ALLOW_TTL_MS + 1000);
    expect(await call('/v1/models', token)).toMatchObject({ status: 403, code: 'insufficient_permissions' });
    const again = await runGrant({ clientId, clusterId: CLUSTER, assignee: alice, access: 'inference', revoke: true }, emu.clients());
    expect(again.steps.map((s) => s.outcome)).toEqual(['unchanged']);
  });

  it("removes a managed identity's role and app role: its old token is refused after the TTL, a new one at once", async () => {
    const old = await miToken();
    expect((await call('/v1/models', old)).status).toBe(200);
    const result = await runGrant({ clientId, clusterId: CLUSTER, assignee: mi.clientId, access: 'inference', revoke: true }, emu.clients());
    expect(result.steps.map((s) => [s.step, s.outcome])).toEqual([
      ['role_assignment', 'removed'],
      ['app_role_assignment', 'removed'],
    ]);
    clock.advance(ALLOW_TTL_MS + 1000);
    expect(await call('/v1/models', old)).toMatchObject({ status: 403, code: 'insufficient_permissions' });
    const fresh = await miToken();
    expect(await call('/v1/models', fresh)).toMatchObject({
      status: 401,
      code: 'invalid_token',
      message: expect.stringContaining('FoundryInferenceAccess'),
    });
  });

  it('a group keeps admin while an inference revoke for it changes nothing; --dry-run revokes nothing', async () => {
    const noop = await runGrant({ clientId, clusterId: CLUSTER, assignee: admins, access: 'inference', revoke: true }, emu.clients());
    expect(noop.steps.map((s) => s.outcome)).toEqual(['unchanged']);
    const dry = jsonOut(await grantCli(['--assignee', admins, '--access', 'admin', '--revoke', '--dry-run']));
    expect(steps(dry)).toEqual([['role_assignment', 'would remove']]);
    clock.advance(ALLOW_TTL_MS + 1000);
    expect((await call('/api/v1/models', await userToken('bob@emulator.onmicrosoft.com', 'bob-password'), 'POST')).status).toBe(200);
  });
});

describe('the token version (step 3) as the sidecar sees it', () => {
  it('with requestedAccessTokenVersion null the user token is v1 and the 401 says to set the version to 2; setup fixes it', async () => {
    expect((await emu.graph('PATCH', `/applications/${appObjectId}`, { api: { requestedAccessTokenVersion: null } })).status).toBe(204);
    const v1 = await userToken('bob@emulator.onmicrosoft.com', 'bob-password');
    const refused = await call('/v1/models', v1);
    expect(refused).toMatchObject({ status: 401, code: 'invalid_token' });
    expect(refused.message).toContain('accessTokenAcceptedVersion');
    expect(refused.wwwAuthenticate).toContain('error="invalid_token"');

    const fixed = await runSetup({ appName: 'grant-tests', clusterId: CLUSTER }, emu.clients());
    expect(fixed.steps.filter((s) => s.outcome !== 'unchanged').map((s) => s.step)).toEqual(['token_version']);
    expect((await call('/v1/models', await userToken('bob@emulator.onmicrosoft.com', 'bob-password'))).status).toBe(200);
  });
});

describe('doctor --endpoint: a live call explained', () => {
  it('a user without a role gets 403; doctor prints the grant that fixes it, and after running it the call passes', async () => {
    const token = await userToken('carol@emulator.onmicrosoft.com', 'carol-password');
    const out = await emu.cli([
      'doctor',
      '--client-id',
      clientId,
      '--cluster-id',
      CLUSTER,
      '--endpoint',
      sidecar.url,
      '--token',
      token,
      '--json',
      ...emu.flags,
    ]);
    expect(out.code).toBe(1);
    const endpoint = (jsonOut(out)['checks'] as Array<Record<string, unknown>>).find((c) => c['name'] === 'endpoint')!;
    expect(endpoint).toMatchObject({ status: 'fail', detail: expect.stringContaining('403 insufficient_permissions') });
    const argv = endpoint['fixArgv'] as string[];
    expect(argv.slice(0, 8)).toEqual(['foundry-auth', 'grant', '--client-id', clientId, '--cluster-id', CLUSTER, '--assignee', carol]);
    expect(out.stdout).not.toContain(token.split('.')[2]);

    const fix = await emu.cli(argv.slice(1));
    expect(fix.code, fix.stderr).toBe(0);
    clock.advance(DENY_TTL_MS + 1000);
    const after = await runDoctor(
      { clientId, clusterId: CLUSTER, endpoint: sidecar.url, token, authority: emu.endpoints.authorityHttp },
      emu.clients(),
    );
    expect(after.checks.find((c) => c.name === 'endpoint')).toMatchObject({ status: 'pass' });
    expect(after.checks.find((c) => c.name === 'token')).toMatchObject({ status: 'pass' });
    expect(after.ok).toBe(true);
  });
});
