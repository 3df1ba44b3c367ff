/**
 * The check contract of forward-auth mode against the real `serve --mode forward-auth` process:
 * trusted proxies, each profile's original-request headers, the Envoy ext_authz HTTP contract, the
 * answers' headers, and that the check's body is never read.
 */
import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_TENANT_ID, TEST_USER_OID as ALICE, TestIdp } from '../fixtures/idp.js';
import { RawClient, startUpstream, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, type ServeProcess } from '../e2e/harness.js';
import { startForwardAuth } from './harness.js';

const API_KEY = 'fndry-sk-0123456789abcdef0123456789abcdef';
const IDENTITY = [
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
  'x-ms-client-principal-idp',
  'x-ms-client-principal',
  'x-foundry-auth-principal-type',
  'x-foundry-auth-tenant-id',
];

let idp: TestIdp;
let token: string;
const started: ServeProcess[] = [];
let nginxProfile: ServeProcess;
let forwardedProfile: ServeProcess;
let envoyProfile: ServeProcess;
let envoyNoPrefix: ServeProcess;

beforeAll(async () => {
  idp = await TestIdp.start();
  const keys = join(mkdtempSync(join(tmpdir(), 'fa-keys-')), 'keys');
  writeFileSync(keys, `${API_KEY}\n`);
  const rbacFile = roleAssignmentsFile();
  nginxProfile = await startForwardAuth(idp, 'nginx', { rbacFile, flags: { 'api-keys-file': keys } });
  forwardedProfile = await startForwardAuth(idp, 'forwarded', { rbacFile, flags: { 'forward-authorization': 'true', 'keep-alive-timeout': '2h' } });
  envoyProfile = await startForwardAuth(idp, 'envoy', { rbacFile, flags: { 'forward-auth-path-prefix': '/authz' } });
  envoyNoPrefix = await startForwardAuth(idp, 'envoy', { rbacFile });
  started.push(nginxProfile, forwardedProfile, envoyProfile, envoyNoPrefix);
  for (const s of started) await s.ready();
  token = await idp.mint();
}, 60_000);

