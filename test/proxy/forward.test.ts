import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { Metrics } from '../../src/ops/metrics.js';
import { RawClient, startUpstream, type ManualExchange, type Upstream } from '../fixtures/upstream.js';
import { startHarness, type Harness } from './harness.js';

let up: Upstream;
let proxy: Harness;

beforeEach(async () => {
  up = await startUpstream();
  proxy = await startHarness({ upstreamUrl: up.url });
});

afterEach(async () => {
  await proxy.close();
  await up.close();
});

/** Sends a request with the given body parts, writing part n+1 only after `between(n)` resolved. */
function streamingUpload(
  url: string,
  headers: Record<string, string>,
  parts: Buffer[],
  between: (index: number) => Promise<void>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'POST', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    void (async () => {
      for (let i = 0; i < parts.length; i++) {
        req.write(parts[i]);
        if (i < parts.length - 1) await between(i);
      }
      req.end();
    })().catch(reject);
  });
}

describe('request forwarding', () => {
  it('forwards method and the exact target, query included, byte for byte', async () => {
    const target = '/v1/chat/completions?api-version=2024-10-21&a=%2f%2F&b=&c=x+y&d=%E2%82%AC&&e';
    const res = await request(`${proxy.url}${target}`, { method: 'GET' });
    expect(res.statusCode).toBe(200);
    await res.body.text();
    const seen = up.requests[0]!;
    expect(seen.method).toBe('GET');
    expect(seen.target).toBe(target);
    expect(seen.body.length).toBe(0);
  });

  it('prefixes the upstream base URL path', async () => {
    await proxy.close();
    proxy = await startHarness({ upstreamUrl: `${up.url}/deployments/phi/` });
    const res = await request(`${proxy.url}/v1/models?x=1`);
    await res.body.text();
    expect(up.requests[0]!.target).toBe('/deployments/phi/v1/models?x=1');
  });

  it('sends a body-less GET without body or framing headers', async () => {
    const client = await RawClient.connect(proxy.port);
    client.write('GET /v1/models HTTP/1.1\r\nHost: gateway.example\r\n\r\n');
    expect((await client.readResponse()).status).toBe(200);
    const seen = up.requests[0]!;
    expect(seen.header('content-length')).toEqual([]);
    expect(seen.header('transfer-encoding')).toEqual([]);
    client.destroy();
  });

  it('streams a Content-Length upload: the upstream sees the first bytes before the client sent the rest', async () => {
    const parts = [Buffer.alloc(64 * 1024, 'a'), Buffer.alloc(64 * 1024, 'b'), Buffer.alloc(64 * 1024, 'c')];
    const total = parts.reduce((n, p) => n + p.length, 0);
    const result = await streamingUpload(
      `${proxy.url}/v1/embeddings`,
      { 'content-type': 'application/octet-stream', 'content-length': String(total) },
      parts,
      async (i) => {
        const seen = up.requests[0] ?? (await up.nextRequest());
        if (i === 0) await seen.firstBodyChunk;
        // The upstream holds bytes of the part just written, and nothing of the next one.
        await waitUntil(() => seen.body.length >= (i + 1) * 64 * 1024, 'upstream to receive the part');
        expect(seen.complete).toBe(false);
      },
    );
    expect(result.status).toBe(200);
    const seen = up.requests[0]!;
    expect(seen.body.equals(Buffer.concat(parts))).toBe(true);
    expect(seen.header('content-length')).toEqual([String(total)]);
    expect(seen.header('transfer-encoding')).toEqual([]);
  });

  it('streams a chunked upload as chunked, body intact', async () => {
    const parts = [Buffer.from('{"input":'), Buffer.from('"hello"}')];
    const result = await streamingUpload(
      `${proxy.url}/v1/embeddings`,
      { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      parts,
      async () => {
        const seen = up.requests[0] ?? (await up.nextRequest());
        await seen.firstBodyChunk;
        expect(seen.complete).toBe(false);
      },
    );
    expect(result.status).toBe(200);
    const seen = up.requests[0]!;
    expect(seen.body.toString()).toBe('{"input":"hello"}');
    expect(seen.header('transfer-encoding')).toEqual(['chunked']);
    expect(seen.header('content-length')).toEqual([]);
  });

  it('answers Expect: 100-continue itself and does not forward Expect', async () => {
    const client = await RawClient.connect(proxy.port);
    client.write('POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n');
    const interim = await client.readResponse();
    expect(interim.status).toBe(100);
    client.write('{"input":1}');
    const final = await client.readResponse();
    expect(final.status).toBe(200);
    const seen = up.requests[0]!;
    expect(seen.header('expect')).toEqual([]);
    expect(seen.body.toString()).toBe('{"input":1}');
    client.destroy();
  });

  it('passes HEAD, 204 and 304 responses without a body', async () => {
    up.respond({
      kind: 'fixed',
      status: 200,
      headers: { 'content-type': 'application/json', 'content-length': '17' },
      body: '{"a":"0123456789"}'.slice(0, 17),
    });
    const client = await RawClient.connect(proxy.port);
    client.write('HEAD /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
    const head = await client.readResponse({ head: true });
    expect(head.status).toBe(200);
    expect(head.header('content-length')).toEqual(['17']);
    up.respond({ kind: 'fixed', status: 204 });
    client.write('DELETE /api/v1/models/custom/x HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await client.readResponse()).status).toBe(204);
    up.respond({ kind: 'fixed', status: 304, headers: { etag: '"v1"' } });
    client.write('GET /v1/models HTTP/1.1\r\nHost: x\r\nIf-None-Match: "v1"\r\n\r\n');
    const notModified = await client.readResponse();
    expect(notModified.status).toBe(304);
    expect(notModified.header('etag')).toEqual(['"v1"']);
    // Nothing extra on the connection: a further request still parses cleanly.
    up.respond({ kind: 'echo' });
    client.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
    expect((await client.readResponse()).status).toBe(200);
    expect(up.requests.map((r) => r.method)).toEqual(['HEAD', 'DELETE', 'GET', 'GET']);
    client.destroy();
  });

  it('answers pipelined client requests in order, each with its own upstream response', async () => {
    const client = await RawClient.connect(proxy.port);
    client.write(
      'GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    const targets: string[] = [];
    for (let i = 0; i < 3; i++) targets.push((JSON.parse((await client.readResponse()).body.toString()) as { target: string; body: string }).target);
    expect(targets).toEqual(['/one', '/two', '/three']);
    expect(up.requests.map((r) => `${r.method} ${r.target} ${r.body.toString()}`)).toEqual(['GET /one ', 'POST /two abc', 'GET /three ']);
    client.destroy();
  });

  it('keeps upstream connections alive across requests', async () => {
    for (let i = 0; i < 5; i++) await (await request(`${proxy.url}/v1/models`)).body.text();
    expect(up.connections).toBe(1);
  });

  it('forwards many concurrent requests, each to its own response', async () => {
    const results = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const res = await request(`${proxy.url}/v1/embeddings?i=${i}`, { method: 'POST', body: `body-${i}` });
        return (await res.body.json()) as { target: string; body: string };
      }),
    );
    results.forEach((r, i) => {
      expect(r.target).toBe(`/v1/embeddings?i=${i}`);
      expect(r.body).toBe(`body-${i}`);
    });
  });

  it('routes the control plane to --control-upstream and records latency by plane', async () => {
    const control = await startUpstream();
    const metrics = new Metrics({ defaultMetrics: false });
    await proxy.close();
    proxy = await startHarness({
      upstreamUrl: up.url,
      controlUpstream: new URL(control.url),
      metrics,
      plane: (req) => (req.url?.startsWith('/api/') ? 'control' : 'data'),
    });
    await (await request(`${proxy.url}/api/v1/models`)).body.text();
    await (await request(`${proxy.url}/v1/models`)).body.text();
    expect(control.requests.map((r) => r.target)).toEqual(['/api/v1/models']);
    expect(up.requests.map((r) => r.target)).toEqual(['/v1/models']);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/foundry_auth_upstream_first_byte_seconds_count\{plane="control"\} 1/);
    expect(text).toMatch(/foundry_auth_upstream_first_byte_seconds_count\{plane="data"\} 1/);
    expect(text).toMatch(/foundry_auth_upstream_duration_seconds_count\{plane="data"\} 1/);
    await control.close();
  });

  it('reports the outcome and the time to the first response byte', async () => {
    up.respond({ kind: 'fixed', status: 201, headers: { 'content-type': 'text/plain' }, body: 'created!' });
    const res = await request(`${proxy.url}/api/v1/models`, { method: 'POST', body: '0123456789' });
    expect(res.statusCode).toBe(201);
    expect(await res.body.text()).toBe('created!');
    expect(up.requests.at(-1)?.body.toString()).toBe('0123456789');
    const result = await proxy.nextResult();
    expect(result.outcome).toBe('ok');
    expect(result.firstByteMs).toBeGreaterThanOrEqual(0);
  });
});

