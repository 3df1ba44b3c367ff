import { describeFailure, failureOutcome, HttpCallError, requestJson, type JsonCall } from './http.js';

/** What every source of the sidecar's own token shares: the token, the provider contract, the errors. */

export interface AccessToken {
  readonly token: string;
  /** Milliseconds since the epoch. */
  readonly expiresOnMs: number;
}

export interface TokenProvider {
  getToken(): Promise<AccessToken>;
  /** Drops the cached token so the next `getToken` fetches a new one (ARM answered 401, or an operator rotated the credential). */
  invalidate(): void;
  /** Which identity this is, for log lines and error messages (never a secret). */
  readonly description: string;
}

/** The `outcome` label of a failed token fetch in `foundry_auth_arm_calls_total{operation="token"}`. */
export type TokenFetchOutcome = 'unreachable' | 'timeout' | 'bad_response' | 'throttled' | 'http_4xx' | 'http_5xx' | 'error';

/** The sidecar could not get its own token; `message` says what failed, `fix` what to do about it. */
export class IdentityError extends Error {
  constructor(
    message: string,
    readonly fix: string,
    readonly outcome: TokenFetchOutcome = 'error',
  ) {
    super(message);
    this.name = 'IdentityError';
  }
}

/** `--identity` cannot work with this environment (missing variables): a start-up error. */
export class IdentityConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdentityConfigError';
  }
}

/** Where a token comes from, without caching. */
export interface TokenSource {
  readonly description: string;
  /** What to do when `fetch` fails, in one sentence. */
  readonly fix: string;
  /** Throws IdentityError. */
  fetch(): Promise<AccessToken>;
}

/** Rejects strings that cannot be a bearer token (so a bad source can never inject header bytes). */
export function checkTokenShape(token: string, description: string, fix: string): string {
  if (!/^[\x21-\x7e]{1,16384}$/.test(token))
    throw new IdentityError(`${description} returned an access token that is not a bearer token`, fix, 'bad_response');
  return token;
}

/**
 * Expiry from `expires_in` (seconds from now; preferred, immune to clock skew) or `expires_on`
 * (epoch seconds), both numbers or numeric strings as IMDS and Entra send them.
 */
export function expiryFrom(fields: { expiresIn?: unknown; expiresOn?: unknown }, nowMs: number): number | undefined {
  const inSeconds = numeric(fields.expiresIn);
  if (inSeconds !== undefined && inSeconds > 0) return nowMs + inSeconds * 1000;
  const onSeconds = numeric(fields.expiresOn);
  if (onSeconds !== undefined && onSeconds * 1000 > nowMs) return onSeconds * 1000;
  return undefined;
}

function numeric(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v.trim())) return Number(v);
  return undefined;
}

/** One token request: the JSON body of the answer, or an IdentityError that names the identity and the fix. */
export async function requestTokenJson(call: JsonCall, description: string, fix: string): Promise<unknown> {
  try {
    return (await requestJson(call)).body;
  } catch (err) {
    throw identityErrorFromHttp(err, description, fix);
  }
}

function identityErrorFromHttp(err: unknown, description: string, fix: string): IdentityError {
  if (err instanceof HttpCallError) {
    return new IdentityError(
      `${description}: ${describeFailure(err.failure)} (correlation id ${err.correlationId})`,
      fix,
      failureOutcome(err.failure),
    );
  }
  if (err instanceof IdentityError) return err;
  return new IdentityError(`${description}: ${err instanceof Error ? err.message : String(err)}`, fix);
}
