import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SEED } from '../../src/offline/emulator/state.js';
import { systemCommand } from '../support/system-packages.js';
import { alive, startDev, tempDir, type ReadyDev } from './harness.js';

/**
 * Debian's Azure CLI (azure-cli 2.45, MSAL inside) against the dev stack, in the configuration
 * directory az-env.sh gives it (inside the test's temp directory): sign-in by password and by
 * device code, tokens for the API app used at the sidecar, and the documentation's az commands
 * (az ad sp show, az rest for the app role assignment, and the az rest / az resource show forms of
 * what Debian's az cannot do offline). az is slow to start: the invocations are kept few.
 */

const AZ = systemCommand('az');
const OPENAI_USER = '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd';
const cwd = tempDir('foundry-auth-az-');
let dev: ReadyDev;

beforeAll(async () => {
  dev = await startDev(cwd);
}, 90_000);

afterAll(() => {
  for (const pid of [dev?.child.pid, ...Object.values(dev?.stack.children ?? {})]) if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(cwd, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** In a shell that sourced az-env.sh, with `az` being Debian's, and the stack's IDs as variables. */
function shell(command: string): Promise<Run> {
  const vars = [
    `CLIENT_ID=${dev.devJson.clientId}`,
    `CLUSTER=${dev.devJson.clusterId}`,
    `SUB=${DEFAULT_SEED.subscriptionId}`,
    `GRAPH=${dev.devJson.emulator}/graph`,
    `ARM=${dev.devJson.emulator}/arm`,
    `ADMIN_PASSWORD=${DEFAULT_SEED.adminPassword}`,
  ].join(' ');
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', `. ./.foundry-auth/az-env.sh && PATH=${dirname(AZ)}:$PATH && ${vars} && ${command}`],
      { cwd, timeout: 120_000 },
      (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
      },
    );
  });
}