afterAll(async () => {
  for (const s of started) await s.stop('SIGKILL');
  await idp?.close();
});

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One check over node:http, optionally from another local address (127.0.0.2 is loopback too). */
function check(url: string, method: string, path: string, headers: Record<string, string>, localAddress?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = httpRequest(
      { host: u.hostname, port: u.port, method, path, headers, ...(localAddress !== undefined ? { localAddress } : {}) },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function codeOf(reply: Reply): string | undefined {
  return (JSON.parse(reply.body) as { error?: { code?: string } }).error?.code;
}

describe('trusted proxies', () => {
  it('answers a check from outside --trusted-proxies with 403 untrusted_proxy and never evaluates it', async () => {
    const reply = await check(
      nginxProfile.url,
      'GET',
      '/auth',
      { authorization: `Bearer ${token}`, 'x-original-method': 'GET', 'x-original-uri': '/v1/models' },
      '127.0.0.2',
    );
    expect(reply.status).toBe(403);
    expect(codeOf(reply)).toBe('untrusted_proxy');
    expect(reply.headers['x-foundry-auth-error']).toBe('untrusted_proxy');
    expect(reply.headers['cache-control']).toBe('no-store');
    expect(reply.headers.connection).toBe('close');
    for (const name of IDENTITY) expect(reply.headers[name]).toBeUndefined();
    const line = await nginxProfile.waitForLog((l) => l.msg === 'request' && l.requestId === reply.headers['x-request-id']);
    expect(line).toMatchObject({ mode: 'forward-auth', status: 403, code: 'untrusted_proxy' });
    // Never evaluated: no original request read, no principal, no authentication time.
    expect(line.principal).toBeUndefined();
    expect(line.path).toBeUndefined();
    expect((line.timings as Record<string, unknown>).authMs).toBeUndefined();
  });

  it('answers the same check from a trusted address', async () => {
    const reply = await check(
      nginxProfile.url,
      'GET',
      '/auth',
      { authorization: `Bearer ${token}`, 'x-original-method': 'GET', 'x-original-uri': '/v1/models' },
      '127.0.0.1',
    );
    expect(reply.status).toBe(200);
    // Kept open longer than any proxy keeps an idle connection, so the proxy is the one to close it.
    expect(reply.headers.connection).toBe('keep-alive');
    // --keep-alive-timeout's default, 65 minutes: more than Envoy's 1 h.
    expect(reply.headers['keep-alive']).toBe('timeout=3900');
  });

  it('closes the connection of an untrusted peer after the answer', async () => {
    const u = new URL(nginxProfile.url);
    const socket = connect({ host: u.hostname, port: Number(u.port), localAddress: '127.0.0.2' });
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
    socket.write(`GET /auth HTTP/1.1\r\nHost: ${u.host}\r\nX-Original-Method: GET\r\nX-Original-URI: /v1/models\r\n\r\n`);
    // Resolves only when foundry-auth ends the connection.
    await once(socket, 'end');
    socket.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 403 /);
    expect(received).toContain('x-foundry-auth-error: untrusted_proxy');
  });
});

describe('the answers', () => {
  it('allow: 200, empty body, every identity header, plane, action, request ID, cache lifetime, credential removal for Envoy', async () => {
    const reply = await check(nginxProfile.url, 'GET', '/auth', {
      authorization: `Bearer ${token}`,
      'x-original-method': 'POST',
      'x-original-uri': '/v1/chat/completions?stream=true',
    });
    expect(reply.status).toBe(200);
    expect(reply.body).toBe('');
    expect(reply.headers['x-ms-client-principal-id']).toBe(ALICE);
    expect(reply.headers['x-foundry-auth-principal-type']).toBe('user');
    expect(reply.headers['x-foundry-auth-tenant-id']).toBe(TEST_TENANT_ID);
    expect(reply.headers['x-ms-client-principal-idp']).toBe('aad');
    expect(reply.headers['x-foundry-auth-plane']).toBe('data');
    expect(reply.headers['x-foundry-auth-action']).toBe('Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action');
    expect(reply.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(reply.headers['x-envoy-auth-headers-to-remove']).toBe('authorization, api-key');
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(String(reply.headers['cache-control']))?.[1]);
    expect(maxAge).toBeGreaterThan(250);
    expect(maxAge).toBeLessThanOrEqual(300);
    expect(reply.headers['x-accel-expires']).toBe(String(maxAge));
    const line = await nginxProfile.waitForLog((l) => l.msg === 'request' && l.requestId === reply.headers['x-request-id']);
    expect(line).toMatchObject({ mode: 'forward-auth', method: 'POST', path: '/v1/chat/completions', decision: 'allow', status: 200 });
  });

  it("allow: the lifetime is cut at the token's exp when that comes before the RBAC decision's end", async () => {
    const soon = await idp.mint({ claims: { exp: Math.floor(Date.now() / 1000) + 100 } });
    const reply = await check(nginxProfile.url, 'GET', '/auth', {
      authorization: `Bearer ${soon}`,
      'x-original-method': 'GET',
      'x-original-uri': '/v1/models',
    });
    expect(reply.status).toBe(200);
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(String(reply.headers['cache-control']))?.[1]);
    expect(maxAge).toBeGreaterThanOrEqual(95);
    expect(maxAge).toBeLessThanOrEqual(100);
  });

  it('allow for an API key: every identity header present, empty where it does not apply', async () => {
    const reply = await check(nginxProfile.url, 'GET', '/auth', { 'api-key': API_KEY, 'x-original-method': 'GET', 'x-original-uri': '/v1/models' });
    expect(reply.status).toBe(200);
    for (const name of IDENTITY) expect(reply.headers[name], name).toBeDefined();
    expect(reply.headers['x-foundry-auth-principal-type']).toBe('api-key');
    expect(reply.headers['x-foundry-auth-tenant-id']).toBe('');
    expect(reply.headers['x-ms-client-principal']).toBe('');
    expect(reply.headers['cache-control']).toBe('private, max-age=5');
  });

  it('allow for a public path: anonymous, every other identity header empty', async () => {
    const reply = await check(nginxProfile.url, 'GET', '/auth', { 'x-original-method': 'GET', 'x-original-uri': '/healthz' });
    expect(reply.status).toBe(200);
    expect(reply.headers['x-foundry-auth-principal-type']).toBe('anonymous');
    for (const name of IDENTITY.filter((n) => n !== 'x-foundry-auth-principal-type')) expect(reply.headers[name], name).toBe('');
  });

  it('403: the deny lifetime; 401 and other refusals: no-store; every refusal names its code', async () => {
    const denied = await check(nginxProfile.url, 'GET', '/auth', {
      authorization: `Bearer ${token}`,
      'x-original-method': 'GET',
      'x-original-uri': '/api/v1/models',
    });
    expect(denied.status).toBe(403);
    expect(denied.headers['x-foundry-auth-error']).toBe('insufficient_permissions');
    expect(denied.headers['cache-control']).toMatch(/^private, max-age=(30|29)$/);
    const unauthenticated = await check(nginxProfile.url, 'GET', '/auth', { 'x-original-method': 'GET', 'x-original-uri': '/v1/models' });
    expect(unauthenticated.status).toBe(401);
    expect(unauthenticated.headers['x-foundry-auth-error']).toBe('missing_credentials');
    expect(unauthenticated.headers['cache-control']).toBe('no-store');
    expect(unauthenticated.headers['x-accel-expires']).toBe('0');
    expect(unauthenticated.headers['www-authenticate']).toBe('Bearer realm="foundry-local"');
  });

  it('a check Node cannot parse, too large or CONNECT: the same refusal fields, and the connection closed', async () => {
    const u = new URL(nginxProfile.url);
    const oversized = `X-Padding: ${'p'.repeat(17_000)}\r\n`;
    for (const [head, status, code] of [
      [`GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-Method: GET\r\nX-Original-URI: /v1/models\r\n${oversized}\r\n`, 431, 'invalid_request'],
      ['GET /auth HTTP/1.1\r\nHost: x\r\nX-Original-Method GET\r\n\r\n', 400, 'invalid_request'],
      ['CONNECT upstream:8000 HTTP/1.1\r\nHost: upstream:8000\r\n\r\n', 405, 'method_not_allowed'],
    ] as const) {
      const socket = connect({ host: u.hostname, port: Number(u.port) });
      let received = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
      socket.write(head);
      // Resolves only when foundry-auth ends the connection.
      await once(socket, 'end');
      socket.destroy();
      const [fields = '', body = ''] = received.split('\r\n\r\n');
      expect(fields).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(fields).toContain(`\r\nx-foundry-auth-error: ${code}\r\n`);
      expect(fields).toContain('\r\ncache-control: no-store\r\n');
      expect(fields).toContain('\r\nx-accel-expires: 0\r\n');
      expect(fields).toMatch(/\r\nx-request-id: [0-9a-f-]{36}(\r\n|$)/);
      expect((JSON.parse(body) as { error: { code: string } }).error.code).toBe(code);
    }
  });

  it('--forward-authorization: no x-envoy-auth-headers-to-remove; --keep-alive-timeout: the idle connection stays that long', async () => {
    const reply = await check(forwardedProfile.url, 'GET', '/', {
      authorization: `Bearer ${token}`,
      'x-forwarded-method': 'GET',
      'x-forwarded-uri': '/v1/models',
    });
    expect(reply.status).toBe(200);
    expect(reply.headers['x-envoy-auth-headers-to-remove']).toBeUndefined();
    expect(reply.headers['x-accel-expires']).toBeUndefined();
    // This profile runs with --keep-alive-timeout 2h.
    expect(reply.headers.connection).toBe('keep-alive');
    expect(reply.headers['keep-alive']).toBe('timeout=7200');
  });

  it('labels the metrics with the mode', async () => {
    const res = await request(`${nginxProfile.adminUrl}/metrics`);
    const text = await res.body.text();
    expect(text).toMatch(/foundry_auth_requests_total\{[^}]*mode="forward-auth"[^}]*\} \d+/);
  });
});

