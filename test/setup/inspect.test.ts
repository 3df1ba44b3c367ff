/**
 * `foundry-auth token inspect` gives the verdict the sidecar gives: for each kind of broken token
 * the emulator can issue (v1, expired, wrong audience, user token without the scope, app token
 * without the role) and a good one, the status, code and message `inspectForUser` predicts are
 * compared with what an in-process sidecar actually answers for the same token.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServeConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/ops/log.js';
import { runGrant } from '../../src/setup/grant.js';
import { inspectForUser } from '../../src/setup/inspect.js';
import { runSetup } from '../../src/setup/setup.js';
import { startSidecar, type Sidecar } from '../../src/sidecar.js';
import { CLI } from '../e2e/harness.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { AZURE_CLI, CLUSTER, jsonOut, startSetupEmulator, TENANT, type SetupEmulator } from './helpers.js';

let emu: SetupEmulator;
let up: Upstream;
let sidecar: Sidecar;
let clientId: string;
const ALICE = 'alice@emulator.onmicrosoft.com';
const tokens: Record<string, string> = {};

async function seed(path: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await emu.admin('POST', path, body);
  if (r.status !== 201) throw new Error(`${path}: ${r.text}`);
  return r.json;
}

/** An API app registration the sidecar is not configured for, pre-authorizing the Azure CLI. */
async function otherApi(name: string, version: 2 | null): Promise<void> {
  const scopeId = version === 2 ? '5c09e000-0000-4000-8000-000000000001' : '5c09e000-0000-4000-8000-000000000002';
  await seed('/applications', {
    displayName: name,
    identifierUris: [`api://${name}`],
    requestedAccessTokenVersion: version,
    scopes: [{ id: scopeId, value: 'foundry_access' }],
    preAuthorizedApplications: [{ appId: AZURE_CLI, delegatedPermissionIds: [scopeId] }],
  });
}

const mint = (principal: string, scope: string, client?: string): Promise<string> =>
  emu.token(principal, scope, { listener: 'http', ...(client !== undefined ? { client } : {}) });

beforeAll(async () => {
  emu = await startSetupEmulator();
  const setup = await runSetup({ appName: 'inspect-app', clusterId: CLUSTER }, emu.clients());
  clientId = setup.clientId!;
  await seed('/users', { userPrincipalName: ALICE, password: 'alice-password' });
  await runGrant({ clientId, clusterId: CLUSTER, assignee: ALICE, access: 'inference' }, emu.clients());
  const api = `api://${clientId}/.default`;

  tokens['good'] = await mint(ALICE, api);

  const clock = await emu.admin('POST', '/clock', { advanceSeconds: -3 * 3600 });
  expect(clock.status).toBe(200);
  tokens['expired'] = await mint(ALICE, api);
  await emu.admin('POST', '/clock', { advanceSeconds: 3 * 3600 });

  await otherApi('other-api', 2);
  tokens['wrong audience'] = await mint(ALICE, 'api://other-api/.default');
  // What the API app issues when left at token version 1 (aud is its identifier URI, so the audience check passes).
  tokens['v1'] = await emu.token(ALICE, api, { listener: 'http', tokenVersion: 1 });
  // Another app left at version 1: a token for another resource, whatever its version.
  await otherApi('v1-api', null);
  tokens['v1 for another app'] = await mint(ALICE, 'api://v1-api/.default');

  // A client app the admin consented to another scope of the API, not foundry_access.
  const app = await emu.application(clientId);
  const scopes = (app['api'] as { oauth2PermissionScopes: unknown[] }).oauth2PermissionScopes;
  const patched = await emu.graph('PATCH', `/applications/${String(app['id'])}`, {
    api: {
      oauth2PermissionScopes: [
        ...scopes,
        {
          id: '5c09e000-0000-4000-8000-000000000003',
          value: 'other_scope',
          type: 'User',
          isEnabled: true,
          adminConsentDisplayName: 'other',
          adminConsentDescription: 'other',
        },
      ],
    },
  });
  expect(patched.status).toBe(204);
  const client = await seed('/applications', { displayName: 'some-client', isFallbackPublicClient: true });
  const clientAppId = String((client['application'] as Record<string, unknown>)['appId']);
  await seed('/oauth2-permission-grants', { clientAppId, resourceAppId: clientId, scope: 'other_scope' });
  tokens['user token without the scope'] = await mint(ALICE, api, clientAppId);

  const identity = await seed('/managed-identities', { name: 'no-app-role' });
  tokens['app token without the role'] = await mint(String(identity['clientId']), api);

  up = await startUpstream();
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
      'log-level': 'silent',
    },
    env: {},
  });
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  sidecar = await startSidecar(loaded.config, { log: silentLogger() });
});

afterAll(async () => {
  await sidecar?.shutdown();
  await up?.close();
  await emu?.close();
});

