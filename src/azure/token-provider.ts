import type { Dispatcher } from 'undici';
import type { IdentitySource } from '../config/config.js';
import { systemClock, type Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { azureCliSource } from './azure-cli.js';
import { clientCredentialsSource, DEFAULT_AUTHORITY_HOST } from './client-credentials.js';
import { msiAdapterSource } from './msi-adapter.js';
import { IdentityConfigError, IdentityError, type AccessToken, type TokenProvider, type TokenSource } from './token.js';

export { IdentityConfigError, IdentityError, type AccessToken, type TokenProvider, type TokenSource } from './token.js';

/**
 * The sidecar's own ARM token (SPEC section 6): one source per `--identity`, behind a cache that
 * refreshes shortly before expiry, once for all concurrent callers. Tokens are never logged.
 */

const REFRESH_MARGIN_MS = 5 * 60_000;
/** A token this close to expiry is not handed out any more. */
const USABLE_MARGIN_MS = 30_000;
/** After a failed refresh, keep serving a still-valid token this long before asking again. */
const RETRY_AFTER_FAILURE_MS = 30_000;
/** With no token at all, repeat the last failure this long instead of asking again (an outage must not become a flood). */
const FAILURE_COOLDOWN_MS = 5_000;

/** Caches a source's token until shortly before expiry; one fetch at a time for all callers. */
export class CachingTokenProvider implements TokenProvider {
  private current: { token: AccessToken; refreshAtMs: number } | undefined;
  private inflight: Promise<AccessToken> | undefined;
  private lastFailureMs: number | undefined;
  private lastFailure: IdentityError | undefined;
  private readonly clock: Clock;

  constructor(
    private readonly source: TokenSource,
    private readonly opts: { clock?: Clock; metrics?: Metrics; log?: Logger } = {},
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  get description(): string {
    return this.source.description;
  }

  getToken(): Promise<AccessToken> {
    const now = this.clock.now();
    const current = this.current;
    if (current !== undefined && now < current.refreshAtMs) return Promise.resolve(current.token);
    if (this.inflight !== undefined) return this.inflight;
    if (this.lastFailureMs !== undefined) {
      const sinceFailure = now - this.lastFailureMs;
      if (current !== undefined && this.usable(current.token, now)) {
        if (sinceFailure < RETRY_AFTER_FAILURE_MS) return Promise.resolve(current.token);
      } else if (this.lastFailure !== undefined && sinceFailure < FAILURE_COOLDOWN_MS) {
        return Promise.reject(this.lastFailure);
      }
    }
    const inflight = this.refresh().finally(() => {
      if (this.inflight === inflight) this.inflight = undefined;
    });
    this.inflight = inflight;
    return inflight;
  }

  invalidate(): void {
    this.current = undefined;
    this.lastFailureMs = undefined;
    this.lastFailure = undefined;
  }

  private async refresh(): Promise<AccessToken> {
    const started = performance.now();
    const obtainedAtMs = this.clock.now();
    try {
      const token = await this.source.fetch();
      const lifetimeMs = token.expiresOnMs - obtainedAtMs;
      this.current = { token, refreshAtMs: obtainedAtMs + lifetimeMs - Math.min(REFRESH_MARGIN_MS, lifetimeMs * 0.2) };
      this.lastFailureMs = undefined;
      this.lastFailure = undefined;
      this.count('ok', started);
      this.opts.log?.info({ identity: this.source.description, expiresInSeconds: Math.round(lifetimeMs / 1000) }, 'obtained the sidecar ARM token');
      return token;
    } catch (err) {
      const failure =
        err instanceof IdentityError
          ? err
          : new IdentityError(`${this.source.description}: ${err instanceof Error ? err.message : String(err)}`, this.source.fix);
      this.count(failure.outcome, started);
      this.lastFailureMs = this.clock.now();
      this.lastFailure = failure;
      const current = this.current;
      if (current !== undefined && this.usable(current.token, this.clock.now())) {
        this.opts.log?.warn(
          { identity: this.source.description, error: failure.message, fix: failure.fix },
          'could not refresh the sidecar ARM token; using the current one until it expires',
        );
        return current.token;
      }
      throw failure;
    }
  }

  private usable(token: AccessToken, now: number): boolean {
    return now < token.expiresOnMs - USABLE_MARGIN_MS;
  }

  private count(outcome: string, started: number): void {
    this.opts.metrics?.armCalls.inc({ operation: 'token', outcome });
    this.opts.metrics?.armLatency.observe({ operation: 'token' }, (performance.now() - started) / 1000);
  }
}

export interface TokenProviderOptions {
  readonly identity: IdentitySource;
  /** The ARM endpoint the token is for (`resource` / `{arm}/.default`), without a trailing slash. */
  readonly armEndpoint: string;
  readonly msiEndpoint: string;
  /** Deadline of one token request. */
  readonly timeoutMs: number;
  /** Defaults to `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The Azure CLI binary; defaults to `FOUNDRY_AUTH_AZ_PATH` or `az` on PATH. */
  readonly azPath?: string;
  readonly dispatcher?: Dispatcher;
  readonly clock?: Clock;
  readonly metrics?: Metrics;
  readonly log?: Logger;
}

/** The token provider `--identity` names; throws IdentityConfigError when its environment is incomplete. */
export function createTokenProvider(opts: TokenProviderOptions): TokenProvider {
  return new CachingTokenProvider(createTokenSource(opts), opts);
}

function createTokenSource(opts: TokenProviderOptions): TokenSource {
  const env = opts.env ?? process.env;
  const common = {
    resource: opts.armEndpoint,
    timeoutMs: opts.timeoutMs,
    dispatcher: opts.dispatcher,
    clock: opts.clock ?? systemClock,
    log: opts.log,
  };
  const identity = opts.identity === 'auto' ? autoIdentity(env) : opts.identity;
  switch (identity) {
    case 'msi-adapter':
      return msiAdapterSource({ ...common, endpoint: opts.msiEndpoint });
    case 'workload-identity': {
      const v = requireEnv(
        env,
        ['AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE'],
        'workload-identity',
        'the Azure workload identity webhook sets them when the pod\'s service account is annotated with azure.workload.identity/client-id and the pod is labelled azure.workload.identity/use: "true"',
      );
      return clientCredentialsSource({
        ...common,
        kind: 'workload-identity',
        authorityHost: authorityHost(env),
        tenantId: v.AZURE_TENANT_ID,
        clientId: v.AZURE_CLIENT_ID,
        credential: { federatedTokenFile: v.AZURE_FEDERATED_TOKEN_FILE },
      });
    }
    case 'client-secret': {
      const v = requireEnv(
        env,
        ['AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID'],
        'client-secret',
        "set them to an app registration's client ID, one of its client secrets and its tenant ID",
      );
      return clientCredentialsSource({
        ...common,
        kind: 'client-secret',
        authorityHost: authorityHost(env),
        tenantId: v.AZURE_TENANT_ID,
        clientId: v.AZURE_CLIENT_ID,
        credential: { secret: v.AZURE_CLIENT_SECRET },
      });
    }
    case 'azure-cli':
      return azureCliSource({ ...common, azPath: opts.azPath ?? nonEmpty(env['FOUNDRY_AUTH_AZ_PATH']) ?? 'az', env });
  }
}

/** `auto`: workload identity when the webhook's token file is configured, else the Arc msi-adapter. */
function autoIdentity(env: Readonly<Record<string, string | undefined>>): 'workload-identity' | 'msi-adapter' {
  return nonEmpty(env['AZURE_FEDERATED_TOKEN_FILE']) !== undefined ? 'workload-identity' : 'msi-adapter';
}

/** `AZURE_AUTHORITY_HOST` (default the public cloud), refused when it would send a credential over plain HTTP off the machine. */
export function authorityHost(env: Readonly<Record<string, string | undefined>>): string {
  const raw = nonEmpty(env['AZURE_AUTHORITY_HOST']) ?? DEFAULT_AUTHORITY_HOST;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new IdentityConfigError(`AZURE_AUTHORITY_HOST is not a URL (got "${raw.slice(0, 100)}")`);
  }
  const loopback = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
    throw new IdentityConfigError(`AZURE_AUTHORITY_HOST must be https:// (http:// only for loopback hosts); got ${url.origin}`);
  }
  if (url.search !== '' || url.hash !== '') throw new IdentityConfigError('AZURE_AUTHORITY_HOST must not carry a query or fragment');
  return url.href.replace(/\/+$/, '');
}

function requireEnv<K extends string>(
  env: Readonly<Record<string, string | undefined>>,
  names: readonly K[],
  identity: string,
  hint: string,
): Record<K, string> {
  const missing = names.filter((n) => nonEmpty(env[n]) === undefined);
  if (missing.length > 0) {
    throw new IdentityConfigError(
      `--identity ${identity} needs the environment variable${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (not set); ${hint}`,
    );
  }
  return Object.fromEntries(names.map((n) => [n, env[n]!.trim()])) as Record<K, string>;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v !== undefined && v.trim() !== '' ? v.trim() : undefined;
}
