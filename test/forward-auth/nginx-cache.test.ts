/**
 * The optional decision cache of the shipped nginx configuration: it cuts checks for the same
 * credential, method and URI, and never keeps an answer longer than foundry-auth said (the
 * rest of the cached RBAC decision's life, cut at the token's exp). nginx keeps real time, so
 * this file waits ~4 s once, with TTLs of 4 s (nginx counts whole seconds, so shorter
 * lifetimes would make the cache's own rounding visible).
 */
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { TEST_USER_OID as ALICE, TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, type ServeProcess } from '../e2e/harness.js';
import { startForwardAuth, startNginx, type ProxyProcess } from './harness.js';

/** A second user, so the second test starts with no cached RBAC decision. */
const BOB = 'b0b0b0b0-0000-4000-8000-000000000002';

let idp: TestIdp;
let up: Upstream;
let fa: ServeProcess;
let nginx: ProxyProcess;

beforeAll(async () => {
  idp = await TestIdp.start();
  up = await startUpstream();
  // Clock skew 0: a token is refused the moment its exp passes, so a cached allow past exp would show.
  const rbacFile = roleAssignmentsFile([
    `{ principalId: ${ALICE}, role: Cognitive Services OpenAI User }`,
    `{ principalId: ${BOB}, role: Cognitive Services OpenAI User }`,
  ]);
  fa = await startForwardAuth(idp, 'nginx', { rbacFile, flags: { 'rbac-allow-ttl': '4s', 'rbac-deny-ttl': '4s', 'clock-skew': '0s' } });
  await fa.ready();
  nginx = await startNginx({ foundryAuth: fa.url, upstream: up.url, cache: true });
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await fa?.stop('SIGKILL');
  await up?.close();
  await idp?.close();
});

beforeEach(() => {
  up.requests.length = 0;
});

/** Checks foundry-auth answered so far (its request counter, read from /metrics). */
async function checks(): Promise<number> {
  const text = await (await request(`${fa.adminUrl}/metrics`)).body.text();
  let total = 0;
  for (const line of text.split('\n')) if (line.startsWith('foundry_auth_requests_total{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

async function get(path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(`${nginx.url}${path}`, { headers });
  await res.body.dump();
  return res.statusCode;
}

const now = (): number => Math.floor(Date.now() / 1000);

it('asks once per credential, method and URI while the answer lives; 401s are never reused', async () => {
  const alice = { authorization: `Bearer ${await idp.mint()}` };
  const before = await checks();
  for (let i = 0; i < 5; i++) expect(await get('/v1/models', alice)).toBe(200);
  expect(await checks()).toBe(before + 1);
  expect(up.requests).toHaveLength(5);
  // Another URI and another credential are other keys.
  expect(await get('/v1/models/phi-4', alice)).toBe(200);
  expect(await get('/v1/models', { authorization: `Bearer ${await idp.mint({ claims: { jti: 'other' } })}` })).toBe(200);
  expect(await checks()).toBe(before + 3);
  // A deny is reused for its own short life; an unauthenticated request is asked every time.
  expect(await get('/api/v1/models', alice)).toBe(403);
  expect(await get('/api/v1/models', alice)).toBe(403);
  expect(await get('/v1/models')).toBe(401);
  expect(await get('/v1/models')).toBe(401);
  expect(await checks()).toBe(before + 6);
});

it('never reuses an answer past the token exp or the RBAC TTL', async () => {
  const expiring = { authorization: `Bearer ${await idp.mint({ claims: { oid: BOB, exp: now() + 4 } })}` };
  const lasting = { authorization: `Bearer ${await idp.mint({ claims: { oid: BOB, exp: now() + 3600, jti: 'lasting' } })}` };
  const before = await checks();
  expect(await get('/v1/embeddings', expiring)).toBe(405); // GET is not a route of /v1/embeddings: refused, not cached
  expect(await get('/v1/models', expiring)).toBe(200);
  expect(await get('/v1/models', lasting)).toBe(200);
  expect(await get('/v1/models', expiring)).toBe(200);
  expect(await get('/v1/models', lasting)).toBe(200);
  expect(await checks()).toBe(before + 3);
  await new Promise((resolve) => setTimeout(resolve, 4200));
  // The token expired: nginx asks again and the answer is a 401, not the cached allow.
  expect(await get('/v1/models', expiring)).toBe(401);
  // The RBAC decision's 4 s passed: nginx asks again (and foundry-auth looks the principal up again).
  expect(await get('/v1/models', lasting)).toBe(200);
  expect(await checks()).toBe(before + 5);
});
