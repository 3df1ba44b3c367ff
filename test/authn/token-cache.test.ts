import { afterEach, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/authn/authenticate.js';
import type { AuthnOutcome } from '../../src/contracts/stages.js';
import { VerifiedTokenCache, tokenHash, type VerifiedToken } from '../../src/authn/token-cache.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { TestIdp, b64url } from '../fixtures/idp.js';
import { counterValue, entraConfig } from './harness.js';

interface Setup {
  clock: ManualClock;
  idp: TestIdp;
  metrics: Metrics;
  authn: Authenticator;
}

let setups: Setup[] = [];
afterEach(async () => {
  for (const s of setups) {
    await s.authn.close();
    await s.idp.close();
  }
  setups = [];
});

async function setup(tokenCacheMax?: number): Promise<Setup> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  const idp = await TestIdp.start({ now: () => clock.now() });
  const metrics = new Metrics({ defaultMetrics: false });
  const authn = new Authenticator({
    entra: entraConfig(idp),
    clock,
    log: silentLogger(),
    metrics,
    ...(tokenCacheMax ? { tokenCacheMax } : {}),
    signingKeys: { retryInitialMs: 60_000 },
  });
  await authn.start();
  const s = { clock, idp, metrics, authn };
  setups.push(s);
  return s;
}

const bearer = (token: string): string[] => ['Authorization', `Bearer ${token}`];

async function outcome(s: Setup, token: string): Promise<AuthnOutcome> {
  return s.authn.authenticateRequest(bearer(token), undefined);
}

