import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { checkServerIdentity, connect, type PeerCertificate } from 'node:tls';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, claimsOf, startTestEmulator, TENANT } from './helpers.js';

/** `node dist/cli.js emulator` as users run it: the ready line, HTTPS through NODE_EXTRA_CA_CERTS, @azure/identity, restart with --state. */

const root = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'emulator-cli-'));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Ready {
  event: string;
  https: string;
  http: string;
  authority: string;
  graph: string;
  arm: string;
  msi: string;
  caCert: string;
  tenantId: string;
}

async function startCli(args: string[]): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = spawn(process.execPath, ['dist/cli.js', 'emulator', '--https-port', '0', '--http-port', '0', '--log-level', 'warn', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line within 20 s; stderr: ${stderr}`)), 20_000);
    lines.once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`emulator exited ${String(code)}: ${stderr}`)));
  });
  return { child, ready: JSON.parse(first) as Ready };
}

function runNode(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (c) => resolve(c))));
}

describe('foundry-auth emulator (spawned)', () => {
  let child: ChildProcess;
  let ready: Ready;
  const state = join(dir, 'emulator.json');
  const readyFile = join(dir, 'ready.json');

  beforeAll(async () => {
    ({ child, ready } = await startCli(['--state', state, '--ready-file', readyFile]));
  });

  it('prints one ready line with every endpoint, writes it to --ready-file and serves it at /_emulator/endpoints', async () => {
    expect(ready.event).toBe('ready');
    expect(ready.https).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.authority).toBe(ready.https);
    expect(ready.graph).toBe(`${ready.https}/graph`);
    expect(ready.arm).toBe(`${ready.https}/arm`);
    expect(ready.msi).toBe(`${ready.https}/msi/metadata/identity/oauth2/token`);
    expect(ready.caCert).toBe(join(dir, 'emulator.ca.pem'));
    expect(ready.tenantId).toBe(TENANT);
    const fromFile = JSON.parse(readFileSync(readyFile, 'utf8')) as Record<string, unknown>;
    const fromApi = (await call(`${ready.http}/_emulator/endpoints`)).json;
    const { event: _event, ...rest } = ready;
    expect(fromFile).toEqual(rest);
    expect(fromApi).toEqual(rest);
  });

  it('serves HTTPS that a Node client trusts through NODE_EXTRA_CA_CERTS (and not without it)', async () => {
    const script = `const r = await fetch(${JSON.stringify(`${ready.https}/${TENANT}/v2.0/.well-known/openid-configuration`)}); console.log((await r.json()).issuer);`;
    const trusted = await runNode(script, { NODE_EXTRA_CA_CERTS: ready.caCert });
    expect(trusted.stderr).toBe('');
    expect(trusted.stdout.trim()).toBe(`${ready.https}/${TENANT}/v2.0`);
    const untrusted = await runNode(script, { NODE_EXTRA_CA_CERTS: '' });
    expect(untrusted.code).not.toBe(0);
  });

  it('gives @azure/identity ClientSecretCredential an app-only token from the HTTPS authority', async () => {
    const seeded = await call(`${ready.http}/_emulator/applications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ displayName: 'sdk-client', secret: 'sdk-secret-value' }),
    });
    const appId = String((seeded.json['application'] as { appId: string }).appId);
    const script = `
      import { ClientSecretCredential } from '@azure/identity';
      const c = new ClientSecretCredential(${JSON.stringify(TENANT)}, ${JSON.stringify(appId)}, 'sdk-secret-value', { authorityHost: ${JSON.stringify(ready.https)}, disableInstanceDiscovery: true });
      const t = await c.getToken('https://management.azure.com/.default');
      console.log(t.token);`;
    const r = await runNode(script, { NODE_EXTRA_CA_CERTS: ready.caCert, AZURE_LOG_LEVEL: '' });
    expect(r.code, r.stderr).toBe(0);
    const claims = claimsOf(r.stdout.trim());
    expect(claims['appid']).toBe(appId);
    expect(claims['idtyp']).toBe('app');
    expect(claims['aud']).toBe('https://management.azure.com');
  });

  it("gives @azure/identity ManagedIdentityCredential (IMDS source) the cluster identity's token through AZURE_POD_IDENTITY_AUTHORITY_HOST", async () => {
    const script = `
      import { ManagedIdentityCredential } from '@azure/identity';
      const t = await new ManagedIdentityCredential().getToken('https://management.azure.com/.default');
      console.log(t.token);`;
    const r = await runNode(script, { AZURE_POD_IDENTITY_AUTHORITY_HOST: ready.http, AZURE_CLIENT_ID: '', IDENTITY_ENDPOINT: '', MSI_ENDPOINT: '' });
    expect(r.code, r.stderr).toBe(0);
    expect(claimsOf(r.stdout.trim())['oid']).toBe('c0ffee00-0000-4000-8000-00000000000c');
  });

  it('stops on SIGTERM and restarts from the same --state with the same CA and keys', async () => {
    const ca = readFileSync(ready.caCert, 'utf8');
    const kidsOf = async (base: string) =>
      ((await call(`${base}/${TENANT}/discovery/v2.0/keys`)).json['keys'] as Array<{ kid: string }>).map((k) => k.kid);
    const kids = await kidsOf(ready.http);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    const again = await startCli(['--state', state]);
    try {
      expect(readFileSync(again.ready.caCert, 'utf8')).toBe(ca);
      expect(await kidsOf(again.ready.http)).toEqual(kids);
    } finally {
      again.child.kill('SIGTERM');
      await exited(again.child);
    }
  });

  it('refuses a non-loopback --host', async () => {
    const r = spawn(process.execPath, ['dist/cli.js', 'emulator', '--host', '0.0.0.0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(r);
    let err = '';
    r.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    expect(await exited(r)).not.toBe(0);
    expect(err).toContain('loopback');
  });
});

