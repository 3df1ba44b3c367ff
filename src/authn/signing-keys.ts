import { createPublicKey, type KeyObject } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { isJsonObject, parseStrictJson, type JsonObject, type JsonValue } from './strict-json.js';

/** An RS256 verification key from a tenant's JWKS, imported once. */
export interface SigningKey {
  readonly kid: string;
  readonly key: KeyObject;
  /** A valid RS256 signature has exactly this many bytes. */
  readonly modulusBytes: number;
  /** The JWK's `issuer` (Entra publishes a template with `{tenantid}`): the key signs only for that issuer. */
  readonly issuer?: string;
  /** Identifies the key material, to notice a `kid` reused for a new key. */
  readonly fingerprint: string;
}

export type KeyLookup =
  | { readonly state: 'found'; readonly key: SigningKey }
  /** The tenant's key set has no such `kid` (after the refresh the rules allowed). */
  | { readonly state: 'unknown' }
  /** The key set names this `kid`, but the key may not verify RS256 tokens. */
  | { readonly state: 'unusable'; readonly detail: string }
  /** No key set was ever loaded for the tenant. */
  | { readonly state: 'unavailable'; readonly retryAfterSeconds: number };

/** Where `entra-token.ts` finds keys; `SigningKeys` in the sidecar, anything with the same answers in `token inspect`. */
export interface SigningKeySource {
  resolve(tenantId: string, kid: string): KeyLookup | Promise<KeyLookup>;
}

export type RefreshTrigger = 'startup' | 'background' | 'unknown_kid';

export interface SigningKeysOptions {
  /** Without a trailing slash, e.g. `https://login.microsoftonline.com`. */
  readonly authority: string;
  /** Lower-case tenant GUIDs; keys are loaded for these tenants only, never for one named by a token. */
  readonly tenants: readonly string[];
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** For tests (undici MockAgent) or a proxy; otherwise an own Agent using Node's CA store (`NODE_EXTRA_CA_CERTS` included). */
  readonly dispatcher?: Dispatcher;
  /** Extra trusted CA certificates (PEM) for the identity provider, when no dispatcher is given. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** Minimum time between two fetches caused by unknown `kid`s. Default 30 s. */
  readonly unknownKidCooldownMs?: number;
  /** Background refresh period. Default 1 h. */
  readonly refreshIntervalMs?: number;
  /** Limit for one HTTP exchange (discovery or JWKS). Default 10 s. */
  readonly fetchTimeoutMs?: number;
  /** Largest discovery or JWKS body accepted. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /** First retry delay after a failed fetch, doubled per failure up to `retryMaxMs`. Defaults 1 s and 60 s. */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
}

export type KeySetChangeListener = (tenantId: string, changedKids: ReadonlySet<string>) => void;

const MIN_MODULUS_BITS = 2048;
const MAX_MODULUS_BITS = 8192;
// Keys with a tiny public exponent invite the low-exponent PKCS#1 v1.5 forgeries of lenient verifiers.
const MIN_PUBLIC_EXPONENT = 65537n;

/** A `kid` of a key set: a usable key, or why it may not be used. */
export type KeyEntry = SigningKey | { readonly unusable: string };

class KeyFetchError extends Error {
  override readonly name = 'KeyFetchError';
}

class TenantKeys {
  /** Undefined until a key set was loaded once. */
  keys: Map<string, KeyEntry> | undefined;
  inflight: Promise<void> | undefined;
  attempted = false;
  lastAttemptAt = Number.NEGATIVE_INFINITY;
  nextAttemptAt = 0;
  failures = 0;
  lastError: string | undefined;
  timer: NodeJS.Timeout | undefined;
  issuerWarned = false;
  constructor(readonly tenantId: string) {}
}

/**
 * The signing keys of every allowed tenant (SPEC section 4): OIDC discovery, then the JWKS it
 * names (same origin as the authority only, redirects never followed). Keys are refreshed in the
 * background; an unknown `kid` causes at most one fetch per cooldown, shared by all waiters; the
 * last good key set stays in use while the endpoint fails.
 */
export class SigningKeys implements SigningKeySource {
  private readonly tenants = new Map<string, TenantKeys>();
  private readonly listeners: KeySetChangeListener[] = [];
  private readonly dispatcher: Dispatcher;
  private readonly ownedAgent: Agent | undefined;
  private readonly authorityOrigin: string;
  private readonly cooldownMs: number;
  private readonly refreshIntervalMs: number;
  private readonly fetchTimeoutMs: number;
  private readonly maxBodyBytes: number;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private closed = false;

