/**
 * `--forward-auth-socket`: real nginx from the shipped configuration asks foundry-auth over a Unix
 * socket (`server unix:...` as the value of {{FOUNDRY_AUTH}}). Its peers are trusted because
 * `--trusted-proxies unix` says so; start-up replaces a stale socket file and refuses a live one
 * or a file that is not a socket; SIGTERM removes the socket.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { TEST_CLIENT_ID, TEST_TENANT_ID, TEST_USER_OID as ALICE, TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, runCli, type ServeProcess } from '../e2e/harness.js';
import { startForwardAuth, startNginx, type ProxyProcess } from './harness.js';

let idp: TestIdp;
let up: Upstream;
let fa: ServeProcess;
let nginx: ProxyProcess;
let dir: string;
let socket: string;
let rbacFile: string;

beforeAll(async () => {
  idp = await TestIdp.start();
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'fa-socket-'));
  // nginx's workers run as nobody: they may enter the directory; the socket itself is 0666.
  chmodSync(dir, 0o755);
  socket = join(dir, 'check.sock');
  // A socket file left by a process that was killed: start-up replaces it.
  const killed = spawnSync(process.execPath, [
    '-e',
    `require('node:net').createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, 'SIGKILL'))`,
  ]);
  expect(killed.signal).toBe('SIGKILL');
  expect(statSync(socket).isSocket()).toBe(true);
  rbacFile = roleAssignmentsFile([`{ principalId: ${ALICE}, role: Cognitive Services OpenAI User }`]);
  fa = await startForwardAuth(idp, 'nginx', { rbacFile, flags: { 'trusted-proxies': 'unix', 'forward-auth-socket': socket } });
  await fa.ready();
  nginx = await startNginx({ foundryAuth: fa.url, upstream: up.url, cache: false });
}, 60_000);

afterAll(async () => {
  await nginx?.stop();
  await fa?.stop('SIGKILL');
  await up?.close();
  await idp?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function get(headers: Record<string, string>): Promise<{ status: number; error: string | undefined }> {
  const res = await request(`${nginx.url}/v1/models`, { headers });
  await res.body.dump();
  const error = res.headers['x-foundry-auth-error'];
  return { status: res.statusCode, error: typeof error === 'string' ? error : undefined };
}

it('listens on the socket (0666), says so, and replaced the stale socket file', () => {
  expect(fa.url).toBe(`unix:${socket}`);
  const mode = statSync(socket).mode;
  expect(statSync(socket).isSocket()).toBe(true);
  expect(mode & 0o777).toBe(0o666);
});

it('nginx asks over the socket: an allowed caller reaches the upstream as herself, a caller without a token never does', async () => {
  up.requests.length = 0;
  expect(await get({ authorization: `Bearer ${await idp.mint()}` })).toEqual({ status: 200, error: undefined });
  expect(up.requests).toHaveLength(1);
  const raw = up.requests[0]!.rawHeaders;
  const id = raw.findIndex((h, i) => i % 2 === 0 && h.toLowerCase() === 'x-ms-client-principal-id');
  expect(raw[id + 1]).toBe(ALICE);
  expect(await get({})).toEqual({ status: 401, error: 'missing_credentials' });
  expect(await get({ authorization: `Bearer ${await idp.mint({ claims: { oid: 'c0ffee00-0000-4000-8000-0000000000c1' } })}` })).toEqual({
    status: 403,
    error: 'insufficient_permissions',
  });
  expect(up.requests).toHaveLength(1);
});

const SERVE = [
  'serve',
  '--mode',
  'forward-auth',
  '--forward-auth-profile',
  'nginx',
  '--trusted-proxies',
  'unix',
  '--admin-listen',
  '127.0.0.1:0',
  '--tenant-id',
  TEST_TENANT_ID,
  '--client-id',
  TEST_CLIENT_ID,
  '--rbac',
  'static',
];

it('a second serve on the same socket exits 2 (in use) and leaves the first one serving', async () => {
  const second = await runCli([...SERVE, '--role-assignments-file', rbacFile, '--authority', idp.authority, '--forward-auth-socket', socket]);
  expect(second.code).toBe(2);
  expect(second.stderr).toContain(`--forward-auth-socket: ${socket} is in use by another process`);
  expect(await get({ authorization: `Bearer ${await idp.mint()}` })).toEqual({ status: 200, error: undefined });
});

it('a file that is not a socket is never replaced: exit 2', async () => {
  const file = join(dir, 'not-a-socket');
  writeFileSync(file, 'keep me');
  const out = await runCli([...SERVE, '--role-assignments-file', rbacFile, '--authority', idp.authority, '--forward-auth-socket', file]);
  expect(out.code).toBe(2);
  expect(out.stderr).toContain(`--forward-auth-socket: ${file} exists and is not a socket`);
  expect(existsSync(file)).toBe(true);
});

it('a socket in a directory that does not exist: exit 2 naming the flag and the reason', async () => {
  const missing = join(dir, 'no-such-dir', 'check.sock');
  const out = await runCli([...SERVE, '--role-assignments-file', rbacFile, '--authority', idp.authority, '--forward-auth-socket', missing]);
  expect(out.code).toBe(2);
  // libuv reports the missing directory of a socket path as EACCES or ENOENT, depending on the platform.
  expect(out.stderr).toContain(`--forward-auth-socket: cannot listen on ${missing}: E`);
});

it('SIGTERM removes the socket', async () => {
  await nginx.stop();
  expect(await fa.stop('SIGTERM')).toBe(0);
  expect(existsSync(socket)).toBe(false);
});