describe('response streaming', () => {
  it('delivers each SSE event to the client before the upstream sends the next', async () => {
    up.respond({ kind: 'manual' });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${proxy.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } }, resolve);
      req.on('error', reject);
      req.end('{"stream":true}');
    });
    const exchange = await up.nextExchange();
    exchange.head(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    // The headers reach the client before any event exists.
    const res = await response;
    expect(res.headers['content-type']).toBe('text/event-stream');
    const received: string[] = [];
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => received.push(chunk));
    for (let i = 1; i <= 5; i++) {
      exchange.event(`{"n":${i}}`);
      // The event reaches the client while the upstream has sent nothing more.
      await waitUntil(() => received.join('').includes(`data: {"n":${i}}\n\n`), `event ${i} at the client`);
      expect(exchange.written).toBe(i);
    }
    exchange.event('[DONE]');
    exchange.end();
    await once(res, 'end');
    expect(received.join('')).toBe([1, 2, 3, 4, 5].map((i) => `data: {"n":${i}}\n\n`).join('') + 'data: [DONE]\n\n');
    expect(res.headers['content-encoding']).toBeUndefined();
    expect((await proxy.nextResult()).outcome).toBe('ok');
  });

  it('applies backpressure: a client that stops reading stalls the upstream instead of filling memory', async () => {
    up.respond({ kind: 'manual' });
    const client = await RawClient.connect(proxy.port);
    client.socket.pause();
    client.write('GET /v1/big HTTP/1.1\r\nHost: x\r\n\r\n');
    const exchange = await up.nextExchange();
    exchange.head(200, { 'content-type': 'application/octet-stream' });
    const chunk = Buffer.alloc(256 * 1024, 'x');
    let written = 0;
    const limit = 256 * 1024 * 1024;
    // Write until the upstream socket stays blocked: a proxy without backpressure would drain it forever.
    for (;;) {
      if (exchange.res.write(chunk)) {
        written += chunk.length;
        if (written > limit) break;
        continue;
      }
      written += chunk.length;
      const drained = await Promise.race([once(exchange.res, 'drain').then(() => true), delay(300).then(() => false)]);
      if (!drained || written > limit) break;
    }
    expect(written).toBeLessThan(64 * 1024 * 1024);
    client.destroy();
    await up.nextAbort(2_000);
  });
});