describe('the original request, per profile', () => {
  it.each([
    ['nginx', 'X-Original-Method', { 'x-original-uri': '/v1/models' }],
    ['nginx', 'X-Original-URI', { 'x-original-method': 'GET' }],
    ['forwarded', 'X-Forwarded-Method', { 'x-forwarded-uri': '/v1/models' }],
    ['forwarded', 'X-Forwarded-Uri', { 'x-forwarded-method': 'GET' }],
  ])('%s profile without %s: 500 forward_auth_misconfigured naming it', async (profile, header, headers) => {
    const url = profile === 'nginx' ? nginxProfile.url : forwardedProfile.url;
    const reply = await check(url, 'GET', '/', { authorization: `Bearer ${token}`, ...headers });
    expect(reply.status).toBe(500);
    expect(codeOf(reply)).toBe('forward_auth_misconfigured');
    expect(reply.headers['x-foundry-auth-error']).toBe('forward_auth_misconfigured');
    expect((JSON.parse(reply.body) as { error: { message: string } }).error.message).toContain(header);
    expect(reply.headers['cache-control']).toBe('no-store');
  });

  it('refuses two copies of the original URI rather than guess between them', async () => {
    const c = await RawClient.connect(Number(new URL(nginxProfile.url).port));
    try {
      c.write(
        `GET /auth HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nX-Original-Method: GET\r\nX-Original-URI: /v1/models\r\nX-Original-URI: /healthz\r\n\r\n`,
      );
      const res = await c.readResponse();
      expect(res.status).toBe(500);
      expect(res.header('x-foundry-auth-error')).toEqual(['forward_auth_misconfigured']);
    } finally {
      c.destroy();
    }
  });

  it('ignores the check method and path in the nginx profile', async () => {
    const reply = await check(nginxProfile.url, 'DELETE', '/api/v1/everything', {
      authorization: `Bearer ${token}`,
      'x-original-method': 'GET',
      'x-original-uri': '/v1/models',
    });
    expect(reply.status).toBe(200);
  });

  it('never reads the body of a check: the answer comes without it and the connection closes', async () => {
    const c = await RawClient.connect(Number(new URL(nginxProfile.url).port));
    try {
      // Announces a body that never comes: an answer proves it was not waited for.
      c.write(
        `POST /auth HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nX-Original-Method: GET\r\nX-Original-URI: /v1/models\r\nContent-Length: 100000\r\n\r\n`,
      );
      const res = await c.readResponse();
      expect(res.status).toBe(200);
      await c.closed;
    } finally {
      c.destroy();
    }
  });
});

