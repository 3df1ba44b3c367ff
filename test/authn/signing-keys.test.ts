import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { inspectToken } from '../../src/setup/token-inspection.js';
import { SigningKeys, keySourceFromJwks, parseJwks } from '../../src/authn/signing-keys.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { Canary, OTHER_TENANT_ID, TEST_TENANT_ID, TestIdp, type EndpointFault } from '../fixtures/idp.js';
import { counterValue, expectInvalidToken, harness, type Harness } from './harness.js';
import { testPki } from './tls.js';
import type { JsonValue } from '../../src/authn/strict-json.js';

const COOLDOWN = 30_000;
let open: { close(): Promise<void> }[] = [];

afterEach(async () => {
  for (const o of open.reverse()) await o.close();
  open = [];
});

async function started(opts: Parameters<typeof harness>[0] = {}): Promise<Harness> {
  const h = await harness(opts);
  open.push(h);
  return h;
}

/** A token the tenant's first key signs, claiming the given kid. */
function tokenWithKid(h: Harness, kid: string): string {
  return h.idp.mintRaw({ header: h.idp.header(undefined, { kid, x5t: kid }), payload: h.idp.claims() });
}

describe('loading', () => {
  it('start() loads discovery and JWKS once per allowed tenant and becomes ready', async () => {
    const h = await started({ tenants: [TEST_TENANT_ID, OTHER_TENANT_ID], entra: { allowedTenants: [TEST_TENANT_ID, OTHER_TENANT_ID] } });
    expect(h.keys.readiness()).toBeNull();
    for (const tid of [TEST_TENANT_ID, OTHER_TENANT_ID]) {
      expect(h.idp.discoveryFetches(tid)).toBe(1);
      expect(h.idp.jwksFetches(tid)).toBe(1);
      expect((await h.validator.validate(await h.idp.mint({ tid }))).ok).toBe(true);
    }
    expect(await counterValue(h.metrics, 'foundry_auth_jwks_refreshes_total', { trigger: 'startup', outcome: 'ok' })).toBe(2);
  });

  it('a validation before start() loads the keys itself (one fetch)', async () => {
    const h = await started({ start: false });
    expect(h.keys.readiness()).toMatch(/not loaded/);
    expect((await h.validator.validate(await h.idp.mint())).ok).toBe(true);
    expect(h.idp.jwksFetches()).toBe(1);
  });

  it('cold-start stampede: 500 concurrent validations make one discovery and one JWKS fetch (68)', async () => {
    const h = await started({ start: false });
    const token = await h.idp.mint();
    const results = await Promise.all(Array.from({ length: 500 }, async () => h.validator.validate(token)));
    expect(results.every((r) => r.ok)).toBe(true);
    expect(h.idp.discoveryFetches()).toBe(1);
    expect(h.idp.jwksFetches()).toBe(1);
  });

  it('requests arriving while start() is in flight join it', async () => {
    const h = await started({ start: false });
    const token = await h.idp.mint();
    const starting = h.keys.start();
    const results = await Promise.all(Array.from({ length: 50 }, async () => h.validator.validate(token)));
    await starting;
    expect(results.every((r) => r.ok)).toBe(true);
    expect(h.idp.jwksFetches()).toBe(1);
  });
});

