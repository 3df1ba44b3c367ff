/**
 * The real `serve` process as an operator runs it: start-up errors (exit 2), readiness, streaming,
 * client aborts, upstream failures, API key rotation, graceful drain on SIGTERM.
 */
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request, type Dispatcher } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { TestIdp, TEST_CLIENT_ID, TEST_TENANT_ID, TEST_USER_OID as ALICE } from '../fixtures/idp.js';
import { startUpstream, type ManualExchange } from '../fixtures/upstream.js';
import { runCli, SCOPE, startServe, startStaticStack, staticServeFlags, type StaticStack } from './harness.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function stack(flags: Record<string, string> = {}): Promise<StaticStack> {
  const started = await startStaticStack({ flags });
  cleanup.push(() => started.close());
  return started;
}

/** A streaming chat completion through the sidecar. */
async function chatStream({ idp, sidecar }: StaticStack, signal?: AbortSignal): Promise<Dispatcher.ResponseData> {
  return request(`${sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await idp.mint()}`, 'content-type': 'application/json' },
    body: '{"stream":true}',
    ...(signal ? { signal } : {}),
  });
}

/** The same, with the upstream answering by hand: its exchange, and the client's response still pending. */
async function manualStream(s: StaticStack, signal?: AbortSignal): Promise<{ exchange: ManualExchange; pending: Promise<Dispatcher.ResponseData> }> {
  s.up.respond({ kind: 'manual' });
  const pending = chatStream(s, signal);
  return { exchange: await s.up.nextExchange(), pending };
}

/** Everything a response body still has to give, as text. */
async function rest(reader: AsyncIterator<unknown>): Promise<string> {
  let text = '';
  for (let c = await reader.next(); !c.done; c = await reader.next()) text += Buffer.from(c.value as Buffer).toString();
  return text;
}

describe('start-up errors exit 2 and name the flag and env variable', () => {
  const base = ['serve', '--tenant-id', TEST_TENANT_ID, '--client-id', TEST_CLIENT_ID, '--rbac-scope', SCOPE];

  it('missing upstream', async () => {
    const r = await runCli(base);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--upstream \/ FOUNDRY_AUTH_UPSTREAM: is required/);
  });

  it('bad GUID', async () => {
    const r = await runCli([
      'serve',
      '--upstream',
      'http://127.0.0.1:1',
      '--tenant-id',
      'contoso',
      '--client-id',
      TEST_CLIENT_ID,
      '--rbac-scope',
      SCOPE,
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--tenant-id \/ FOUNDRY_AUTH_TENANT_ID: must be a GUID/);
  });

  it('bad GUID from the environment', async () => {
    const r = await runCli(['serve', '--upstream', 'http://127.0.0.1:1', '--tenant-id', TEST_TENANT_ID, '--rbac-scope', SCOPE], {
      FOUNDRY_AUTH_CLIENT_ID: 'app',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--client-id \/ FOUNDRY_AUTH_CLIENT_ID: must be a GUID/);
  });

  it('http authority on a non-loopback host', async () => {
    const r = await runCli([...base, '--upstream', 'http://127.0.0.1:1', '--authority', 'http://login.example.com']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--authority \/ FOUNDRY_AUTH_AUTHORITY: http:\/\/ is allowed only for loopback hosts/);
  });

  it('unknown flag', async () => {
    const r = await runCli([...base, '--upstream', 'http://127.0.0.1:1', '--tenant', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown option '--tenant'/);
  });

  it('an invalid role assignments file, one line per problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fa-ops-'));
    const file = join(dir, 'rbac.yaml');
    writeFileSync(
      file,
      `scope: ${SCOPE}\nroleAssignments:\n  - { principalId: not-a-guid, role: Cognitive Services OpenAI User }\n  - { principalId: ${ALICE}, role: Cognitive Services OpenAI User, scope: /subscriptions/x/../y }\n`,
    );
    const r = await runCli([
      'serve',
      '--upstream',
      'http://127.0.0.1:1',
      '--tenant-id',
      TEST_TENANT_ID,
      '--client-id',
      TEST_CLIENT_ID,
      '--rbac',
      'static',
      '--role-assignments-file',
      file,
    ]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.every((l) => l.startsWith('foundry-auth serve: --role-assignments-file / FOUNDRY_AUTH_ROLE_ASSIGNMENTS_FILE:'))).toBe(true);
  });

  it('a port already in use', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    cleanup.push(() => new Promise((r) => blocker.close(r)));
    const port = (blocker.address() as { port: number }).port;
    const r = await runCli([...base, '--upstream', 'http://127.0.0.1:1', '--listen', `127.0.0.1:${port}`, '--authority', 'http://127.0.0.1:1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`127.0.0.1:${port} is already in use`));
  });
});

