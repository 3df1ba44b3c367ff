/**
 * Findings of an adversarial review, against the real `serve` process on raw sockets: unknown
 * expectations, a second SIGTERM while draining, the API key's 403, identity headers under other
 * names, and an upstream's interim 100 Continue.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawClient } from '../fixtures/upstream.js';
import { startStaticStack, type StaticStack } from './harness.js';

const API_KEY = 'fndry-sk-0123456789abcdef0123456789abcdef';
const KEY_ID = `key-${createHash('sha256').update(API_KEY).digest('hex').slice(0, 8)}`;

let stack: StaticStack;
let port: number;
let alice: string;

beforeAll(async () => {
  const keys = join(mkdtempSync(join(tmpdir(), 'fa-e2e-')), 'keys');
  writeFileSync(keys, `${API_KEY}\n`);
  stack = await startStaticStack({ flags: { 'api-keys-file': keys, 'shutdown-grace': '10s' } });
  port = Number(new URL(stack.sidecar.url).port);
  alice = await stack.idp.mint();
});

afterAll(async () => {
  await stack?.close();
});

async function exchange(bytes: string): Promise<{ status: number; headers: (name: string) => string | undefined; body: string }> {
  const c = await RawClient.connect(port);
  try {
    c.write(bytes);
    const res = await c.readResponse();
    return { status: res.status, headers: (name) => res.header(name)[0], body: res.body.toString() };
  } finally {
    c.destroy();
  }
}

describe('Expect', () => {
  it('an expectation other than 100-continue: JSON 417 expectation_failed with x-request-id and an audit line; nothing upstream', async () => {
    const before = stack.up.requests.length;
    const res = await exchange(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n{}`,
    );
    expect(res.status).toBe(417);
    expect(res.headers('content-type')).toBe('application/json');
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'expectation_failed', type: 'invalid_request_error' } });
    const requestId = res.headers('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await stack.sidecar.waitForLog((l) => l.msg === 'request' && l.requestId === requestId)).toMatchObject({
      status: 417,
      code: 'expectation_failed',
    });
    expect(stack.up.requests.length).toBe(before);
  });

  it('100-continue still works', async () => {
    const c = await RawClient.connect(port);
    c.write(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nExpect: 100-Continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n`,
    );
    const deadline = Date.now() + 5000;
    while (!c.received.includes('100 Continue') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    c.write('{}');
    await c.closed;
    expect(c.received).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
  });
});

describe('API keys', () => {
  it("a control-plane 403 names the key's principal ID", async () => {
    const res = await exchange(`GET /api/v1/models HTTP/1.1\r\nHost: x\r\napi-key: ${API_KEY}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(403);
    const { error } = JSON.parse(res.body) as { error: { code: string; message: string } };
    expect(error.code).toBe('insufficient_permissions');
    expect(error.message).toContain(KEY_ID);
    expect(error.message).not.toContain(API_KEY);
  });
});

describe('identity headers under other names', () => {
  it.each([
    'X-User',
    'Remote-User',
    'X-WEBAUTH-USER',
    'X-Authenticated-User',
    'X-Client-IP',
    'True-Client-IP',
    'X-Api-Key',
    'x_webauth_user',
    'REMOTE_USER',
    'x-api_key',
  ])('%s never reaches the upstream', async (name) => {
    stack.up.respond({ kind: 'echo' });
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n${name}: admin\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    const seen = stack.up.requests.at(-1)!;
    expect(seen.header(name)).toEqual([]);
    expect(seen.rawHeaders.filter((v, i) => i % 2 === 1 && v === 'admin')).toEqual([]);
  });
});

describe("an upstream's interim 100 Continue", () => {
  const post = (): string =>
    `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"input":1}`;

  it('in the same packet as the 200: the client gets the 200 and its body, not a 502', async () => {
    stack.up.respond({
      kind: 'raw',
      bytes: 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok',
    });
    const res = await exchange(post());
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok');
  });

  it('sent on its own before the response (two of them): the 200 follows, and the connection is reused for the next request', async () => {
    stack.up.respond({ kind: 'manual' });
    const pending = exchange(post());
    const upstream = await stack.up.nextExchange();
    upstream.res.writeContinue();
    upstream.res.writeContinue();
    await new Promise((r) => setTimeout(r, 100));
    upstream.res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
    upstream.res.end('{}');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toBe('{}');
    const connections = stack.up.connections;
    stack.up.respond({ kind: 'echo' });
    expect((await exchange(post())).status).toBe(200);
    expect(stack.up.connections).toBe(connections);
  });

  it('a response body that contains a 100 status line is relayed untouched', async () => {
    const body = 'HTTP/1.1 100 Continue\r\n\r\nnot a response';
    stack.up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'text/plain' }, body });
    const res = await exchange(post());
    expect(res.status).toBe(200);
    expect(res.body).toBe(body);
  });
});

// Last: it stops the sidecar.
describe('a second SIGTERM while draining', () => {
  it('does not cut the in-flight stream; the process still exits 0 once it is done', async () => {
    stack.up.respond({ kind: 'manual' });
    const c = await RawClient.connect(port);
    c.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Length: 15\r\n\r\n{"stream":true}`);
    const upstream = await stack.up.nextExchange();
    upstream.head();
    upstream.event('one');
    const waitFor = async (text: string): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!c.received.includes(text) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(c.received).toContain(text);
    };
    await waitFor('data: one');
    const { sidecar } = stack;
    sidecar.child.kill('SIGTERM');
    await sidecar.waitForLog((l) => l.msg === 'shutting down: draining in-flight requests');
    sidecar.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    expect(sidecar.child.exitCode).toBeNull();
    upstream.event('two');
    await waitFor('data: two');
    upstream.end();
    const code = await new Promise<number | null>((resolve) => {
      if (sidecar.child.exitCode !== null) resolve(sidecar.child.exitCode);
      else sidecar.child.once('exit', (exit) => resolve(exit));
    });
    expect(code).toBe(0);
    c.destroy();
  });
});