describe('unknown kid refresh rule (60, 61)', () => {
  it('an unknown kid inside the cooldown after start: 401 without a fetch', async () => {
    const h = await started();
    expectInvalidToken(await h.validator.validate(tokenWithKid(h, 'nope')), 'unknown_kid');
    expect(h.idp.jwksFetches()).toBe(1);
  });

  it('after the cooldown: exactly one refresh, then cooldown again (60)', async () => {
    const h = await started();
    h.clock.advance(COOLDOWN);
    expectInvalidToken(await h.validator.validate(tokenWithKid(h, 'nope-1')), 'unknown_kid');
    expect(h.idp.jwksFetches()).toBe(2);
    expectInvalidToken(await h.validator.validate(tokenWithKid(h, 'nope-2')), 'unknown_kid');
    h.clock.advance(COOLDOWN - 1);
    expectInvalidToken(await h.validator.validate(tokenWithKid(h, 'nope-3')), 'unknown_kid');
    expect(h.idp.jwksFetches()).toBe(2);
    h.clock.advance(1);
    expectInvalidToken(await h.validator.validate(tokenWithKid(h, 'nope-4')), 'unknown_kid');
    expect(h.idp.jwksFetches()).toBe(3);
    expect(await counterValue(h.metrics, 'foundry_auth_jwks_refreshes_total', { trigger: 'unknown_kid', outcome: 'ok' })).toBe(2);
  });

  it('50 unknown-kid tokens in one cooldown, sequential or concurrent: exactly 1 extra JWKS fetch', async () => {
    const h = await started();
    h.clock.advance(COOLDOWN);
    for (let i = 0; i < 50; i++) expectInvalidToken(await h.validator.validate(tokenWithKid(h, `seq-${i}`)), 'unknown_kid');
    expect(h.idp.jwksFetches()).toBe(2);
    h.clock.advance(COOLDOWN);
    const results = await Promise.all(Array.from({ length: 50 }, async (_, i) => h.validator.validate(tokenWithKid(h, `par-${i}`))));
    for (const r of results) expectInvalidToken(r, 'unknown_kid');
    expect(h.idp.jwksFetches()).toBe(3);
  });

  it('random-kid flood: 1,000 tokens over 5 simulated minutes cause at most one fetch per cooldown (61)', async () => {
    const h = await started();
    const good = await h.idp.mint();
    for (let i = 0; i < 1_000; i++) {
      h.clock.advance(300);
      expectInvalidToken(await h.validator.validate(tokenWithKid(h, randomUUID())), 'unknown_kid');
      if (i % 100 === 0) expect((await h.validator.validate(good)).ok).toBe(true);
    }
    expect(h.idp.jwksFetches() - 1).toBeLessThanOrEqual(Math.ceil((1_000 * 300) / COOLDOWN));
    expect(h.idp.jwksFetches() - 1).toBeGreaterThanOrEqual(9);
  });

  it('a configurable cooldown', async () => {
    const h = await started({ keys: { unknownKidCooldownMs: 60_000 } });
    h.clock.advance(59_999);
    await h.validator.validate(tokenWithKid(h, 'x'));
    expect(h.idp.jwksFetches()).toBe(1);
    h.clock.advance(1);
    await h.validator.validate(tokenWithKid(h, 'y'));
    expect(h.idp.jwksFetches()).toBe(2);
  });
});

describe('rotation (62-64)', () => {
  it('a new key is found after one refresh; the old key keeps working (62)', async () => {
    const h = await started();
    const old = await h.idp.mint();
    const k2 = h.idp.addRsaKey({ use: 'sig' });
    const fresh = await h.idp.mint({ key: k2 });
    expectInvalidToken(await h.validator.validate(fresh), 'unknown_kid'); // inside the cooldown
    h.clock.advance(COOLDOWN);
    expect((await h.validator.validate(fresh)).ok).toBe(true);
    expect((await h.validator.validate(old)).ok).toBe(true);
    expect(h.idp.jwksFetches()).toBe(2);
  });

  it('a removed key is rejected after the next refresh (63)', async () => {
    const h = await started();
    const old = await h.idp.mint();
    const k2 = h.idp.addRsaKey({ use: 'sig' });
    await h.keys.refresh();
    h.idp.removeKey(h.idp.signingKey().kid);
    expect((await h.validator.validate(old)).ok).toBe(true); // until the refresh
    await h.keys.refresh();
    expectInvalidToken(await h.validator.validate(old), 'unknown_kid');
    expect((await h.validator.validate(await h.idp.mint({ key: k2 }))).ok).toBe(true);
  });

  it('a kid reused with a new modulus: old tokens fail, new ones pass (64)', async () => {
    const h = await started();
    const kid = h.idp.signingKey().kid;
    const old = await h.idp.mint();
    const changes: string[][] = [];
    h.keys.onChange((_tid, kids) => changes.push([...kids]));
    const replaced = h.idp.replaceKeyMaterial(kid);
    await h.keys.refresh();
    expectInvalidToken(await h.validator.validate(old), 'bad_signature');
    expect((await h.validator.validate(await h.idp.mint({ key: replaced }))).ok).toBe(true);
    expect(changes).toEqual([[kid]]);
  });

  it('the change listener reports removed kids only', async () => {
    const h = await started();
    const k2 = h.idp.addRsaKey({ use: 'sig' });
    const changes: string[][] = [];
    h.keys.onChange((_tid, kids) => changes.push([...kids]));
    await h.keys.refresh();
    expect(changes).toEqual([]);
    h.idp.removeKey(k2.kid);
    await h.keys.refresh();
    expect(changes).toEqual([[k2.kid]]);
  });
});