/**
 * A check client that does what Envoy's ext_authz filter documents for an HTTP authorization
 * service: the check reuses the original method and path (with `path_prefix` put before it),
 * carries Host, Authorization and Content-Length (0: no body), plus `allowed_headers`; only 200
 * allows; on allow, `allowed_upstream_headers` are set on the upstream request (overriding a
 * client's copy) and the headers named in `x-envoy-auth-headers-to-remove` are removed; on deny,
 * status, headers and body go to the client.
 */
async function throughEnvoy(
  authz: string,
  pathPrefix: string,
  upstream: Upstream,
  original: { method: string; path: string; headers: Record<string, string> },
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const allowedHeaders = new Set(['authorization', 'api-key']);
  const checkHeaders: Record<string, string> = { host: original.headers.host ?? 'foundry.example', 'content-length': '0' };
  for (const [name, value] of Object.entries(original.headers)) if (allowedHeaders.has(name.toLowerCase())) checkHeaders[name] = value;
  const answer = await check(authz, original.method, `${pathPrefix}${original.path}`, checkHeaders);
  if (answer.status !== 200) return answer;
  const forwarded: Record<string, string> = { ...original.headers };
  for (const name of [...IDENTITY, 'x-request-id']) {
    for (const key of Object.keys(forwarded)) if (key.toLowerCase() === name) delete forwarded[key];
    const value = answer.headers[name];
    if (typeof value === 'string') forwarded[name] = value;
  }
  const toRemove = String(answer.headers['x-envoy-auth-headers-to-remove'] ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
  for (const key of Object.keys(forwarded)) if (toRemove.includes(key.toLowerCase())) delete forwarded[key];
  return check(upstream.url, original.method, original.path, forwarded);
}

describe('the envoy profile, with a check client behaving as Envoy ext_authz (HTTP service)', () => {
  let up: Upstream;
  beforeAll(async () => {
    up = await startUpstream();
  });
  afterAll(async () => {
    await up.close();
  });

  it('allows with the original method and path after path_prefix; the upstream gets identity, not the credential', async () => {
    up.requests.length = 0;
    const res = await throughEnvoy(envoyProfile.url, '/authz', up, {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${token}`, 'x-ms-client-principal-id': 'spoofed', 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    const r = up.requests[0]!;
    expect(r.method).toBe('POST');
    expect(r.header('x-ms-client-principal-id')).toEqual([ALICE]);
    expect(r.header('authorization')).toEqual([]);
    const line = await envoyProfile.waitForLog((l) => l.msg === 'request' && l.method === 'POST' && l.path === '/v1/chat/completions');
    expect(line.decision).toBe('allow');
  });

  it('passes a deny through: status, JSON body, x-foundry-auth-error; nothing forwarded', async () => {
    up.requests.length = 0;
    const res = await throughEnvoy(envoyProfile.url, '/authz', up, {
      method: 'GET',
      path: '/api/v1/models',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(403);
    expect((JSON.parse(res.body) as { error: { code: string } }).error.code).toBe('insufficient_permissions');
    expect(res.headers['x-foundry-auth-error']).toBe('insufficient_permissions');
    expect(up.requests).toHaveLength(0);
  });

  it('a check without the configured path prefix is 400 invalid_request', async () => {
    const reply = await check(envoyProfile.url, 'GET', '/v1/models', { authorization: `Bearer ${token}` });
    expect(reply.status).toBe(400);
    expect(codeOf(reply)).toBe('invalid_request');
    expect((JSON.parse(reply.body) as { error: { message: string } }).error.message).toContain('--forward-auth-path-prefix /authz');
    expect((await check(envoyProfile.url, 'GET', '/authzv1/models', { authorization: `Bearer ${token}` })).status).toBe(400);
  });

  it('without a prefix the check request line is the original one; the canonical-path rules apply to it', async () => {
    expect((await check(envoyNoPrefix.url, 'GET', '/v1/models', { authorization: `Bearer ${token}` })).status).toBe(200);
    const reply = await check(envoyNoPrefix.url, 'GET', '/v1/%2e%2e/api/v1/models', { authorization: `Bearer ${token}` });
    expect(reply.status).toBe(400);
    expect(codeOf(reply)).toBe('invalid_path');
  });
});
