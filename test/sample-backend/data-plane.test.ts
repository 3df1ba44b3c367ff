import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { replyText, tokenize } from '../../src/offline/sample-backend/generate.js';
import { startSampleBackend, type SampleBackend } from '../../src/offline/sample-backend/server.js';
import { RawClient } from '../fixtures/upstream.js';

let backend: SampleBackend;
let logLines: Array<Record<string, unknown>>;

beforeEach(async () => {
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
      callback();
    },
  });
  backend = await startSampleBackend({ port: 0, tokenRate: 0, log: pino({ level: 'info' }, sink) });
});

afterEach(async () => {
  await backend.close();
});

async function post(path: string, body: unknown): Promise<{ status: number; headers: Record<string, unknown>; text: string }> {
  const res = await request(`${backend.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

async function get(path: string): Promise<{ status: number; json: unknown }> {
  const res = await request(`${backend.url}${path}`);
  return { status: res.statusCode, json: await res.body.json() };
}

/** Splits an SSE body into its `data:` payloads, checking the framing on the way. */
function sseData(text: string): string[] {
  expect(text.endsWith('\n\n')).toBe(true);
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      expect(event.startsWith('data: ')).toBe(true);
      return event.slice(6);
    });
}

const chat = {
  model: 'phi-4-mini',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hello sidecar' },
  ],
};

describe('health', () => {
  it('answers /healthz and /readyz', async () => {
    expect(await get('/healthz')).toEqual({ status: 200, json: { status: 'healthy' } });
    expect(await get('/readyz')).toEqual({ status: 200, json: { status: 'ready' } });
  });
});

describe('/v1/models', () => {
  it('lists models in the OpenAI shape', async () => {
    const { status, json } = await get('/v1/models');
    expect(status).toBe(200);
    expect(json).toMatchObject({
      object: 'list',
      data: expect.arrayContaining([{ id: 'phi-4-mini', object: 'model', created: 1767225600, owned_by: 'foundry-local' }]),
    });
  });

  it('returns one model, or a 404 in the OpenAI error shape', async () => {
    expect(await get('/v1/models/phi-4-mini')).toMatchObject({ status: 200, json: { id: 'phi-4-mini', object: 'model' } });
    expect(await get('/v1/models/gpt-5')).toEqual({
      status: 404,
      json: { error: { message: "The model 'gpt-5' does not exist", type: 'invalid_request_error', param: 'model', code: 'model_not_found' } },
    });
  });
});

describe('/v1/chat/completions', () => {
  it('answers with deterministic text derived from the last user message', async () => {
    const first = await post('/v1/chat/completions', chat);
    const second = await post('/v1/chat/completions', chat);
    expect(first.status).toBe(200);
    const a = JSON.parse(first.text) as {
      object: string;
      choices: Array<{ message: { role: string; content: string }; finish_reason: string }>;
      usage: Record<string, number>;
    };
    const b = JSON.parse(second.text) as typeof a;
    expect(a.object).toBe('chat.completion');
    expect(a.choices[0]!.message.role).toBe('assistant');
    expect(a.choices[0]!.message.content).toBe(replyText('Hello sidecar'));
    expect(a.choices[0]!.message.content.startsWith('You said: Hello sidecar.')).toBe(true);
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content);
    expect(a.choices[0]!.finish_reason).toBe('stop');
    const tokens = tokenize(replyText('Hello sidecar')).length;
    expect(a.usage).toEqual({ prompt_tokens: 4, completion_tokens: tokens, total_tokens: 4 + tokens });
  });

  it('respects max_tokens (finish_reason length)', async () => {
    const res = JSON.parse((await post('/v1/chat/completions', { ...chat, max_tokens: 3 })).text) as {
      choices: Array<{ message: { content: string }; finish_reason: string }>;
      usage: { completion_tokens: number };
    };
    expect(res.choices[0]!.message.content).toBe('You said: Hello');
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(res.usage.completion_tokens).toBe(3);
  });

  it('streams chat.completion.chunk events and ends with data: [DONE]', async () => {
    const res = await post('/v1/chat/completions', { ...chat, stream: true, max_tokens: 4, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    const events = sseData(res.text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map(
      (e) =>
        JSON.parse(e) as {
          id: string;
          object: string;
          choices: Array<{ delta: { role?: string; content?: string }; finish_reason: string | null }>;
          usage?: unknown;
        },
    );
    expect(new Set(chunks.map((c) => c.object))).toEqual(new Set(['chat.completion.chunk']));
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    const text = chunks.flatMap((c) => c.choices.map((choice) => choice.delta.content ?? '')).join('');
    expect(text).toBe('You said: Hello sidecar.');
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { completion_tokens: 4 } });
  });

  it('streams at the configured token rate', async () => {
    await backend.close();
    backend = await startSampleBackend({ port: 0, tokenRate: 100 });
    const started = performance.now();
    await post('/v1/chat/completions', { ...chat, stream: true, max_tokens: 10 });
    // Ten tokens at 100 tokens/s cannot arrive in less than 90 ms (nine gaps after the first).
    expect(performance.now() - started).toBeGreaterThanOrEqual(85);
  });

  it('rejects bad input in the OpenAI error shape', async () => {
    const cases: Array<[unknown, number, string, string | null]> = [
      ['{not json', 400, 'invalid_json', null],
      ['', 400, 'invalid_json', null],
      [{ model: 'phi-4-mini' }, 400, 'invalid_value', 'messages'],
      [{ model: 'phi-4-mini', messages: [] }, 400, 'invalid_value', 'messages'],
      [{ messages: chat.messages }, 400, 'invalid_value', 'model'],
      [{ ...chat, max_tokens: 0 }, 400, 'invalid_value', 'max_tokens'],
      [{ ...chat, stream: 'yes' }, 400, 'invalid_value', 'stream'],
      [{ ...chat, model: 'nope' }, 404, 'model_not_found', 'model'],
    ];
    for (const [body, status, code, param] of cases) {
      const res = await post('/v1/chat/completions', body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      const error = (JSON.parse(res.text) as { error: { message: string; type: string; code: string; param: string | null } }).error;
      expect(error).toMatchObject({ type: 'invalid_request_error', code, param });
      expect(error.message.length).toBeGreaterThan(0);
    }
  });

  it('refuses other methods and unknown routes', async () => {
    const res = await request(`${backend.url}/v1/chat/completions`);
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('method_not_allowed');
    const missing = await post('/v1/responses', {});
    expect(missing.status).toBe(404);
  });
});

describe('/v1/completions', () => {
  it('answers JSON and SSE', async () => {
    const json = JSON.parse((await post('/v1/completions', { model: 'qwen2.5-0.5b', prompt: 'Say hi', max_tokens: 3 })).text) as {
      object: string;
      choices: Array<{ text: string; finish_reason: string }>;
    };
    expect(json.object).toBe('text_completion');
    expect(json.choices[0]).toMatchObject({ text: 'You said: Say', finish_reason: 'length' });
    const stream = sseData((await post('/v1/completions', { model: 'qwen2.5-0.5b', prompt: 'Say hi', max_tokens: 3, stream: true })).text);
    expect(stream.at(-1)).toBe('[DONE]');
    const text = stream
      .slice(0, -1)
      .map((e) => (JSON.parse(e) as { choices: Array<{ text: string }> }).choices[0]!.text)
      .join('');
    expect(text).toBe('You said: Say');
  });
});

describe('/v1/embeddings', () => {
  it('returns deterministic unit vectors, as floats or base64', async () => {
    const one = JSON.parse((await post('/v1/embeddings', { model: 'all-minilm-l6-v2', input: ['alpha', 'beta'] })).text) as {
      object: string;
      data: Array<{ index: number; embedding: number[] }>;
      usage: unknown;
    };
    const again = JSON.parse((await post('/v1/embeddings', { model: 'all-minilm-l6-v2', input: 'alpha' })).text) as typeof one;
    expect(one.object).toBe('list');
    expect(one.data.map((d) => d.index)).toEqual([0, 1]);
    expect(one.data[0]!.embedding).toHaveLength(384);
    expect(again.data[0]!.embedding).toEqual(one.data[0]!.embedding);
    expect(one.data[1]!.embedding).not.toEqual(one.data[0]!.embedding);
    const norm = Math.sqrt(one.data[0]!.embedding.reduce((n, v) => n + v * v, 0));
    expect(norm).toBeCloseTo(1, 5);
    const b64 = JSON.parse(
      (await post('/v1/embeddings', { model: 'all-minilm-l6-v2', input: 'alpha', encoding_format: 'base64', dimensions: 8 })).text,
    ) as { data: Array<{ embedding: string }> };
    const bytes = Buffer.from(b64.data[0]!.embedding, 'base64');
    expect(bytes.length).toBe(32);
    expect(bytes.readFloatLE(0)).toBeCloseTo(
      (
        JSON.parse((await post('/v1/embeddings', { model: 'all-minilm-l6-v2', input: 'alpha', dimensions: 8 })).text) as {
          data: Array<{ embedding: number[] }>;
        }
      ).data[0]!.embedding[0]!,
      6,
    );
  });
});

describe('the official openai package against the sample backend', () => {
  it('streams a chat completion, lists models and embeds', async () => {
    const client = new OpenAI({ baseURL: `${backend.url}/v1`, apiKey: 'not-used', maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'phi-4-mini',
      messages: [{ role: 'user', content: 'Hello sidecar' }],
      stream: true,
    });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(text).toBe(replyText('Hello sidecar'));
    expect(finish).toBe('stop');
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toContain('phi-4-mini');
    const embedding = await client.embeddings.create({ model: 'all-minilm-l6-v2', input: 'alpha' });
    expect(embedding.data[0]!.embedding).toHaveLength(384);
  });

  it('surfaces the OpenAI error message', async () => {
    const client = new OpenAI({ baseURL: `${backend.url}/v1`, apiKey: 'not-used', maxRetries: 0 });
    await expect(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
  });
});

describe('request log', () => {
  it('logs one line per request with the identity the sidecar sent, never Authorization', async () => {
    const res = await request(`${backend.url}/v1/models`, {
      headers: {
        authorization: 'Bearer eyJ.secret.token',
        'x-ms-client-principal-name': 'alice@contoso.example',
        'x-foundry-auth-principal-type': 'user',
        'x-request-id': 'req-42',
      },
    });
    await res.body.text();
    await waitUntil(() => logLines.length > 0);
    expect(logLines).toHaveLength(1);
    expect(logLines[0]).toMatchObject({
      msg: 'request',
      method: 'GET',
      path: '/v1/models',
      status: 200,
      principalName: 'alice@contoso.example',
      principalType: 'user',
      requestId: 'req-42',
    });
    expect(JSON.stringify(logLines)).not.toContain('secret');
  });

  it('logs a stream the client cut short as a client abort', async () => {
    await backend.close();
    const sink: Array<Record<string, unknown>> = [];
    backend = await startSampleBackend({
      port: 0,
      tokenRate: 200,
      log: pino(
        { level: 'info' },
        new Writable({ write: (chunk: Buffer, _e, cb) => (sink.push(JSON.parse(chunk.toString()) as Record<string, unknown>), cb()) }),
      ),
    });
    const client = await RawClient.connect(backend.port);
    const body = JSON.stringify({ ...chat, stream: true, max_tokens: 1000 });
    client.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await waitUntil(() => (client.received.match(/data: /g) ?? []).length >= 3);
    client.destroy();
    await waitUntil(() => sink.length > 0);
    expect(sink[0]).toMatchObject({ level: 40, path: '/v1/chat/completions', clientAborted: true });
    expect(sink[0]!.msg).toMatch(/^client aborted the stream after \d+ tokens$/);
    expect(sink[0]!.tokens as number).toBeLessThan(100);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
