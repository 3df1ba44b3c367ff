/**
 * `--upstream-api-key-file` through the real `serve` process: the upstream gets the sidecar's key as
 * `api-key`, never the client's; the key never appears in a log line; `/readyz` waits for a key;
 * rotation (a rewritten file) takes effect on the next re-read.
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiKeyId } from '../../src/authn/api-keys.js';
import { silentLogger } from '../../src/ops/log.js';
import { UpstreamApiKey } from '../../src/proxy/upstream-key.js';
import { TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { runCli, startServe, staticServeFlags, type ServeProcess } from './harness.js';

const UPSTREAM_KEY = 'fndry-pk-5f0c1b7e9a2d4c6e8f0a1b2c3d4e5f60';
const NEXT_KEY = 'fndry-sk-77aa01bc99de4f10a2b3c4d5e6f70819';
const CLIENT_KEY = 'fndry-sk-c11e47c11e47c11e47c11e47c11e47c1';

let idp: TestIdp;
let up: Upstream;
let sidecar: ServeProcess;
let dir: string;
let keyFile: string;

beforeAll(async () => {
  idp = await TestIdp.start();
  up = await startUpstream();
  dir = mkdtempSync(join(tmpdir(), 'fa-upstream-key-'));
  keyFile = join(dir, 'primary');
  writeFileSync(keyFile, `${UPSTREAM_KEY}\n`);
  const clientKeys = join(dir, 'client-keys');
  writeFileSync(clientKeys, `${CLIENT_KEY}\n`);
  sidecar = await startServe({ ...staticServeFlags(idp, up.url), 'upstream-api-key-file': keyFile, 'api-keys-file': clientKeys });
  await sidecar.ready();
});

afterAll(async () => {
  await sidecar?.stop('SIGKILL');
  await up?.close();
  await idp?.close();
});

async function chat(headers: Record<string, string>): Promise<number> {
  const before = up.requests.length;
  const res = await request(`${sidecar.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: '{"model":"m"}',
  });
  await res.body.text();
  expect(up.requests.length).toBe(before + 1);
  return res.statusCode;
}

describe('--upstream-api-key-file', () => {
  it("sends the file's key as api-key for a caller with an Entra token, and drops the caller's Authorization", async () => {
    const token = await idp.mint();
    expect(await chat({ authorization: `Bearer ${token}` })).toBe(200);
    const got = up.requests.at(-1)!;
    expect(got.header('api-key')).toEqual([UPSTREAM_KEY]);
    expect(got.header('authorization')).toEqual([]);
  });

  it("replaces the caller's own api-key: exactly one api-key header, the sidecar's", async () => {
    expect(await chat({ 'api-key': CLIENT_KEY })).toBe(200);
    expect(up.requests.at(-1)!.header('api-key')).toEqual([UPSTREAM_KEY]);
    expect(await chat({ authorization: `Bearer ${CLIENT_KEY}` })).toBe(200);
    const got = up.requests.at(-1)!;
    expect(got.header('api-key')).toEqual([UPSTREAM_KEY]);
    expect(got.header('authorization')).toEqual([]);
  });

  it('never logs the key: only its key-<sha256 prefix> name', async () => {
    await sidecar.waitForLog((l) => l.msg === 'upstream API key loaded');
    expect(sidecar.stdout).not.toContain(UPSTREAM_KEY);
    expect(sidecar.stderr).not.toContain(UPSTREAM_KEY);
    expect(sidecar.stdout).toContain(apiKeyId(UPSTREAM_KEY));
  });

  it('is not ready (503 naming upstreamApiKey) while no key could be read', async () => {
    const missing = join(dir, 'not-yet');
    const other = await startServe({ ...staticServeFlags(idp, up.url), 'upstream-api-key-file': missing });
    try {
      const res = await request(`${other.adminUrl}/readyz`);
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toContain('upstreamApiKey');
    } finally {
      await other.stop('SIGKILL');
    }
  });

  it('refuses --forward-authorization with it (exit 2 naming the flag)', async () => {
    const res = await runCli([
      'serve',
      ...Object.entries(staticServeFlags(idp, up.url)).flatMap(([k, v]) => [`--${k}`, v]),
      '--upstream-api-key-file',
      keyFile,
      '--forward-authorization',
      'true',
    ]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--upstream-api-key-file / FOUNDRY_AUTH_UPSTREAM_API_KEY_FILE');
  });
});

describe('UpstreamApiKey rotation', () => {
  it('takes a rewritten file at the next re-read, and keeps the key when the file is emptied or removed', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'fa-upstream-key-')), 'primary');
    writeFileSync(file, `# primary key\n${UPSTREAM_KEY}\n`);
    const key = new UpstreamApiKey(file, silentLogger(), 60_000);
    try {
      await key.start();
      expect(key.value).toBe(UPSTREAM_KEY);
      expect(key.readiness()).toBeNull();
      // As the kubelet does: write the new version elsewhere and swap it in.
      writeFileSync(`${file}.new`, NEXT_KEY);
      renameSync(`${file}.new`, file);
      expect(await key.reload()).toBe(true);
      expect(key.value).toBe(NEXT_KEY);
      writeFileSync(file, '\n');
      await key.reload();
      expect(key.value).toBe(NEXT_KEY);
      renameSync(file, `${file}.gone`);
      expect(await key.reload()).toBe(false);
      expect(key.value).toBe(NEXT_KEY);
    } finally {
      key.close();
    }
  });
});