describe('readiness and the identity provider', () => {
  it('stays unready and answers 503 identity_provider_unavailable with Retry-After while no signing keys were ever loaded', async () => {
    const idp = await TestIdp.start();
    cleanup.push(() => idp.close());
    idp.fault('discovery', { kind: 'status', status: 503 });
    const up = await startUpstream();
    cleanup.push(() => up.close());
    const sidecar = await startServe(staticServeFlags(idp, up.url));
    cleanup.push(() => sidecar.stop('SIGKILL'));
    const ready = await request(`${sidecar.adminUrl}/readyz`);
    expect(ready.statusCode).toBe(503);
    const body = (await ready.body.json()) as { checks: Record<string, string> };
    expect(body.checks.signingKeys).not.toBe('ok');
    const res = await request(`${sidecar.url}/v1/models`, { headers: { authorization: `Bearer ${await idp.mint()}` } });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('identity_provider_unavailable');
    expect(up.requests).toHaveLength(0);
    // A malformed token is still a cheap 401: no key is needed to reject it.
    const bad = await request(`${sidecar.url}/v1/models`, { headers: { authorization: 'Bearer abc.def' } });
    expect(bad.statusCode).toBe(401);
    await bad.body.dump();
  });

  it('serves /healthz, /readyz and /metrics on the admin listener', async () => {
    const { idp, sidecar } = await stack();
    await (await request(`${sidecar.url}/v1/models`, { headers: { authorization: `Bearer ${await idp.mint()}` } })).body.dump();
    await (await request(`${sidecar.url}/v1/models`, { headers: { authorization: 'Bearer x.y.z' } })).body.dump();
    expect((await request(`${sidecar.adminUrl}/healthz`)).statusCode).toBe(200);
    const ready = await request(`${sidecar.adminUrl}/readyz`);
    expect(await ready.body.json()).toMatchObject({ status: 'ready', checks: { signingKeys: 'ok' } });
    const metrics = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/foundry_auth_requests_total\{plane="data",status="200",code=""\} 1/);
    expect(metrics).toMatch(/foundry_auth_authentication_failures_total\{code="invalid_token",reason="[a-z_]+"\} 1/);
    expect(metrics).toMatch(/foundry_auth_jwks_refreshes_total\{trigger="startup",outcome="ok"\} 1/);
    expect(metrics).toMatch(/foundry_auth_rbac_lookups_total\{source="static",cache="miss",decision="allow"\} 1/);
    expect(metrics).toMatch(/foundry_auth_upstream_first_byte_seconds_count\{plane="data"\} 1/);
  });
});

