import { type Agent, fetch as undiciFetch } from 'undici';
import { startEmulator, type EmulatorOptions, type RunningEmulator } from '../../src/offline/emulator/index.js';

/** Test helpers: an in-process emulator and small clients for its token endpoint, admin API, ARM and Graph. */

export const AZURE_CLI = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';
export const ADMIN_UPN = 'admin@emulator.onmicrosoft.com';
export const ADMIN_PASSWORD = 'emulator-admin-password';
export const ADMIN_ID = 'c0ffee00-0000-4000-8000-00000000000a';
export const SUB = 'c0ffee00-0000-4000-8000-000000000002';
export const TENANT = 'c0ffee00-0000-4000-8000-000000000001';
export const CLUSTER_SCOPE = `/subscriptions/${SUB}/resourceGroups/foundry-local-rg/providers/Microsoft.Kubernetes/connectedClusters/arc-cluster`;
export const CLUSTER_PRINCIPAL = 'c0ffee00-0000-4000-8000-00000000000c';

export interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly json: Record<string, unknown>;
  readonly text: string;
}

export async function call(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
  dispatcher?: Agent,
): Promise<Reply> {
  const res = await undiciFetch(url, { method: init.method ?? 'GET', headers: init.headers, body: init.body, dispatcher });
  const text = await res.text();
  let json: Record<string, unknown> = {};
  try {
    const v: unknown = text === '' ? {} : JSON.parse(text);
    if (typeof v === 'object' && v !== null) json = v as Record<string, unknown>;
  } catch {
    json = {};
  }
  return { status: res.status, headers: res.headers as unknown as Headers, json, text };
}

export function claimsOf(token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export function headerOf(token: string): Record<string, unknown> {
  const part = token.split('.')[0] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

export class TestEmulator {
  constructor(readonly running: RunningEmulator) {}

  get http(): string {
    return this.running.endpoints.http;
  }

  async admin(method: string, path: string, body?: unknown): Promise<Reply> {
    return call(`${this.http}/_emulator${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  /** POST /{tenant}/oauth2/v2.0/token with a form body. */
  async token(form: Record<string, string>, tenant = TENANT): Promise<Reply> {
    return call(`${this.http}/${tenant}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  async accessToken(form: Record<string, string>, tenant = TENANT): Promise<string> {
    const r = await this.token(form, tenant);
    if (r.status !== 200) throw new Error(`token request failed: ${r.text}`);
    return String(r.json['access_token']);
  }

  /** A user's ARM token through the Azure CLI (password grant). */
  async armTokenFor(upn: string, password: string): Promise<string> {
    return this.accessToken({
      grant_type: 'password',
      client_id: AZURE_CLI,
      username: upn,
      password,
      scope: 'https://management.azure.com//.default offline_access openid profile',
    });
  }

  async graphTokenFor(upn: string, password: string): Promise<string> {
    return this.accessToken({ grant_type: 'password', client_id: AZURE_CLI, username: upn, password, scope: 'https://graph.microsoft.com/.default' });
  }

  async arm(method: string, path: string, token: string | undefined, body?: unknown, extraHeaders: Record<string, string> = {}): Promise<Reply> {
    const sep = path.includes('?') ? '&' : '?';
    const url = path.includes('api-version=') ? `${this.http}/arm${path}` : `${this.http}/arm${path}${sep}api-version=2022-04-01`;
    const headers: Record<string, string> = { ...extraHeaders };
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return call(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  async graph(method: string, path: string, token: string | undefined, body?: unknown): Promise<Reply> {
    const headers: Record<string, string> = {};
    if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return call(`${this.http}/graph/v1.0${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  }

  /** Seeds a user and returns its object ID. */
  async user(name: string, password = `${name}-password`, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await this.admin('POST', '/users', { userPrincipalName: `${name}@emulator.onmicrosoft.com`, password, displayName: name, ...extra });
    if (r.status !== 201) throw new Error(`seeding user failed: ${r.text}`);
    return String(r.json['id']);
  }

  async group(displayName: string, members: string[]): Promise<string> {
    const r = await this.admin('POST', '/groups', { displayName, members });
    if (r.status !== 201) throw new Error(`seeding group failed: ${r.text}`);
    return String(r.json['id']);
  }

  async roleAssignment(scope: string, roleName: string, principalId: string, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const r = await this.admin('POST', '/role-assignments', { scope, roleName, principalId, ...extra });
    if (r.status !== 201) throw new Error(`seeding role assignment failed: ${r.text}`);
    return r.json;
  }

  close(): Promise<void> {
    return this.running.close();
  }
}

export async function startTestEmulator(opts: EmulatorOptions = {}): Promise<TestEmulator> {
  return new TestEmulator(await startEmulator(opts));
}
