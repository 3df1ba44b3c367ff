/**
 * CL.0 desync through bodies the upstream does not expect: the real `serve` process in front of an
 * upstream that, like many small HTTP servers, never reads a body on GET/HEAD/DELETE and so parses
 * one as the next request on the connection. Oracle: the requests that upstream saw (a smuggled
 * inner request must never be among them), the bytes the client received, and the audit line.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TestIdp } from '../fixtures/idp.js';
import { RawClient } from '../fixtures/upstream.js';
import { staticServeFlags, startServe, type LogLine, type ServeProcess } from './harness.js';

/** A request line and headers as the naive upstream parsed them. */
interface SeenRequest {
  readonly method: string;
  readonly target: string;
  readonly headers: Readonly<Record<string, string>>;
}

/**
 * Keep-alive HTTP/1.1 that reads a body only on POST/PUT/PATCH (Content-Length or chunked) and
 * answers `200 ok` to everything: whatever body a GET carries becomes its next request.
 */
class BodyIgnoringUpstream {
  readonly seen: SeenRequest[] = [];
  private readonly server: Server;

  private constructor() {
    this.server = createServer((socket) => this.serve(socket));
  }

  static async start(): Promise<BodyIgnoringUpstream> {
    const up = new BodyIgnoringUpstream();
    up.server.listen(0, '127.0.0.1');
    await once(up.server, 'listening');
    return up;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.close();
    this.server.unref();
  }

