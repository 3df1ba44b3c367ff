/**
 * One emulator per test file, reached over HTTPS as a user would reach Graph and ARM: the admin's
 * tokens come from the emulator's token API, the Azure clients trust the emulator's CA, and the
 * spawned CLI gets NODE_EXTRA_CA_CERTS and a fake `az` on PATH that prints az's JSON.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { DEFAULT_SEED, startEmulator, type RunningEmulator } from '../../src/offline/emulator/index.js';
import { createSetupClients, tokenProviderFrom, type SetupClients } from '../../src/setup/clients.js';
import { runCli } from '../e2e/harness.js';

export const TENANT = DEFAULT_SEED.tenantId;
export const SUB = DEFAULT_SEED.subscriptionId;
export const ADMIN_UPN = `${DEFAULT_SEED.adminUserName}@${DEFAULT_SEED.tenantDomain}`;
export const CLUSTER = `/subscriptions/${SUB}/resourceGroups/${DEFAULT_SEED.clusterResourceGroup}/providers/Microsoft.Kubernetes/connectedClusters/${DEFAULT_SEED.clusterName}`;
export const CLUSTER_PRINCIPAL = DEFAULT_SEED.clusterPrincipalId;
export const AZURE_CLI = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

export interface Json {
  readonly status: number;
  readonly json: Record<string, unknown>;
  readonly text: string;
}

/** The fake `az`: `az account get-access-token --resource R [--tenant T] -o json`, answered with an emulator token for the admin. */
const FAKE_AZ = `#!/usr/bin/env node
const http = require('node:http');
const args = process.argv.slice(2);
const at = (flag) => { const i = args.indexOf(flag); return i >= 0 ? args[i + 1] : undefined; };
if (args[0] !== 'account' || args[1] !== 'get-access-token') { process.stderr.write('ERROR: fake az only knows account get-access-token\\n'); process.exit(2); }
const resource = at('--resource');
const principal = process.env.FAKE_AZ_PRINCIPAL || ${JSON.stringify(ADMIN_UPN)};
const body = JSON.stringify({ principal, scope: resource.replace(/\\/+$/, '') + '/.default', listener: 'https', ...(at('--tenant') ? { tenantId: at('--tenant') } : {}) });
const req = http.request(process.env.FAKE_AZ_ADMIN + '/tokens', { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
  let text = '';
  res.setEncoding('utf8').on('data', (c) => (text += c)).on('end', () => {
    const j = JSON.parse(text);
    if (res.statusCode !== 200) { process.stderr.write('ERROR: ' + (j.error && j.error.message) + '\\n'); process.exit(1); }
    const local = new Date(j.expires_on * 1000);
    const pad = (n) => String(n).padStart(2, '0');
    const expiresOn = local.getFullYear() + '-' + pad(local.getMonth() + 1) + '-' + pad(local.getDate()) + ' ' + pad(local.getHours()) + ':' + pad(local.getMinutes()) + ':' + pad(local.getSeconds()) + '.000000';
    process.stdout.write(JSON.stringify({ accessToken: j.access_token, expiresOn, expires_on: j.expires_on, subscription: ${JSON.stringify(SUB)}, tenant: ${JSON.stringify(TENANT)}, tokenType: 'Bearer' }, null, 2) + '\\n');
  });
});
req.on('error', (e) => { process.stderr.write('ERROR: ' + e.message + '\\n'); process.exit(1); });
req.end(body);
`;

export class SetupEmulator {
  readonly agent: Agent;
  readonly binDir: string;

  constructor(readonly running: RunningEmulator) {
    this.agent = new Agent({ connect: { ca: running.caCertPem } });
    this.binDir = mkdtempSync(join(tmpdir(), 'fa-setup-bin-'));
    writeFileSync(join(this.binDir, 'az'), FAKE_AZ);
    chmodSync(join(this.binDir, 'az'), 0o755);
  }

  get endpoints(): RunningEmulator['endpoints'] {
    return this.running.endpoints;
  }

  /** The flags that point a command at this emulator (HTTPS). */
  get flags(): string[] {
    const e = this.endpoints;
    return ['--authority', e.authority, '--graph-endpoint', e.graph, '--arm-endpoint', e.arm];
  }