  constructor(private readonly opts: SigningKeysOptions) {
    for (const tid of opts.tenants) this.tenants.set(tid.toLowerCase(), new TenantKeys(tid.toLowerCase()));
    this.authorityOrigin = new URL(opts.authority).origin;
    this.cooldownMs = opts.unknownKidCooldownMs ?? 30_000;
    this.refreshIntervalMs = opts.refreshIntervalMs ?? 3_600_000;
    this.fetchTimeoutMs = opts.fetchTimeoutMs ?? 10_000;
    this.maxBodyBytes = opts.maxBodyBytes ?? 1024 * 1024;
    this.retryInitialMs = opts.retryInitialMs ?? 1_000;
    this.retryMaxMs = opts.retryMaxMs ?? 60_000;
    if (opts.dispatcher) {
      this.dispatcher = opts.dispatcher;
    } else {
      const ca = opts.ca === undefined ? undefined : typeof opts.ca === 'string' || Buffer.isBuffer(opts.ca) ? [opts.ca] : [...opts.ca];
      this.ownedAgent = new Agent(ca ? { connect: { ca } } : {});
      this.dispatcher = this.ownedAgent;
    }
  }

  /** Starts the first load for every tenant; resolves when each attempt ended, whether it succeeded or not. */
  async start(): Promise<void> {
    const attempts = [...this.tenants.values()].flatMap((t) => (t.inflight ? [t.inflight] : t.keys ? [] : [this.load(t, 'startup')]));
    await Promise.all(attempts);
  }

  /** Fetches the key sets now (or joins a fetch in flight), ignoring the cooldown. For tests and operators. */
  async refresh(tenantId?: string, trigger: RefreshTrigger = 'background'): Promise<void> {
    const targets = tenantId === undefined ? [...this.tenants.values()] : [this.tenant(tenantId)];
    await Promise.all(targets.map((t) => t.inflight ?? this.load(t, trigger)));
  }

  resolve(tenantId: string, kid: string): KeyLookup | Promise<KeyLookup> {
    const t = this.tenants.get(tenantId);
    if (t === undefined) return UNKNOWN;
    if (t.keys !== undefined) {
      const entry = t.keys.get(kid);
      if (entry !== undefined) return asLookup(entry);
      if (t.inflight) return t.inflight.then(() => this.lookupSettled(t, kid));
      if (this.opts.clock.now() - t.lastAttemptAt >= this.cooldownMs) {
        return this.load(t, 'unknown_kid').then(() => this.lookupSettled(t, kid));
      }
      return UNKNOWN;
    }
    // Only the first load is worth waiting for; while a failing endpoint is retried, answer 503 at once.
    if (t.inflight && t.failures === 0) return t.inflight.then(() => this.lookupSettled(t, kid));
    if (!t.attempted && !this.closed) return this.load(t, 'startup').then(() => this.lookupSettled(t, kid));
    return this.unavailable(t);
  }

  /** Null when every allowed tenant's keys were loaded once; otherwise what is missing. */
  readiness(): string | null {
    const missing = [...this.tenants.values()].filter((t) => t.keys === undefined);
    if (missing.length === 0) return null;
    return missing.map((t) => `signing keys for tenant ${t.tenantId} not loaded yet${t.lastError ? ` (last error: ${t.lastError})` : ''}`).join('; ');
  }

