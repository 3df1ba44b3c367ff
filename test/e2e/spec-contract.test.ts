/**
 * SPEC section 2 settings that other e2e tests only exercise at their defaults, checked through the
 * real `serve` process with non-default values: a flag that parsed but never reached its stage
 * would pass every default-valued test. Plus the section 3 error contract of the 5xx rows, the
 * section 7 metrics and audit fields not pinned elsewhere, --routes-file through the process, and SIGINT.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  CONSUMERS_TENANT_ID,
  OTHER_TENANT_ID,
  TEST_APP_OID as APP,
  TEST_CLIENT_ID,
  TEST_TENANT_ID,
  TEST_USER_OID as ALICE,
  TestIdp,
} from '../fixtures/idp.js';
import { RawClient, startUpstream, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, runCli, startServe, staticServeFlags, type ServeProcess } from './harness.js';

const BOB = 'b0b0b0b0-0000-4000-8000-000000000002'; // Cognitive Services Contributor
const APP_ID = '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a'; // the fixture app's azp
const AUDIENCE = 'api://foundry-edge-store-42';
const SCOPE_NAME = 'inference.invoke';
const APP_ROLE = 'Edge.Invoke';
const CHAT = JSON.stringify({ model: 'phi-4-mini', messages: [{ role: 'user', content: 'hi' }] });

let idp: TestIdp;
let dataUp: Upstream;
let controlUp: Upstream;
let sidecar: ServeProcess;
let rbacFile: string;

beforeAll(async () => {
  // ALICE (the fixture's user) and APP (the fixture's app): OpenAI User.
  rbacFile = roleAssignmentsFile([
    `{ principalId: ${ALICE}, role: Cognitive Services OpenAI User }`,
    `{ principalId: ${BOB}, role: Cognitive Services Contributor }`,
    `{ principalId: ${APP}, role: Cognitive Services OpenAI User }`,
  ]);
  idp = await TestIdp.start({ tenants: [TEST_TENANT_ID, OTHER_TENANT_ID, CONSUMERS_TENANT_ID] });
  dataUp = await startUpstream();
  controlUp = await startUpstream();
  sidecar = await startServe({
    upstream: dataUp.url,
    'control-upstream': controlUp.url,
    'tenant-id': TEST_TENANT_ID,
    'client-id': TEST_CLIENT_ID,
    'allowed-tenants': `${TEST_TENANT_ID},${OTHER_TENANT_ID}`,
    authority: idp.authority,
    audiences: AUDIENCE,
    'required-scope': SCOPE_NAME,
    'required-app-role': APP_ROLE,
    'clock-skew': '5s',
    'public-paths': '/ping',
    'forward-authorization': 'true',
    'upstream-headers-timeout': '400ms',
    'upstream-body-timeout': '500ms',
    rbac: 'static',
    'role-assignments-file': rbacFile,
  });
  await sidecar.ready();
});

afterAll(async () => {
  await sidecar?.stop('SIGKILL');
  await dataUp?.close();
  await controlUp?.close();
  await idp?.close();
});

beforeEach(() => {
  dataUp.respond({ kind: 'echo' });
  controlUp.respond({ kind: 'echo' });
});

interface Sent {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  error?: { code: string; message: string; type: string };
}

async function send(method: string, path: string, headers: Record<string, string> = {}, body?: string, base = sidecar.url): Promise<Sent> {
  const res = await request(`${base}${path}`, { method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  let error: Sent['error'];
  try {
    error = (JSON.parse(text) as { error?: Sent['error'] }).error;
  } catch {
    error = undefined;
  }
  return { status: res.statusCode, headers: res.headers, ...(error ? { error } : {}) };
}

/** A user token valid for this sidecar's non-default settings, with overrides. */
function userToken(claims: Record<string, unknown> = {}, tid?: string): Promise<string> {
  return idp.mint({ ...(tid ? { tid } : {}), claims: { aud: AUDIENCE, scp: SCOPE_NAME, ...claims } });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const now = (): number => Math.floor(Date.now() / 1000);

async function expectInvalidToken(token: string, message: RegExp): Promise<void> {
  const res = await send('GET', '/v1/models', bearer(token));
  expect({ status: res.status, code: res.error?.code }).toEqual({ status: 401, code: 'invalid_token' });
  expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="foundry-local", error="invalid_token", error_description="/);
  expect(res.error?.message).toMatch(message);
}

describe('SPEC 2 + 4: non-default Entra settings reach the token validator', () => {
  it('--audiences replaces the default <client-id>,api://<client-id>', async () => {
    expect((await send('GET', '/v1/models', bearer(await userToken()))).status).toBe(200);
    await expectInvalidToken(await userToken({ aud: TEST_CLIENT_ID }), /aud|audience|resource/i);
    await expectInvalidToken(await userToken({ aud: `api://${TEST_CLIENT_ID}` }), /aud|audience|resource/i);
  });

  it('--required-scope and --required-app-role replace foundry_access and FoundryInferenceAccess', async () => {
    await expectInvalidToken(await userToken({ scp: 'foundry_access' }), new RegExp(SCOPE_NAME.replace('.', '\\.')));
    expect((await send('GET', '/v1/models', bearer(await userToken({ scp: `User.Read ${SCOPE_NAME}` })))).status).toBe(200);
    await expectInvalidToken(await idp.mint({ kind: 'app', claims: { aud: AUDIENCE } }), new RegExp(APP_ROLE.replace('.', '\\.')));
    expect((await send('GET', '/v1/models', bearer(await idp.mint({ kind: 'app', claims: { aud: AUDIENCE, roles: [APP_ROLE] } })))).status).toBe(200);
  });

  it('--clock-skew 5s: a token expired 60 s ago or valid only in 60 s is refused (the 300 s default would accept both)', async () => {
    await expectInvalidToken(await userToken({ exp: now() - 60, iat: now() - 3600, nbf: now() - 3600 }), /expired/i);
    await expectInvalidToken(await userToken({ nbf: now() + 60, iat: now() }), /not (yet )?valid|nbf/i);
    expect((await send('GET', '/v1/models', bearer(await userToken({ exp: now() + 60 })))).status).toBe(200);
  });

  it('--allowed-tenants: a second listed tenant is accepted, an unlisted one is refused even with a valid signature', async () => {
    expect(await send('GET', '/v1/models', bearer(await userToken({}, OTHER_TENANT_ID)))).toMatchObject({ status: 200 });
    expect(dataUp.requests.at(-1)!.header('x-foundry-auth-tenant-id')).toEqual([OTHER_TENANT_ID]);
    await expectInvalidToken(await userToken({}, CONSUMERS_TENANT_ID), /tenant/i);
  });
});

describe('SPEC 2 + 5 + 7: non-default forwarding settings', () => {
  it('--public-paths replaces /healthz,/readyz: /ping is forwarded without credentials, /healthz no longer is', async () => {
    const before = dataUp.requests.length;
    const ping = await send('GET', '/ping', { 'x-ms-client-principal-id': ALICE });
    expect(ping.status).toBe(200);
    expect(dataUp.requests.length).toBe(before + 1);
    expect(dataUp.requests.at(-1)!.target).toBe('/ping');
    expect(dataUp.requests.at(-1)!.header('x-ms-client-principal-id')).toEqual([]);
    const healthz = await send('GET', '/healthz');
    expect(healthz.status).not.toBe(200);
    expect(healthz.error?.code).toMatch(/^(route_not_found|missing_credentials)$/);
    expect(dataUp.requests.length).toBe(before + 1);
  });

  it('--control-upstream: the control plane goes there, the data plane and public paths to --upstream, paths byte for byte', async () => {
    const [dataBefore, controlBefore] = [dataUp.requests.length, controlUp.requests.length];
    const bob = await userToken({ oid: BOB });
    expect((await send('GET', '/api/v1/namespaces/ns/deployments?limit=5', bearer(bob))).status).toBe(200);
    expect(controlUp.requests.length).toBe(controlBefore + 1);
    expect(controlUp.requests.at(-1)!.target).toBe('/api/v1/namespaces/ns/deployments?limit=5');
    expect((await send('POST', '/v1/chat/completions', { ...bearer(bob), 'content-type': 'application/json' }, CHAT)).status).toBe(200);
    expect((await send('GET', '/ping')).status).toBe(200);
    expect(dataUp.requests.slice(dataBefore).map((r) => r.target)).toEqual(['/v1/chat/completions', '/ping']);
    expect(controlUp.requests.length).toBe(controlBefore + 1);
  });

  it("--forward-authorization true passes the caller's Authorization upstream unchanged", async () => {
    const token = await userToken();
    expect((await send('GET', '/v1/models', bearer(token))).status).toBe(200);
    expect(dataUp.requests.at(-1)!.header('authorization')).toEqual([`Bearer ${token}`]);
  });

  it('--upstream-body-timeout: a stream silent for longer is cut after the bytes already sent, nothing invented', async () => {
    dataUp.respond({ kind: 'manual' });
    const pending = request(`${sidecar.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { ...bearer(await userToken()), 'content-type': 'application/json' },
      body: '{"stream":true}',
    });
    const exchange = await dataUp.nextExchange();
    exchange.event('{"n":0}');
    const res = await pending;
    expect(res.statusCode).toBe(200);
    let received = '';
    const started = Date.now();
    // Without the 500 ms body timeout (default 300 s) this never ends and the test times out.
    await expect(
      (async () => {
        for await (const chunk of res.body) received += Buffer.from(chunk as Buffer).toString();
      })(),
    ).rejects.toThrow();
    expect(received).toBe('data: {"n":0}\n\n');
    expect(Date.now() - started).toBeLessThan(5_000);
    exchange.end();
  });

  it('5xx rows of SPEC 3 keep the error contract: 504 upstream_timeout is server_error JSON with x-request-id', async () => {
    dataUp.respond({ kind: 'hold' });
    const res = await send('GET', '/v1/models', bearer(await userToken()));
    expect({ status: res.status, code: res.error?.code, type: res.error?.type }).toEqual({
      status: 504,
      code: 'upstream_timeout',
      type: 'server_error',
    });
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers['www-authenticate']).toBeUndefined();
  });
});

describe('SPEC 7: metrics and the audit line', () => {
  function value(metrics: string, series: string): number {
    const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  }
  const scrape = async (): Promise<string> => (await request(`${sidecar.adminUrl}/metrics`)).body.text();

  it('counts RBAC cache hits, upstream latency by plane and rejections by plane/status/code', async () => {
    const token = await userToken();
    expect((await send('GET', '/v1/models', bearer(token))).status).toBe(200);
    const before = await scrape();
    expect((await send('GET', '/v1/models', bearer(token))).status).toBe(200);
    expect((await send('GET', '/v1/models', bearer(await userToken({ scp: 'User.Read' })))).status).toBe(401);
    const after = await scrape();
    const delta = (series: string): number => value(after, series) - value(before, series);
    expect(delta('foundry_auth_rbac_lookups_total{source="static",cache="hit",decision="allow"}')).toBe(1);
    expect(delta('foundry_auth_upstream_duration_seconds_count{plane="data"}')).toBe(1);
    expect(delta('foundry_auth_requests_total{plane="data",status="200",code=""}')).toBe(1);
    expect(delta('foundry_auth_requests_total{plane="data",status="401",code="invalid_token"}')).toBe(1);
  });

  it('counts requests refused before any route under plane "none": CONNECT (405) and a malformed request (400)', async () => {
    const port = Number(new URL(sidecar.url).port);
    const before = await scrape();
    const connect = await RawClient.connect(port);
    connect.write('CONNECT upstream:8000 HTTP/1.1\r\nHost: upstream:8000\r\n\r\n');
    const refusedConnect = await connect.readResponse();
    expect(refusedConnect.status).toBe(405);
    await connect.closed;
    const malformed = await RawClient.connect(port);
    malformed.write('GET /v1/models HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n');
    const refusedMalformed = await malformed.readResponse();
    expect(refusedMalformed.status).toBe(400);
    await malformed.closed;
    // Like every other error answer: never stored by a cache in between.
    for (const refused of [refusedConnect, refusedMalformed]) expect(refused.header('cache-control')).toEqual(['no-store']);
    const after = await scrape();
    const delta = (series: string): number => value(after, series) - value(before, series);
    expect(delta('foundry_auth_requests_total{plane="none",status="405",code="method_not_allowed"}')).toBe(1);
    expect(delta('foundry_auth_requests_total{plane="none",status="400",code="invalid_request"}')).toBe(1);
    // A second read adds nothing: each read publishes only what was counted since the last.
    expect(value(await scrape(), 'foundry_auth_requests_total{plane="none",status="400",code="invalid_request"}')).toBe(
      value(after, 'foundry_auth_requests_total{plane="none",status="400",code="invalid_request"}'),
    );
  });

  it('the audit line names the route, the app ID, every timing and the cache outcomes', async () => {
    const token = await idp.mint({ kind: 'app', claims: { aud: AUDIENCE, roles: [APP_ROLE] } });
    await send('POST', '/v1/chat/completions?api-version=2024-10-21', { ...bearer(token), 'content-type': 'application/json' }, CHAT);
    const second = await send('POST', '/v1/chat/completions', { ...bearer(token), 'content-type': 'application/json' }, CHAT);
    expect(second.status).toBe(200);
    const line = await sidecar.waitForLog((l) => l.msg === 'request' && l.requestId === second.headers['x-request-id']);
    expect(line).toMatchObject({
      path: '/v1/chat/completions',
      route: expect.stringContaining('/v1/chat/completions') as unknown,
      plane: 'data',
      principal: { type: 'app', oid: APP, tid: TEST_TENANT_ID, appid: APP_ID },
      decision: 'allow',
      cache: { token: 'hit', rbac: 'hit' },
    });
    expect(Object.keys(line.timings as object).sort()).toEqual(['authMs', 'rbacMs', 'totalMs', 'upstreamFirstByteMs']);
    expect(sidecar.stdout).not.toContain(token.split('.')[2]!);
  });
});

describe('SPEC 3 + 7: a refused upstream and SIGINT', () => {
  it('502 upstream_unavailable is server_error JSON with x-request-id; SIGINT exits 0 like SIGTERM', async () => {
    const gone = await startUpstream();
    const deadUrl = gone.url;
    await gone.close();
    const dead = await startServe(staticServeFlags(idp, deadUrl, rbacFile));
    try {
      await dead.ready();
      const res = await send('GET', '/v1/models', bearer(await idp.mint()), undefined, dead.url);
      expect({ status: res.status, code: res.error?.code, type: res.error?.type }).toEqual({
        status: 502,
        code: 'upstream_unavailable',
        type: 'server_error',
      });
      expect(res.headers['content-type']).toBe('application/json');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(await dead.stop('SIGINT')).toBe(0);
    } finally {
      await dead.stop('SIGKILL');
    }
  });
});

describe('SPEC 5: --routes-file through the process', () => {
  const OPENAI = 'Microsoft.CognitiveServices/accounts/OpenAI';

  function routesFile(body: string): string {
    const file = join(mkdtempSync(join(tmpdir(), 'fa-spec-routes-')), 'routes.yaml');
    writeFileSync(file, body);
    return file;
  }

  it("mode: replace routes and authorizes by the file's actions; the defaults are 404 and never forwarded", async () => {
    const file = routesFile(`mode: replace
routes:
  - methods: [POST]
    path: /score/{model}
    plane: data
    action: ${OPENAI}/deployments/completions/action
  - methods: [POST]
    path: /admin/reload
    plane: control
    action: Microsoft.CognitiveServices/accounts/deployments/write
`);
    const routed = await startServe({ ...staticServeFlags(idp, dataUp.url, rbacFile), 'routes-file': file });
    try {
      await routed.ready();
      const alice = bearer(await idp.mint());
      const before = dataUp.requests.length;
      expect((await send('POST', '/score/phi-4-mini?x=1', { ...alice, 'content-type': 'application/json' }, '{}', routed.url)).status).toBe(200);
      expect(dataUp.requests.at(-1)!.target).toBe('/score/phi-4-mini?x=1');
      const chat = await send('POST', '/v1/chat/completions', { ...alice, 'content-type': 'application/json' }, CHAT, routed.url);
      expect({ status: chat.status, code: chat.error?.code }).toEqual({ status: 404, code: 'route_not_found' });
      const write = await send('POST', '/admin/reload', alice, '{}', routed.url);
      expect({ status: write.status, code: write.error?.code }).toEqual({ status: 403, code: 'insufficient_permissions' });
      expect(write.error?.message).toContain('Microsoft.CognitiveServices/accounts/deployments/write');
      expect(dataUp.requests.length).toBe(before + 1);
    } finally {
      await routed.stop('SIGKILL');
    }
  });

  it('an invalid routes file stops start-up with exit 2, naming the flag and the env variable', async () => {
    const file = routesFile('routes:\n  - methods: [POST]\n    path: /v1/../admin\n    plane: data\n    action: x\n');
    const r = await runCli([
      'serve',
      '--upstream',
      dataUp.url,
      '--tenant-id',
      TEST_TENANT_ID,
      '--client-id',
      TEST_CLIENT_ID,
      '--authority',
      idp.authority,
      '--rbac',
      'static',
      '--role-assignments-file',
      rbacFile,
      '--routes-file',
      file,
      '--listen',
      '127.0.0.1:0',
      '--admin-listen',
      '127.0.0.1:0',
    ]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines.every((l) => l.startsWith('foundry-auth serve: --routes-file / FOUNDRY_AUTH_ROUTES_FILE:'))).toBe(true);
  });
});
