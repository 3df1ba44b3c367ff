import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/authn/authenticate.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { Canary, OTHER_TENANT_ID, TEST_CLIENT_ID, TEST_TENANT_ID, TestIdp, b64url } from '../fixtures/idp.js';
import { counterValue, entraConfig } from './harness.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup(opts: { start?: boolean; fault?: boolean } = {}) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  const idp = await TestIdp.start({ now: () => clock.now() });
  closers.push(() => idp.close());
  if (opts.fault) idp.fault('jwks', { kind: 'status', status: 500 });
  const metrics = new Metrics({ defaultMetrics: false });
  const authn = new Authenticator({ entra: entraConfig(idp), clock, log: silentLogger(), metrics, signingKeys: { retryInitialMs: 30_000 } });
  closers.push(() => authn.close());
  if (opts.start ?? true) await authn.start();
  return { clock, idp, metrics, authn };
}

describe('Authenticator', () => {
  it('authenticates a request from raw headers: user and app principals', async () => {
    const { idp, authn } = await setup();
    const user = await authn.authenticateRequest(['Host', 'x', 'Authorization', `Bearer ${await idp.mint()}`], 'api-version=1');
    expect(user).toMatchObject({ ok: true, tokenCache: 'miss', principal: { type: 'user', tid: TEST_TENANT_ID } });
    const app = await authn.authenticateRequest(['authorization', `bearer ${await idp.mint({ kind: 'app' })}`], undefined);
    expect(app).toMatchObject({ ok: true, principal: { type: 'app' } });
  });

  it('extraction rejections are returned and counted by code and reason', async () => {
    const { idp, authn, metrics } = await setup();
    const token = await idp.mint();
    expect(await authn.authenticateRequest([], undefined)).toMatchObject({ ok: false, rejection: { code: 'missing_credentials' } });
    expect(await authn.authenticateRequest(['Authorization', `Bearer ${token}`, 'Authorization', `Bearer ${token}`], undefined)).toMatchObject({
      ok: false,
      rejection: { code: 'invalid_request', bearerError: 'invalid_request' },
    });
    expect(await authn.authenticateRequest(['Authorization', `Bearer ${token}`, 'api-key', 'k'], undefined)).toMatchObject({
      rejection: { code: 'ambiguous_auth' },
    });
    expect(await counterValue(metrics, 'foundry_auth_authentication_failures_total', { code: 'missing_credentials', reason: 'missing' })).toBe(1);
    expect(await counterValue(metrics, 'foundry_auth_authentication_failures_total', { code: 'invalid_request' })).toBe(1);
    expect(await counterValue(metrics, 'foundry_auth_authentication_failures_total', { code: 'ambiguous_auth' })).toBe(1);
  });

  it('token failures are counted by reason', async () => {
    const { idp, authn, metrics } = await setup();
    await authn.authenticateRequest(['Authorization', `Bearer ${await idp.mint({ claims: { aud: 'x' } })}`], undefined);
    await authn.authenticateRequest(['Authorization', 'Bearer a.b.c'], undefined);
    expect(await counterValue(metrics, 'foundry_auth_authentication_failures_total', { code: 'invalid_token', reason: 'wrong_audience' })).toBe(1);
    expect(await counterValue(metrics, 'foundry_auth_authentication_failures_total', { code: 'invalid_token', reason: 'malformed' })).toBe(1);
  });

  it('a JWT when Entra ID is not configured: invalid_token saying it is not enabled', async () => {
    const authn = new Authenticator({ clock: new ManualClock(), log: silentLogger(), metrics: new Metrics({ defaultMetrics: false }) });
    await authn.start();
    const result = await authn.authenticateRequest(['Authorization', 'Bearer a.b.c'], undefined);
    expect(result).toMatchObject({ ok: false, rejection: { code: 'invalid_token', bearerError: 'invalid_token', reason: 'entra_disabled' } });
    if (!result.ok) expect(result.rejection.message).toMatch(/Entra ID authentication is not enabled/);
    expect(authn.readiness()).toBeNull();
    await authn.close();
  });

  it('readiness is a message until the signing keys loaded once, then null', async () => {
    const { idp, authn } = await setup({ fault: true });
    expect(authn.readiness()).toMatch(new RegExp(`tenant ${TEST_TENANT_ID}.*HTTP 500`));
    const result = await authn.authenticateRequest(['Authorization', `Bearer ${await idp.mint()}`], undefined);
    expect(result).toMatchObject({ ok: false, rejection: { code: 'identity_provider_unavailable', retryAfterSeconds: 30 } });
    idp.fault('jwks', undefined);
    await authn.signingKeys!.refresh();
    expect(authn.readiness()).toBeNull();
    expect((await authn.authenticateRequest(['Authorization', `Bearer ${await idp.mint()}`], undefined)).ok).toBe(true);
  });

  it('cheap rejections first: 10,000 bad tokens cost at most one key fetch per cooldown and reach no canary (119)', async () => {
    const { clock, idp, authn } = await setup();
    const canary = await Canary.start();
    closers.push(() => canary.close());
    const now = idp.now();
    const bad = [
      'not.a.token',
      await idp.mint({ claims: { exp: now - 3600 } }),
      await idp.mint({ claims: { aud: '00000003-0000-0000-c000-000000000000' } }),
      await idp.mint({ tid: TEST_TENANT_ID, claims: { tid: OTHER_TENANT_ID } }),
      await idp.mint({ claims: { iss: `${canary.url}/${TEST_TENANT_ID}/v2.0` } }),
      idp.mintRaw({ header: idp.header(undefined, { jku: `${canary.url}/jwks` }), payload: idp.claims() }),
      idp.mintRaw({ header: idp.header(undefined, { alg: 'HS256' }), payload: idp.claims(), signature: { alg: 'HS256', secret: '' } }),
      `${(await idp.mint()).split('.').slice(0, 2).join('.')}.${b64url(Buffer.alloc(256, 9))}`,
      ...Array.from({ length: 8 }, (_, i) => idp.mintRaw({ header: idp.header(undefined, { kid: `random-${i}` }), payload: idp.claims() })),
    ];
    idp.resetCounts();
    for (let i = 0; i < 10_000; i++) {
      clock.advance(3); // 30 simulated seconds in all
      const result = await authn.authenticateRequest(['Authorization', `Bearer ${bad[i % bad.length]}`], undefined);
      expect(result.ok).toBe(false);
    }
    expect(idp.jwksFetches()).toBeLessThanOrEqual(1);
    expect(canary.hits).toBe(0);
  });

  it('an injected undici dispatcher carries the identity provider requests (MockAgent)', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
    const idp = await TestIdp.start({ now: () => clock.now() });
    closers.push(() => idp.close());
    const token = await idp.mint();
    const authority = 'https://login.example.test';
    const agent = new MockAgent();
    agent.disableNetConnect();
    const pool = agent.get(authority);
    pool
      .intercept({ path: `/${TEST_TENANT_ID}/v2.0/.well-known/openid-configuration` })
      .reply(200, { jwks_uri: `${authority}/${TEST_TENANT_ID}/discovery/v2.0/keys` });
    pool.intercept({ path: `/${TEST_TENANT_ID}/discovery/v2.0/keys` }).reply(200, idp.jwks());
    const authn = new Authenticator({
      entra: entraConfig(idp, { authority }),
      clock,
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
      dispatcher: agent,
    });
    closers.push(async () => {
      await authn.close();
      await agent.close();
    });
    await authn.start();
    expect(authn.readiness()).toBeNull();
    // The token names the test IdP as issuer; with this authority it is a wrong issuer, after a good key lookup path.
    expect(await authn.authenticateRequest(['Authorization', `Bearer ${token}`], undefined)).toMatchObject({
      ok: false,
      rejection: { reason: 'wrong_issuer' },
    });
    const matching = await idp.mint({ claims: { iss: `${authority}/${TEST_TENANT_ID}/v2.0` } });
    expect((await authn.authenticateRequest(['Authorization', `Bearer ${matching}`], undefined)).ok).toBe(true);
  });

  it('close() stops background timers so the process can exit', async () => {
    const { authn } = await setup();
    await authn.close();
    expect(authn.readiness()).toBeNull();
  });

  it('principal claims come from the verified payload and identity is tid + oid', async () => {
    const { idp, authn } = await setup();
    const result = await authn.authenticateRequest(
      ['Authorization', `Bearer ${await idp.mint({ claims: { name: 'Bob', preferred_username: undefined } })}`],
      undefined,
    );
    expect(result.ok && result.principal).toMatchObject({ oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e', tid: TEST_TENANT_ID, name: 'Bob' });
    expect(result.ok && result.principal.claims?.aud).toBe(TEST_CLIENT_ID);
  });
});
