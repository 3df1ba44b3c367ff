/**
 * threats.md sections H (framing), I (hop-by-hop and spoofing), K (Host, Expect) and L (resource
 * exhaustion) against the real `serve` process, with exact bytes on a raw socket. Oracle for every
 * case: what the upstream received (usually nothing), and the sidecar stays up.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TEST_USER_OID as ALICE, type TestIdp } from '../fixtures/idp.js';
import { RawClient, type Upstream } from '../fixtures/upstream.js';
import { startStaticStack, type StaticStack } from './harness.js';

const CAROL = 'ca401ca4-0000-4000-8000-000000000003';

let stack: StaticStack;
let idp: TestIdp;
let up: Upstream;
let port: number;
let alice: string;
let carol: string;
let before = 0;

beforeAll(async () => {
  // ALICE (the fixture's user) holds OpenAI User; CAROL holds nothing.
  stack = await startStaticStack();
  ({ idp, up } = stack);
  port = Number(new URL(stack.sidecar.url).port);
  alice = await idp.mint();
  carol = await idp.mint({ claims: { oid: CAROL } });
});

afterAll(async () => {
  await stack?.close();
});

beforeEach(() => {
  before = up.requests.length;
  up.respond({ kind: 'echo' });
});

async function exchange(bytes: string): Promise<{ status: number; body: string; closed: boolean; raw: string }> {
  const c = await RawClient.connect(port);
  c.write(bytes);
  const res = await c.readResponse();
  const closedSoon = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 500))]);
  c.destroy();
  return { status: res.status, body: res.body.toString(), closed: closedSoon, raw: c.received };
}

async function stillServing(): Promise<void> {
  const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`);
  expect(res.status).toBe(200);
}

describe('H: request framing', () => {
  it.each([
    ['CL.TE (76)', 'Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nG'],
    ['TE.CL (77)', 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', '8\r\nSMUGGLED\r\n0\r\n\r\n'],
    ['duplicate Content-Length (79)', 'Content-Length: 5\r\nContent-Length: 6\r\n', 'hello!'],
    ['Content-Length list (79)', 'Content-Length: 5, 6\r\n', 'hello!'],
    ['signed Content-Length (79)', 'Content-Length: +5\r\n', 'hello'],
    ['hex Content-Length (79)', 'Content-Length: 0x5\r\n', 'hello'],
    ['space before the colon (82)', 'Content-Length : 5\r\n', 'hello'],
    [
      'TE chunked then chunked-false (78, CVE-2020-8287)',
      'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked-false\r\n',
      '1\r\nA\r\n0\r\n\r\n',
    ],
    ['TE via obs-fold (78)', 'Transfer-Encoding:\r\n chunked\r\n', '1\r\nA\r\n0\r\n\r\n'],
    ['obs-fold in any header (80)', 'X-Foo: a\r\n b\r\n', ''],
  ])('%s -> 400 and the connection closes, nothing forwarded', async (_name, headers, body) => {
    const res = await exchange(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n${headers}\r\n${body}GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    expect(res.closed).toBe(true);
    expect(up.requests.length).toBe(before);
    await stillServing();
  });

  it('TE obfuscation that is not chunked last (78) is refused, never forwarded ambiguously', async () => {
    for (const te of ['chunked, identity', 'xchunked', 'identity']) {
      const res = await exchange(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nTransfer-Encoding: ${te}\r\n\r\n1\r\nA\r\n0\r\n\r\n`,
      );
      expect([400, 501]).toContain(res.status);
    }
    expect(up.requests.length).toBe(before);
  });

  it('bare LF line endings (81) -> 400', async () => {
    const res = await exchange(`GET /v1/models HTTP/1.1\nHost: x\nAuthorization: Bearer ${alice}\n\n`);
    expect(res.status).toBe(400);
    expect(up.requests.length).toBe(before);
  });

  it('a NUL in a header value (82) -> 400', async () => {
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Foo: a\u0000b\r\nAuthorization: Bearer ${alice}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(up.requests.length).toBe(before);
  });

  it('an enormous chunk size (83) -> 400', async () => {
    const res = await exchange(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nA\r\n0\r\n\r\n`,
    );
    expect(res.status).toBe(400);
    await stillServing();
  });

  it.each([
    ['HTTP/1.0 with Transfer-Encoding (84)', 'HTTP/1.0', 'Transfer-Encoding: chunked\r\n'],
    ['HTTP/2.0 on a TCP connection (84)', 'HTTP/2.0', ''],
  ])('%s is refused', async (_n, version, extra) => {
    const res = await exchange(
      `POST /v1/chat/completions ${version}\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n${extra}\r\n1\r\nA\r\n0\r\n\r\n`,
    );
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(up.requests.length).toBe(before);
  });

  it('pipelining (85): every request is authorized on its own', async () => {
    const c = await RawClient.connect(port);
    c.write(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n\r\n` +
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}` +
        `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${carol}\r\nConnection: close\r\n\r\n`,
    );
    await c.closed;
    const statuses = [...c.received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses[0]).toBe(200);
    expect(statuses[1]).toBe(401);
    // The 401 for a request whose body was not read closes the connection; whatever follows on it is never processed.
    expect(statuses.slice(2).every((s) => s === 403)).toBe(true);
    expect(up.requests.length).toBe(before + 1);
    expect(up.requests.at(-1)!.target).toBe('/v1/models');
  });

  it('pipelining without bodies: a later request with another identity gets its own decision', async () => {
    const c = await RawClient.connect(port);
    c.write(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n\r\n` +
        `GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n` +
        `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${carol}\r\nConnection: close\r\n\r\n`,
    );
    await c.closed;
    const statuses = [...c.received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([200, 401, 403]);
    expect(up.requests.length).toBe(before + 1);
  });

  it('a client that promises more body than it sends and disconnects (86) cannot poison the next client', async () => {
    const a = await RawClient.connect(port);
    a.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Length: 100\r\n\r\n{"partial":`);
    await up.nextRequest();
    a.destroy();
    const b = await exchange(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{"input":1}`,
    );
    expect(b.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.target).toBe('/v1/embeddings');
    expect(seen.body.toString()).toBe('{"input":1}');
  });
});

describe('I: hop-by-hop and identity spoofing', () => {
  it('Connection naming the sidecar headers and Authorization (88) still authenticates and still delivers identity', async () => {
    const res = await exchange(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close, X-MS-CLIENT-PRINCIPAL-ID, X-Forwarded-For, Authorization, X-Request-Id\r\nAuthorization: Bearer ${alice}\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.header('x-ms-client-principal-id')).toEqual([ALICE]);
    expect(seen.header('x-forwarded-for')).toHaveLength(1);
    expect(seen.header('x-request-id')).toHaveLength(1);
    expect(seen.header('connection').join()).not.toMatch(/principal/i);
  });

  it('an empty Connection header followed by a real one (89, CVE-2021-33197) strips both', async () => {
    const res = await exchange(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection:\r\nConnection: X-Secret\r\nX-Secret: 1\r\nAuthorization: Bearer ${alice}\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.header('x-secret')).toEqual([]);
  });

  it('standard hop-by-hop request headers (90) are never forwarded', async () => {
    const res = await exchange(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nTE: gzip\r\nTrailer: X-T\r\nAuthorization: Bearer ${alice}\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    const seen = up.requests.at(-1)!;
    for (const h of ['keep-alive', 'proxy-connection', 'proxy-authorization', 'trailer']) expect(seen.header(h)).toEqual([]);
    expect(seen.header('te').filter((v) => v !== 'trailers')).toEqual([]);
  });

  it('response hop-by-hop headers (91) never reach the client', async () => {
    up.respond({
      kind: 'fixed',
      status: 200,
      headers: { connection: 'X-Internal-Debug', 'x-internal-debug': 'secret', 'keep-alive': 'timeout=1', 'content-type': 'application/json' },
      body: '{}',
    });
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    expect(res.raw.toLowerCase()).not.toContain('x-internal-debug');
    expect(res.raw.toLowerCase()).not.toContain('keep-alive: timeout=1');
  });

  it('spoofed identity headers (93, 94) in any case, with underscores and duplicated, never reach the upstream', async () => {
    const spoofed = [
      'X-MS-CLIENT-PRINCIPAL: eyJ9',
      'x-ms-client-principal-id: evil',
      'X_MS_CLIENT_PRINCIPAL_ID: evil',
      'X-MS-CLIENT-PRINCIPAL-NAME: evil',
      'X-MS-CLIENT-PRINCIPAL-IDP: evil',
      'X-MS-TOKEN-AAD-ACCESS-TOKEN: evil',
      'X-MS-TOKEN-AAD-ID-TOKEN: evil',
      'X-Forwarded-User: evil',
      'X-Forwarded_Email: evil',
      'X-Forwarded-Groups: evil',
      'X-Remote-User: evil',
      'X_Remote_User: evil',
      'X-Foundry-Auth-Principal-Type: app',
      'X-Foundry-Auth-Tenant-Id: evil',
      'X-Original-URL: /api/v1/models',
      'X-Rewrite-URL: /api/v1/models',
      'X-Forwarded-Uri: /api/v1/models',
      'X-Envoy-Original-Path: /api/v1/models',
      'X-HTTP-Method-Override: DELETE',
      'x-ms-client-principal-id: evil2',
    ];
    const res = await exchange(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\n${spoofed.join('\r\n')}\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    const seen = up.requests.at(-1)!;
    const values = seen.rawHeaders.filter((_, i) => i % 2 === 1);
    expect(values).not.toContain('evil');
    expect(values).not.toContain('evil2');
    expect(values).not.toContain('/api/v1/models');
    expect(values).not.toContain('DELETE');
    expect(seen.header('x-ms-client-principal-id')).toEqual([ALICE]);
    expect(seen.header('x-foundry-auth-principal-type')).toEqual(['user']);
    expect(seen.target).toBe('/v1/models');
  });

  it('a trailing space in a header name (94) -> 400', async () => {
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-MS-CLIENT-PRINCIPAL-ID : evil\r\nAuthorization: Bearer ${alice}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(up.requests.length).toBe(before);
  });

  it('X-Forwarded-For is appended, never replaced (96)', async () => {
    const res = await exchange(
      `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.example\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(200);
    const seen = up.requests.at(-1)!;
    expect(seen.header('x-forwarded-for')).toEqual(['10.0.0.1, 127.0.0.1']);
    expect(seen.header('x-forwarded-proto')).toEqual(['http']);
    expect(seen.header('x-forwarded-host')).toEqual(['x']);
  });

  it('trailers on a request body (113) are never used as credentials nor forwarded as identity', async () => {
    const res = await exchange(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: Authorization\r\n\r\n2\r\n{}\r\n0\r\nAuthorization: Bearer ${alice}\r\nX-MS-CLIENT-PRINCIPAL-ID: evil\r\n\r\n`,
    );
    expect(res.status).toBe(401);
    expect(up.requests.length).toBe(before);
  });
});

describe('K: Host and Expect', () => {
  it('a missing or duplicate Host (109) -> 400', async () => {
    expect((await exchange(`GET /v1/models HTTP/1.1\r\nAuthorization: Bearer ${alice}\r\n\r\n`)).status).toBe(400);
    expect((await exchange(`GET /v1/models HTTP/1.1\r\nHost: a\r\nHost: b\r\nAuthorization: Bearer ${alice}\r\n\r\n`)).status).toBe(400);
    expect(up.requests.length).toBe(before);
  });

  it('a foreign Host does not change where the request goes (109)', async () => {
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: attacker.example\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`);
    expect(res.status).toBe(200);
    expect(up.requests.at(-1)!.header('host')).toEqual([new URL(up.url).host]);
  });

  it('Expect: 100-continue without a valid token (111) -> 401 and no 100 Continue, body never read', async () => {
    const c = await RawClient.connect(port);
    c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n');
    const res = await c.readResponse();
    expect(res.status).toBe(401);
    expect(c.received).not.toContain('100 Continue');
    await c.closed;
    expect(up.requests.length).toBe(before);
  });

  it('Expect: 100-continue with a valid token (111) -> 100 Continue, then forwarded', async () => {
    const c = await RawClient.connect(port);
    c.write(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nExpect: 100-continue\r\nContent-Length: 11\r\nConnection: close\r\n\r\n`,
    );
    const deadline = Date.now() + 5000;
    while (!c.received.includes('100 Continue') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(c.received).toMatch(/^HTTP\/1\.1 100 Continue\r\n/);
    c.write('{"input":1}');
    await c.closed;
    expect(c.received).toMatch(/HTTP\/1\.1 200 OK/);
    const seen = up.requests.at(-1)!;
    expect(seen.body.toString()).toBe('{"input":1}');
    expect(seen.header('expect')).toEqual([]);
  });

  it('an unknown expectation (111) -> 417', async () => {
    const res = await exchange(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n{}`,
    );
    expect(res.status).toBe(417);
    expect(up.requests.length).toBe(before);
  });

  it('an OPTIONS preflight (112) gets no CORS answer and never reaches the upstream', async () => {
    const res = await exchange(
      'OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n\r\n',
    );
    expect(res.status).toBe(405);
    expect(res.raw.toLowerCase()).not.toContain('access-control-allow-origin');
    expect(up.requests.length).toBe(before);
  });
});

describe('L: resource exhaustion', () => {
  it('more than 256 header fields (116) -> 400 before authentication', async () => {
    const many = Array.from({ length: 300 }, (_, i) => `X-H${i}: ${i}`).join('\r\n');
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\n${many}\r\nAuthorization: Bearer ${alice}\r\n\r\n`);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error.message).toMatch(/too many header fields/);
    expect(up.requests.length).toBe(before);
  });

  it('headers over 16 KiB (116) and an oversized token (31) -> 431', async () => {
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    expect(res.status).toBe(431);
    expect(up.requests.length).toBe(before);
    await stillServing();
  });

  it('a 64 KiB target (118) is refused', async () => {
    const res = await exchange(`GET /v1/models?${'q'.repeat(64 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect([414, 431]).toContain(res.status);
    expect(up.requests.length).toBe(before);
  });

  it('a dot flood token (32) -> 401 quickly', async () => {
    const started = Date.now();
    const res = await exchange(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'.'.repeat(15_000)}\r\n\r\n`);
    expect(res.status).toBe(401);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('10,000 invalid-token requests (119) make no JWKS fetch and reach nothing', async () => {
    const fetches = idp.jwksFetches();
    const c = await RawClient.connect(port);
    const one = `GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice.slice(0, -6)}AAAAAA\r\n\r\n`;
    const count = 2000;
    c.write(one.repeat(count - 1) + one.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    await c.closed;
    expect([...c.received.matchAll(/HTTP\/1\.1 401/g)]).toHaveLength(count);
    expect(idp.jwksFetches()).toBe(fetches);
    expect(up.requests.length).toBe(before);
  });
});
