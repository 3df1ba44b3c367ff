/**
 * Model rules and the model read from the body, through the real `serve` process in front of the
 * recording upstream: allowed, refused, first match wins, no rule = RBAC decides, roles from user
 * and app tokens, JSON and multipart edge cases, the identical bytes upstream, /v1/models
 * filtering, 413, chunked bodies and Expect: 100-continue, and the policy file's reload.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REQUIRED_APP_ROLE, TEST_APP_OID as APP, TEST_USER_OID as ALICE, type TestIdp } from '../fixtures/idp.js';
import { RawClient, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, runCli, startStaticStack, staticServeFlags, type ServeProcess, type StaticStack } from '../e2e/harness.js';

const CAROL = 'ca401ca4-0000-4000-8000-000000000003'; // no Azure role at all

const dir = mkdtempSync(join(tmpdir(), 'fa-policy-e2e-'));
const policyFile = join(dir, 'policy.yaml');
function writePolicy(text: string): void {
  writeFileSync(`${policyFile}.tmp`, text);
  renameSync(`${policyFile}.tmp`, policyFile);
}

const POLICY = `
models:
  - match: "phi-4*"
    allow: { roles: [FoundryPhiUsers] }
  - match: "phi-*"
    allow: { roles: [Nobody] }        # never reached for phi-4*: the first match wins
  - match: "whisper-*"
    allow: { roles: [${REQUIRED_APP_ROLE}] }
  - match: "llama-*"
    allow: { principals: ["${CAROL}"] }
`;

let stack: StaticStack;
let idp: TestIdp;
let up: Upstream;
let sidecar: ServeProcess;

beforeAll(async () => {
  writePolicy(POLICY);
  const rbacFile = roleAssignmentsFile([
    `{ principalId: ${ALICE}, role: Cognitive Services OpenAI User }`,
    `{ principalId: ${APP}, role: Cognitive Services OpenAI User }`,
  ]);
  stack = await startStaticStack({ rbacFile, flags: { 'policy-file': policyFile } });
  ({ idp, up, sidecar } = stack);
});

afterAll(async () => {
  await stack?.close();
});

let before = 0;
beforeEach(() => {
  before = up.requests.length;
  up.respond({ kind: 'echo' });
});

interface Sent {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: { error?: { code: string; message: string; type: string } } & Record<string, unknown>;
}

async function post(
  path: string,
  token: string,
  body: string | Buffer,
  contentType = 'application/json',
  extra: Record<string, string> = {},
): Promise<Sent> {
  const res = await request(`${sidecar.url}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': contentType, ...extra },
    body,
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) as Sent['json'] };
}

async function get(path: string, token: string): Promise<Sent> {
  const res = await request(`${sidecar.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, json: JSON.parse(text) as Sent['json'] };
}

const chat = (model: unknown): string => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
const user = (roles?: string[]): Promise<string> => idp.mint(roles ? { claims: { roles } } : {});
const forwarded = (): number => up.requests.length - before;

describe('model rules', () => {
  it('a role from a user token allows the model; the upstream gets the identical bytes', async () => {
    const body = `{"model": "phi-4-mini",  "messages":[{"role":"user","content":"h\\u00e9llo"}], "extra": [1, 2.50, true]}`;
    const res = await post('/v1/chat/completions', await user(['FoundryPhiUsers']), body);
    expect(res.status).toBe(200);
    const received = up.requests.at(-1)!;
    expect(createHash('sha256').update(received.body).digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(received.header('content-length')).toEqual([String(Buffer.byteLength(body))]);
    // The audit line: the model, the tokens (the echo upstream reports no usage: estimated) and the time to first token.
    const audit = await sidecar.waitForLog((l) => l.msg === 'request' && l.model === 'phi-4-mini');
    expect(audit.tokens).toEqual({ input: Math.ceil(Buffer.byteLength(body) / 4), output: expect.any(Number), estimated: true });
    expect((audit.timings as Record<string, number>).timeToFirstTokenMs).toBeGreaterThan(0);
  });

  it('refuses a model the caller may not use: 403 model_not_allowed naming model, principal and roles; nothing forwarded', async () => {
    const res = await post('/v1/chat/completions', await user(['Other']), chat('phi-4-mini'));
    expect(res.status).toBe(403);
    expect(res.json.error).toMatchObject({ code: 'model_not_allowed', type: 'permission_error' });
    expect(res.json.error!.message).toContain('phi-4-mini');
    expect(res.json.error!.message).toContain(ALICE);
    expect(res.json.error!.message).toContain('FoundryPhiUsers');
    expect(forwarded()).toBe(0);
  });

  it('the first matching rule decides; a model no rule matches is left to RBAC', async () => {
    expect((await post('/v1/chat/completions', await user(['FoundryPhiUsers']), chat('PHI-4'))).status).toBe(200);
    expect((await post('/v1/chat/completions', await user(['FoundryPhiUsers']), chat('phi-3'))).json.error?.code).toBe('model_not_allowed');
    expect((await post('/v1/chat/completions', await user(), chat('qwen2.5-0.5b'))).status).toBe(200);
    // carol may use llama by object ID, but has no Azure role: RBAC still refuses her.
    const carol = await idp.mint({ claims: { oid: CAROL } });
    expect((await post('/v1/chat/completions', carol, chat('llama-3-8b'))).json.error?.code).toBe('insufficient_permissions');
  });

  it('an app-only token: its roles claim allows the model', async () => {
    const app = await idp.mint({ kind: 'app' });
    const body = multipart([
      { name: 'file', value: 'RIFF....WAVE', filename: 'a.wav' },
      { name: 'model', value: 'whisper-small' },
    ]);
    const res = await post('/v1/audio/transcriptions', app, body, `multipart/form-data; boundary=${B}`);
    expect(res.status).toBe(200);
    expect(up.requests.at(-1)!.body.equals(body)).toBe(true);
    const denied = await post('/v1/audio/transcriptions', await user(), body, `multipart/form-data; boundary=${B}`);
    expect(denied.json.error?.code).toBe('model_not_allowed');
  });
});

const B = 'xYzZY0123';
function multipart(parts: readonly { name: string; value: string; filename?: string }[]): Buffer {
  let text = '';
  for (const p of parts)
    text += `--${B}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n\r\n${p.value}\r\n`;
  return Buffer.from(`${text}--${B}--\r\n`, 'latin1');
}

describe('the model in the body', () => {
  it.each([
    ['a duplicate model member', '{"model":"qwen","model":"phi-4"}', 'duplicate member'],
    ['a nested model', '{"options":{"model":"qwen"}}', 'no "model"'],
    ['a model that is not a string', '{"model":["qwen"]}', 'non-empty string'],
    ['a byte order mark', '\ufeff{"model":"qwen"}', 'byte order mark'],
    ['a body that is not JSON', 'model=qwen', 'not valid JSON'],
  ])('%s is 400 invalid_request, not forwarded', async (_what, body, message) => {
    const res = await post('/v1/chat/completions', await user(['FoundryPhiUsers']), body);
    expect(res.status).toBe(400);
    expect(res.json.error?.code).toBe('invalid_request');
    expect(res.json.error?.message).toContain(message);
    expect(forwarded()).toBe(0);
  });

  it('multipart: a second model field is 400', async () => {
    const body = multipart([
      { name: 'model', value: 'qwen' },
      { name: 'model', value: 'phi-4' },
    ]);
    const res = await post('/v1/audio/transcriptions', await user(), body, `multipart/form-data; boundary=${B}`);
    expect(res.json.error?.code).toBe('invalid_request');
  });

  it('16 MiB + 1 byte is 413 request_too_large, by Content-Length or chunked, and the connection closes', async () => {
    const token = await user(['FoundryPhiUsers']);
    const c = await RawClient.connect(Number(new URL(sidecar.url).port));
    try {
      c.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: ${16 * 1024 * 1024 + 1}\r\n\r\n`,
      );
      const res = await c.readResponse();
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body.toString()).error.code).toBe('request_too_large');
      await c.readUntilClosed();
    } finally {
      c.destroy();
    }
    // Chunked: no length announced, so the read stops at the limit.
    const chunked = await RawClient.connect(Number(new URL(sidecar.url).port));
    try {
      chunked.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      const mib = Buffer.alloc(1024 * 1024, 0x20);
      for (let i = 0; i < 16; i++) chunked.write(Buffer.concat([Buffer.from('100000\r\n'), mib, Buffer.from('\r\n')]));
      chunked.write('1\r\n \r\n');
      const res = await chunked.readResponse({ timeoutMs: 15_000 });
      expect(res.status).toBe(413);
      await chunked.readUntilClosed();
    } finally {
      chunked.destroy();
    }
    expect(forwarded()).toBe(0);
    // Exactly 16 MiB is fine.
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: '{}' });
    const fits = Buffer.alloc(16 * 1024 * 1024, 0x20);
    fits.write('{"model":"qwen"}');
    expect((await post('/v1/chat/completions', token, fits)).status).toBe(200);
    expect(up.requests.at(-1)!.body.length).toBe(16 * 1024 * 1024);
  });

  it('a chunked body with Expect: 100-continue: 100 after the checks, then the identical bytes go upstream with a Content-Length', async () => {
    const token = await user(['FoundryPhiUsers']);
    const c = await RawClient.connect(Number(new URL(sidecar.url).port));
    try {
      c.write(
        `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n`,
      );
      const cont = await c.readResponse();
      expect(cont.status).toBe(100);
      const part1 = '{"model":"phi-4",';
      const part2 = '"messages":[]}';
      c.write(`${part1.length.toString(16)}\r\n${part1}\r\n${part2.length.toString(16)}\r\n${part2}\r\n0\r\n\r\n`);
      const res = await c.readResponse();
      expect(res.status).toBe(200);
      const received = up.requests.at(-1)!;
      expect(received.body.toString()).toBe(part1 + part2);
      expect(received.header('content-length')).toEqual([String(part1.length + part2.length)]);
      expect(received.header('transfer-encoding')).toEqual([]);
    } finally {
      c.destroy();
    }
  });
});

describe('/v1/models', () => {
  const list = {
    object: 'list',
    data: ['phi-4-mini', 'phi-3', 'qwen2.5-0.5b', 'llama-3-8b', 'whisper-small'].map((id) => ({ id, object: 'model', owned_by: 'x' })),
  };

  it('is filtered to the models the caller may use', async () => {
    up.respond({ kind: 'fixed', status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify(list) });
    const ids = async (token: string): Promise<string[]> => ((await get('/v1/models', token)).json.data as { id: string }[]).map((m) => m.id);
    expect(await ids(await user(['FoundryPhiUsers']))).toEqual(['phi-4-mini', 'qwen2.5-0.5b']);
    expect(await ids(await user())).toEqual(['qwen2.5-0.5b']);
    expect(await ids(await idp.mint({ kind: 'app' }))).toEqual(['qwen2.5-0.5b', 'whisper-small']);
  });

  it('/v1/models/{id} of a hidden model is 404 model_not_found, never forwarded', async () => {
    const res = await get('/v1/models/phi-4-mini', await user());
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ code: 'model_not_found', message: "The model 'phi-4-mini' does not exist" });
    expect(forwarded()).toBe(0);
    expect((await get('/v1/models/phi-4-mini', await user(['FoundryPhiUsers']))).status).toBe(200);
    expect((await get('/v1/models/phi%2D4-mini', await user())).status).toBe(404);
  });
});

describe('the policy file', () => {
  it('a valid change applies within 2 s; an invalid one keeps the last good and is logged with its line', async () => {
    const token = await user();
    expect((await post('/v1/chat/completions', token, chat('qwen2.5-0.5b'))).status).toBe(200);
    writePolicy(`${POLICY}  - match: "qwen*"\n    allow: {}\n`);
    const changed = Date.now();
    await sidecar.waitForLog((l) => l.msg === 'policy file reloaded', 3_000);
    expect(Date.now() - changed).toBeLessThan(2_000);
    expect((await post('/v1/chat/completions', token, chat('qwen2.5-0.5b'))).json.error?.code).toBe('model_not_allowed');

    writePolicy(`${POLICY}  - match: 7\n`);
    const warning = await sidecar.waitForLog((l) => l.msg.includes('invalid: keeping the last good policy'), 3_000);
    expect(JSON.stringify(warning.problems)).toContain(`${policyFile}:11: models.4`);
    expect((await post('/v1/chat/completions', token, chat('qwen2.5-0.5b'))).json.error?.code).toBe('model_not_allowed');
    const metrics = await (await request(`${sidecar.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/foundry_auth_policy_reloads_total\{[^}]*outcome="invalid"[^}]*\} 1/);
    writePolicy(POLICY);
    await sidecar.waitForLog(
      (l) => l.msg === 'policy file reloaded' && l.modelRules === 4 && sidecar.logs.indexOf(l) > sidecar.logs.indexOf(warning),
      3_000,
    );
  });

  it('an invalid file at start-up exits 2 naming the line', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'models:\n  - match: "phi*"\n    allow: { roles: [A] }\nlimits:\n  - for: { roles: [A] }\n    tokensPerMinute: 0\n');
    const run = await runCli([
      'serve',
      ...Object.entries({ ...staticServeFlags(idp, up.url), 'policy-file': bad }).flatMap(([k, v]) => [`--${k}`, v]),
    ]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`--policy-file / FOUNDRY_AUTH_POLICY_FILE: ${bad}:6: limits.0.tokensPerMinute`);
  });
});
