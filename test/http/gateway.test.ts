/**
 * The gateway in-process with stand-in stages, for what needs short timeouts (threats.md L 114-115)
 * and for the pipeline's ordering guarantees without any real identity provider.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Authorizer, Decision } from '../../src/contracts/decision.js';
import { rejection } from '../../src/contracts/errors.js';
import { Gateway } from '../../src/http/gateway.js';
import { DecisionCore } from '../../src/pipeline/decide.js';
import { DEFAULT_ROUTES, RouteTable } from '../../src/pipeline/routes.js';
import type { AuthenticationStage, AuthnOutcome, ForwardingStage, ForwardRequest, ForwardResult } from '../../src/contracts/stages.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { RawClient } from '../fixtures/upstream.js';

const ALICE = { type: 'user' as const, oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e', tid: '72f988bf-86f1-41af-91ab-2d7cd011db47' };

class Recorder implements AuthenticationStage, Authorizer, ForwardingStage {
  authn = 0;
  authz = 0;
  forwarded: string[] = [];
  /** Set to make `forward` throw (a bug in a stage): before or after it wrote the response head. */
  failForward: 'before-head' | 'after-head' | undefined;
  authenticateRequest(raw: readonly string[]): AuthnOutcome {
    this.authn++;
    const auth = raw.find((v, i) => i % 2 === 1 && raw[i - 1]!.toLowerCase() === 'authorization');
    return auth === 'Bearer good'
      ? { ok: true, principal: ALICE, tokenCache: 'hit' }
      : { ok: false, rejection: rejection('missing_credentials', 'no credentials', { reason: 'missing' }) };
  }
  async authorize(): Promise<Decision> {
    this.authz++;
    return { kind: 'allow', source: 'static', cache: 'hit' };
  }
  async readiness(): Promise<string | null> {
    return null;
  }
  async close(): Promise<void> {}
  async forward(r: ForwardRequest): Promise<ForwardResult> {
    this.forwarded.push(r.target);
    if (this.failForward === 'after-head') r.res.writeHead(200, { 'content-type': 'text/plain' }).write('partial');
    if (this.failForward !== undefined) throw new Error('stage bug');
    const chunks: Buffer[] = [];
    for await (const c of r.req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    r.res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
    return { outcome: 'ok' };
  }
}

const servers: Gateway[] = [];
afterEach(async () => {
  for (const g of servers.splice(0)) {
    g.server.closeAllConnections();
    await new Promise((r) => g.server.close(r));
  }
});

async function start(
  opts: { headersTimeoutMs?: number; requestTimeoutMs?: number } = {},
): Promise<{ port: number; stages: Recorder; metrics: Metrics }> {
  const stages = new Recorder();
  const metrics = new Metrics({ defaultMetrics: false });
  const decider = new DecisionCore({ routes: new RouteTable(DEFAULT_ROUTES), publicPaths: ['/healthz'], authn: stages, authz: stages });
  const gateway = new Gateway({ decider, forwarder: stages, log: silentLogger(), metrics, keepAliveTimeoutMs: 65 * 60_000, ...opts });
  servers.push(gateway);
  await new Promise<void>((r) => gateway.server.listen(0, '127.0.0.1', r));
  return { port: (gateway.server.address() as { port: number }).port, stages, metrics };
}

/** The request counter's samples as `status code` strings, and the in-flight gauge. */
async function counted(metrics: Metrics): Promise<{ requests: string[]; inflight: number }> {
  const requests = (await metrics.requests.get()).values.flatMap((v) => Array<string>(v.value).fill(`${v.labels.status} ${v.labels.code}`));
  return { requests, inflight: (await metrics.inflight.get()).values[0]?.value ?? 0 };
}

async function until<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('slow clients (threats 114-115)', () => {
  it('closes a connection whose headers trickle in, with 408, before any stage runs', async () => {
    const { port, stages } = await start({ headersTimeoutMs: 200, requestTimeoutMs: 400 });
    const c = await RawClient.connect(port);
    c.write('GET /v1/models HTTP/1.1\r\nHost: x\r\n');
    await c.closed;
    expect(c.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(stages.authn).toBe(0);
  });

  it('closes a request whose body trickles in past the request timeout', async () => {
    const { port, stages } = await start({ headersTimeoutMs: 200, requestTimeoutMs: 400 });
    const c = await RawClient.connect(port);
    c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nContent-Length: 100\r\n\r\n{');
    await c.closed;
    expect(stages.forwarded).toEqual(['/v1/chat/completions']);
    expect(c.received).not.toMatch(/HTTP\/1\.1 200/);
  });
});

describe('pipeline order', () => {
  it('never authenticates a request that fails an earlier step, and never authorizes an unauthenticated one', async () => {
    const { port, stages } = await start();
    for (const target of ['/v1/../x', '/nope', 'http://x/v1/models']) {
      const c = await RawClient.connect(port);
      c.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n`);
      await c.closed;
    }
    expect(stages.authn).toBe(0);
    const c = await RawClient.connect(port);
    c.write('GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await c.closed;
    expect(c.received).toMatch(/^HTTP\/1\.1 401 /);
    expect(stages.authn).toBe(1);
    expect(stages.authz).toBe(0);
    expect(stages.forwarded).toEqual([]);
  });
});

describe('a stage that throws (a bug)', () => {
  it('answers 500 internal_error with the request ID, and still counts the request once', async () => {
    const { port, stages, metrics } = await start();
    stages.failForward = 'before-head';
    const c = await RawClient.connect(port);
    c.write('GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n');
    await until(
      async () => c.received,
      (r) => r.includes('}'),
      'the error response',
    );
    expect(c.received).toMatch(/^HTTP\/1\.1 500 /);
    expect(c.received).toMatch(/\r\nx-request-id: [0-9a-f-]{36}\r\n/i);
    expect(c.received).toContain('"code":"internal_error"');
    c.destroy();
    const seen = await until(
      () => counted(metrics),
      (m) => m.requests.length > 0 && m.inflight === 0,
      'the request to be counted',
    );
    expect(seen.requests).toEqual(['500 internal_error']);
  });

  it('cuts the connection when the response had already started, and still counts the request once', async () => {
    const { port, stages, metrics } = await start();
    stages.failForward = 'after-head';
    const c = await RawClient.connect(port);
    c.write('GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n');
    await c.closed;
    // Destroyed at once: whatever of the started response had not left yet is cut, and nothing is appended.
    expect(c.received).not.toMatch(/HTTP\/1\.1 500|internal_error/);
    const seen = await until(
      () => counted(metrics),
      (m) => m.requests.length > 0 && m.inflight === 0,
      'the request to be counted',
    );
    expect(seen.requests).toEqual(['200 ']);
  });
});