async function sidecarAnswer(token: string): Promise<{ status: number; code: string | null; message: string | null }> {
  const res = await request(`${sidecar.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  if (res.statusCode < 400) return { status: res.statusCode, code: null, message: null };
  const body = JSON.parse(text) as { error: { code: string; message: string } };
  return { status: res.statusCode, code: body.error.code, message: body.error.message };
}

const CASES: Array<[string, string | null]> = [
  ['v1', 'v1_token'],
  ['v1 for another app', 'wrong_audience'],
  ['expired', 'expired'],
  ['wrong audience', 'wrong_audience'],
  ['user token without the scope', 'missing_scope'],
  ['app token without the role', 'missing_app_role'],
  ['good', null],
];

describe('the verdict matches what the sidecar answers', () => {
  it.each(CASES)('%s', async (name, reason) => {
    const token = tokens[name]!;
    const report = await inspectForUser(token, { tenantId: TENANT, clientId, authority: emu.endpoints.authorityHttp });
    const actual = await sidecarAnswer(token);
    expect({ status: report.verdict.status, code: report.verdict.code }).toEqual({ status: actual.status, code: actual.code });
    if (reason === null) {
      expect(report.accepted).toBe(true);
      expect(report.verdict.signatureVerified).toBe(true);
    } else {
      expect(report.verdict.reason).toBe(reason);
      expect(report.verdict.message).toBe(actual.message);
      expect(report.accepted).toBe(false);
      expect(report.fix).toBeDefined();
    }
  });
});

/** `foundry-auth token inspect -` with the token on stdin. */
async function inspectCli(token: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, 'token', 'inspect', '-', ...args], { env: emu.cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  child.stdin.end(`${token}\n`);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

describe('foundry-auth token inspect', () => {
  it('a v1 token: exit 1, 401 invalid_token, says to set the token version to 2 with setup; the signature is never printed', async () => {
    const token = tokens['v1']!;
    const out = await inspectCli(token, ['--tenant-id', TENANT, '--client-id', clientId, '--authority', emu.endpoints.authorityHttp]);
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('ver                 1.0');
    expect(out.stdout).toMatch(/^ {2}FAIL {4} version /m);
    expect(out.stdout).toContain('Verdict: the sidecar would answer 401 invalid_token');
    expect(out.stdout).toContain('accessTokenAcceptedVersion');
    expect(out.stdout).toContain(
      `fix: the API app issues v1.0 tokens: set api.requestedAccessTokenVersion (accessTokenAcceptedVersion) to 2 with foundry-auth setup --client-id ${clientId}`,
    );
    expect(out.stdout + out.stderr).not.toContain(token.split('.')[2]);
  });

  it('an app token without the role: the fix is the grant for that caller', async () => {
    const token = tokens['app token without the role']!;
    const azp = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['azp'] as string;
    const out = await inspectCli(token, ['--tenant-id', TENANT, '--client-id', clientId, '--authority', emu.endpoints.authorityHttp, '--json']);
    expect(out.code).toBe(1);
    const doc = jsonOut(out);
    expect(doc['kind']).toBe('app');
    expect(doc['verdict']).toMatchObject({ status: 401, code: 'invalid_token', reason: 'missing_app_role' });
    expect(doc['fix']).toContain(
      `foundry-auth grant --client-id ${clientId} --cluster-id <cluster resource ID> --assignee ${azp} --access inference`,
    );
  });

  it('a good token without --tenant-id/--client-id: both taken from the token and said so; signature verified; exit 0', async () => {
    const out = await inspectCli(tokens['good']!, ['--authority', emu.endpoints.authorityHttp, '--json']);
    expect(out.code, out.stderr).toBe(0);
    const doc = jsonOut(out);
    expect(doc['accepted']).toBe(true);
    expect(doc['policy']).toMatchObject({ tenantId: TENANT, clientId });
    expect(doc['notes']).toEqual([expect.stringContaining("taken from the token's tid"), expect.stringContaining("taken from the token's aud")]);
    const checks = doc['checks'] as Array<{ check: string; ok: boolean; assumed?: boolean }>;
    expect(checks.filter((c) => c.assumed === true).map((c) => c.check)).toEqual(['tenant', 'audience']);
    expect(checks.every((c) => c.ok)).toBe(true);
    const claims = Object.fromEntries((doc['claims'] as Array<{ claim: string; value: string }>).map((c) => [c.claim, c.value]));
    expect(claims).toMatchObject({ aud: clientId, tid: TENANT, scp: 'foundry_access', ver: '2.0', idtyp: 'user', azp: AZURE_CLI });
    expect(claims['exp']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in \d+ min\)$/);
  });

  it('--offline: every claim check passes but the signature is not checked, so exit 1', async () => {
    const out = await inspectCli(tokens['good']!, [
      '--tenant-id',
      TENANT,
      '--client-id',
      clientId,
      '--authority',
      emu.endpoints.authorityHttp,
      '--offline',
    ]);
    expect(out.code).toBe(1);
    expect(out.stdout).toContain('Verdict: every claim check passes, but the signature was not checked');
    expect(out.stdout).toMatch(/SKIP {4} signature/);
  });

  it('an unreachable JWKS: the claims are still checked and the note says why the signature was not', async () => {
    // The authority that issued it, with its JWKS failing: keys are fetched only for tokens it issued.
    const authority = emu.endpoints.authorityHttp;
    expect((await emu.admin('POST', '/faults', { family: 'jwks', drop: true })).status).toBe(201);
    try {
      const report = await inspectForUser(tokens['expired']!, { tenantId: TENANT, clientId, authority });
      expect(report.verdict).toMatchObject({ status: 401, reason: 'expired' });
      expect(
        report.notes.some((n) => n.includes(`could not be fetched from ${authority}`)),
        report.notes.join('; '),
      ).toBe(true);
    } finally {
      await emu.admin('DELETE', '/faults');
    }
  });

  it('usage: no token, bad --client-id', async () => {
    const out = await inspectCli('', ['--client-id', 'nope']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('--client-id must be a GUID');
  });
});