describe('local CA', () => {
  it('signs a server certificate that covers 127.0.0.1, ::1 and localhost', async () => {
    const emu = await startTestEmulator();
    try {
      const port = Number(new URL(emu.running.endpoints.https).port);
      const cert = await new Promise<PeerCertificate>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, ca: emu.running.caCertPem, servername: 'localhost' }, () => {
          const c = socket.getPeerCertificate();
          socket.end();
          resolve(c);
        });
        socket.once('error', reject);
      });
      for (const host of ['127.0.0.1', '::1', 'localhost']) expect(checkServerIdentity(host, cert)).toBeUndefined();
      expect(checkServerIdentity('example.com', cert)).toBeInstanceOf(Error);
    } finally {
      await emu.close();
    }
  });
});

describe('@azure/identity in process', () => {
  it('ClientSecretCredential with the emulator CA in tlsOptions gets an app-only token', async () => {
    const emu = await startTestEmulator();
    try {
      const seeded = await emu.admin('POST', '/applications', { displayName: 'sdk-inproc', secret: 'inproc-secret' });
      const appId = String((seeded.json['application'] as { appId: string }).appId);
      const cred = new ClientSecretCredential(TENANT, appId, 'inproc-secret', {
        authorityHost: emu.running.endpoints.authority,
        disableInstanceDiscovery: true,
        tlsOptions: { ca: emu.running.caCertPem },
      });
      const t = await cred.getToken('https://management.azure.com/.default');
      expect(claimsOf(t.token)['appid']).toBe(appId);
      const bad = new ClientSecretCredential(TENANT, appId, 'wrong', {
        authorityHost: emu.running.endpoints.authority,
        disableInstanceDiscovery: true,
        tlsOptions: { ca: emu.running.caCertPem },
      });
      await expect(bad.getToken('https://management.azure.com/.default')).rejects.toThrow(/AADSTS7000215/);
    } finally {
      await emu.close();
    }
  });
});
