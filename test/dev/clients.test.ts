import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI, { PermissionDeniedError } from 'openai';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmulatorClient, type EmulatorReady } from '../../src/offline/dev/emulator-client.js';
import { adminClients } from '../../src/offline/dev/registration.js';
import { runGrant } from '../../src/setup/grant.js';
import { alive, ROOT, startDev, tempDir, type ReadyDev } from './harness.js';

/**
 * Real clients, as users run them, against the stack `dev` starts: the official openai SDK, an
 * @azure/identity ClientSecretCredential app, the inference-client managed identity, and the
 * sidecar's own msi-adapter client.
 */

const cwd = tempDir('foundry-auth-dev-clients-');
let dev: ReadyDev;

beforeAll(async () => {
  dev = await startDev(cwd);
});

afterAll(async () => {
  if (dev !== undefined && dev.child.exitCode === null) {
    dev.child.kill('SIGTERM');
    await dev.exited;
  }
  for (const pid of dev === undefined ? [] : Object.values(dev.stack.children)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(cwd, { recursive: true, force: true });
});

function openai(token: string): OpenAI {
  return new OpenAI({ baseURL: `${dev.devJson.sidecar}/v1`, apiKey: token, maxRetries: 0 });
}

/** Runs an ES module snippet with the repository's node_modules, as a user's script would. */
function runNode(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function admin(path: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await request(`${dev.stack.emulatorAdmin}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await res.body.json()) as Record<string, unknown>;
  expect(res.statusCode, JSON.stringify(json)).toBe(201);
  return json;
}

describe('real clients against the dev stack', () => {
  it('the openai SDK streams a chat completion with alice’s token', async () => {
    const stream = await openai(dev.devJson.tokens.alice).chat.completions.create({
      model: 'phi-4-mini',
      stream: true,
      messages: [{ role: 'user', content: 'Hello from the SDK' }],
    });
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? '';
    }
    expect(chunks).toBeGreaterThan(3);
    expect(text).toContain('You said: Hello from the SDK.');
  });

  it('the openai SDK surfaces carol’s 403 with the missing role in error.message', async () => {
    const err = await openai(dev.devJson.tokens.carol)
      .chat.completions.create({ model: 'phi-4-mini', messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(PermissionDeniedError);
    const denied = err as PermissionDeniedError;
    expect(denied.status).toBe(403);
    expect(denied.code).toBe('insufficient_permissions');
    expect(denied.message).toContain('Cognitive Services OpenAI User');
    expect((denied.error as { message: string }).message).toContain('chat/completions/action');
  });

  it('the inference-client managed identity’s token (app role + OpenAI User) lists the models', async () => {
    const models = await openai(dev.devJson.tokens['inference-client']).models.list();
    expect(models.data.map((m) => m.id)).toContain('phi-4-mini');
  });

  it('an @azure/identity ClientSecretCredential app granted inference access (app role + OpenAI User) is accepted', async () => {
    const created = await admin('/applications', { displayName: 'sdk-inference-app', secret: 'sdk-inference-secret' });
    const appId = (created['application'] as { appId: string }).appId;
    const spId = (created['servicePrincipal'] as { id: string }).id;
    // grant's library code, as `foundry-auth grant --assignee <appId> --access inference` runs it.
    const endpoints = JSON.parse(readFileSync(join(cwd, '.foundry-auth/run/emulator.ready.json'), 'utf8')) as EmulatorReady;
    const emulator = new EmulatorClient(endpoints, readFileSync(endpoints.caCert, 'utf8'));
    const granted = await runGrant(
      { clientId: dev.devJson.clientId, clusterId: dev.devJson.clusterId, assignee: appId, access: 'inference' },
      adminClients(emulator),
    );
    await emulator.close();
    expect(granted.principal.id).toBe(spId);
    expect(granted.steps.map((s) => [s.step, s.outcome])).toEqual([
      ['role_assignment', 'created'],
      ['app_role_assignment', 'created'],
    ]);
    const script = `
      import { ClientSecretCredential } from '@azure/identity';
      const credential = new ClientSecretCredential(${JSON.stringify(dev.devJson.tenantId)}, ${JSON.stringify(appId)}, 'sdk-inference-secret', { authorityHost: ${JSON.stringify(dev.devJson.emulator)}, disableInstanceDiscovery: true });
      const { token } = await credential.getToken(${JSON.stringify(`api://${dev.devJson.clientId}/.default`)});
      const res = await fetch(${JSON.stringify(`${dev.devJson.sidecar}/v1/chat/completions`)}, {
        method: 'POST',
        headers: { authorization: 'Bearer ' + token, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'phi-4-mini', messages: [{ role: 'user', content: 'hi from an app' }] }),
      });
      console.log(JSON.stringify({ status: res.status, body: await res.json() }));`;
    const r = await runNode(script, { NODE_EXTRA_CA_CERTS: dev.stack.caCert, AZURE_LOG_LEVEL: '' });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { status: number; body: { choices: { message: { content: string } }[] } };
    expect(out.status, JSON.stringify(out.body)).toBe(200);
    expect(out.body.choices[0]?.message.content).toContain('hi from an app');
  });

  it('the sidecar got its own ARM token from the emulator through msi-adapter (/readyz)', async () => {
    const res = await request(`${dev.stack.sidecarAdmin}/readyz`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ status: 'ready', checks: { signingKeys: 'ok', armToken: 'ok' } });
  });
});
