/**
 * The error contract of SPEC section 3: every rejection is a value with a stable code from this
 * table. Only the HTTP layer (`http/respond.ts`) turns a Rejection into a response.
 */
export const ERRORS = {
  invalid_request: { status: 400, type: 'invalid_request_error' },
  method_not_allowed: { status: 405, type: 'invalid_request_error' },
  upgrade_not_supported: { status: 501, type: 'invalid_request_error' },
  expectation_failed: { status: 417, type: 'invalid_request_error' },
  invalid_path: { status: 400, type: 'invalid_request_error' },
  route_not_found: { status: 404, type: 'invalid_request_error' },
  ambiguous_auth: { status: 400, type: 'invalid_request_error' },
  missing_credentials: { status: 401, type: 'authentication_error' },
  invalid_api_key: { status: 401, type: 'authentication_error' },
  invalid_token: { status: 401, type: 'authentication_error' },
  identity_provider_unavailable: { status: 503, type: 'server_error' },
  insufficient_permissions: { status: 403, type: 'permission_error' },
  model_not_allowed: { status: 403, type: 'permission_error' },
  model_not_found: { status: 404, type: 'invalid_request_error' },
  request_too_large: { status: 413, type: 'invalid_request_error' },
  token_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  request_limit_exceeded: { status: 429, type: 'rate_limit_error' },
  rbac_check_unavailable: { status: 500, type: 'server_error' },
  /** Forward-auth: the check came from a peer outside `--trusted-proxies`; it is never evaluated. */
  untrusted_proxy: { status: 403, type: 'permission_error' },
  /** Forward-auth: the proxy did not send the original request's method or target; the message names the header. */
  forward_auth_misconfigured: { status: 500, type: 'server_error' },
  upstream_unavailable: { status: 502, type: 'server_error' },
  upstream_timeout: { status: 504, type: 'server_error' },
  /** A bug in foundry-auth itself; never expected, always logged with the request ID. */
  internal_error: { status: 500, type: 'server_error' },
} as const satisfies Record<string, { status: number; type: ErrorType }>;

export type ErrorType = 'authentication_error' | 'permission_error' | 'invalid_request_error' | 'rate_limit_error' | 'server_error';
export type ErrorCode = keyof typeof ERRORS;

/** RFC 6750 section 3.1 error codes carried in `WWW-Authenticate`. */
export type BearerError = 'invalid_token' | 'invalid_request';

export interface Rejection {
  readonly code: ErrorCode;
  /** Says what to fix. Never contains a token, key or secret. */
  readonly message: string;
  /** Seconds, for 429/500/503 when known. */
  readonly retryAfterSeconds?: number;
  /** For 405: the methods the path accepts. */
  readonly allow?: readonly string[];
  /** Set when a credential was presented and is wrong: adds `error=` to `WWW-Authenticate`. */
  readonly bearerError?: BearerError;
  /** Short reason for metrics and the audit line (`expired`, `bad_signature`, `v1_token`, ...). */
  readonly reason?: string;
  /** Extra response headers (the `x-ratelimit-*` of a 429). */
  readonly headers?: readonly (readonly [string, string])[];
}

export function rejection(code: ErrorCode, message: string, extra: Omit<Rejection, 'code' | 'message'> = {}): Rejection {
  return { code, message, ...extra };
}

export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}
