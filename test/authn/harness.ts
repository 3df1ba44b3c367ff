/** Shared set-up for the authentication tests: a test IdP, its signing keys, a validator, one manual clock. */
import { expect } from 'vitest';
import { EntraTokenValidator, tokenPolicy, type TokenPolicy, type TokenValidation } from '../../src/authn/entra-token.js';
import { SigningKeys, type SigningKeysOptions } from '../../src/authn/signing-keys.js';
import type { EntraConfig } from '../../src/config/config.js';
import type { Rejection } from '../../src/contracts/errors.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { REQUIRED_APP_ROLE, REQUIRED_SCOPE, TEST_CLIENT_ID, TestIdp } from '../fixtures/idp.js';

export function entraConfig(idp: TestIdp, overrides: Partial<EntraConfig> = {}): EntraConfig {
  return {
    tenantId: idp.tenantId,
    clientId: TEST_CLIENT_ID,
    allowedTenants: [idp.tenantId],
    authority: idp.authority,
    audiences: [TEST_CLIENT_ID, `api://${TEST_CLIENT_ID}`],
    requiredScope: REQUIRED_SCOPE,
    requiredAppRole: REQUIRED_APP_ROLE,
    clockSkewSeconds: 300,
    ...overrides,
  };
}

export interface Harness {
  readonly clock: ManualClock;
  readonly idp: TestIdp;
  readonly metrics: Metrics;
  readonly keys: SigningKeys;
  readonly policy: TokenPolicy;
  readonly validator: EntraTokenValidator;
  close(): Promise<void>;
}

/** Starts an IdP (tenants as given) and loaded signing keys; `start: false` leaves the keys unloaded. */
export async function harness(
  opts: {
    tenants?: string[];
    entra?: Partial<EntraConfig>;
    keys?: Partial<SigningKeysOptions>;
    start?: boolean;
  } = {},
): Promise<Harness> {
  const clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  const idp = await TestIdp.start({ ...(opts.tenants ? { tenants: opts.tenants } : {}), now: () => clock.now() });
  const metrics = new Metrics({ defaultMetrics: false });
  const config = entraConfig(idp, opts.entra);
  const policy = tokenPolicy(config);
  const keys = new SigningKeys({
    authority: policy.authority,
    tenants: [...policy.allowedTenants],
    clock,
    log: silentLogger(),
    metrics,
    fetchTimeoutMs: 2_000,
    retryInitialMs: 60_000,
    ...opts.keys,
  });
  if (opts.start ?? true) await keys.start();
  const validator = new EntraTokenValidator(policy, keys, clock);
  return {
    clock,
    idp,
    metrics,
    keys,
    policy,
    validator,
    async close() {
      await keys.close();
      await idp.close();
    },
  };
}

/** Asserts a 401 invalid_token with bearerError invalid_token and the given reason; returns the rejection. */
export function expectInvalidToken(result: TokenValidation, reason: string): Rejection {
  expect(result.ok).toBe(false);
  if (result.ok) throw new Error('unreachable');
  expect(result.rejection).toMatchObject({ code: 'invalid_token', bearerError: 'invalid_token', reason });
  expectSafeMessage(result.rejection.message);
  return result.rejection;
}

/** Messages go into JSON and WWW-Authenticate error_description: no quote, no backslash, no control characters. */
export function expectSafeMessage(message: string): void {
  expect(message).toMatch(/^[\x20\x21\x23-\x5b\x5d-\x7e]+$/);
}

/** Sum of a counter's values for the labels given (all label sets that match). */
export async function counterValue(metrics: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
