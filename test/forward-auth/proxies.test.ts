/**
 * Forward-auth end to end through real proxies started from the shipped configuration
 * (deploy/forward-auth/nginx.conf and Caddyfile): every decision row of the error table, what
 * the upstream receives (identity headers, never a client's copy), and that a refused request
 * never reaches the upstream.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TEST_TENANT_ID, TEST_USER_OID as ALICE, TestIdp } from '../fixtures/idp.js';
import { startUpstream, type RecordedRequest, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, SCOPE } from '../e2e/harness.js';
import { startCaddy, startForwardAuth, startNginx, type ProxyProcess } from './harness.js';

const API_KEY = 'fndry-sk-0123456789abcdef0123456789abcdef';
const IDENTITY = [
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
  'x-ms-client-principal-idp',
  'x-ms-client-principal',
  'x-foundry-auth-principal-type',
  'x-foundry-auth-tenant-id',
  'x-request-id',
] as const;
/** Identity headers of other gateways an upstream might trust. */
const OTHER_IDENTITY = [
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-remote-user',
  'x-ms-token-aad-access-token',
  'x-user',
  'remote-user',
  'x-webauth-user',
  'x-authenticated-user',
] as const;

interface Front {
  readonly name: string;
  readonly proxy: ProxyProcess;
  /** The proxy in front of a foundry-auth whose identity provider never answered (503 row). */
  readonly noKeys: ProxyProcess;
  /** The proxy in front of a foundry-auth whose ARM is unreachable (500 row). */
  readonly noArm: ProxyProcess;
}

let idp: TestIdp;
let up: Upstream;
const processes: { stop(): Promise<unknown> }[] = [];
const fronts: Front[] = [];
let token: string;
/** A token of the identity provider whose keys foundry-auth could never load. */
let brokenIdpToken: string;

beforeAll(async () => {
  idp = await TestIdp.start();
  up = await startUpstream();
  const brokenIdp = await TestIdp.start();
  brokenIdp.fault('discovery', { kind: 'status', status: 503 });
  processes.push({ stop: () => brokenIdp.close() });
  const keys = join(mkdtempSync(join(tmpdir(), 'fa-keys-')), 'keys');
  writeFileSync(keys, `${API_KEY}\n`);
  const flags = { 'api-keys-file': keys };
  const armDown = {
    rbac: 'arm',
    'rbac-scope': SCOPE,
    identity: 'msi-adapter',
    'msi-endpoint': 'http://127.0.0.1:9/metadata/identity/oauth2/token',
    'arm-endpoint': 'http://127.0.0.1:9',
    'rbac-timeout': '1s',
  };
  for (const [name, profile, start] of [
    ['nginx', 'nginx', (fa: string) => startNginx({ foundryAuth: fa, upstream: up.url, cache: false })],
    ['caddy', 'forwarded', (fa: string) => startCaddy({ foundryAuth: fa, upstream: up.url })],
  ] as const) {
    const fa = await startForwardAuth(idp, profile, { rbacFile: roleAssignmentsFile(), flags });
    const faNoKeys = await startForwardAuth(brokenIdp, profile);
    const faNoArm = await startForwardAuth(idp, profile, { flags: armDown });
    processes.push(fa, faNoKeys, faNoArm);
    await fa.ready();
    const proxy = await start(fa.url);
    const noKeys = await start(faNoKeys.url);
    const noArm = await start(faNoArm.url);
    processes.push(proxy, noKeys, noArm);
    fronts.push({ name, proxy, noKeys, noArm });
  }
  token = await idp.mint();
  brokenIdpToken = await brokenIdp.mint();
}, 90_000);

afterAll(async () => {
  for (const p of processes.reverse()) await p.stop();
  await up?.close();
  await idp?.close();
});

beforeEach(() => {
  up.requests.length = 0;
});

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly code: string | undefined;
}

async function send(base: string, method: string, path: string, headers: Record<string, string> = {}, body?: string): Promise<Answer> {
  const res = await request(`${base}${path}`, { method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: res.statusCode, headers: res.headers, code };
}

function bearer(t: string): Record<string, string> {
  return { authorization: `Bearer ${t}` };
}

function only(recorded: RecordedRequest[]): RecordedRequest {
  expect(recorded).toHaveLength(1);
  return recorded[0]!;
}

/** Every value the upstream received for a header, comparing names case-insensitively with `_` read as `-`. */
function received(r: RecordedRequest, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) {
    if (r.rawHeaders[i]!.toLowerCase().replace(/_/g, '-') === name) out.push(r.rawHeaders[i + 1]!);
  }
  return out;
}