describe('aborts and failures', () => {
  it('aborts the upstream within 1 s when the client disconnects while waiting for headers', async () => {
    up.respond({ kind: 'hold' });
    const client = await RawClient.connect(proxy.port);
    client.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}');
    await up.nextRequest();
    const started = performance.now();
    client.destroy();
    await up.nextAbort(1_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    const result = await proxy.nextResult();
    expect(result.outcome).toBe('client_abort');
    expect(result.firstByteMs).toBeUndefined();
  });

  it('sends nothing upstream when the client left before forwarding began', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let held: IncomingMessage | undefined;
    await proxy.close();
    proxy = await startHarness({ upstreamUrl: up.url, beforeForward: (req) => ((held = req), gate) });
    const client = await RawClient.connect(proxy.port);
    client.write('GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitUntil(() => held !== undefined, 'the request at the gateway');
    client.destroy();
    await waitUntil(() => held!.socket.destroyed, 'the gateway to see the disconnect');
    release();
    const result = await proxy.nextResult();
    expect(result.outcome).toBe('client_abort');
    expect(result.firstByteMs).toBeUndefined();
    expect(up.requests).toHaveLength(0);
  });

  it('aborts the upstream within 1 s when the client disconnects mid-stream', async () => {
    const { client } = await streamFirstEvent();
    const started = performance.now();
    client.destroy();
    await up.nextAbort(1_000);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(await proxy.nextResult()).toMatchObject({ outcome: 'client_abort', firstByteMs: expect.any(Number) });
  });

  it('closes the client connection on a mid-stream upstream failure, inventing nothing', async () => {
    const { client, exchange } = await streamFirstEvent();
    exchange.fail();
    const all = await client.readUntilClosed();
    const body = all.slice(all.indexOf('\r\n\r\n') + 4);
    // Exactly the one chunk the upstream sent; no terminating chunk, no [DONE], no error JSON.
    expect(body).toBe(`${Buffer.byteLength('data: {"n":1}\n\n').toString(16)}\r\ndata: {"n":1}\n\n\r\n`);
    expect(await proxy.nextResult()).toMatchObject({ outcome: 'upstream_error_midstream', firstByteMs: expect.any(Number) });
    expect(up.aborts).toBe(0);
  });

  it('answers 502 upstream_unavailable when the upstream refuses connections', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await proxy.close();
    proxy = await startHarness({ upstreamUrl: `http://127.0.0.1:${port}` });
    const res = await request(`${proxy.url}/v1/chat/completions`, {
      method: 'POST',
      body: '{"messages":[]}',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(502);
    expect(res.headers['content-type']).toBe('application/json');
    const body = (await res.body.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error.code).toBe('upstream_unavailable');
    expect(body.error.message).toContain('connection refused');
    expect(body.error.message).not.toContain(String(port));
    const result = await proxy.nextResult();
    expect(result).toMatchObject({ outcome: 'rejected', rejection: { code: 'upstream_unavailable', reason: 'econnrefused' } });
  });

  it('answers 502 on the same client connection when the upstream drops it during the upload', async () => {
    up.respond({ kind: 'manual' });
    const client = await RawClient.connect(proxy.port);
    client.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n{"a":');
    const exchange = await up.nextExchange();
    await exchange.request.firstBodyChunk;
    exchange.fail();
    const res = await client.readResponse();
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body.toString()) as unknown).toMatchObject({ error: { code: 'upstream_unavailable' } });
    expect(await proxy.nextResult()).toMatchObject({ outcome: 'rejected', rejection: { code: 'upstream_unavailable' } });
    client.destroy();
  });

  it('answers 504 upstream_timeout when the upstream sends no headers in time', async () => {
    await proxy.close();
    proxy = await startHarness({ upstreamUrl: up.url, headersTimeoutMs: 150 });
    up.respond({ kind: 'hold' });
    const res = await request(`${proxy.url}/v1/chat/completions`, { method: 'POST', body: '{}' });
    expect(res.statusCode).toBe(504);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
    expect(await proxy.nextResult()).toMatchObject({ outcome: 'rejected', rejection: { reason: 'headers_timeout' } });
  });

  it('does not leak a half-sent body into the next request on the pooled connection (pool poisoning)', async () => {
    up.respond({ kind: 'hold' });
    const a = await RawClient.connect(proxy.port);
    a.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"model":"a","x":"');
    const first = await up.nextRequest();
    await first.firstBodyChunk;
    a.destroy();
    await up.nextAbort(1_000);
    up.respond({ kind: 'echo' });
    const b = await request(`${proxy.url}/v1/embeddings?who=b`, {
      method: 'POST',
      body: '{"model":"b"}',
      headers: { 'content-type': 'application/json' },
    });
    const echoed = (await b.body.json()) as { method: string; target: string; body: string };
    expect(echoed).toMatchObject({ method: 'POST', target: '/v1/embeddings?who=b', body: '{"model":"b"}' });
    expect(up.requests).toHaveLength(2);
    expect(up.requests[0]!.complete).toBe(false);
    expect(up.requests[1]!.body.toString()).toBe('{"model":"b"}');
    // A's connection was discarded, never reused for B.
    expect(up.connections).toBe(2);
  });

  it('answers 502 for an upstream response with invalid headers and keeps serving', async () => {
    const invalid = [
      'HTTP/1.1 200 OK\r\nX-Bad: a\rb\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nX Bad: 1\r\nContent-Length: 2\r\n\r\nok',
      'HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok',
      'garbage\r\n\r\n',
    ];
    for (const bytes of invalid) {
      up.respond({ kind: 'raw', bytes });
      const res = await request(`${proxy.url}/v1/models`);
      expect(res.statusCode, JSON.stringify(bytes)).toBe(502);
      const error = ((await res.body.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('upstream_unavailable');
      expect(error.message, JSON.stringify(bytes)).toContain('invalid HTTP response');
      expect((await proxy.nextResult()).outcome).toBe('rejected');
    }
    up.respond({ kind: 'echo' });
    const ok = await request(`${proxy.url}/v1/models`);
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
  });
});

/** A raw client whose stream is under way: the upstream sent one SSE event and the client has it. */
async function streamFirstEvent(): Promise<{ client: RawClient; exchange: ManualExchange }> {
  up.respond({ kind: 'manual' });
  const client = await RawClient.connect(proxy.port);
  client.write('GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n');
  const exchange = await up.nextExchange();
  exchange.event('{"n":1}');
  await waitUntil(() => client.received.includes('{"n":1}'), 'first event at the client');
  return { client, exchange };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls a condition on each turn of the event loop, failing after a deadline. */
async function waitUntil(condition: () => boolean, what: string, timeoutMs = 2_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