const FAULTS: [string, EndpointFault][] = [
  ['HTTP 500', { kind: 'status', status: 500 }],
  ['HTTP 404', { kind: 'status', status: 404 }],
  ['HTML 200', { kind: 'html' }],
  ['invalid JSON', { kind: 'bad-json' }],
  ['keys not an array', { kind: 'json', body: { keys: 'x' } }],
  ['no keys member', { kind: 'json', body: {} }],
  ['an empty key set', { kind: 'json', body: { keys: [] } }],
  ['only unusable keys', { kind: 'json', body: { keys: [{ kty: 'EC', kid: 'e', crv: 'P-256', x: 'AA', y: 'AA' }] } }],
  ['a JSON array', { kind: 'json', body: [] }],
  ['a redirect to another host', { kind: 'redirect', location: 'http://127.0.0.1:9/keys' }],
  ['a 301 redirect', { kind: 'redirect', location: '/elsewhere', status: 301 }],
  ['a body over 1 MiB (Content-Length)', { kind: 'huge', bytes: 2 * 1024 * 1024 }],
  ['a body over 1 MiB (chunked)', { kind: 'huge', bytes: 2 * 1024 * 1024, chunked: true }],
];

describe('endpoint failures after a good load: keep validating (65)', () => {
  it.each(FAULTS)('JWKS %s', async (_name, fault) => {
    const h = await started();
    const good = await h.idp.mint();
    h.idp.fault('jwks', fault);
    await h.keys.refresh();
    expect((await h.validator.validate(good)).ok).toBe(true);
    h.clock.advance(COOLDOWN);
    expectInvalidToken(await h.validator.validate(tokenWithKid(h, 'unknown')), 'unknown_kid');
    expect(h.keys.readiness()).toBeNull();
    expect(await counterValue(h.metrics, 'foundry_auth_jwks_refreshes_total', { outcome: 'error' })).toBe(2);
    h.idp.fault('jwks', undefined);
    h.clock.advance(COOLDOWN);
    await h.keys.refresh();
    expect(await counterValue(h.metrics, 'foundry_auth_jwks_refreshes_total', { trigger: 'background', outcome: 'ok' })).toBe(1);
  });

  it.each(FAULTS.slice(0, 4))('discovery %s', async (_name, fault) => {
    const h = await started();
    const good = await h.idp.mint();
    h.idp.fault('discovery', fault);
    await h.keys.refresh();
    expect((await h.validator.validate(good)).ok).toBe(true);
  });

  it('a hanging endpoint times out and the last good keys stay', async () => {
    const h = await started({ keys: { fetchTimeoutMs: 200 } });
    h.idp.fault('jwks', { kind: 'hang' });
    await h.keys.refresh();
    expect((await h.validator.validate(await h.idp.mint())).ok).toBe(true);
    expect(await counterValue(h.metrics, 'foundry_auth_jwks_refreshes_total', { outcome: 'error' })).toBe(1);
  });

  it('the whole identity provider going away', async () => {
    const h = await started();
    const good = await h.idp.mint();
    await h.idp.close();
    await h.keys.refresh();
    expect((await h.validator.validate(good)).ok).toBe(true);
  });
});