  private serve(socket: Socket): void {
    let buffered = Buffer.alloc(0);
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const [line = '', ...fields] = buffered.subarray(0, end).toString('latin1').split('\r\n');
        const [method = '', target = ''] = line.split(' ');
        const headers: Record<string, string> = {};
        for (const field of fields) {
          const colon = field.indexOf(':');
          headers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
        }
        let consumed = end + 4;
        if (method === 'POST' || method === 'PUT' || method === 'PATCH') {
          if (headers['transfer-encoding'] !== undefined) {
            const last = buffered.indexOf('0\r\n\r\n', consumed);
            if (last < 0) return;
            consumed = last + 5;
          } else {
            const length = Number(headers['content-length'] ?? '0');
            if (buffered.length < consumed + length) return;
            consumed += length;
          }
        }
        buffered = buffered.subarray(consumed);
        this.seen.push({ method, target, headers });
        socket.write(method === 'HEAD' ? 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n' : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    });
  }
}

const SMUGGLED = 'POST /v1/chat/completions?smug=CL0 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}';
const chunked = (body: string): string => `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;

let idp: TestIdp;
let up: BodyIgnoringUpstream;
let sidecar: ServeProcess;
let port: number;
let alice: string;
let before = 0;

beforeAll(async () => {
  idp = await TestIdp.start();
  up = await BodyIgnoringUpstream.start();
  sidecar = await startServe(staticServeFlags(idp, up.url));
  await sidecar.ready();
  port = Number(new URL(sidecar.url).port);
  alice = await idp.mint();
});

afterAll(async () => {
  await sidecar?.stop('SIGKILL');
  await up?.close();
  await idp?.close();
});

beforeEach(() => {
  before = up.seen.length;
});

/** Sends exact bytes, reads until the sidecar closes the connection (or the timeout), and returns every status line received. */
async function send(bytes: string, opts: { closeWithin?: number } = {}): Promise<{ statuses: number[]; received: string; closed: boolean }> {
  const c = await RawClient.connect(port);
  c.write(bytes);
  const closed = await Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), opts.closeWithin ?? 2_000))]);
  c.destroy();
  const statuses = [...c.received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
  return { statuses, received: c.received, closed };
}

/** The audit line of the request the client got this response for (by its x-request-id), once it is written. */
async function auditOf(received: string): Promise<LogLine> {
  const requestId = /x-request-id: ([0-9a-f-]+)/i.exec(received)?.[1];
  expect(requestId).toBeDefined();
  return sidecar.waitForLog((l) => l.msg === 'request' && l.requestId === requestId);
}

/** Lets any bytes the sidecar might still forward reach the upstream before asserting that none did. */
async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
}

describe('public paths: no body without authentication', () => {
  it.each([
    ['GET, Content-Length', 'GET', `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
    ['GET, chunked', 'GET', `Transfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`],
    ['HEAD, Content-Length', 'HEAD', `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
    ['HEAD, chunked', 'HEAD', `Transfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`],
  ])('%s: 400 invalid_request, nothing upstream, the connection closed', async (_name, method, rest) => {
    const res = await send(`${method} /healthz HTTP/1.1\r\nHost: x\r\n${rest}`);
    await settle();
    expect(res.statuses).toEqual([400]);
    expect(res.closed).toBe(true);
    if (method === 'GET') expect(res.received).toContain('"code":"invalid_request"');
    if (method === 'GET') expect(res.received).toContain('a request to a public path must not have a body');
    expect(up.seen.slice(before)).toEqual([]);
    const line = await auditOf(res.received);
    expect(line).toMatchObject({ status: 400, code: 'invalid_request', reason: 'public_body' });
  });

  it('a body announced but not yet sent is refused without waiting for it', async () => {
    const res = await send('GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
    expect(res.statuses).toEqual([400]);
    expect(res.closed).toBe(true);
    await settle();
    expect(up.seen.slice(before)).toEqual([]);
  });

  it('Content-Length: 0 is no body: forwarded, and the connection stays usable', async () => {
    const res = await send(
      'GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(res.statuses).toEqual([200, 200]);
    expect(up.seen.slice(before).map((r) => `${r.method} ${r.target}`)).toEqual(['GET /healthz', 'GET /healthz']);
    expect(await auditOf(res.received)).toMatchObject({ status: 200, decision: 'public' });
  });
});

describe('authenticated GET/HEAD/DELETE: a body is refused too', () => {
  it.each([
    ['GET /v1/models, Content-Length', 'GET', '/v1/models', `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
    ['GET /v1/models, chunked', 'GET', '/v1/models', `Transfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`],
    ['HEAD /api/v1/models, Content-Length', 'HEAD', '/api/v1/models', `Content-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`],
    ['DELETE /api/v1/models/x, chunked', 'DELETE', '/api/v1/models/x', `Transfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`],
  ])('%s: 400 before authentication, nothing upstream, closed', async (_name, method, path, rest) => {
    const res = await send(`${method} ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\n${rest}`);
    await settle();
    expect(res.statuses).toEqual([400]);
    expect(res.closed).toBe(true);
    expect(up.seen.slice(before)).toEqual([]);
    const line = await auditOf(res.received);
    expect(line).toMatchObject({ status: 400, code: 'invalid_request', reason: 'bodyless_method_body' });
    expect(line.principal).toBeUndefined();
  });

  it('GET with Content-Length: 0 is authorized and forwarded as one request', async () => {
    const res = await send(`GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
    expect(res.statuses).toEqual([200]);
    expect(up.seen.slice(before).map((r) => `${r.method} ${r.target}`)).toEqual(['GET /v1/models']);
  });

  it('a POST body is forwarded as one framed request', async () => {
    const res = await send(
      `POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked('{"input":1}')}`,
    );
    expect(res.statuses).toEqual([200]);
    expect(up.seen.slice(before).map((r) => `${r.method} ${r.target}`)).toEqual(['POST /v1/embeddings']);
  });
});

describe('the audit line records the status the client received', () => {
  it('a chunked body that fails to parse after authorization: the client gets 400, and so does the audit line', async () => {
    const c = await RawClient.connect(port);
    c.write(`POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"inp\r\n`);
    // Let the request be authorized and its forward start before the broken chunk arrives.
    await new Promise((r) => setTimeout(r, 300));
    c.write('zz\r\nnot a chunk\r\n');
    await c.readUntilClosed();
    const statuses = [...c.received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]));
    expect(statuses).toEqual([400]);
    const line = await auditOf(c.received);
    expect(line).toMatchObject({ status: 400, code: 'invalid_request', path: '/v1/embeddings', decision: 'allow' });
    // One answer, one line: the parser error is not logged again as a request of its own.
    await settle();
    expect(sidecar.logs.filter((l) => l.msg === 'request' && l.reason === line.reason && l.requestId !== line.requestId)).toEqual([]);
  });
});

describe("the request-line leniencies of Node's parser", () => {
  it('HTTP/1.0 with Transfer-Encoding: one 400, closed, nothing upstream (the trailing bytes get no second answer)', async () => {
    const res = await send(
      `POST /v1/embeddings HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nTransfer-Encoding: chunked\r\n\r\n${chunked(SMUGGLED)}`,
    );
    await settle();
    expect(res.statuses).toEqual([400]);
    expect(res.closed).toBe(true);
    expect(up.seen.slice(before)).toEqual([]);
    expect(await auditOf(res.received)).toMatchObject({ status: 400, code: 'invalid_request' });
  });

  it('two spaces before the target: one request, routed and forwarded as the target that was authorized', async () => {
    const res = await send(`GET  /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${alice}\r\nConnection: close\r\n\r\n`);
    expect(res.statuses).toEqual([200]);
    expect(up.seen.slice(before).map((r) => `${r.method} ${r.target}`)).toEqual(['GET /v1/models']);
  });
});
