/**
 * `--shared-cache` settings at start-up: bad values exit 2 naming the flag; a refused password is a
 * clear warning and per-process mode (ready, deciding, not restarting); `foundry-auth cache flush`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArmFixture } from '../fixtures/arm.js';
import { TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { runCli, type ServeProcess } from '../e2e/harness.js';
import { armServeFlags, chat, grantUser, metric, principal, startReplicas, stopAll } from './harness.js';

let idp: TestIdp;
let arm: ArmFixture;
let up: Upstream;
let redis: RedisServer;

beforeAll(async () => {
  [idp, arm, up, redis] = await Promise.all([TestIdp.start(), ArmFixture.start(), startUpstream(), startRedis({ password: 'right-password' })]);
});

afterAll(async () => {
  await Promise.allSettled([redis?.stop(), arm?.close(), up?.close(), idp?.close()]);
});

function secretFile(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'fa-sc-')), 'password');
  writeFileSync(file, text);
  return file;
}

describe('bad --shared-cache settings exit 2 naming the flag', () => {
  it.each([
    ['not a URL', 'redis//nowhere'],
    ['another scheme', 'http://127.0.0.1:6379'],
    ['no host', 'redis://'],
    ['a query', 'redis://127.0.0.1:6379?tls=1'],
    ['a path that is no database number', 'redis://127.0.0.1:6379/cache/x'],
  ])('%s', async (_, value) => {
    const flags = armServeFlags(idp, arm, up.url, { 'shared-cache': value });
    const args = ['serve', ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])];
    const { code, stderr } = await runCli(args);
    expect(code).toBe(2);
    expect(stderr).toContain('--shared-cache / FOUNDRY_AUTH_SHARED_CACHE');
  });

  it('a bad --arm-read-rate, an unreadable password file, or a password file without --shared-cache', async () => {
    const base = armServeFlags(idp, arm, up.url);
    const run = (over: Record<string, string>) => runCli(['serve', ...Object.entries({ ...base, ...over }).flatMap(([k, v]) => [`--${k}`, v])]);
    const rate = await run({ 'arm-read-rate': '0' });
    expect(rate.code).toBe(2);
    expect(rate.stderr).toContain('--arm-read-rate / FOUNDRY_AUTH_ARM_READ_RATE: must be a number greater than 0');
    const missing = await run({ 'shared-cache': redis.url, 'shared-cache-password-file': '/nonexistent/password' });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--shared-cache-password-file / FOUNDRY_AUTH_SHARED_CACHE_PASSWORD_FILE: cannot read /nonexistent/password');
    const alone = await run({ 'shared-cache-password-file': secretFile('x\n') });
    expect(alone.code).toBe(2);
    expect(alone.stderr).toContain('is only used with --shared-cache');
  });

  it('the URL and its password never appear in an error', async () => {
    const flags = armServeFlags(idp, arm, up.url, { 'shared-cache': 'ftp://user:hunter2-secret@host' });
    const { code, stderr } = await runCli(['serve', ...Object.entries(flags).flatMap(([k, v]) => [`--${k}`, v])]);
    expect(code).toBe(2);
    expect(stderr).not.toContain('hunter2-secret');
  });
});

describe('a wrong password', () => {
  let replicas: ServeProcess[] = [];
  afterAll(() => stopAll(replicas));

  it('is a clear start-up warning, then per-process mode: ready, deciding, still running', async () => {
    replicas = await startReplicas(
      1,
      armServeFlags(idp, arm, up.url, { 'shared-cache': redis.url, 'shared-cache-password-file': secretFile('wrong-password\n') }),
    );
    const [replica] = replicas as [ServeProcess];
    const warning = await replica.waitForLog((l) => l.msg.startsWith('shared cache unavailable'));
    expect(String(warning.fix)).toContain('refused the credentials');
    expect(replica.stdout).not.toContain('wrong-password');
    const oid = principal(8, 1);
    grantUser(arm, oid);
    expect((await chat(replica, await idp.mint({ claims: { oid } }))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1500));
    expect(replica.child.exitCode).toBeNull();
    expect(replica.logs.filter((l) => l.msg.startsWith('shared cache unavailable'))).toHaveLength(1);
    expect(await metric(replica, 'foundry_auth_shared_cache_up')).toBe(0);
    expect((await fetch(`${replica.adminUrl}/readyz`)).status).toBe(200);
  });
});

describe('the right password, and foundry-auth cache flush', () => {
  let replicas: ServeProcess[] = [];
  afterAll(() => stopAll(replicas));

  it('joins with the password from the file; cache flush reaches every replica; a non-GUID principal is a usage error', async () => {
    replicas = await startReplicas(
      2,
      armServeFlags(idp, arm, up.url, {
        'shared-cache': redis.url,
        'shared-cache-timeout': '1s',
        'shared-cache-password-file': secretFile('right-password\n'),
      }),
    );
    const [a, b] = replicas as [ServeProcess, ServeProcess];
    for (const r of replicas) expect(await metric(r, 'foundry_auth_shared_cache_up')).toBe(1);
    const oid = principal(8, 2);
    grantUser(arm, oid);
    const token = await idp.mint({ claims: { oid } });
    expect((await chat(a, token)).status).toBe(200);
    expect((await chat(b, token)).status).toBe(200);
    const reads = arm.calls.roleAssignments;
    const flushed = await runCli(['cache', 'flush', '--admin', a.adminUrl, '--principal', oid]);
    expect(flushed).toMatchObject({ code: 0, stdout: `flushed ${oid}: every replica sharing the cache\n` });
    expect((await chat(b, token)).status).toBe(200);
    expect(arm.calls.roleAssignments).toBe(reads + 1);
    const bad = await runCli(['cache', 'flush', '--admin', a.adminUrl, '--principal', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--principal must be an object ID');
    const all = await runCli(['cache', 'flush', '--admin', b.adminUrl]);
    expect(all).toMatchObject({ code: 0, stdout: 'flushed every principal: every replica sharing the cache\n' });
  });
});
