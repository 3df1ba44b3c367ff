/**
 * Authenticator.authenticateRequest checks a bearer token's characters after the verified-token
 * cache lookup, on a miss only (a performance change, see docs/PERFORMANCE.md). These tests pin
 * down that the outcomes are those of checking the characters first, right after extraction.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/authn/authenticate.js';
import { bearerSyntaxRejection, extractCredentials } from '../../src/authn/credentials.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { TestIdp } from '../fixtures/idp.js';
import { counterValue, entraConfig } from './harness.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function setup(entra = true) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  const idp = await TestIdp.start({ now: () => clock.now() });
  closers.push(() => idp.close());
  const metrics = new Metrics({ defaultMetrics: false });
  const authn = new Authenticator({ ...(entra ? { entra: entraConfig(idp) } : {}), clock, log: silentLogger(), metrics });
  closers.push(() => authn.close());
  await authn.start();
  return { idp, metrics, authn };
}

const MALFORMED = ['Bearer abc def', 'Bearer abc!', 'Bearer =abc', 'Bearer ab=c', 'Bearer fndry-sk-abc!'];

describe('bearer token characters checked after the cache lookup', () => {
  it('a value that is not a b64token is malformed_authorization, as checking it right after extraction says, and counts no cache miss', async () => {
    const { authn, metrics } = await setup();
    for (const value of MALFORMED) {
      const found = extractCredentials(['Authorization', value], undefined);
      // An API key's characters are checked by extraction itself, a bearer token's by bearerSyntaxRejection.
      const expected = found.kind === 'rejected' ? found.rejection : found.kind === 'bearer' ? bearerSyntaxRejection(found.token) : undefined;
      expect(expected).toMatchObject({ reason: 'malformed_authorization' });
      expect(await authn.authenticateRequest(['Authorization', value], undefined)).toEqual({ ok: false, rejection: expected });
    }
    expect(
      await counterValue(metrics, 'foundry_auth_authentication_failures_total', { code: 'invalid_token', reason: 'malformed_authorization' }),
    ).toBe(MALFORMED.length);
    expect(await counterValue(metrics, 'foundry_auth_token_cache_total', { outcome: 'miss' })).toBe(0);
  });

  it('without Entra ID a malformed value is still malformed_authorization, a well-formed one entra_disabled', async () => {
    const { authn } = await setup(false);
    expect(await authn.authenticateRequest(['Authorization', 'Bearer abc!'], undefined)).toMatchObject({
      ok: false,
      rejection: { reason: 'malformed_authorization' },
    });
    expect(await authn.authenticateRequest(['Authorization', 'Bearer abc.def.ghi'], undefined)).toMatchObject({
      ok: false,
      rejection: { reason: 'entra_disabled' },
    });
  });

  it('a verified token is a hit the second time', async () => {
    const { idp, authn } = await setup();
    const token = await idp.mint();
    expect(await authn.authenticateRequest(['Authorization', `Bearer ${token}`], undefined)).toMatchObject({ ok: true, tokenCache: 'miss' });
    expect(authn.authenticateRequest(['Authorization', `Bearer ${token}`], undefined)).toMatchObject({ ok: true, tokenCache: 'hit' });
  });
});