  /** Called after a key set replaced another and some `kid`s disappeared or now name other key material. */
  onChange(listener: KeySetChangeListener): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.tenants.values()) clearTimeout(t.timer);
    // destroy, not close: a fetch hanging on a dead endpoint must not delay shutdown.
    await this.ownedAgent?.destroy();
  }

  private tenant(tenantId: string): TenantKeys {
    const t = this.tenants.get(tenantId.toLowerCase());
    if (t === undefined) throw new Error(`tenant ${tenantId} is not an allowed tenant`);
    return t;
  }

  private lookupSettled(t: TenantKeys, kid: string): KeyLookup {
    if (t.keys === undefined) return this.unavailable(t);
    const entry = t.keys.get(kid);
    return entry === undefined ? UNKNOWN : asLookup(entry);
  }

  private unavailable(t: TenantKeys): KeyLookup {
    const seconds = Math.ceil((t.nextAttemptAt - this.opts.clock.now()) / 1000);
    return { state: 'unavailable', retryAfterSeconds: Math.max(1, seconds) };
  }

  private load(t: TenantKeys, trigger: RefreshTrigger): Promise<void> {
    if (t.inflight) return t.inflight;
    t.attempted = true;
    t.lastAttemptAt = this.opts.clock.now();
    t.nextAttemptAt = t.lastAttemptAt; // an attempt is under way: Retry-After 1 s until it is rescheduled
    clearTimeout(t.timer);
    const label = t.keys === undefined && trigger === 'background' ? 'startup' : trigger;
    t.inflight = this.fetchKeySet(t)
      .then(
        (keys) => {
          this.opts.metrics.jwksRefreshes.inc({ trigger: label, outcome: 'ok' });
          this.replace(t, keys);
          t.failures = 0;
          t.lastError = undefined;
          this.schedule(t, this.refreshIntervalMs);
        },
        (error: unknown) => {
          this.opts.metrics.jwksRefreshes.inc({ trigger: label, outcome: 'error' });
          t.failures++;
          t.lastError = error instanceof KeyFetchError ? error.message : `unexpected error: ${String(error)}`;
          const delay = Math.min(this.retryInitialMs * 2 ** Math.min(t.failures - 1, 30), this.retryMaxMs, this.refreshIntervalMs);
          this.schedule(t, delay);
          this.opts.log.warn(
            { tenantId: t.tenantId, trigger, error: t.lastError, keptKeySet: t.keys !== undefined, retryInMs: delay },
            t.keys === undefined
              ? 'could not load signing keys: tokens are answered with 503 until they load'
              : 'could not refresh signing keys: keeping the last good key set',
          );
        },
      )
      .finally(() => {
        t.inflight = undefined;
      });
    return t.inflight;
  }

  private schedule(t: TenantKeys, delayMs: number): void {
    t.nextAttemptAt = this.opts.clock.now() + delayMs;
    clearTimeout(t.timer);
    if (this.closed) return;
    t.timer = setTimeout(() => void this.load(t, 'background'), delayMs);
    t.timer.unref();
  }

  private replace(t: TenantKeys, keys: Map<string, KeyEntry>): void {
    const previous = t.keys;
    t.keys = keys;
    if (previous === undefined) return;
    const changed = new Set<string>();
    for (const [kid, entry] of previous) {
      if (!('fingerprint' in entry)) continue;
      const now = keys.get(kid);
      if (now === undefined || !('fingerprint' in now) || now.fingerprint !== entry.fingerprint) changed.add(kid);
    }
    if (changed.size === 0) return;
    this.opts.log.info({ tenantId: t.tenantId, kids: [...changed] }, 'signing keys removed or replaced');
    for (const listener of this.listeners) {
      try {
        listener(t.tenantId, changed);
      } catch (error) {
        this.opts.log.error({ tenantId: t.tenantId, error: String(error) }, 'a signing-key change listener failed');
      }
    }
  }

  private async fetchKeySet(t: TenantKeys): Promise<Map<string, KeyEntry>> {
    const expectedIssuer = `${this.opts.authority}/${t.tenantId}/v2.0`;
    const discoveryUrl = `${expectedIssuer}/.well-known/openid-configuration`;
    const discovery = await this.getJson(discoveryUrl);
    if (!isJsonObject(discovery) || typeof discovery.jwks_uri !== 'string') {
      throw new KeyFetchError(`${discoveryUrl} is not an OpenID configuration with a jwks_uri`);
    }
    if (typeof discovery.issuer === 'string' && discovery.issuer !== expectedIssuer && !t.issuerWarned) {
      t.issuerWarned = true;
      this.opts.log.warn(
        { tenantId: t.tenantId, expectedIssuer, discoveredIssuer: discovery.issuer },
        'the identity provider names another issuer than --authority implies: its tokens will be rejected as wrong_issuer; set --authority to match',
      );
    }
    let jwksUrl: URL;
    try {
      jwksUrl = new URL(discovery.jwks_uri);
    } catch {
      throw new KeyFetchError(`${discoveryUrl} names an invalid jwks_uri`);
    }
    if (jwksUrl.origin !== this.authorityOrigin) {
      throw new KeyFetchError(`jwks_uri ${jwksUrl.origin} is not on the authority's origin ${this.authorityOrigin}: refused`);
    }
    const jwks = await this.getJson(jwksUrl.href);
    const keys = parseJwks(jwks, (kid, detail) => this.opts.log.debug({ tenantId: t.tenantId, kid, detail }, 'signing key not usable'));
    return keys;
  }

  private async getJson(url: string): Promise<JsonValue> {
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher: this.dispatcher,
        method: 'GET',
        headers: { accept: 'application/json' },
        headersTimeout: this.fetchTimeoutMs,
        bodyTimeout: this.fetchTimeoutMs,
        signal: AbortSignal.timeout(this.fetchTimeoutMs),
      });
    } catch (error) {
      throw new KeyFetchError(`${url}: ${describeError(error)}`);
    }
    const { statusCode, headers, body } = response;
    try {
      if (statusCode !== 200)
        throw new KeyFetchError(`${url} answered HTTP ${statusCode}${statusCode >= 300 && statusCode < 400 ? ' (redirects are not followed)' : ''}`);
      const declared = Number(headers['content-length']);
      if (declared > this.maxBodyBytes) throw new KeyFetchError(`${url} sent more than ${this.maxBodyBytes} bytes`);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of body) {
        const buffer = chunk as Buffer;
        size += buffer.length;
        if (size > this.maxBodyBytes) throw new KeyFetchError(`${url} sent more than ${this.maxBodyBytes} bytes`);
        chunks.push(buffer);
      }
      try {
        return parseStrictJson(Buffer.concat(chunks).toString('utf8'));
      } catch {
        throw new KeyFetchError(`${url} did not answer with JSON`);
      }
    } catch (error) {
      if (error instanceof KeyFetchError) throw error;
      throw new KeyFetchError(`${url}: ${describeError(error)}`);
    } finally {
      // Discards whatever was not read; undici reports that as an error event nobody needs.
      body.on('error', () => {});
      body.destroy();
    }
  }
}

