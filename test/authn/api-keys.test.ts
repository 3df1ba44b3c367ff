import { createHash } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Logger } from '../../src/ops/log.js';

// Count timingSafeEqual calls to prove every key is compared.
const cryptoCalls = vi.hoisted(() => ({ timingSafeEqual: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      cryptoCalls.timingSafeEqual++;
      return actual.timingSafeEqual(a, b);
    },
  };
});

const { ApiKeys, apiKeyId, parseApiKeys } = await import('../../src/authn/api-keys.js');
const { Authenticator } = await import('../../src/authn/authenticate.js');
const { ManualClock } = await import('../../src/ops/clock.js');
const { silentLogger } = await import('../../src/ops/log.js');
const { Metrics } = await import('../../src/ops/metrics.js');

const KEY_A = 'fndry-sk-a9f3c2e1d4b5a6978877665544332211';
const KEY_B = 'fndry-pk-0011223344556677889900aabbccddeeff';
const KEY_C = 'fndry-sk-c0ffee00c0ffee00c0ffee00c0ffee00';

let dir: string;
let file: string;
const closers: (() => unknown)[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'foundry-auth-keys-'));
  file = join(dir, 'api-keys');
});

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  rmSync(dir, { recursive: true, force: true });
});

/** Replaces the file atomically, as an operator (or a Kubernetes secret mount) would. */
function writeKeys(text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function capturingLogger(): { log: Logger; output: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), output: () => lines.join('') };
}

async function authenticator(opts: { apiKeysFile?: string } = {}) {
  const metrics = new Metrics({ defaultMetrics: false });
  const authn = new Authenticator({ ...opts, clock: new ManualClock(), log: silentLogger(), metrics });
  await authn.start();
  closers.push(() => authn.close());
  return authn;
}

