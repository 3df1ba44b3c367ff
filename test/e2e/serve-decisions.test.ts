/**
 * SPEC section 3, row by row, through the real `serve` process: status, error.code,
 * WWW-Authenticate, x-request-id, and that the upstream received nothing for a rejected request.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OTHER_TENANT_ID, TEST_APP_OID as APP, TEST_CLIENT_ID, TEST_TENANT_ID, TEST_USER_OID as ALICE, type TestIdp } from '../fixtures/idp.js';
import { RawClient, type Upstream } from '../fixtures/upstream.js';
import { rawRequest, roleAssignmentsFile, SCOPE, startStaticStack, SUBSCRIPTION_ID as SUB, type ServeProcess, type StaticStack } from './harness.js';

const BOB = 'b0b0b0b0-0000-4000-8000-000000000002'; // Cognitive Services Contributor
const CAROL = 'ca401ca4-0000-4000-8000-000000000003'; // no role
const API_KEY = 'fndry-sk-0123456789abcdef0123456789abcdef';
const PLAIN_KEY = 'legacy-key-without-prefix-000000000000';

let stack: StaticStack;
let idp: TestIdp;
let up: Upstream;
let sidecar: ServeProcess;

beforeAll(async () => {
  const keys = join(mkdtempSync(join(tmpdir(), 'fa-e2e-')), 'keys');
  writeFileSync(keys, `# rotated monthly\n${API_KEY}\n\n${PLAIN_KEY}\n`);
  // ALICE (the fixture's user) and APP (the fixture's app, by role GUID): OpenAI User.
  const rbacFile = roleAssignmentsFile([
    `{ principalId: ${ALICE}, role: Cognitive Services OpenAI User }`,
    `{ principalId: ${BOB}, role: Cognitive Services Contributor, scope: /subscriptions/${SUB}/resourceGroups/edge }`,
    `{ principalId: ${APP}, role: 5e0bd9bd-7b93-4f28-af87-19fc36ad61bd }`,
  ]);
  stack = await startStaticStack({ tenants: [TEST_TENANT_ID, OTHER_TENANT_ID], rbacFile, flags: { 'api-keys-file': keys } });
  ({ idp, up, sidecar } = stack);
});

afterAll(async () => {
  await stack?.close();
});

let before = 0;
beforeEach(() => {
  before = up.requests.length;
  up.respond({ kind: 'echo' });
});

interface Sent {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { error?: { code: string; message: string; type: string } } & Record<string, unknown>;
  text: string;
}

async function send(method: string, path: string, headers: Record<string, string> | string[] = {}, body?: string): Promise<Sent> {
  const res = await request(`${sidecar.url}${path}`, { method: method as 'GET', headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  let json = {};
  try {
    json = JSON.parse(text) as object;
  } catch {
    // not JSON
  }
  return { status: res.statusCode, headers: res.headers, json, text };
}

/** The error contract of SPEC section 3, and nothing reached the upstream. */
function expectRejected(res: Sent, status: number, code: string, type: string): void {
  expect({ status: res.status, code: res.json.error?.code, type: res.json.error?.type }).toEqual({ status, code, type });
  expect(res.headers['content-type']).toBe('application/json');
  expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  expect(res.json.error?.message.length).toBeGreaterThan(10);
  expect(up.requests.length).toBe(before);
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const chat = JSON.stringify({ model: 'phi-4-mini', messages: [{ role: 'user', content: 'hi' }] });

describe('step 1: request target, method, upgrade', () => {
  it('rejects an absolute-form target with 400 invalid_request', async () => {
    const res = await rawRequest(sidecar.url, 'GET http://other-host/v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).error.code).toBe('invalid_request');
    expect(up.requests.length).toBe(before);
  });

  it('rejects OPTIONS * with 400 invalid_request', async () => {
    const res = await rawRequest(sidecar.url, 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(res.status).toBe(400);
    expect(up.requests.length).toBe(before);
  });

  it('rejects CONNECT with 405 method_not_allowed', async () => {
    const c = await RawClient.connect(Number(new URL(sidecar.url).port));
    c.write('CONNECT upstream:8000 HTTP/1.1\r\nHost: upstream:8000\r\n\r\n');
    const res = await c.readResponse();
    expect(res.status).toBe(405);
    expect(JSON.parse(res.body.toString()).error.code).toBe('method_not_allowed');
    await c.closed;
    expect(up.requests.length).toBe(before);
  });

  it('rejects TRACE with 405 method_not_allowed and never echoes Authorization', async () => {
    const res = await send('TRACE', '/v1/models', bearer(await idp.mint()));
    expectRejected(res, 405, 'method_not_allowed', 'invalid_request_error');
    expect(res.text).not.toContain('Bearer');
  });

  it('rejects Upgrade (WebSocket, h2c) with 501 upgrade_not_supported and closes', async () => {
    const token = await idp.mint();
    for (const upgrade of ['websocket', 'h2c']) {
      const c = await RawClient.connect(Number(new URL(sidecar.url).port));
      c.write(
        `GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: ${upgrade}\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      );
      const res = await c.readResponse();
      expect(res.status).toBe(501);
      expect(JSON.parse(res.body.toString()).error.code).toBe('upgrade_not_supported');
      await c.closed;
    }
    expect(up.requests.length).toBe(before);
  });
});

describe('step 2: canonical paths', () => {
  it.each(['/v1/../admin', '/v1/chat/completions/%2e%2e/x', '/v1%2fchat%2fcompletions', '//v1/models', '/v1/models/', '/v1\\models'])(
    'rejects %j with 400 invalid_path before authentication',
    async (path) => {
      const res = await rawRequest(sidecar.url, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body.toString()).error.code).toBe('invalid_path');
      expect(up.requests.length).toBe(before);
    },
  );

  it('rejects a raw # in the target', async () => {
    const res = await rawRequest(sidecar.url, 'GET /healthz#/../v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).error.code).toBe('invalid_path');
  });
});

describe('step 3: public paths', () => {
  it('forwards GET /healthz to the data upstream without credentials and without identity headers', async () => {
    const res = await send('GET', '/healthz', { 'x-ms-client-principal-id': ALICE });
    expect(res.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.target).toBe('/healthz');
    expect(seen.header('x-ms-client-principal-id')).toEqual([]);
  });

  it('does not make a query or a suffix public', async () => {
    expectRejected(await send('GET', '/healthz/x'), 404, 'route_not_found', 'invalid_request_error');
    expect((await send('GET', '/healthz?x=/v1/models')).status).toBe(200);
    expect(up.requests.at(-1)!.target).toBe('/healthz?x=/v1/models');
  });

  it('keeps a health-check User-Agent from skipping authentication', async () => {
    expectRejected(await send('GET', '/v1/models', { 'user-agent': 'kube-probe/1.29' }), 401, 'missing_credentials', 'authentication_error');
  });
});

describe('step 4: routes', () => {
  it('answers an unknown path with 404 route_not_found', async () => {
    expectRejected(await send('GET', '/admin', bearer(await idp.mint())), 404, 'route_not_found', 'invalid_request_error');
    expectRejected(await send('POST', '/v1/load_lora_adapter', bearer(await idp.mint())), 404, 'route_not_found', 'invalid_request_error');
  });

  it('answers a known path with another method with 405 and Allow', async () => {
    const res = await send('GET', '/v1/chat/completions', bearer(await idp.mint()));
    expectRejected(res, 405, 'method_not_allowed', 'invalid_request_error');
    expect(res.headers.allow).toBe('POST');
  });

  it('is case-sensitive like the upstream', async () => {
    expectRejected(await send('GET', '/V1/models', bearer(await idp.mint())), 404, 'route_not_found', 'invalid_request_error');
  });
});

describe('step 5: credentials', () => {
  it('answers no credentials with 401 missing_credentials and a bare Bearer challenge', async () => {
    const res = await send('POST', '/v1/chat/completions', { 'content-type': 'application/json' }, chat);
    expectRejected(res, 401, 'missing_credentials', 'authentication_error');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="foundry-local"');
  });

  it('rejects two Authorization headers with 400 invalid_request', async () => {
    const good = await idp.mint();
    const res = await send('GET', '/v1/models', ['authorization', `Bearer ${good}`, 'authorization', `Bearer ${good}`]);
    expectRejected(res, 400, 'invalid_request', 'invalid_request_error');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="foundry-local", error="invalid_request"/);
  });

  it('rejects a token also sent in the query with 400 invalid_request', async () => {
    const good = await idp.mint();
    expectRejected(await send('GET', `/v1/models?access_token=${good}`, bearer(good)), 400, 'invalid_request', 'invalid_request_error');
  });

  it('treats a query-only token as no credentials', async () => {
    const good = await idp.mint();
    expectRejected(await send('GET', `/v1/models?access_token=${good}`), 401, 'missing_credentials', 'authentication_error');
  });

  it('rejects Authorization together with api-key as 400 ambiguous_auth', async () => {
    const res = await send('GET', '/v1/models', { ...bearer(await idp.mint()), 'api-key': API_KEY });
    expectRejected(res, 400, 'ambiguous_auth', 'invalid_request_error');
  });

  it.each([['Basic dXNlcjpwYXNz'], ['Bearer'], ['Bearer  x.y.z'], ['Bearer x.y.z extra']])(
    'rejects Authorization: %s with 401 invalid_token',
    async (value) => {
      const res = await send('GET', '/v1/models', { authorization: value });
      expectRejected(res, 401, 'invalid_token', 'authentication_error');
      expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="foundry-local", error="invalid_token", error_description="/);
    },
  );
});

describe('step 6: API keys', () => {
  it('accepts a known key in the api-key header and as Bearer fndry-sk-, for the data plane', async () => {
    const viaHeader = await send('POST', '/v1/chat/completions', { 'api-key': API_KEY, 'content-type': 'application/json' }, chat);
    expect(viaHeader.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.header('api-key')).toEqual([]);
    expect(seen.header('x-foundry-auth-principal-type')).toEqual(['api-key']);
    expect(seen.header('x-ms-client-principal-id')[0]).toMatch(/^key-[0-9a-f]{8}$/);
    expect((await send('GET', '/v1/models', bearer(API_KEY))).status).toBe(200);
    expect(up.requests.at(-1)!.header('authorization')).toEqual([]);
    expect((await send('GET', '/v1/models', { 'api-key': PLAIN_KEY })).status).toBe(200);
  });

  it('answers an unknown key with 401 invalid_api_key in both carriers', async () => {
    const res = await send('GET', '/v1/models', { 'api-key': 'fndry-sk-not-a-real-key' });
    expectRejected(res, 401, 'invalid_api_key', 'authentication_error');
    expect(res.headers['www-authenticate']).toBe('Bearer realm="foundry-local"');
    const viaBearer = await send('GET', '/v1/models', bearer('fndry-pk-not-a-real-key'));
    expectRejected(viaBearer, 401, 'invalid_api_key', 'authentication_error');
    expect(viaBearer.headers['www-authenticate']).toMatch(/error="invalid_token"/);
  });

  it('authorizes only the data plane for API keys', async () => {
    const res = await send('GET', '/api/v1/models', { 'api-key': API_KEY });
    expectRejected(res, 403, 'insufficient_permissions', 'permission_error');
    expect(res.json.error?.message).toMatch(/API keys authorize the data plane only/);
  });
});

describe('step 7: Entra ID tokens (SPEC section 4 rules)', () => {
  async function expectInvalidToken(token: string, description: RegExp): Promise<void> {
    const res = await send('POST', '/v1/chat/completions', { ...bearer(token), 'content-type': 'application/json' }, chat);
    expectRejected(res, 401, 'invalid_token', 'authentication_error');
    expect(res.headers['www-authenticate']).toMatch(/^Bearer realm="foundry-local", error="invalid_token", error_description="[^"]+"$/);
    expect(res.json.error?.message).toMatch(description);
    const signature = token.split('.')[2] ?? '';
    if (signature.length > 8) expect(res.text).not.toContain(signature);
  }
  const now = () => Math.floor(Date.now() / 1000);

  it('rejects an expired token', async () =>
    expectInvalidToken(await idp.mint({ claims: { exp: now() - 301, iat: now() - 4000, nbf: now() - 4000 } }), /expired/i));
  it('accepts a token expired less than the clock skew ago', async () => {
    const token = await idp.mint({ claims: { exp: now() - 200, iat: now() - 4000, nbf: now() - 4000 } });
    expect((await send('GET', '/v1/models', bearer(token))).status).toBe(200);
  });
  it('rejects a token without exp', async () => expectInvalidToken(await idp.mint({ claims: { exp: undefined } }), /exp/));
  it('rejects a token not yet valid beyond the skew', async () =>
    expectInvalidToken(await idp.mint({ claims: { nbf: now() + 400 } }), /not (yet )?valid|nbf/i));
  it('rejects exp as a string', async () => expectInvalidToken(await idp.mint({ claims: { exp: String(now() + 600) } }), /exp/));
  it('rejects a token for another audience (Microsoft Graph)', async () =>
    expectInvalidToken(await idp.mint({ claims: { aud: '00000003-0000-0000-c000-000000000000' } }), /another resource.*api:\/\//));
  it('accepts the api:// audience form', async () => {
    expect((await send('GET', '/v1/models', bearer(await idp.mint({ claims: { aud: `api://${TEST_CLIENT_ID}` } })))).status).toBe(200);
  });
  it('rejects a v1 token and says to set accessTokenAcceptedVersion to 2', async () =>
    expectInvalidToken(
      await idp.mint({ claims: { iss: `https://sts.windows.net/${TEST_TENANT_ID}/`, ver: '1.0', aud: `api://${TEST_CLIENT_ID}` } }),
      /accessTokenAcceptedVersion/,
    ));
  it('rejects an issuer with a trailing slash', async () => expectInvalidToken(await idp.mint({ claims: { iss: `${idp.issuer()}/` } }), /issuer/i));
  it('rejects a tenant outside --allowed-tenants, with a valid signature', async () =>
    expectInvalidToken(await idp.mint({ tid: OTHER_TENANT_ID }), /tenant/i));
  it('rejects alg none and HS256', async () => {
    await expectInvalidToken(
      idp.mintRaw({ header: { alg: 'none', typ: 'JWT' }, payload: idp.claims(), signature: { raw: '' } }),
      /not a well-formed JWT/,
    );
    await expectInvalidToken(idp.mintRaw({ header: { alg: 'none', typ: 'JWT' }, payload: idp.claims(), signature: { raw: 'AAAA' } }), /RS256/);
    await expectInvalidToken(
      idp.mintRaw({ header: idp.header(undefined, { alg: 'HS256' }), payload: idp.claims(), signature: { alg: 'HS256', secret: 'secret' } }),
      /RS256/,
    );
  });
  it('rejects an unknown kid', async () => expectInvalidToken(await idp.mint({ header: { kid: 'not-a-known-key' } }), /key|kid/i));
  it('rejects a broken signature', async () => {
    const token = await idp.mint();
    const sig = token.split('.')[2]!;
    await expectInvalidToken(`${token.slice(0, token.length - sig.length)}${sig.slice(0, -4)}AAAA`, /signature/i);
  });
  it('rejects duplicate member names', async () => {
    const claims = JSON.stringify(idp.claims());
    await expectInvalidToken(idp.mintRaw({ header: idp.header(), payload: `${claims.slice(0, -1)},"tid":"${OTHER_TENANT_ID}"}` }), /duplicate/i);
  });
  it('rejects a user token without the required scope and names it', async () =>
    expectInvalidToken(await idp.mint({ claims: { scp: 'User.Read' } }), /foundry_access/));
  it('rejects scp in another case and scopes that only contain it', async () => {
    await expectInvalidToken(await idp.mint({ claims: { scp: 'Foundry_Access' } }), /foundry_access/);
    await expectInvalidToken(await idp.mint({ claims: { scp: 'foundry_accessAll' } }), /foundry_access/);
  });
  it('rejects an app token without the app role and names it', async () =>
    expectInvalidToken(await idp.mint({ kind: 'app', claims: { roles: ['Other'] } }), /FoundryInferenceAccess/));
  it('rejects roles that is not an array of strings', async () =>
    expectInvalidToken(await idp.mint({ kind: 'app', claims: { roles: 'FoundryInferenceAccess' } }), /roles/));
  it('rejects an oid that is not a GUID', async () => expectInvalidToken(await idp.mint({ claims: { oid: 'alice@contoso.example' } }), /oid/));
  it('accepts a good user token and a good app token, and forwards their identity', async () => {
    const user = await send(
      'POST',
      '/v1/chat/completions',
      { ...bearer(await idp.mint()), 'content-type': 'application/json', 'x-ms-client-principal-id': CAROL },
      chat,
    );
    expect(user.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.header('x-ms-client-principal-id')).toEqual([ALICE]);
    expect(seen.header('x-ms-client-principal-name')).toEqual(['alice@contoso.example']);
    expect(seen.header('x-ms-client-principal-idp')).toEqual(['aad']);
    expect(seen.header('x-foundry-auth-principal-type')).toEqual(['user']);
    expect(seen.header('x-foundry-auth-tenant-id')).toEqual([TEST_TENANT_ID]);
    expect(seen.header('authorization')).toEqual([]);
    expect(seen.header('x-request-id')).toEqual([user.headers['x-request-id']]);
    const principal = JSON.parse(Buffer.from(seen.header('x-ms-client-principal')[0]!, 'base64').toString()) as {
      auth_typ: string;
      claims: { typ: string; val: string }[];
    };
    expect(principal.auth_typ).toBe('aad');
    expect(principal.claims).toContainEqual({ typ: 'oid', val: ALICE });
    expect(seen.body.toString()).toBe(chat);
    const app = await send('GET', '/v1/models', bearer(await idp.mint({ kind: 'app' })));
    expect(app.status).toBe(200);
    expect(up.requests.at(-1)!.header('x-foundry-auth-principal-type')).toEqual(['app']);
  });
});

describe('step 8: authorization (static source)', () => {
  it('answers a principal without a role with 403 insufficient_permissions naming oid, action, scope and roles', async () => {
    const res = await send(
      'POST',
      '/v1/chat/completions',
      { ...bearer(await idp.mint({ claims: { oid: CAROL } })), 'content-type': 'application/json' },
      chat,
    );
    expectRejected(res, 403, 'insufficient_permissions', 'permission_error');
    const message = res.json.error!.message;
    expect(message).toContain(CAROL);
    expect(message).toContain('Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action');
    expect(message).toContain(SCOPE);
    expect(message).toContain('Cognitive Services OpenAI User');
  });

  it('gives OpenAI User the data plane but not control-plane writes', async () => {
    const token = await idp.mint();
    expect((await send('POST', '/v1/embeddings', { ...bearer(token), 'content-type': 'application/json' }, '{"input":"x"}')).status).toBe(200);
    before = up.requests.length;
    expectRejected(
      await send('POST', '/api/v1/namespaces/ns/deployments', { ...bearer(token), 'content-type': 'application/json' }, '{}'),
      403,
      'insufficient_permissions',
      'permission_error',
    );
    expectRejected(await send('DELETE', '/api/v1/namespaces/ns/deployments/d', bearer(token)), 403, 'insufficient_permissions', 'permission_error');
  });

  it('gives Cognitive Services Contributor (inherited from the resource group) both planes', async () => {
    const token = await idp.mint({ claims: { oid: BOB } });
    expect((await send('POST', '/v1/chat/completions', { ...bearer(token), 'content-type': 'application/json' }, chat)).status).toBe(200);
    expect((await send('POST', '/api/v1/namespaces/ns/deployments', { ...bearer(token), 'content-type': 'application/json' }, '{}')).status).toBe(
      200,
    );
    expect((await send('DELETE', '/api/v1/namespaces/ns/deployments/d', bearer(token))).status).toBe(200);
  });
});

describe('audit line', () => {
  it('writes one JSON line per request with the decision and no token', async () => {
    const token = await idp.mint();
    const res = await send('POST', '/v1/chat/completions?api-version=2024-10-21', { ...bearer(token), 'content-type': 'application/json' }, chat);
    const line = await sidecar.waitForLog((l) => l.msg === 'request' && l.requestId === res.headers['x-request-id']);
    expect(line).toMatchObject({
      method: 'POST',
      path: '/v1/chat/completions',
      plane: 'data',
      action: 'Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action',
      principal: { type: 'user', oid: ALICE, tid: TEST_TENANT_ID },
      decision: 'allow',
      decisionSource: 'static',
      status: 200,
    });
    expect((line.timings as Record<string, number>).totalMs).toBeGreaterThan(0);
    const denied = await send('GET', '/v1/models', bearer(`${token.slice(0, -3)}abc`));
    const deniedLine = await sidecar.waitForLog((l) => l.msg === 'request' && l.requestId === denied.headers['x-request-id']);
    expect(deniedLine).toMatchObject({ status: 401, code: 'invalid_token', decision: 'rejected' });
    expect(sidecar.stdout).not.toContain(token.split('.')[1]!);
    expect(sidecar.stdout).not.toContain(API_KEY);
  });
});