describe('never loaded: 503 identity_provider_unavailable with Retry-After (65)', () => {
  it.each([...FAULTS, ['a hang', { kind: 'hang' as const }]])('JWKS %s at start', async (_name, fault) => {
    const h = await started({ start: false, keys: { fetchTimeoutMs: 200, retryInitialMs: 20_000 } });
    h.idp.fault('jwks', fault);
    await h.keys.start();
    const result = await h.validator.validate(await h.idp.mint());
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.rejection).toMatchObject({ code: 'identity_provider_unavailable', reason: 'keys_unavailable', retryAfterSeconds: 20 });
    expect(result.rejection.bearerError).toBeUndefined();
    expect(h.keys.readiness()).toMatch(new RegExp(`signing keys for tenant ${TEST_TENANT_ID} not loaded yet \\(last error: .+\\)`));
    // Requests do not cause fetches while the loader backs off.
    expect(h.idp.jwksFetches()).toBeLessThanOrEqual(1);
    for (let i = 0; i < 20; i++) await h.validator.validate(await h.idp.mint());
    expect(h.idp.jwksFetches()).toBeLessThanOrEqual(1);
  });

  it('Retry-After counts down to the next attempt and the loader backs off exponentially', async () => {
    const h = await started({ start: false, keys: { retryInitialMs: 10_000, retryMaxMs: 40_000 } });
    h.idp.fault('jwks', { kind: 'status', status: 503 });
    await h.keys.start();
    const token = await h.idp.mint();
    const retryAfter = async () => {
      const r = await h.validator.validate(token);
      return r.ok ? -1 : r.rejection.retryAfterSeconds;
    };
    expect(await retryAfter()).toBe(10);
    h.clock.advance(4_000);
    expect(await retryAfter()).toBe(6);
    await h.keys.refresh(); // second failure: 20 s
    expect(await retryAfter()).toBe(20);
    await h.keys.refresh(); // third: 40 s (the maximum)
    await h.keys.refresh();
    expect(await retryAfter()).toBe(40);
    h.idp.fault('jwks', undefined);
    await h.keys.refresh();
    expect((await h.validator.validate(token)).ok).toBe(true);
    expect(h.keys.readiness()).toBeNull();
    expect(await counterValue(h.metrics, 'foundry_auth_jwks_refreshes_total', { trigger: 'startup', outcome: 'error' })).toBe(4);
  });

  it('while a failing endpoint is retried, requests get 503 at once instead of waiting for the retry', async () => {
    const h = await started({ start: false, keys: { fetchTimeoutMs: 1_500 } });
    h.idp.fault('jwks', { kind: 'status', status: 500 });
    await h.keys.start();
    h.idp.fault('jwks', { kind: 'hang' });
    let retryDone = false;
    const retry = h.keys.refresh().then(() => (retryDone = true));
    const result = await h.validator.validate(await h.idp.mint());
    expect(retryDone).toBe(false);
    expect(result).toMatchObject({ ok: false, rejection: { code: 'identity_provider_unavailable', retryAfterSeconds: 1 } });
    await retry;
  });

  it('the background loader retries on its own timer until the keys load', async () => {
    const h = await started({ start: false, keys: { retryInitialMs: 20, retryMaxMs: 40 } });
    h.idp.fault('jwks', { kind: 'status', status: 500 });
    await h.keys.start();
    expect(h.keys.readiness()).not.toBeNull();
    h.idp.fault('jwks', undefined);
    const deadline = Date.now() + 5_000;
    while (h.keys.readiness() !== null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(h.keys.readiness()).toBeNull();
  });
});