/** The client's copies of every identity header in one spelling. */
function spoofs(spell: (name: string) => string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of [...IDENTITY, ...OTHER_IDENTITY]) out[spell(name)] = 'spoofed';
  return out;
}

const SPELLINGS: readonly [string, (name: string) => string][] = [
  ['lower case', (n) => n],
  ['upper case', (n) => n.toUpperCase()],
  ['title case', (n) => n.replace(/(^|-)([a-z])/g, (_, d: string, c: string) => `${d}${c.toUpperCase()}`)],
  ['"_" for "-"', (n) => n.replace(/-/g, '_')],
  ['"_" for "-", upper case', (n) => n.replace(/-/g, '_').toUpperCase()],
];

describe.each(['nginx', 'caddy'])('%s in front of foundry-auth (shipped configuration)', (name) => {
  const front = (): Front => fronts.find((f) => f.name === name)!;
  const url = (): string => front().proxy.url;

  it('allows a user with the role: the upstream gets every identity header and no credential', async () => {
    const res = await send(url(), 'POST', '/v1/chat/completions', { ...bearer(token), 'content-type': 'application/json' }, '{"model":"phi"}');
    expect(res.status).toBe(200);
    const r = only(up.requests);
    expect(r.method).toBe('POST');
    expect(r.target).toBe('/v1/chat/completions');
    expect(r.body.toString()).toBe('{"model":"phi"}');
    expect(received(r, 'x-ms-client-principal-id')).toEqual([ALICE]);
    expect(received(r, 'x-ms-client-principal-name')).toEqual(['alice@contoso.example']);
    expect(received(r, 'x-ms-client-principal-idp')).toEqual(['aad']);
    expect(received(r, 'x-foundry-auth-principal-type')).toEqual(['user']);
    expect(received(r, 'x-foundry-auth-tenant-id')).toEqual([TEST_TENANT_ID]);
    const principal = JSON.parse(Buffer.from(received(r, 'x-ms-client-principal')[0]!, 'base64').toString()) as {
      claims: { typ: string; val: string }[];
    };
    expect(principal.claims).toContainEqual({ typ: 'oid', val: ALICE });
    expect(received(r, 'x-request-id')[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(received(r, 'authorization')).toEqual([]);
  });

  it('allows a token with the most group claims Entra puts in one (200, an 11 KB Authorization header)', async () => {
    const groups = Array.from({ length: 200 }, (_, i) => `0000${i.toString(16).padStart(4, '0')}-0000-4000-8000-00000000000${i % 10}`);
    const big = await idp.mint({ claims: { groups } });
    expect(big.length).toBeGreaterThan(10_000);
    const res = await send(url(), 'GET', '/v1/models', bearer(big));
    expect(res.status).toBe(200);
    expect(received(only(up.requests), 'x-ms-client-principal-id')).toEqual([ALICE]);
  });

  it('refuses headers too large for foundry-auth (over 16 KiB) with 431 invalid_request, not as an outage', async () => {
    // Each line fits the proxy's limits (nginx: 16k per line as shipped); together they pass foundry-auth's 16 KiB.
    const padding = Object.fromEntries(Array.from({ length: 3 }, (_, i) => [`x-padding-${i}`, 'p'.repeat(6000)]));
    const res = await send(url(), 'GET', '/v1/models', { ...bearer(token), ...padding });
    expect(res.status).toBe(431);
    expect(res.code).toBe('invalid_request');
    expect(res.headers['x-foundry-auth-error']).toBe('invalid_request');
    expect(up.requests).toEqual([]);
  });

  it('allows an API key on the data plane: principal type api-key, no tenant', async () => {
    const res = await send(url(), 'GET', '/v1/models', { 'api-key': API_KEY, 'x-foundry-auth-tenant-id': 'spoofed' });
    expect(res.status).toBe(200);
    const r = only(up.requests);
    expect(received(r, 'x-foundry-auth-principal-type')).toEqual(['api-key']);
    expect(received(r, 'x-ms-client-principal-idp')).toEqual(['api-key']);
    // Empty when it does not apply: absent or empty, never the client's value.
    expect(received(r, 'x-foundry-auth-tenant-id').filter((v) => v !== '')).toEqual([]);
    expect(received(r, 'x-ms-client-principal').filter((v) => v !== '')).toEqual([]);
    expect(received(r, 'api-key')).toEqual([]);
  });

  it('allows a public path without credentials as anonymous', async () => {
    const res = await send(url(), 'GET', '/healthz', { 'x-ms-client-principal-id': 'spoofed' });
    expect(res.status).toBe(200);
    const r = only(up.requests);
    expect(received(r, 'x-foundry-auth-principal-type')).toEqual(['anonymous']);
    expect(received(r, 'x-ms-client-principal-id').filter((v) => v !== '')).toEqual([]);
  });

  it.each(SPELLINGS)('never passes a client copy of an identity header (%s), for a user or an API key', async (_spelling, spell) => {
    for (const credential of [bearer(token), { 'api-key': API_KEY }]) {
      up.requests.length = 0;
      const res = await send(url(), 'GET', '/v1/models', { ...credential, ...spoofs(spell) });
      expect(res.status).toBe(200);
      const r = only(up.requests);
      for (const header of [...IDENTITY, ...OTHER_IDENTITY]) expect(received(r, header), header).not.toContain('spoofed');
    }
  });

  it('authorizes what the proxy forwards, not a client X-Original-URI / X-Forwarded-Uri', async () => {
    const forged = { 'x-original-uri': '/v1/models', 'x-original-method': 'GET', 'x-forwarded-uri': '/v1/models', 'x-forwarded-method': 'GET' };
    // Alice may read models (data plane) but not the control plane.
    const denied = await send(url(), 'GET', '/api/v1/models', { ...bearer(token), ...forged });
    expect(denied).toMatchObject({ status: 403, code: 'insufficient_permissions' });
    // Nor can a forged public path skip authentication.
    const unauthenticated = await send(url(), 'GET', '/v1/models', { 'x-original-uri': '/healthz', 'x-forwarded-uri': '/healthz' });
    expect(unauthenticated).toMatchObject({ status: 401, code: 'missing_credentials' });
    expect(up.requests).toHaveLength(0);
  });

  const bad = (): Promise<string> => idp.mint({ claims: { aud: 'api://someone-else' } });
  it.each<[string, number, string, () => Promise<[string, string, Record<string, string>]>]>([
    ['a non-canonical path', 400, 'invalid_path', async () => ['GET', '/v1//models', bearer(token)]],
    ['an unknown route', 404, 'route_not_found', async () => ['GET', '/v1/unknown', bearer(token)]],
    ['a method the route does not take', 405, 'method_not_allowed', async () => ['DELETE', '/v1/models', bearer(token)]],
    ['Authorization and api-key together', 400, 'ambiguous_auth', async () => ['GET', '/v1/models', { ...bearer(token), 'api-key': API_KEY }]],
    ['a token also in the query', 400, 'invalid_request', async () => ['GET', `/v1/models?access_token=${token}`, bearer(token)]],
    ['no credential', 401, 'missing_credentials', async () => ['GET', '/v1/models', {}]],
    ['an unknown API key', 401, 'invalid_api_key', async () => ['GET', '/v1/models', { 'api-key': 'fndry-sk-ffffffffffffffffffffffffffffffff' }]],
    ['a token for another audience', 401, 'invalid_token', async () => ['GET', '/v1/models', bearer(await bad())]],
    ['a principal without the action', 403, 'insufficient_permissions', async () => ['GET', '/api/v1/models', bearer(token)]],
  ])('refuses %s with %i %s; the upstream gets nothing', async (_what, status, code, build) => {
    const [method, path, headers] = await build();
    const res = await send(url(), method, path, headers);
    expect(res.status).toBe(status);
    expect(res.code).toBe(code);
    expect(res.headers['x-foundry-auth-error']).toBe(code);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="foundry-local"/);
    if (code === 'invalid_token') expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    expect(up.requests).toHaveLength(0);
  });

  it('keeps 503 identity_provider_unavailable distinguishable (Retry-After) and forwards nothing', async () => {
    const res = await send(front().noKeys.url, 'GET', '/v1/models', bearer(brokenIdpToken));
    expect(res).toMatchObject({ status: 503, code: 'identity_provider_unavailable' });
    expect(res.headers['x-foundry-auth-error']).toBe('identity_provider_unavailable');
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(up.requests).toHaveLength(0);
  });

  it('keeps 500 rbac_check_unavailable distinguishable and forwards nothing', async () => {
    const res = await send(front().noArm.url, 'GET', '/v1/models', bearer(token));
    expect(res).toMatchObject({ status: 500, code: 'rbac_check_unavailable' });
    expect(res.headers['x-foundry-auth-error']).toBe('rbac_check_unavailable');
    expect(up.requests).toHaveLength(0);
  });
});
