import type { Dispatcher } from 'undici';
import type { EntraConfig } from '../config/config.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { AuthenticationStage, AuthnOutcome } from '../contracts/stages.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { ApiKeys } from './api-keys.js';
import { bearerSyntaxRejection, extractCredentials } from './credentials.js';
import { tokenPolicy } from './token-checks.js';
import { EntraTokenValidator, type TokenValidation } from './token-validator.js';
import { SigningKeys, type SigningKeysOptions } from './signing-keys.js';
import { VerifiedTokenCache, tokenHash } from './token-cache.js';

export interface AuthenticatorOptions {
  readonly entra?: EntraConfig;
  readonly apiKeysFile?: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** For the identity provider requests (tests, proxies). */
  readonly dispatcher?: Dispatcher;
  /** Overrides of the signing-key timings (cooldown, refresh interval, fetch timeout, retry). */
  readonly signingKeys?: Pick<
    SigningKeysOptions,
    'unknownKidCooldownMs' | 'refreshIntervalMs' | 'fetchTimeoutMs' | 'maxBodyBytes' | 'retryInitialMs' | 'retryMaxMs'
  >;
  /** Verified-token cache size. Default 10,000. */
  readonly tokenCacheMax?: number;
}

const ENTRA_DISABLED = rejection('invalid_token', 'Entra ID authentication is not enabled on this sidecar: use an API key.', {
  bearerError: 'invalid_token',
  reason: 'entra_disabled',
});
const API_KEYS_DISABLED = rejection('invalid_api_key', 'API keys are not enabled on this sidecar: use an Entra ID access token.', {
  reason: 'api_keys_disabled',
});
const API_KEYS_DISABLED_BEARER = { ...API_KEYS_DISABLED, bearerError: 'invalid_token' } as const;
const UNKNOWN_API_KEY = rejection(
  'invalid_api_key',
  'The API key is not valid: check the key, or ask the operator of this sidecar for a current one.',
  {
    reason: 'unknown_key',
  },
);
const UNKNOWN_API_KEY_BEARER = { ...UNKNOWN_API_KEY, bearerError: 'invalid_token' } as const;

/**
 * The authentication stage: Credentials -> Principal (SPEC section 3, steps 5-7). Entra tokens go
 * through the verified-token cache (a hit is answered synchronously), then the validator; API keys
 * are looked up in the keys file. Counts `authFailures` and `tokenCache`.
 */
export class Authenticator implements AuthenticationStage {
  readonly signingKeys: SigningKeys | undefined;
  readonly apiKeys: ApiKeys | undefined;
  readonly tokenCache: VerifiedTokenCache;
  private readonly validator: EntraTokenValidator | undefined;
  private readonly metrics: Metrics;

  constructor(opts: AuthenticatorOptions) {
    this.metrics = opts.metrics;
    this.tokenCache = new VerifiedTokenCache(opts.clock, { max: opts.tokenCacheMax ?? 10_000 });
    if (opts.entra) {
      const policy = tokenPolicy(opts.entra);
      this.signingKeys = new SigningKeys({
        ...opts.signingKeys,
        authority: policy.authority,
        tenants: [...policy.allowedTenants],
        clock: opts.clock,
        log: opts.log,
        metrics: opts.metrics,
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      });
      this.signingKeys.onChange((tenantId, kids) => this.tokenCache.invalidateKeys(tenantId, kids));
      this.validator = new EntraTokenValidator(policy, this.signingKeys, opts.clock);
    }
    if (opts.apiKeysFile !== undefined) this.apiKeys = new ApiKeys(opts.apiKeysFile, opts.log);
  }

  /** Reads the API keys and starts loading signing keys; resolves when each first attempt ended (success or not). */
  async start(): Promise<void> {
    await Promise.all([this.apiKeys?.start(), this.signingKeys?.start()]);
  }

  /** Null when ready: every allowed tenant's signing keys were loaded once. */
  readiness(): string | null {
    return this.signingKeys?.readiness() ?? null;
  }

  async close(): Promise<void> {
    this.apiKeys?.close();
    await this.signingKeys?.close();
  }

  /** Extraction and authentication of one request, from Node's `req.rawHeaders` and the raw query (without `?`). */
  authenticateRequest(rawHeaders: readonly string[], rawQuery: string | undefined): AuthnOutcome | Promise<AuthnOutcome> {
    // A bearer token's characters are checked after the cache lookup, and only on a miss.
    const credentials = extractCredentials(rawHeaders, rawQuery);
    switch (credentials.kind) {
      case 'rejected':
        return this.failed(credentials.rejection);
      case 'api-key':
        return this.authenticateApiKey(credentials.key, credentials.via);
      case 'bearer':
        return this.authenticateBearer(credentials.token);
    }
  }

  private authenticateBearer(token: string): AuthnOutcome | Promise<AuthnOutcome> {
    const validator = this.validator;
    if (validator === undefined) {
      return this.failed(bearerSyntaxRejection(token) ?? ENTRA_DISABLED);
    }
    const key = tokenHash(token);
    const cached = this.tokenCache.get(key);
    if (cached !== undefined) {
      this.metrics.countTokenCache('hit');
      return { ok: true, principal: cached.principal, tokenCache: 'hit' };
    }
    // Only verified tokens are cached, and each passed this check first: a hit needs no recheck.
    const malformed = bearerSyntaxRejection(token);
    if (malformed !== undefined) return this.failed(malformed);
    this.metrics.countTokenCache('miss');
    const validation = validator.validate(token);
    if (validation instanceof Promise) return validation.then((settled) => this.validated(key, settled));
    return this.validated(key, validation);
  }

  private validated(key: string, validation: TokenValidation): AuthnOutcome {
    if (!validation.ok) return this.failed(validation.rejection);
    this.tokenCache.set(key, validation);
    return { ok: true, principal: validation.principal, tokenCache: 'miss' };
  }

  private authenticateApiKey(key: string, via: 'api-key-header' | 'bearer'): AuthnOutcome {
    if (this.apiKeys === undefined) return this.failed(via === 'bearer' ? API_KEYS_DISABLED_BEARER : API_KEYS_DISABLED);
    const principal = this.apiKeys.verify(key);
    if (principal === undefined) return this.failed(via === 'bearer' ? UNKNOWN_API_KEY_BEARER : UNKNOWN_API_KEY);
    return { ok: true, principal, tokenCache: 'none' };
  }

  private failed(rejection: Rejection): AuthnOutcome {
    this.metrics.authFailures.inc({ code: rejection.code, reason: rejection.reason ?? 'other' });
    return { ok: false, rejection };
  }
}