async function sidecarStatus(token: string): Promise<number> {
  const res = await request(`${dev.devJson.sidecar}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
  await res.body.dump();
  return res.statusCode;
}

describe('the Azure CLI against the emulator', () => {
  it("the banner's az login (alice, password) and get-access-token --resource api://<client-id>: 200 at the sidecar", async () => {
    const login = /^ {3}(az login .*)$/m.exec(dev.stdout)?.[1];
    expect(login).toBeDefined();
    const out = await shell(`${login!} && az account get-access-token --resource api://$CLIENT_ID --query accessToken -o tsv`);
    expect(out.code, out.stderr).toBe(0);
    const token = out.stdout.trim();
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())).toMatchObject({
      ver: '2.0',
      scp: 'foundry_access',
      aud: dev.devJson.clientId,
    });
    expect(await sidecarStatus(token)).toBe(200);
  }, 120_000);

  it('az login --use-device-code, approved as carol through the admin API (no role, so --allow-no-subscriptions, as on Azure): her token gets 403 at the sidecar', async () => {
    const child = spawn(
      'sh',
      [
        '-c',
        `. ./.foundry-auth/az-env.sh && ${AZ} login --use-device-code --tenant ${dev.devJson.tenantId} --allow-no-subscriptions -o none && ${AZ} account get-access-token --resource api://${dev.devJson.clientId} --query accessToken -o tsv`,
      ],
      {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const exited = once(child, 'exit');
    const deadline = Date.now() + 60_000;
    let code: string | undefined;
    while (Date.now() < deadline && (code = /enter the code ([A-Z0-9]+) to authenticate/.exec(stderr)?.[1]) === undefined)
      await new Promise((r) => setTimeout(r, 200));
    expect(code, stderr).toBeDefined();
    const approve = await request(`${dev.stack.emulatorAdmin}/device-codes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ userCode: code, user: `carol@${DEFAULT_SEED.tenantDomain}` }),
    });
    expect(await approve.body.json()).toEqual({ userCode: code, state: 'approved' });
    const [exit] = (await exited) as [number];
    expect(exit, stderr).toBe(0);
    expect(await sidecarStatus(stdout.trim())).toBe(403);
  }, 120_000);

  it('as the emulator admin: az ad sp show, az rest for the app role and the role assignment, az resource show for the cluster identity', async () => {
    const mi = await request(`${dev.stack.emulatorAdmin}/managed-identities`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'batch-job' }),
    });
    const identity = (await mi.body.json()) as { principalId: string; clientId: string };
    const script = [
      `az login --tenant ${dev.devJson.tenantId} --username admin@${DEFAULT_SEED.tenantDomain} --password "$ADMIN_PASSWORD" -o none`,
      // The documentation's commands, as README.md gives them.
      'API_SP=$(az ad sp show --id $CLIENT_ID --query id -o tsv)',
      `MI_SP=$(az ad sp show --id ${identity.clientId} --query id -o tsv)`,
      `ROLE_ID=$(az ad sp show --id $CLIENT_ID --query "appRoles[?value=='FoundryInferenceAccess'].id" -o tsv)`,
      'az rest --method POST --uri $GRAPH/v1.0/servicePrincipals/$MI_SP/appRoleAssignments --body "{\\"principalId\\":\\"$MI_SP\\",\\"resourceId\\":\\"$API_SP\\",\\"appRoleId\\":\\"$ROLE_ID\\"}" --query appRoleId -o tsv',
      `az rest --method PUT --uri "$ARM$CLUSTER/providers/Microsoft.Authorization/roleAssignments/$(node -p 'crypto.randomUUID()')?api-version=2022-04-01" --body "{\\"properties\\":{\\"roleDefinitionId\\":\\"/subscriptions/$SUB/providers/Microsoft.Authorization/roleDefinitions/${OPENAI_USER}\\",\\"principalId\\":\\"$MI_SP\\",\\"principalType\\":\\"ServicePrincipal\\"}}" --query properties.principalId -o tsv`,
      'az resource show --ids $CLUSTER --api-version 2024-01-01 --query identity.principalId -o tsv',
    ].join(' && ');
    const out = await shell(script);
    expect(out.code, out.stderr).toBe(0);
    const [roleId, assignee, clusterIdentity] = out.stdout.trim().split('\n');
    expect(roleId).toMatch(/^[0-9a-f-]{36}$/);
    expect(assignee).toBe(identity.principalId);
    expect(clusterIdentity).toBe(DEFAULT_SEED.clusterPrincipalId);
    // The identity now has what grant would have given it: its token carries the app role and passes.
    const msi = new URL(`${dev.devJson.emulator}/msi/metadata/identity/oauth2/token`);
    msi.searchParams.set('api-version', '2018-02-01');
    msi.searchParams.set('resource', `api://${dev.devJson.clientId}`);
    msi.searchParams.set('client_id', identity.clientId);
    const agent = new Agent({ connect: { ca: readFileSync(dev.stack.caCert, 'utf8') } });
    const res = await request(msi, { headers: { metadata: 'true' }, dispatcher: agent });
    const token = ((await res.body.json()) as { access_token: string }).access_token;
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['roles']).toEqual(['FoundryInferenceAccess']);
    await agent.close();
    expect(await sidecarStatus(token)).toBe(200);
  }, 180_000);
  it("doctor --dev's warning (the cluster identity cannot read deny assignments) prints an az command that Debian's az runs as printed; doctor then passes without it", async () => {
    type Check = { name: string; status: string; fix?: string; alternative?: string };
    const doctor = async (): Promise<Check[]> => {
      const out = await shell('foundry-auth doctor --dev .foundry-auth --json');
      expect(out.code, out.stderr).toBe(0);
      return (JSON.parse(out.stdout) as { checks: Check[] }).checks;
    };
    const warned = (await doctor()).find((c) => c.name === 'cluster_identity_role')!;
    expect(warned.status).toBe('warn');
    expect(warned.fix).toMatch(/^az rest --method PUT --uri /);
    expect(warned.alternative).toMatch(/^az role assignment create /);
    const login = `az login --tenant ${dev.devJson.tenantId} --username admin@${DEFAULT_SEED.tenantDomain} --password "$ADMIN_PASSWORD" -o none`;
    // Pasted as printed, twice: the assignment's name is fixed, so the second run changes nothing.
    const first = await shell(`${login} && ${warned.fix!} --query properties.principalId -o tsv`);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim()).toBe(DEFAULT_SEED.clusterPrincipalId);
    const again = await shell(warned.fix!);
    expect(again.code, again.stderr).toBe(0);
    const after = (await doctor()).find((c) => c.name === 'cluster_identity_role')!;
    expect(after).toMatchObject({ status: 'pass' });
    expect(after.fix).toBeUndefined();
  }, 180_000);
});