describe('where keys come from (14, 50)', () => {
  it('a jwks_uri on another origin is refused and never fetched', async () => {
    const canary = await Canary.start();
    open.push(canary);
    const h = await started({ start: false });
    h.idp.setJwksUri(`${canary.url}/keys`);
    await h.keys.start();
    expect(h.keys.readiness()).toMatch(/not on the authority's origin/);
    expect(canary.hits).toBe(0);
  });

  it('redirects are never followed', async () => {
    const canary = await Canary.start();
    open.push(canary);
    const h = await started({ start: false });
    h.idp.fault('jwks', { kind: 'redirect', location: `${canary.url}/keys` });
    h.idp.fault('discovery', { kind: 'redirect', location: `${canary.url}/openid-configuration` });
    await h.keys.start();
    expect(h.keys.readiness()).toMatch(/HTTP 302 \(redirects are not followed\)/);
    expect(canary.hits).toBe(0);
  });

  it('only allowed tenants are ever fetched, whatever tokens say', async () => {
    const h = await started({ tenants: [TEST_TENANT_ID, OTHER_TENANT_ID] });
    h.clock.advance(COOLDOWN);
    await h.keys.resolve(OTHER_TENANT_ID, 'x');
    for (let i = 0; i < 10; i++) await h.validator.validate(await h.idp.mint({ tid: OTHER_TENANT_ID }));
    expect(h.idp.jwksFetches(OTHER_TENANT_ID)).toBe(0);
    expect(h.idp.discoveryFetches(OTHER_TENANT_ID)).toBe(0);
  });
});

describe('key hygiene (11, 66)', () => {
  it('keys that may not verify RS256 are never used', async () => {
    const h = await started({ start: false });
    const keys = {
      enc: h.idp.addRsaKey({ use: 'enc' }),
      keyOpsEncrypt: h.idp.addRsaKey({ key_ops: ['encrypt'] }),
      rsa1024: h.idp.addRsaKey({ bits: 1024, use: 'sig' }),
      e3: h.idp.addRsaKey({ exponent: 3, use: 'sig' }),
      rs384: h.idp.addRsaKey({ alg: 'RS384' }),
      ps256: h.idp.addRsaKey({ alg: 'PS256' }),
      noUse: h.idp.addRsaKey({}),
      keyOpsVerify: h.idp.addRsaKey({ key_ops: ['verify'] }),
      rs256: h.idp.addRsaKey({ alg: 'RS256', use: 'sig' }),
    };
    const ec = h.idp.addEcKey();
    const oct = h.idp.addOctKey();
    h.idp.publishJwk({ ...keys.rs256.jwk, kid: 'bad-issuer', issuer: 42 });
    h.idp.publishJwk({ kty: 'RSA', kid: 'no-modulus', e: 'AQAB' });
    h.idp.publishJwk({ kty: 'RSA', kid: 'junk-modulus', n: '!!!', e: 'AQAB' });
    h.idp.publishJwk({ ...keys.noUse.jwk, key_ops: 'verify', kid: 'key-ops-string' });
    await h.keys.start();
    const mint = (key: typeof ec) => h.idp.mintRaw({ header: h.idp.header(key), payload: h.idp.claims(), signature: { alg: 'RS256', key } });
    for (const key of [keys.enc, keys.keyOpsEncrypt, keys.rsa1024, keys.e3, keys.rs384, keys.ps256]) {
      expectInvalidToken(await h.validator.validate(mint(key)), 'unusable_key');
    }
    for (const kid of ['bad-issuer', 'no-modulus', 'junk-modulus', 'key-ops-string', ec.kid, oct.kid]) {
      expectInvalidToken(await h.validator.validate(tokenWithKid(h, kid)), 'unusable_key');
    }
    for (const key of [keys.noUse, keys.keyOpsVerify, keys.rs256]) expect((await h.validator.validate(mint(key))).ok).toBe(true);
    // Known-but-unusable kids never cause a refresh.
    h.clock.advance(COOLDOWN);
    await h.validator.validate(mint(keys.enc));
    expect(h.idp.jwksFetches()).toBe(1);
  });

  it('a kid listed twice is unusable, even when both entries are good keys', async () => {
    const h = await started({ start: false });
    const first = h.idp.signingKey();
    const other = h.idp.addRsaKey({ use: 'sig' });
    const twin = h.idp.addRsaKey({ use: 'sig', publish: false });
    h.idp.publishJwk({ ...twin.jwk, kid: first.kid });
    await h.keys.start();
    expectInvalidToken(await h.validator.validate(await h.idp.mint()), 'unusable_key');
    expect((await h.validator.validate(await h.idp.mint({ key: other }))).ok).toBe(true);
  });

  it('keySourceFromJwks verifies offline (token inspect with a saved JWKS)', async () => {
    const h = await started({ start: false });
    const source = keySourceFromJwks(new Map<string, JsonValue>([[h.idp.tenantId, h.idp.jwks() as unknown as JsonValue]]));
    const ok = await inspectToken(await h.idp.mint(), h.policy, { nowMs: h.clock.now(), keys: source });
    expect(ok.verdict).toMatchObject({ status: 200, signatureVerified: true });
    const unknown = await inspectToken(tokenWithKid(h, 'zzz'), h.policy, { nowMs: h.clock.now(), keys: source });
    expect(unknown.verdict).toMatchObject({ status: 401, reason: 'unknown_kid' });
    expect(h.idp.allFetches().size).toBe(0);
  });

  it('parseJwks refuses sets without a usable key', () => {
    expect(() => parseJwks({ keys: [] })).toThrow(/no usable RS256/);
    expect(() => parseJwks({ keys: 'x' })).toThrow(/"keys" array/);
    expect(() => parseJwks([])).toThrow();
  });
});

describe('HTTPS identity provider', () => {
  it('trusts a private CA given as `ca`, and refuses the IdP without it', async () => {
    const pki = await testPki();
    const clock = new ManualClock();
    const idp = await TestIdp.start({ tls: { key: pki.key, cert: pki.cert }, now: () => clock.now() });
    open.push(idp);
    const common = {
      authority: idp.authority,
      tenants: [idp.tenantId],
      clock,
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
      fetchTimeoutMs: 2_000,
    };
    const withCa = new SigningKeys({ ...common, ca: pki.caCert });
    const without = new SigningKeys(common);
    open.push(withCa, without);
    await withCa.start();
    await without.start();
    expect(withCa.readiness()).toBeNull();
    expect(without.readiness()).toMatch(/certificate|self.signed|UNABLE_TO_VERIFY|SELF_SIGNED/i);
  });

  const dist = resolve('dist/authn/signing-keys.js');
  it('honours NODE_EXTRA_CA_CERTS with no option (uses dist/, built by npm test)', async () => {
    expect(existsSync(dist)).toBe(true);
    const pki = await testPki();
    const dir = mkdtempSync(join(tmpdir(), 'foundry-auth-ca-'));
    writeFileSync(join(dir, 'ca.pem'), pki.caCert);
    const idp = await TestIdp.start({ tls: { key: pki.key, cert: pki.cert } });
    open.push(idp);
    const script = `
      import { SigningKeys } from ${JSON.stringify(`file://${dist}`)};
      import { Metrics } from ${JSON.stringify(`file://${resolve('dist/ops/metrics.js')}`)};
      import { silentLogger } from ${JSON.stringify(`file://${resolve('dist/ops/log.js')}`)};
      const keys = new SigningKeys({ authority: process.env.AUTHORITY, tenants: [process.env.TENANT], clock: { now: () => Date.now() },
        log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }), fetchTimeoutMs: 5000 });
      await keys.start();
      process.stdout.write(String(keys.readiness()));
      await keys.close();`;
    const run = (extra: Record<string, string>) =>
      promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
        env: { PATH: process.env.PATH ?? '', AUTHORITY: idp.authority, TENANT: idp.tenantId, ...extra },
      });
    expect((await run({ NODE_EXTRA_CA_CERTS: join(dir, 'ca.pem') })).stdout).toBe('null');
    expect((await run({})).stdout).toMatch(/not loaded/);
  });
});