  async admin(method: string, path: string, body?: unknown): Promise<Json> {
    const res = await undiciFetch(`${this.endpoints.admin}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), text };
  }

  /** A token from the emulator's token API (same rules as its token endpoint). */
  async token(principal: string, scope: string, opts: { client?: string; listener?: 'https' | 'http'; tokenVersion?: 1 | 2 } = {}): Promise<string> {
    const r = await this.admin('POST', '/tokens', {
      principal,
      scope,
      listener: opts.listener ?? 'https',
      ...(opts.client !== undefined ? { client: opts.client } : {}),
      ...(opts.tokenVersion !== undefined ? { tokenVersion: opts.tokenVersion } : {}),
    });
    if (r.status !== 200) throw new Error(`token for ${principal} (${scope}) refused: ${r.text}`);
    return String(r.json['access_token']);
  }

  /** Graph and ARM clients acting as the seeded admin, over HTTPS. */
  clients(principal: string = ADMIN_UPN): SetupClients {
    const e = this.endpoints;
    const tokens = (resource: string) =>
      tokenProviderFrom(`emulator token for ${principal}`, async () => {
        const r = await this.admin('POST', '/tokens', { principal, scope: `${resource}/.default`, listener: 'https' });
        if (r.status !== 200) throw new Error(r.text);
        return { token: String(r.json['access_token']), expiresOnMs: Number(r.json['expires_on']) * 1000 };
      });
    return createSetupClients({
      graphEndpoint: e.graph,
      armEndpoint: e.arm,
      graphTokens: tokens(e.graph),
      armTokens: tokens(e.arm),
      dispatcher: this.agent,
      timeoutMs: 10_000,
    });
  }

  /** Graph as the admin, raw (to break settings the way a person in the portal would). */
  graph(method: string, path: string, body?: unknown): Promise<Json> {
    return this.asAdmin(this.endpoints.graph, `${this.endpoints.graph}/v1.0${path}`, method, body);
  }

  arm(method: string, path: string, body?: unknown): Promise<Json> {
    const sep = path.includes('?') ? '&' : '?';
    return this.asAdmin(this.endpoints.arm, `${this.endpoints.arm}${path}${sep}api-version=2022-04-01`, method, body);
  }

  private async asAdmin(resource: string, url: string, method: string, body: unknown): Promise<Json> {
    const token = await this.token(ADMIN_UPN, `${resource}/.default`);
    const res = await undiciFetch(url, {
      method,
      dispatcher: this.agent,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), text };
  }

  async application(appId: string): Promise<Record<string, unknown>> {
    const r = await this.graph('GET', `/applications(appId='${appId}')`);
    if (r.status !== 200) throw new Error(r.text);
    return r.json;
  }

  async counters(): Promise<{ total: number; families: Record<string, { reads: number; writes: number }> }> {
    return (await this.admin('GET', '/counters')).json as never;
  }

  async resetCounters(): Promise<void> {
    await this.admin('DELETE', '/counters');
  }

  /** Environment for a spawned CLI: the CA, the fake az first on PATH. */
  cliEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: `${this.binDir}${delimiter}${process.env.PATH ?? ''}`,
      NODE_EXTRA_CA_CERTS: this.endpoints.caCert,
      FAKE_AZ_ADMIN: this.endpoints.admin,
      NO_COLOR: '1',
      ...extra,
    };
  }

  /** `foundry-auth <args>` against this emulator, with the default `--credential azure-cli` (the fake az). */
  cli(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runCli(args, this.cliEnv(extraEnv));
  }

  async close(): Promise<void> {
    await this.agent.close();
    await this.running.close();
    rmSync(this.binDir, { recursive: true, force: true });
  }
}

export async function startSetupEmulator(): Promise<SetupEmulator> {
  return new SetupEmulator(await startEmulator());
}

/** The one JSON document a `--json` command printed on stdout. */
export function jsonOut(out: { stdout: string; stderr: string; code: number | null }): Record<string, unknown> {
  try {
    return JSON.parse(out.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(`stdout is not one JSON document (exit ${out.code}):\n${out.stdout}\nstderr:\n${out.stderr}`);
  }
}
