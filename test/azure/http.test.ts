import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HttpCallError, parseRetryAfter, requestJson } from '../../src/azure/http.js';

let server: Server;
let base: string;
let answer: (res: import('node:http').ServerResponse) => void;

beforeEach(async () => {
  server = createServer((_req, res) => answer(res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function failureOf(promise: Promise<unknown>): Promise<HttpCallError> {
  const err = await promise.catch((e: unknown) => e);
  expect(err).toBeInstanceOf(HttpCallError);
  return err as HttpCallError;
}

describe('parseRetryAfter', () => {
  const now = Date.UTC(2026, 0, 1);
  it('reads delta-seconds and HTTP dates, caps them, and ignores garbage', () => {
    expect(parseRetryAfter('5', now)).toBe(5);
    expect(parseRetryAfter(['12', '30'], now)).toBe(12);
    expect(parseRetryAfter(new Date(now + 42_500).toUTCString(), now)).toBe(42);
    expect(parseRetryAfter(new Date(now - 60_000).toUTCString(), now)).toBe(0);
    expect(parseRetryAfter('999999', now)).toBe(3600);
    expect(parseRetryAfter('-1', now)).toBeUndefined();
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});

describe('requestJson', () => {
  it('classifies ARM and Entra error bodies with their code, message and Retry-After', async () => {
    answer = (res) => {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '9' });
      res.end(JSON.stringify({ error: { code: 'ServiceUnavailable', message: 'try later\nsecond line' } }));
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 2_000 }))).failure).toEqual({
      kind: 'http',
      status: 503,
      code: 'ServiceUnavailable',
      message: 'try later',
      retryAfterSeconds: 9,
    });
    answer = (res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ error: 'invalid_client', error_description: 'AADSTS7000215: Invalid client secret provided.', error_codes: [7000215] }),
      );
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 2_000 }))).failure).toMatchObject({
      kind: 'http',
      status: 400,
      code: 'invalid_client',
      message: 'AADSTS7000215: Invalid client secret provided.',
    });
  });

  it('does not follow redirects', async () => {
    answer = (res) => {
      res.writeHead(302, { location: 'http://127.0.0.2:9/elsewhere' });
      res.end();
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 2_000 }))).failure).toMatchObject({
      kind: 'http',
      status: 302,
    });
  });

  it('refuses a body larger than the cap, declared or streamed', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '2000' });
      res.end('x'.repeat(2000));
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 2_000, maxBytes: 1000 }))).failure.kind).toBe(
      'bad_response',
    );
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('['.repeat(800));
      res.end(']'.repeat(800));
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 2_000, maxBytes: 1000 }))).failure.kind).toBe(
      'bad_response',
    );
  });

  it('reports the status of an error answer whose body is too large to read', async () => {
    answer = (res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>'.repeat(100_000));
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 2_000 }))).failure).toEqual({ kind: 'http', status: 502 });
  });

  it('times out a response that stalls mid-body', async () => {
    answer = (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('{"value":');
    };
    expect((await failureOf(requestJson({ operation: 'test', url: `${base}/x`, timeoutMs: 200 }))).failure).toEqual({
      kind: 'timeout',
      afterMs: 200,
    });
  });

  it('sends a string URL byte for byte', async () => {
    let target = '';
    server.removeAllListeners('request');
    server.on('request', (req, res) => {
      target = req.url ?? '';
      res.end('{}');
    });
    await requestJson({ operation: 'test', url: `${base}/a?$filter=assignedTo('x')+and+atScope()`, timeoutMs: 2_000 });
    expect(target).toBe("/a?$filter=assignedTo('x')+and+atScope()");
  });
});