const UNKNOWN: KeyLookup = { state: 'unknown' };

function asLookup(entry: KeyEntry): KeyLookup {
  return 'fingerprint' in entry ? { state: 'found', key: entry } : { state: 'unusable', detail: entry.unusable };
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timed out';
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

/**
 * Reads a JWK set. Only RSA keys for signatures with RS256 (or no `alg`), 2048-8192 bits and a
 * standard exponent can verify; a `kid` listed twice is unusable. A set without one usable key is
 * refused as a whole, so a broken endpoint never replaces a good set with an empty one.
 */
export function parseJwks(doc: JsonValue, onUnusable: (kid: string, detail: string) => void = () => {}): Map<string, KeyEntry> {
  if (!isJsonObject(doc) || !Array.isArray(doc.keys)) throw new KeyFetchError('the JWKS document has no "keys" array');
  const keys = new Map<string, KeyEntry>();
  let usable = 0;
  for (const jwk of doc.keys) {
    if (!isJsonObject(jwk) || typeof jwk.kid !== 'string' || jwk.kid === '') continue;
    const kid = jwk.kid;
    if (keys.has(kid)) {
      keys.set(kid, { unusable: 'the identity provider lists this kid more than once' });
      continue;
    }
    const imported = importVerificationKey(kid, jwk);
    if (typeof imported === 'string') onUnusable(kid, imported);
    keys.set(kid, typeof imported === 'string' ? { unusable: imported } : imported);
  }
  for (const entry of keys.values()) if ('fingerprint' in entry) usable++;
  if (usable === 0) throw new KeyFetchError('the JWKS has no usable RS256 signing key');
  return keys;
}

/**
 * A fixed key source from JWKS documents (per tenant), for `token inspect` with a saved JWKS or
 * tests. No fetching, no refresh: an unknown tenant is `unavailable`, an unknown kid `unknown`.
 */
export function keySourceFromJwks(jwksByTenant: ReadonlyMap<string, JsonValue>): SigningKeySource {
  const sets = new Map<string, Map<string, KeyEntry>>();
  for (const [tenantId, doc] of jwksByTenant) sets.set(tenantId.toLowerCase(), parseJwks(doc));
  return {
    resolve(tenantId, kid) {
      const keys = sets.get(tenantId);
      if (keys === undefined) return { state: 'unavailable', retryAfterSeconds: 0 };
      const entry = keys.get(kid);
      return entry === undefined ? UNKNOWN : asLookup(entry);
    },
  };
}

function importVerificationKey(kid: string, jwk: JsonObject): SigningKey | string {
  if (jwk.kty !== 'RSA') return 'not an RSA key';
  if (jwk.use !== undefined && jwk.use !== 'sig') return 'not a signature key (use)';
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) return 'key_ops does not allow verify';
  if (jwk.alg !== undefined && jwk.alg !== 'RS256') return 'not an RS256 key (alg)';
  if (jwk.issuer !== undefined && typeof jwk.issuer !== 'string') return 'issuer is not a string';
  if (typeof jwk.n !== 'string' || typeof jwk.e !== 'string') return 'n or e missing';
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'RSA', n: jwk.n, e: jwk.e }, format: 'jwk' });
  } catch {
    return 'not a valid RSA public key';
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  const exponent = key.asymmetricKeyDetails?.publicExponent ?? 0n;
  if (bits < MIN_MODULUS_BITS) return `modulus of ${bits} bits is below ${MIN_MODULUS_BITS}`;
  if (bits > MAX_MODULUS_BITS) return `modulus of ${bits} bits is above ${MAX_MODULUS_BITS}`;
  if (exponent < MIN_PUBLIC_EXPONENT || exponent % 2n === 0n) return 'public exponent below 65537';
  return {
    kid,
    key,
    modulusBytes: Math.ceil(bits / 8),
    ...(typeof jwk.issuer === 'string' ? { issuer: jwk.issuer } : {}),
    fingerprint: `${jwk.n}.${jwk.e}.${typeof jwk.issuer === 'string' ? jwk.issuer : ''}`,
  };
}
