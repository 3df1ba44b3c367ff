/**
 * Revocation and new grants through the whole sidecar (in-process, so its clock can be moved)
 * against the emulator's ARM: a removed assignment keeps working until the allow TTL ends; a new
 * grant after a deny works once the deny TTL ends. No sleeping: the sidecar's clock is a ManualClock.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServeConfig } from '../../src/config/load.js';
import { DEFAULT_SEED, startEmulator, type RunningEmulator } from '../../src/offline/emulator/index.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { startSidecar, type Sidecar } from '../../src/sidecar.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';

const CLUSTER = `/subscriptions/${DEFAULT_SEED.subscriptionId}/resourceGroups/${DEFAULT_SEED.clusterResourceGroup}/providers/Microsoft.Kubernetes/connectedClusters/${DEFAULT_SEED.clusterName}`;
const DOMAIN = DEFAULT_SEED.tenantDomain;

let emulator: RunningEmulator;
let up: Upstream;
let sidecar: Sidecar;
let appId: string;
const clock = new ManualClock(Date.now());

async function admin(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(`${emulator.endpoints.admin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  expect(res.status, text).toBeLessThan(300);
  return JSON.parse(text) as Record<string, unknown>;
}

async function removeAssignment(name: string): Promise<void> {
  const { access_token } = await admin('/tokens', { principal: `admin@${DOMAIN}`, scope: 'https://management.azure.com/.default', listener: 'http' });
  const res = await fetch(
    `${emulator.endpoints.armHttp}${CLUSTER}/providers/Microsoft.Authorization/roleAssignments/${name}?api-version=2022-04-01`,
    {
      method: 'DELETE',
      headers: { authorization: `Bearer ${String(access_token)}` },
    },
  );
  expect(res.status).toBe(200);
}

async function chat(principal: string): Promise<number> {
  const { access_token } = await admin('/tokens', { principal, scope: `api://${appId}/.default`, listener: 'http' });
  const res = await request(`${sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${String(access_token)}` },
    body: '{}',
  });
  await res.body.dump();
  return res.statusCode;
}

async function userWith(name: string, role?: string): Promise<{ upn: string; id: string; assignment?: string }> {
  const upn = `${name}@${DOMAIN}`;
  const id = String((await admin('/users', { userPrincipalName: upn, password: 'x-password-1' })).id);
  if (role === undefined) return { upn, id };
  const assignment = String((await admin('/role-assignments', { scope: CLUSTER, roleName: role, principalId: id })).name);
  return { upn, id, assignment };
}

beforeAll(async () => {
  emulator = await startEmulator();
  up = await startUpstream();
  appId = randomUUID();
  await admin('/applications', {
    displayName: 'revocation',
    appId,
    identifierUris: [`api://${appId}`],
    requestedAccessTokenVersion: 2,
    scopes: [{ value: 'foundry_access', type: 'Admin' }],
    createServicePrincipal: true,
  });
  await admin('/oauth2-permission-grants', { clientAppId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46', resourceAppId: appId, scope: 'foundry_access' });
  await admin('/role-assignments', {
    scope: CLUSTER,
    roleName: 'Cognitive Services OpenAI User',
    principalId: DEFAULT_SEED.clusterPrincipalId,
    principalType: 'ServicePrincipal',
  });
  const loaded = loadServeConfig({
    flags: {
      listen: '127.0.0.1:0',
      'admin-listen': '127.0.0.1:0',
      upstream: up.url,
      'tenant-id': DEFAULT_SEED.tenantId,
      'client-id': appId,
      authority: emulator.endpoints.authorityHttp,
      'arm-endpoint': emulator.endpoints.armHttp,
      identity: 'msi-adapter',
      'msi-endpoint': emulator.endpoints.msiHttp,
      'rbac-scope': CLUSTER,
    },
    env: {},
  });
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  sidecar = await startSidecar(loaded.config, { clock, log: silentLogger() });
}, 60_000);

afterAll(async () => {
  await sidecar?.shutdown();
  await up?.close();
  await emulator?.close();
});

describe('revocation and new grants (default TTLs: allow 300 s, deny 30 s)', () => {
  it('a removed assignment is still honoured until the allow TTL ends, then 403', async () => {
    const alice = await userWith('alice', 'Cognitive Services OpenAI User');
    expect(await chat(alice.upn)).toBe(200);
    await removeAssignment(alice.assignment!);
    expect(await chat(alice.upn)).toBe(200);
    clock.advance(299_000);
    expect(await chat(alice.upn)).toBe(200);
    clock.advance(2_000);
    expect(await chat(alice.upn)).toBe(403);
  });

  it('a grant after a deny applies once the deny TTL ends', async () => {
    const carol = await userWith('carol');
    expect(await chat(carol.upn)).toBe(403);
    await admin('/role-assignments', { scope: CLUSTER, roleName: 'Cognitive Services OpenAI User', principalId: carol.id });
    expect(await chat(carol.upn)).toBe(403);
    clock.advance(29_000);
    expect(await chat(carol.upn)).toBe(403);
    clock.advance(2_000);
    expect(await chat(carol.upn)).toBe(200);
  });
});
