/**
 * Token and request limits in the request path, with an injected clock: the sidecar (startSidecar,
 * as `serve` builds it), the test IdP on the same clock, and the recording upstream answering with
 * (or without) `usage`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServeConfig } from '../../src/config/load.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { startSidecar, type Sidecar } from '../../src/sidecar.js';
import { TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, staticServeFlags } from '../e2e/harness.js';

const ID = (n: number): string => `11111111-0000-4000-8000-${String(n).padStart(12, '0')}`;
const DAY_USER = ID(99);

// Noon UTC: minute windows start at :00, the day ends in 12 h.
const clock = new ManualClock(Date.UTC(2026, 11, 6, 12, 0, 0));
let idp: TestIdp;
let up: Upstream;
let sidecar: Sidecar;

beforeAll(async () => {
  idp = await TestIdp.start({ now: () => clock.now() });
  up = await startUpstream();
  const dir = mkdtempSync(join(tmpdir(), 'fa-limits-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `limits:\n  - for: { default: true }\n    tokensPerMinute: 100\n  - for: { roles: [TwoAMinute] }\n    requestsPerMinute: 2\n  - for: { principals: ["${DAY_USER}"] }\n    tokensPerDay: 150\n`,
  );
  const rbac = roleAssignmentsFile(
    [...Array.from({ length: 10 }, (_, i) => ID(i + 1)), DAY_USER].map((oid) => `{ principalId: ${oid}, role: Cognitive Services OpenAI User }`),
  );
  const loaded = loadServeConfig({
    flags: { ...staticServeFlags(idp, up.url, rbac), listen: '127.0.0.1:0', 'admin-listen': '127.0.0.1:0', 'policy-file': policy },
    env: {},
  });
  if (!loaded.ok) throw new Error(loaded.errors.join('\n'));
  sidecar = await startSidecar(loaded.config, { clock, log: silentLogger() });
});

afterAll(async () => {
  await sidecar?.shutdown();
  await up?.close();
  await idp?.close();
});

const USAGE_60 = JSON.stringify({
  id: 'c',
  object: 'chat.completion',
  model: 'phi-4-mini',
  choices: [],
  usage: { prompt_tokens: 20, completion_tokens: 40, total_tokens: 60 },
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

async function chat(oid: string, opts: { roles?: string[]; body?: string } = {}): Promise<Answer> {
  const token = await idp.mint({ claims: { oid, ...(opts.roles ? { roles: opts.roles } : {}) } });
  const res = await request(`${sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: opts.body ?? '{"model":"phi-4-mini","messages":[{"role":"user","content":"hi"}]}',
  });
  const body = await res.body.text();
  // The charge lands when the exchange ends, just after the client has the last byte.
  await new Promise((r) => setImmediate(r));
  return { status: res.statusCode, headers: res.headers, body };
}

function errorCode(a: Answer): string | undefined {
  return (JSON.parse(a.body) as { error?: { code: string } }).error?.code;
}

describe('limits', () => {
  it("tokens per minute from the upstream's usage; refused once spent (overshoot bounded by one request); the next minute starts over", async () => {
    up.respond({
      kind: 'fixed',
      status: 200,
      headers: { 'content-type': 'application/json', 'x-ratelimit-remaining-tokens': '999999' },
      body: USAGE_60,
    });
    const first = await chat(ID(1));
    expect(first.status).toBe(200);
    expect(first.headers).toMatchObject({
      'x-ratelimit-limit-tokens': '100',
      'x-ratelimit-remaining-tokens': '100',
      'x-ratelimit-reset-tokens': '1m0s',
    });
    clock.advance(10_000);
    const second = await chat(ID(1));
    expect(second.headers).toMatchObject({ 'x-ratelimit-remaining-tokens': '40', 'x-ratelimit-reset-tokens': '50s' });
    // 120 of 100 counted: the second request overshot by its own size, and no request more got through.
    const refused = await chat(ID(1));
    expect(refused.status).toBe(429);
    expect(errorCode(refused)).toBe('token_limit_exceeded');
    expect(refused.headers['retry-after']).toBe('50');
    expect(refused.headers['x-ratelimit-remaining-tokens']).toBe('0');
    expect(up.requests.length).toBe(2);
    // Someone else is not affected.
    expect((await chat(ID(2))).status).toBe(200);
    clock.advance(50_000);
    expect((await chat(ID(1))).headers['x-ratelimit-remaining-tokens']).toBe('100');
  });

  it('requests per minute: the third in a minute is 429 request_limit_exceeded', async () => {
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: USAGE_60 });
    clock.set(Date.UTC(2026, 11, 6, 12, 5, 0));
    const roles = ['TwoAMinute'];
    expect((await chat(ID(3), { roles })).headers).toMatchObject({ 'x-ratelimit-limit-requests': '2', 'x-ratelimit-remaining-requests': '1' });
    expect((await chat(ID(3), { roles })).headers['x-ratelimit-remaining-requests']).toBe('0');
    const refused = await chat(ID(3), { roles });
    expect([refused.status, errorCode(refused), refused.headers['retry-after']]).toEqual([429, 'request_limit_exceeded', '60']);
    // Only a default entry has a token limit, and a role entry matched: no token headers.
    expect(refused.headers['x-ratelimit-limit-tokens']).toBeUndefined();
    clock.advance(60_000);
    expect((await chat(ID(3), { roles })).status).toBe(200);
  });

  it('a daily quota holds across minutes and ends at midnight UTC', async () => {
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: USAGE_60 });
    clock.set(Date.UTC(2026, 11, 6, 23, 50, 0));
    for (let i = 0; i < 3; i++) {
      expect((await chat(DAY_USER)).status).toBe(200);
      clock.advance(60_000);
    }
    const refused = await chat(DAY_USER);
    expect([refused.status, errorCode(refused)]).toEqual([429, 'token_limit_exceeded']);
    expect(refused.headers).toMatchObject({
      'retry-after': String(7 * 60),
      'x-ratelimit-limit-tokens': '150',
      'x-ratelimit-remaining-tokens': '0',
      'x-ratelimit-reset-tokens': '7m0s',
    });
    clock.set(Date.UTC(2026, 11, 7, 0, 0, 1));
    expect((await chat(DAY_USER)).status).toBe(200);
  });

  it('a stream without usage is charged by estimate: request bytes / 4 in, one token per content delta out', async () => {
    clock.set(Date.UTC(2026, 11, 6, 13, 0, 0));
    up.respond({ kind: 'manual' });
    const body = JSON.stringify({ model: 'phi-4-mini', stream: true, messages: [{ role: 'user', content: 'x'.repeat(300) }] });
    const answered = chat(ID(4), { body });
    const ex = await up.nextExchange();
    ex.head();
    for (const word of ['Hello', ' there', '!']) ex.event(JSON.stringify({ model: 'phi-4-mini', choices: [{ index: 0, delta: { content: word } }] }));
    ex.event('[DONE]');
    ex.end();
    expect((await answered).status).toBe(200);
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: '{"choices":[]}' });
    const expected = 100 - Math.ceil(Buffer.byteLength(body) / 4) - 3;
    expect((await chat(ID(4))).headers['x-ratelimit-remaining-tokens']).toBe(String(expected));
  });

  it('a stream with a usage chunk is charged what it reports; tokens and time to first token in the metrics, no principal label', async () => {
    clock.set(Date.UTC(2026, 11, 6, 14, 0, 0));
    up.respond({ kind: 'manual' });
    const answered = chat(ID(5), {
      body: JSON.stringify({ model: 'phi-4-mini', stream: true, stream_options: { include_usage: true }, messages: [] }),
    });
    const ex = await up.nextExchange();
    ex.event(JSON.stringify({ model: 'phi-4-mini', choices: [{ index: 0, delta: { content: 'Hi' } }] }));
    ex.event(JSON.stringify({ model: 'phi-4-mini', choices: [], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } }));
    ex.event('[DONE]');
    ex.end();
    expect((await answered).status).toBe(200);
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: '{"choices":[]}' });
    expect((await chat(ID(5))).headers['x-ratelimit-remaining-tokens']).toBe('88');
    const metrics = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/foundry_auth_gen_ai_tokens_total\{[^}]*model="phi-4-mini",type="input"[^}]*\} \d+/);
    expect(metrics).toMatch(/foundry_auth_gen_ai_time_to_first_token_seconds_count\{[^}]*model="phi-4-mini"[^}]*\} \d+/);
    expect(metrics).not.toContain(ID(5));
  });

  it('an upstream error is not charged tokens', async () => {
    clock.set(Date.UTC(2026, 11, 6, 15, 0, 0));
    up.respond({
      kind: 'fixed',
      status: 400,
      headers: { 'content-type': 'application/json' },
      body: '{"error":{"message":"bad","usage":{"prompt_tokens":500}}}',
    });
    expect((await chat(ID(6))).status).toBe(400);
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: USAGE_60 });
    expect((await chat(ID(6))).headers['x-ratelimit-remaining-tokens']).toBe('100');
  });
});