describe('forwarding through the process', () => {
  it('streams SSE unbuffered: a chunk reaches the client before the upstream sends the next', async () => {
    const { exchange, pending } = await manualStream(await stack());
    exchange.head(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    expect(res.headers['content-encoding']).toBeUndefined();
    const reader = res.body[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) {
      exchange.event(`{"n":${i}}`);
      const chunk = await reader.next();
      expect(Buffer.from(chunk.value as Buffer).toString()).toBe(`data: {"n":${i}}\n\n`);
    }
    exchange.event('[DONE]');
    exchange.end();
    expect(await rest(reader)).toBe('data: [DONE]\n\n');
  });

  it('aborts the upstream within 1 s when the client disconnects mid-stream', async () => {
    const s = await stack();
    const { up, sidecar } = s;
    const controller = new AbortController();
    const { exchange, pending } = await manualStream(s, controller.signal);
    exchange.head();
    exchange.event('first');
    const res = await pending;
    const reader = res.body[Symbol.asyncIterator]();
    await reader.next();
    const aborted = up.nextAbort(1000);
    controller.abort();
    await expect(aborted).resolves.toBeDefined();
    const line = await sidecar.waitForLog((l) => l.msg === 'request' && l.path === '/v1/chat/completions' && l.clientAborted === true);
    expect(line.upstream).toBe('client_abort');
  });

  it('answers 502 upstream_unavailable when the upstream refuses, and 504 upstream_timeout when it never answers', async () => {
    const closed = await startUpstream();
    const deadUrl = closed.url;
    await closed.close();
    const idp = await TestIdp.start();
    cleanup.push(() => idp.close());
    const dead = await startServe(staticServeFlags(idp, deadUrl));
    cleanup.push(() => dead.stop('SIGKILL'));
    await dead.ready();
    const token = await idp.mint();
    const refused = await request(`${dead.url}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    expect(refused.statusCode).toBe(502);
    expect(((await refused.body.json()) as { error: { code: string } }).error.code).toBe('upstream_unavailable');

    const { idp: idp2, up, sidecar } = await stack({ 'upstream-headers-timeout': '300ms' });
    up.respond({ kind: 'hold' });
    const slow = await request(`${sidecar.url}/v1/models`, { headers: { authorization: `Bearer ${await idp2.mint()}` } });
    expect(slow.statusCode).toBe(504);
    expect(((await slow.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
  });

  it('closes the client connection without inventing bytes when the upstream fails mid-stream', async () => {
    const s = await stack();
    s.up.respond({ kind: 'fail-midstream', head: { 'content-type': 'text/event-stream' }, before: 'data: {"n":0}\n\n' });
    const res = await chatStream(s);
    expect(res.statusCode).toBe(200);
    let received = '';
    await expect(
      (async () => {
        for await (const chunk of res.body) received += Buffer.from(chunk as Buffer).toString();
      })(),
    ).rejects.toThrow();
    expect(received).toBe('data: {"n":0}\n\n');
  });
});

describe('idle keep-alive connections', () => {
  it('stay open 65 minutes by default: longer than an ingress, load balancer or Envoy keeps its idle upstream connections', async () => {
    const { idp, sidecar } = await stack();
    const res = await request(`${sidecar.url}/v1/models`, { headers: { authorization: `Bearer ${await idp.mint()}` } });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
    expect(res.headers.connection).toBe('keep-alive');
    expect(res.headers['keep-alive']).toBe('timeout=3900');
  });

  it('--keep-alive-timeout: foundry-auth closes a connection idle that long, and not sooner', async () => {
    const { idp, sidecar } = await stack({ 'keep-alive-timeout': '1s' });
    const u = new URL(sidecar.url);
    const socket = connect({ host: u.hostname, port: Number(u.port) });
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk));
    socket.write(`GET /v1/models HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${await idp.mint()}\r\n\r\n`);
    const sent = Date.now();
    // Resolves only when foundry-auth ends the idle connection.
    await once(socket, 'end');
    const idle = Date.now() - sent;
    socket.destroy();
    expect(received).toMatch(/^HTTP\/1\.1 200 /);
    expect(received).toContain('Keep-Alive: timeout=1');
    expect(idle).toBeGreaterThanOrEqual(900);
  });
});

describe('API key rotation', () => {
  it('accepts the new key and refuses the old one within 6 s, without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fa-keys-'));
    const keys = join(dir, 'keys');
    writeFileSync(keys, 'fndry-sk-old-key-0000000000000000\n');
    const up = await startUpstream();
    cleanup.push(() => up.close());
    const sidecar = await startServe({ upstream: up.url, 'api-keys-file': keys });
    cleanup.push(() => sidecar.stop('SIGKILL'));
    await sidecar.ready();
    const call = async (key: string): Promise<number> => {
      const res = await request(`${sidecar.url}/v1/models`, { headers: { 'api-key': key } });
      await res.body.dump();
      return res.statusCode;
    };
    expect(await call('fndry-sk-old-key-0000000000000000')).toBe(200);
    expect(await call('fndry-sk-new-key-1111111111111111')).toBe(401);
    // Atomic replace, as a Kubernetes Secret update does.
    writeFileSync(join(dir, 'keys.next'), 'fndry-sk-new-key-1111111111111111\n');
    renameSync(join(dir, 'keys.next'), keys);
    const started = Date.now();
    while ((await call('fndry-sk-new-key-1111111111111111')) !== 200) {
      expect(Date.now() - started).toBeLessThan(6000);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await call('fndry-sk-old-key-0000000000000000')).toBe(401);
  });
});

describe('SIGTERM', () => {
  it('turns unready, finishes an in-flight stream, refuses new connections and exits 0', async () => {
    const s = await stack({ 'shutdown-grace': '10s' });
    const { sidecar } = s;
    const { exchange, pending } = await manualStream(s);
    exchange.head();
    exchange.event('one');
    const res = await pending;
    const reader = res.body[Symbol.asyncIterator]();
    await reader.next();
    sidecar.child.kill('SIGTERM');
    await sidecar.waitForLog((l) => l.msg === 'shutting down: draining in-flight requests');
    const ready = await request(`${sidecar.adminUrl}/readyz`).catch(() => undefined);
    if (ready) {
      expect(ready.statusCode).toBe(503);
      await ready.body.dump();
    }
    await expect(request(`${sidecar.url}/healthz`)).rejects.toThrow();
    exchange.event('two');
    exchange.end();
    expect(await rest(reader)).toBe('data: two\n\n');
    const code = await new Promise<number | null>((resolve) => {
      if (sidecar.child.exitCode !== null) resolve(sidecar.child.exitCode);
      else sidecar.child.once('exit', (c) => resolve(c));
    });
    expect(code).toBe(0);
  });

  it('cuts streams that outlive --shutdown-grace and still exits 0', async () => {
    const s = await stack({ 'shutdown-grace': '200ms' });
    const { exchange, pending } = await manualStream(s);
    exchange.head();
    exchange.event('one');
    const res = await pending;
    const code = await s.sidecar.stop('SIGTERM');
    expect(code).toBe(0);
    await expect(res.body.text()).rejects.toThrow();
  });
});