describe('API keys file', () => {
  it('parses one key per line with # comments, blank lines and surrounding whitespace', () => {
    expect(parseApiKeys(`# team A\n  ${KEY_A}  \n\n\t${KEY_B}\r\n# old: ${KEY_C}\n   \n`)).toEqual([KEY_A, KEY_B]);
  });

  it('key IDs are key- and 8 hex digits of SHA-256(key)', () => {
    expect(apiKeyId(KEY_A)).toBe(`key-${createHash('sha256').update(KEY_A).digest('hex').slice(0, 8)}`);
  });

  it('verifies configured keys and names them by key ID, not by the key', async () => {
    writeKeys(`${KEY_A}\n${KEY_B}\n`);
    const keys = new ApiKeys(file, silentLogger());
    await keys.reload();
    expect(keys.count).toBe(2);
    expect(keys.verify(KEY_A)).toEqual({ type: 'api-key', oid: apiKeyId(KEY_A), tid: '' });
    expect(keys.verify(KEY_B)?.oid).toBe(apiKeyId(KEY_B));
    expect(keys.verify(KEY_C)).toBeUndefined();
    expect(keys.verify(`${KEY_A} `)).toBeUndefined();
    expect(keys.verify(KEY_A.toUpperCase())).toBeUndefined();
    expect(keys.verify('')).toBeUndefined();
  });

  it('compares the candidate with every key, whether it matches the first key or none', async () => {
    writeKeys([KEY_A, KEY_B, KEY_C, 'fndry-sk-4', 'fndry-sk-5'].join('\n'));
    const keys = new ApiKeys(file, silentLogger());
    await keys.reload();
    for (const candidate of [KEY_A, KEY_C, 'fndry-sk-unknown', 'x'.repeat(5000)]) {
      cryptoCalls.timingSafeEqual = 0;
      keys.verify(candidate);
      expect(cryptoCalls.timingSafeEqual).toBe(5);
    }
  });

  it('rotation: a replaced file takes effect on reload; the old key fails, the new one works', async () => {
    writeKeys(`${KEY_A}\n`);
    const keys = new ApiKeys(file, silentLogger());
    await keys.reload();
    expect(keys.verify(KEY_A)).toBeDefined();
    writeKeys(`# rotated\n${KEY_B}\n`);
    expect(keys.verify(KEY_A)).toBeDefined(); // until the next re-read
    expect(await keys.reload()).toBe(true);
    expect(keys.verify(KEY_A)).toBeUndefined();
    expect(keys.verify(KEY_B)).toBeDefined();
  });

  it('the periodic re-read picks up a new file without a restart', async () => {
    writeKeys(`${KEY_A}\n`);
    const keys = new ApiKeys(file, silentLogger(), 20);
    closers.push(() => keys.close());
    await keys.start();
    writeKeys(`${KEY_C}\n`);
    const deadline = Date.now() + 5_000;
    while (keys.verify(KEY_C) === undefined && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(keys.verify(KEY_C)).toBeDefined();
    expect(keys.verify(KEY_A)).toBeUndefined();
  });

  it('an unreadable file keeps the last good keys and logs a warning without any key', async () => {
    writeKeys(`${KEY_A}\n${KEY_B}\n`);
    const { log, output } = capturingLogger();
    const keys = new ApiKeys(file, log);
    await keys.reload();
    rmSync(file);
    expect(await keys.reload()).toBe(false);
    expect(keys.verify(KEY_A)).toBeDefined();
    const logs = output();
    expect(logs).toMatch(/keeping the previous keys/);
    expect(logs).toContain(apiKeyId(KEY_A));
    for (const key of [KEY_A, KEY_B]) {
      expect(logs).not.toContain(key);
      expect(logs).not.toContain(key.slice(9, 17));
    }
  });

  it('a missing file at start accepts no key until it appears', async () => {
    const keys = new ApiKeys(file, silentLogger());
    expect(await keys.reload()).toBe(false);
    expect(keys.verify(KEY_A)).toBeUndefined();
    expect(keys.readiness()).toMatch(/could not be read \(ENOENT\)/);
    writeKeys(KEY_A);
    await keys.reload();
    expect(keys.verify(KEY_A)).toBeDefined();
    expect(keys.readiness()).toBeNull();
  });

  it('an emptied file revokes every key', async () => {
    writeKeys(`${KEY_A}\n`);
    const keys = new ApiKeys(file, silentLogger());
    await keys.reload();
    writeKeys('# all keys revoked\n');
    await keys.reload();
    expect(keys.count).toBe(0);
    expect(keys.verify(KEY_A)).toBeUndefined();
  });

  it('warns about keys that cannot be sent as Bearer, naming them by key ID', async () => {
    const { log, output } = capturingLogger();
    writeKeys('legacy-key-1234567890\n');
    const keys = new ApiKeys(file, log);
    await keys.reload();
    expect(output()).toContain(apiKeyId('legacy-key-1234567890'));
    expect(output()).not.toContain('legacy-key-1234567890');
    expect(keys.verify('legacy-key-1234567890')).toBeDefined();
  });
});

describe('API keys through the Authenticator (both carriers)', () => {
  it('api-key header and Bearer fndry-sk-/pk- both authenticate', async () => {
    writeKeys(`${KEY_A}\n${KEY_B}\n`);
    const authn = await authenticator({ apiKeysFile: file });
    expect(await authn.authenticateRequest(['api-key', KEY_A], undefined)).toMatchObject({
      ok: true,
      tokenCache: 'none',
      principal: { type: 'api-key', oid: apiKeyId(KEY_A), tid: '' },
    });
    expect(await authn.authenticateRequest(['Authorization', `Bearer ${KEY_B}`], undefined)).toMatchObject({
      ok: true,
      principal: { oid: apiKeyId(KEY_B) },
    });
  });

  it('an unknown key: 401 invalid_api_key; bearerError only when it came as Bearer', async () => {
    writeKeys(`${KEY_A}\n`);
    const authn = await authenticator({ apiKeysFile: file });
    const header = await authn.authenticateRequest(['api-key', KEY_C], undefined);
    expect(header).toMatchObject({ ok: false, rejection: { code: 'invalid_api_key', reason: 'unknown_key' } });
    if (!header.ok) expect(header.rejection.bearerError).toBeUndefined();
    const bearer = await authn.authenticateRequest(['Authorization', `Bearer ${KEY_C}`], undefined);
    expect(bearer).toMatchObject({ ok: false, rejection: { code: 'invalid_api_key', bearerError: 'invalid_token' } });
    if (!bearer.ok) expect(bearer.rejection.message).not.toContain(KEY_C);
  });

  it('API keys not configured: invalid_api_key saying they are not enabled', async () => {
    const authn = await authenticator();
    const result = await authn.authenticateRequest(['api-key', KEY_A], undefined);
    expect(result).toMatchObject({ ok: false, rejection: { code: 'invalid_api_key', reason: 'api_keys_disabled' } });
    if (!result.ok) expect(result.rejection.message).toMatch(/API keys are not enabled on this sidecar/);
  });

  it('rotation through the Authenticator', async () => {
    writeKeys(`${KEY_A}\n`);
    const authn = await authenticator({ apiKeysFile: file });
    writeKeys(`${KEY_B}\n`);
    await authn.apiKeys!.reload();
    expect((await authn.authenticateRequest(['api-key', KEY_A], undefined)).ok).toBe(false);
    expect((await authn.authenticateRequest(['api-key', KEY_B], undefined)).ok).toBe(true);
  });
});
