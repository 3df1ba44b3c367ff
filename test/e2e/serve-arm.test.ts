/**
 * `serve --rbac arm` as a user runs it: the real sidecar process against the emulator over HTTPS
 * (authority, ARM) with its own ARM token from the msi-adapter endpoint, deciding like Azure
 * decides. Issue 3's semantics matrix, failure behaviour and recovery, end to end.
 */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SEED, startEmulator, type RunningEmulator } from '../../src/offline/emulator/index.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { startServe, type ServeProcess } from './harness.js';

const SUB = `/subscriptions/${DEFAULT_SEED.subscriptionId}`;
const RG = `${SUB}/resourceGroups/${DEFAULT_SEED.clusterResourceGroup}`;
const CLUSTER = `${RG}/providers/Microsoft.Kubernetes/connectedClusters/${DEFAULT_SEED.clusterName}`;
const OTHER_CLUSTER = `${RG}/providers/Microsoft.Kubernetes/connectedClusters/other-cluster`;
const OPENAI = 'Microsoft.CognitiveServices/accounts/OpenAI';
const DOMAIN = DEFAULT_SEED.tenantDomain;

let emulator: RunningEmulator;
let up: Upstream;
let sidecar: ServeProcess;
let appId: string;

async function admin(path: string, body: unknown, method = 'POST'): Promise<Record<string, unknown>> {
  const res = await fetch(`${emulator.endpoints.admin}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  expect(res.status, text).toBeLessThan(300);
  return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
}

async function user(name: string): Promise<string> {
  const created = await admin('/users', { userPrincipalName: `${name}@${DOMAIN}`, password: `${name}-password-1`, displayName: name });
  return String(created.id);
}

async function assign(principalId: string, role: string, scope = CLUSTER, extra: Record<string, unknown> = {}): Promise<string> {
  const created = await admin('/role-assignments', { scope, roleName: role, principalId, ...extra });
  return String(created.name);
}

/** A new user holding `role` (at the cluster unless `scope` says otherwise); its object ID. */
async function userWith(name: string, role: string, scope = CLUSTER, extra: Record<string, unknown> = {}): Promise<string> {
  const id = await user(name);
  await assign(id, role, scope, extra);
  return id;
}

async function tokenFor(principal: string): Promise<string> {
  const minted = await admin('/tokens', { principal, scope: `api://${appId}/.default`, listener: 'https' });
  return String(minted.access_token);
}

async function armAsAdmin(method: string, path: string, body?: unknown): Promise<void> {
  const { access_token } = await admin('/tokens', { principal: `admin@${DOMAIN}`, scope: 'https://management.azure.com/.default', listener: 'http' });
  const res = await fetch(`${emulator.endpoints.armHttp}${path}`, {
    method,
    headers: { authorization: `Bearer ${String(access_token)}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  expect(res.status, await res.text()).toBeLessThan(300);
}

interface Outcome {
  status: number;
  code?: string;
  message?: string;
  retryAfter?: string;
}

async function call(token: string, method: string, path: string): Promise<Outcome> {
  const res = await request(`${sidecar.url}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(method === 'POST' ? { body: '{"model":"phi-4-mini","messages":[{"role":"user","content":"hi"}],"input":"x"}' } : {}),
  });
  const text = await res.body.text();
  const error = res.statusCode >= 400 ? (JSON.parse(text) as { error: { code: string; message: string } }).error : undefined;
  return {
    status: res.statusCode,
    ...(error ? { code: error.code, message: error.message } : {}),
    ...(typeof res.headers['retry-after'] === 'string' ? { retryAfter: res.headers['retry-after'] } : {}),
  };
}

const CHAT: [string, string] = ['POST', '/v1/chat/completions'];
const EMBED: [string, string] = ['POST', '/v1/embeddings'];
const CONTROL_READ: [string, string] = ['GET', '/api/v1/deployments'];
const CONTROL_WRITE: [string, string] = ['POST', '/api/v1/namespaces/default/deployments'];

async function statuses(principal: string): Promise<number[]> {
  const token = await tokenFor(principal);
  const out: number[] = [];
  for (const [method, path] of [CHAT, EMBED, CONTROL_READ, CONTROL_WRITE]) out.push((await call(token, method, path)).status);
  return out;
}

/** `serve --rbac arm` trusting the emulator over HTTPS and asking its ARM as the cluster's identity. */
function startArmServe(flags: Record<string, string> = {}): Promise<ServeProcess> {
  return startServe(
    {
      upstream: up.url,
      'tenant-id': DEFAULT_SEED.tenantId,
      'client-id': appId,
      authority: emulator.endpoints.authority,
      'arm-endpoint': emulator.endpoints.arm,
      identity: 'msi-adapter',
      'msi-endpoint': emulator.endpoints.msiHttp,
      'rbac-scope': CLUSTER,
      ...flags,
    },
    { env: { NODE_EXTRA_CA_CERTS: emulator.endpoints.caCert } },
  );
}

beforeAll(async () => {
  emulator = await startEmulator();
  up = await startUpstream();
  const app = await admin('/applications', {
    displayName: 'foundry-local-e2e',
    requestedAccessTokenVersion: 2,
    scopes: [{ value: 'foundry_access', type: 'Admin' }],
    appRoles: [{ value: 'FoundryInferenceAccess', allowedMemberTypes: ['Application'] }],
    createServicePrincipal: true,
  });
  appId = String((app.application as { appId: string }).appId);
  const scopeId = String(
    ((app.application as { api: { oauth2PermissionScopes: { id: string }[] } }).api.oauth2PermissionScopes[0] as { id: string }).id,
  );
  await admin(`/applications/${String((app.application as { id: string }).id)}`, {}, 'GET').catch(() => undefined);
  // Identifier URI and Azure CLI pre-authorization, as setup steps 2 and 5 do.
  const { access_token: graphToken } = await admin('/tokens', {
    principal: `admin@${DOMAIN}`,
    scope: 'https://graph.microsoft.com/.default',
    listener: 'http',
  });
  const patch = await fetch(`${emulator.endpoints.graphHttp}/v1.0/applications(appId='${appId}')`, {
    method: 'PATCH',
    headers: { authorization: `Bearer ${String(graphToken)}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      identifierUris: [`api://${appId}`],
      api: { preAuthorizedApplications: [{ appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46', delegatedPermissionIds: [scopeId] }] },
    }),
  });
  expect(patch.status, await patch.text()).toBeLessThan(300);
  // Step 7: the cluster's Arc identity may read role assignments at the cluster.
  await assign(DEFAULT_SEED.clusterPrincipalId, 'Cognitive Services OpenAI User', CLUSTER, { principalType: 'ServicePrincipal' });

  sidecar = await startArmServe({ 'rbac-timeout': '2s' });
  await sidecar.ready();
}, 60_000);

afterAll(async () => {
  await sidecar?.stop();
  await up?.close();
  await emulator?.close();
});

describe('readiness', () => {
  it('reports the ARM token check after the msi-adapter answered', async () => {
    const res = await request(`${sidecar.adminUrl}/readyz`);
    expect(await res.body.json()).toMatchObject({ status: 'ready', checks: { signingKeys: 'ok', armToken: 'ok' } });
  });
});

describe('the semantics matrix (chat, embeddings, control read, control write)', () => {
  it("OpenAI User at the cluster, the resource group and the subscription: data plane only, as the seed's access table says", async () => {
    for (const scope of [CLUSTER, RG, SUB]) {
      const id = await userWith(`openai-user-${randomUUID().slice(0, 8)}`, 'Cognitive Services OpenAI User', scope);
      expect(await statuses(id)).toEqual([200, 200, 403, 403]);
    }
  });

  it('through a nested group', async () => {
    const id = await user('grouped');
    const inner = String((await admin('/groups', { displayName: 'inner', members: [id] })).id);
    const outer = String((await admin('/groups', { displayName: 'outer', members: [inner] })).id);
    await assign(outer, 'Cognitive Services OpenAI User', RG, { principalType: 'Group' });
    expect(await statuses(id)).toEqual([200, 200, 403, 403]);
  });

  it('Cognitive Services Contributor and OpenAI Contributor: both planes', async () => {
    const cs = await userWith('cs-contributor', 'Cognitive Services Contributor');
    expect(await statuses(cs)).toEqual([200, 200, 200, 200]);
    const oc = await userWith('openai-contributor', 'Cognitive Services OpenAI Contributor');
    expect(await statuses(oc)).toEqual([200, 200, 200, 200]);
  });

  it('Reader: control-plane reads only; Owner: control plane only', async () => {
    const reader = await userWith('reader', 'Reader');
    expect(await statuses(reader)).toEqual([403, 403, 200, 403]);
    const owner = await userWith('owner', 'Owner', RG);
    expect(await statuses(owner)).toEqual([403, 403, 200, 200]);
  });

  it('a custom role with only the chat action; a role whose notDataActions exclude chat', async () => {
    const chatOnly = randomUUID();
    await armAsAdmin('PUT', `${SUB}/providers/Microsoft.Authorization/roleDefinitions/${chatOnly}?api-version=2022-04-01`, {
      properties: {
        roleName: 'Chat Only',
        type: 'CustomRole',
        assignableScopes: [SUB],
        permissions: [{ actions: [], notActions: [], dataActions: [`${OPENAI}/deployments/chat/completions/action`], notDataActions: [] }],
      },
    });
    const noChat = randomUUID();
    await armAsAdmin('PUT', `${SUB}/providers/Microsoft.Authorization/roleDefinitions/${noChat}?api-version=2022-04-01`, {
      properties: {
        roleName: 'Everything But Chat',
        type: 'CustomRole',
        assignableScopes: [SUB],
        permissions: [{ actions: [], notActions: [], dataActions: [`${OPENAI}/*`], notDataActions: [`${OPENAI}/deployments/chat/*`] }],
      },
    });
    const a = await userWith('chat-only', 'Chat Only');
    expect(await statuses(a)).toEqual([200, 403, 403, 403]);
    const b = await userWith('no-chat', 'Everything But Chat');
    expect(await statuses(b)).toEqual([403, 200, 403, 403]);
  });

  it('a conditional assignment grants nothing; an assignment on another cluster grants nothing', async () => {
    const conditional = await userWith('conditional', 'Cognitive Services OpenAI User', CLUSTER, {
      condition: "@Resource[Microsoft.CognitiveServices/accounts:name] StringEquals 'x'",
    });
    expect(await statuses(conditional)).toEqual([403, 403, 403, 403]);
    const elsewhere = await user('elsewhere');
    await admin('/clusters', { name: 'other-cluster', resourceGroup: DEFAULT_SEED.clusterResourceGroup });
    await assign(elsewhere, 'Cognitive Services Contributor', OTHER_CLUSTER);
    expect(await statuses(elsewhere)).toEqual([403, 403, 403, 403]);
  });

  it('no assignment: 403 with the principal, action, scope and the roles that would grant it', async () => {
    const id = await user('nobody');
    const denied = await call(await tokenFor(id), ...CHAT);
    expect(denied).toMatchObject({ status: 403, code: 'insufficient_permissions' });
    expect(denied.message).toContain(id);
    expect(denied.message).toContain(`${OPENAI}/deployments/chat/completions/action`);
    expect(denied.message).toContain(CLUSTER);
    expect(denied.message).toContain('Cognitive Services OpenAI User');
  });

  it('an app-only token of a service principal with the app role and OpenAI User', async () => {
    const client = await admin('/applications', { displayName: 'batch-job', secret: 'batch-secret-1', createServicePrincipal: true });
    const clientAppId = String((client.application as { appId: string }).appId);
    const spId = String((client.servicePrincipal as { id: string }).id);
    await admin('/app-role-assignments', { principalId: spId, resourceAppId: appId, appRoleValue: 'FoundryInferenceAccess' });
    await assign(spId, 'Cognitive Services OpenAI User', CLUSTER, { principalType: 'ServicePrincipal' });
    const token = await tokenFor(clientAppId);
    expect((await call(token, ...CHAT)).status).toBe(200);
    expect(up.requests.at(-1)!.header('x-foundry-auth-principal-type')).toEqual(['app']);
  });
});

describe('a deny assignment', () => {
  it('is honoured once the cluster identity may read deny assignments (Reader), and wins over a grant', async () => {
    await assign(DEFAULT_SEED.clusterPrincipalId, 'Reader', CLUSTER, { principalType: 'ServicePrincipal' });
    const id = await userWith('denied', 'Cognitive Services OpenAI User');
    await admin('/deny-assignments', {
      denyAssignmentName: 'no chat here',
      scope: RG,
      permissions: [{ dataActions: [`${OPENAI}/deployments/chat/completions/action`] }],
      principals: [{ id, type: 'User' }],
    });
    // The scope's deny list is cached for the allow TTL; a fresh sidecar sees it at once.
    const fresh = await startArmServe();
    try {
      await fresh.ready();
      const token = await tokenFor(id);
      const chat = await request(`${fresh.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' });
      const body = (await chat.body.json()) as { error: { code: string; message: string } };
      expect(chat.statusCode).toBe(403);
      expect(body.error.message).toMatch(/deny assignment/i);
      const embed = await request(`${fresh.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: '{}' });
      await embed.body.dump();
      expect(embed.statusCode).toBe(200);
    } finally {
      await fresh.stop();
    }
  });
});

describe('when ARM fails', () => {
  async function withFault(fault: Record<string, unknown>, run: () => Promise<void>): Promise<void> {
    const created = await admin('/faults', { family: 'arm', pathContains: 'roleAssignments', ...fault });
    try {
      await run();
    } finally {
      await fetch(`${emulator.endpoints.admin}/faults/${String(created.id)}`, { method: 'DELETE' });
    }
  }

  it.each([
    ['a 5xx', { status: 503 }],
    ['a timeout', { latencyMs: 5000 }],
    ['a dropped connection', { drop: true }],
  ])('%s: 500 rbac_check_unavailable for an uncached principal, not cached, recovers at once', async (_name, fault) => {
    const id = await userWith(`fault-${randomUUID().slice(0, 8)}`, 'Cognitive Services OpenAI User');
    const token = await tokenFor(id);
    await withFault(fault, async () => {
      const res = await call(token, ...CHAT);
      expect(res).toMatchObject({ status: 500, code: 'rbac_check_unavailable' });
    });
    expect((await call(token, ...CHAT)).status).toBe(200);
  });

  it('keeps serving a cached principal within its TTL while ARM fails', async () => {
    const id = await userWith('cached', 'Cognitive Services OpenAI User');
    const token = await tokenFor(id);
    expect((await call(token, ...CHAT)).status).toBe(200);
    await withFault({ status: 500 }, async () => {
      expect((await call(token, ...CHAT)).status).toBe(200);
      expect((await call(token, ...EMBED)).status).toBe(200);
    });
  });

  it("the sidecar's own identity refused (403): 500 with the fix in the log, recovers on the first good answer", async () => {
    const id = await userWith('identity-refused', 'Cognitive Services OpenAI User');
    const token = await tokenFor(id);
    await withFault(
      {
        status: 403,
        body: {
          error: {
            code: 'AuthorizationFailed',
            message: 'The client does not have authorization to perform action Microsoft.Authorization/roleAssignments/read',
          },
        },
      },
      async () => {
        expect(await call(token, ...CHAT)).toMatchObject({ status: 500, code: 'rbac_check_unavailable' });
        const line = await sidecar.waitForLog((l) => l.level === 40 && JSON.stringify(l).includes('identity_refused'));
        expect(JSON.stringify(line)).toMatch(/Cognitive Services OpenAI User|Reader/);
      },
    );
    expect((await call(token, ...CHAT)).status).toBe(200);
  });

  // Last: the back-off it starts suppresses every ARM call for 5 s.
  it('a 429 with Retry-After: 5 answers 500 with Retry-After and makes no ARM call meanwhile', async () => {
    const a = await userWith('throttled-a', 'Cognitive Services OpenAI User');
    const b = await userWith('throttled-b', 'Cognitive Services OpenAI User');
    const [ta, tb] = [await tokenFor(a), await tokenFor(b)];
    await withFault({ status: 429, retryAfterSeconds: 5, count: 1 }, async () => {
      const first = await call(ta, ...CHAT);
      expect(first).toMatchObject({ status: 500, code: 'rbac_check_unavailable' });
      expect(Number(first.retryAfter)).toBeGreaterThanOrEqual(4);
      expect(Number(first.retryAfter)).toBeLessThanOrEqual(5);
      const counters = (await (await fetch(`${emulator.endpoints.admin}/counters`)).json()) as { families: { arm: { total: number } } };
      const second = await call(tb, ...CHAT);
      expect(second).toMatchObject({ status: 500, code: 'rbac_check_unavailable' });
      const after = (await (await fetch(`${emulator.endpoints.admin}/counters`)).json()) as { families: { arm: { total: number } } };
      expect(after.families.arm.total).toBe(counters.families.arm.total);
    });
  });
});