describe('verified-token cache', () => {
  it('a second validation is a synchronous hit with the same principal', async () => {
    const s = await setup();
    const token = await s.idp.mint();
    const first = await outcome(s, token);
    expect(first).toMatchObject({ ok: true, tokenCache: 'miss' });
    const second = s.authn.authenticateRequest(bearer(token), undefined);
    expect(second).not.toBeInstanceOf(Promise);
    expect(second).toMatchObject({ ok: true, tokenCache: 'hit' });
    if (first.ok && !(second instanceof Promise) && second.ok) expect(second.principal).toBe(first.principal);
    expect(await counterValue(s.metrics, 'foundry_auth_token_cache_total', { outcome: 'hit' })).toBe(1);
    expect(await counterValue(s.metrics, 'foundry_auth_token_cache_total', { outcome: 'miss' })).toBe(1);
  });

  it('is keyed by the SHA-256 of the token, never the token', async () => {
    const s = await setup();
    const token = await s.idp.mint();
    await outcome(s, token);
    expect(s.authn.tokenCache.get(tokenHash(token))).toBeDefined();
    const keys = [...(s.authn.tokenCache as unknown as { entries: Map<string, unknown> }).entries.keys()];
    expect(keys).toEqual([tokenHash(token)]);
    expect(keys[0]).not.toContain(token.slice(0, 20));
  });

  it('failures are not cached', async () => {
    const s = await setup();
    const token = await s.idp.mint({ claims: { scp: 'User.Read' } });
    for (let i = 0; i < 3; i++) expect(await outcome(s, token)).toMatchObject({ ok: false, rejection: { reason: 'missing_scope' } });
    expect(s.authn.tokenCache.size).toBe(0);
  });

  it('an entry expires with the token: expired on hit is rejected as expired (34, 134)', async () => {
    const s = await setup();
    const token = await s.idp.mint({ claims: { exp: s.idp.now() + 60 } });
    expect((await outcome(s, token)).ok).toBe(true);
    s.clock.advance((60 + 300 - 1) * 1000);
    expect(await outcome(s, token)).toMatchObject({ ok: true, tokenCache: 'hit' });
    s.clock.advance(1000);
    expect(await outcome(s, token)).toMatchObject({ ok: false, rejection: { code: 'invalid_token', reason: 'expired' } });
    expect(s.authn.tokenCache.size).toBe(0);
  });

  it('a clock moved back before nbf - skew is not answered from the cache', async () => {
    const s = await setup();
    const token = await s.idp.mint();
    expect((await outcome(s, token)).ok).toBe(true);
    s.clock.advance(-(60 + 300 + 1) * 1000);
    expect(await outcome(s, token)).toMatchObject({ ok: false, rejection: { reason: 'not_yet_valid' } });
  });

  it('removing the signing key invalidates cached tokens it verified (63)', async () => {
    const s = await setup();
    const token = await s.idp.mint();
    const k2 = s.idp.addRsaKey({ use: 'sig' });
    const other = await s.idp.mint({ key: k2 });
    await s.authn.signingKeys!.refresh();
    expect((await outcome(s, token)).ok).toBe(true);
    expect((await outcome(s, other)).ok).toBe(true);
    s.idp.removeKey(s.idp.signingKey().kid);
    await s.authn.signingKeys!.refresh();
    expect(s.authn.tokenCache.size).toBe(1);
    expect(await outcome(s, token)).toMatchObject({ ok: false, rejection: { reason: 'unknown_kid' } });
    expect(await outcome(s, other)).toMatchObject({ ok: true, tokenCache: 'hit' });
  });

  it('new key material under the same kid invalidates cached tokens (64)', async () => {
    const s = await setup();
    const token = await s.idp.mint();
    expect((await outcome(s, token)).ok).toBe(true);
    s.idp.replaceKeyMaterial(s.idp.signingKey().kid);
    await s.authn.signingKeys!.refresh();
    expect(await outcome(s, token)).toMatchObject({ ok: false, rejection: { reason: 'bad_signature' } });
  });

  it('a cached token does not vouch for a forged or non-canonical token of the same principal (134, 135)', async () => {
    const s = await setup();
    const token = await s.idp.mint();
    expect((await outcome(s, token)).ok).toBe(true);
    const [h, p] = token.split('.');
    expect(await outcome(s, `${h}.${p}.${b64url(Buffer.alloc(256, 1))}`)).toMatchObject({ ok: false, rejection: { reason: 'bad_signature' } });
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const variant = token.slice(0, -1) + alphabet[alphabet.indexOf(token.at(-1)!) + 1];
    expect(await outcome(s, variant)).toMatchObject({ ok: false, rejection: { reason: 'malformed' } });
    const expired = await s.idp.mint({ claims: { exp: s.idp.now() - 3600 } });
    expect(await outcome(s, expired)).toMatchObject({ ok: false, rejection: { reason: 'expired' } });
  });

  it('is bounded by max entries', async () => {
    const s = await setup(3);
    for (let i = 0; i < 5; i++) expect((await outcome(s, await s.idp.mint({ claims: { uti: `t${i}` } }))).ok).toBe(true);
    expect(s.authn.tokenCache.size).toBe(3);
  });

  it('the cache changes no outcome: cached and uncached answers agree', async () => {
    const s = await setup();
    const now = s.idp.now();
    const tokens = [
      await s.idp.mint(),
      await s.idp.mint({ kind: 'app' }),
      await s.idp.mint({ claims: { exp: now + 30 } }),
      await s.idp.mint({ claims: { aud: 'x' } }),
      await s.idp.mint({ claims: { exp: now - 400 } }),
    ];
    for (const step of [0, 200_000, 200_000, 3_600_000]) {
      s.clock.advance(step);
      for (const token of tokens) {
        const cached = await outcome(s, token);
        const fresh = await s.authn['validator']!.validate(token);
        expect(cached.ok).toBe(fresh.ok);
        if (!cached.ok && !fresh.ok) expect(cached.rejection).toEqual(fresh.rejection);
      }
    }
  });
});

describe('VerifiedTokenCache unit', () => {
  const entry = (over: Partial<VerifiedToken> = {}): VerifiedToken => ({
    principal: { type: 'user', oid: 'o', tid: 't' },
    tenantId: 't',
    kid: 'k1',
    validFromMs: 0,
    validUntilMs: 10_000,
    ...over,
  });

  it('honours the validity window exactly', () => {
    const clock = new ManualClock(5_000);
    const cache = new VerifiedTokenCache(clock);
    cache.set('a', entry());
    expect(cache.get('a')).toBeDefined();
    clock.set(9_999);
    expect(cache.get('a')).toBeDefined();
    clock.set(10_000);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not store entries already expired', () => {
    const cache = new VerifiedTokenCache(new ManualClock(20_000));
    cache.set('a', entry());
    expect(cache.size).toBe(0);
  });

  it('invalidateKeys drops only the named tenant and kids', () => {
    const cache = new VerifiedTokenCache(new ManualClock(5_000));
    cache.set('a', entry());
    cache.set('b', entry({ kid: 'k2' }));
    cache.set('c', entry({ tenantId: 'other' }));
    expect(cache.invalidateKeys('t', new Set(['k1']))).toBe(1);
    expect([cache.get('a'), cache.get('b'), cache.get('c')].map(Boolean)).toEqual([false, true, true]);
  });
});
