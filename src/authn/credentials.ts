import { rejection, type Rejection } from '../contracts/errors.js';

/**
 * What the caller presented (SPEC section 3, step 5). A bearer value that starts with an API key
 * prefix is an API key, so the OpenAI SDKs (which always send `Authorization: Bearer <apiKey>`) work.
 */
export type Credentials =
  { readonly kind: 'bearer'; readonly token: string } | { readonly kind: 'api-key'; readonly key: string; readonly via: 'api-key-header' | 'bearer' };

/** What extraction found, told apart by `kind`: the credentials, or why the request has none usable. */
export type CredentialsOutcome = Credentials | { readonly kind: 'rejected'; readonly rejection: Rejection };

/**
 * Longest bearer token or API key accepted, in characters. Entra access tokens are 1-4 KB (group
 * overage keeps them small); 16 KiB is also Node's default limit for all headers together, so a
 * legitimate token never comes close. Checked before any decoding.
 */
export const MAX_CREDENTIAL_CHARS = 16 * 1024;

/** Bearer values with these prefixes are API keys, not JWTs. */
export const API_KEY_PREFIXES = ['fndry-pk-', 'fndry-sk-'] as const;

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

const MULTIPLE_AUTHORIZATION = rejection('invalid_request', 'More than one Authorization header was sent: send exactly one.', {
  bearerError: 'invalid_request',
  reason: 'multiple_authorization',
});
const MULTIPLE_API_KEY = rejection('invalid_request', 'More than one api-key header was sent: send exactly one.', {
  bearerError: 'invalid_request',
  reason: 'multiple_api_key',
});
const TOKEN_IN_QUERY = rejection(
  'invalid_request',
  'A credential was sent both in a header and in the access_token query parameter: send it only in the Authorization header.',
  { bearerError: 'invalid_request', reason: 'token_in_query' },
);
const AMBIGUOUS = rejection('ambiguous_auth', 'Both an Authorization header and an api-key header were sent: send only one of them.', {
  bearerError: 'invalid_request',
  reason: 'ambiguous',
});
const MISSING = rejection(
  'missing_credentials',
  'No credentials: send Authorization: Bearer <Entra ID access token> (for example from az account get-access-token) or an api-key header.',
  { reason: 'missing' },
);
const NOT_BEARER = rejection(
  'invalid_token',
  'The Authorization header must be exactly: Bearer <token> (one space, no other scheme such as Basic).',
  { bearerError: 'invalid_token', reason: 'malformed_authorization' },
);
const OVERSIZED = rejection('invalid_token', `The bearer token is longer than ${MAX_CREDENTIAL_CHARS} characters: send an Entra ID access token.`, {
  bearerError: 'invalid_token',
  reason: 'oversized',
});
const EMPTY_API_KEY = rejection('invalid_api_key', 'The api-key header is empty or too long: send a configured API key.', {
  reason: 'malformed',
});

// The refusals as extraction outcomes, built once: a refused request allocates nothing.
const refuse = (r: Rejection): CredentialsOutcome => ({ kind: 'rejected', rejection: r });
const REFUSED_MULTIPLE_AUTHORIZATION = refuse(MULTIPLE_AUTHORIZATION);
const REFUSED_MULTIPLE_API_KEY = refuse(MULTIPLE_API_KEY);
const REFUSED_TOKEN_IN_QUERY = refuse(TOKEN_IN_QUERY);
const REFUSED_AMBIGUOUS = refuse(AMBIGUOUS);
const REFUSED_MISSING = refuse(MISSING);
const REFUSED_NOT_BEARER = refuse(NOT_BEARER);
const REFUSED_OVERSIZED = refuse(OVERSIZED);
const REFUSED_EMPTY_API_KEY = refuse(EMPTY_API_KEY);

/**
 * Finds the one credential of a request in Node's `req.rawHeaders` (never `req.headers`, which
 * keeps only the first of duplicate Authorization headers) and the raw query string (without `?`).
 * Cookie, Proxy-Authorization, X-Api-Key and a query-only `access_token` are not credentials.
 *
 * A bearer token's characters are not checked here: the authenticator first looks the exact token
 * up in the verified-token cache (a cached token passed the check before it was verified) and calls
 * `bearerSyntaxRejection` on a miss. The check is a pass over every character of a 1-2 KB token,
 * as costly as the cache lookup itself. An API key's characters are checked here.
 */
export function extractCredentials(rawHeaders: readonly string[], rawQuery: string | undefined): CredentialsOutcome {
  let authorization: string | undefined;
  let apiKey: string | undefined;
  let authorizationCount = 0;
  let apiKeyCount = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 13 && name.toLowerCase() === 'authorization') {
      authorizationCount++;
      authorization = rawHeaders[i + 1]!;
    } else if (name.length === 7 && name.toLowerCase() === 'api-key') {
      apiKeyCount++;
      apiKey = rawHeaders[i + 1]!;
    }
  }
  if (authorizationCount > 1) return REFUSED_MULTIPLE_AUTHORIZATION;
  if (apiKeyCount > 1) return REFUSED_MULTIPLE_API_KEY;
  const presented = authorizationCount + apiKeyCount;
  if (presented > 0 && rawQuery !== undefined && rawQuery !== '' && hasAccessTokenParameter(rawQuery)) return REFUSED_TOKEN_IN_QUERY;
  if (presented > 1) return REFUSED_AMBIGUOUS;
  if (authorization !== undefined) return parseAuthorization(authorization);
  if (apiKey !== undefined) {
    if (apiKey.length === 0 || apiKey.length > MAX_CREDENTIAL_CHARS) return REFUSED_EMPTY_API_KEY;
    return { kind: 'api-key', key: apiKey, via: 'api-key-header' };
  }
  return REFUSED_MISSING;
}

/** The rejection for a bearer token that is not an RFC 6750 b64token, or undefined when it is one. */
export function bearerSyntaxRejection(token: string): Rejection | undefined {
  return TOKEN68.test(token) ? undefined : NOT_BEARER;
}

function parseAuthorization(value: string): CredentialsOutcome {
  if (value.length > 7 + MAX_CREDENTIAL_CHARS) return REFUSED_OVERSIZED;
  if (value.length < 8 || value.charCodeAt(6) !== 0x20 || value.slice(0, 6).toLowerCase() !== 'bearer') return REFUSED_NOT_BEARER;
  const token = value.slice(7);
  if (token.startsWith(API_KEY_PREFIXES[0]) || token.startsWith(API_KEY_PREFIXES[1])) {
    return TOKEN68.test(token) ? { kind: 'api-key', key: token, via: 'bearer' } : REFUSED_NOT_BEARER;
  }
  return { kind: 'bearer', token };
}

function hasAccessTokenParameter(rawQuery: string): boolean {
  const query = rawQuery.startsWith('?') ? rawQuery.slice(1) : rawQuery;
  // Cheap pre-check: every spelling of the name, encoded or not, contains "token" or "%".
  const lower = query.toLowerCase();
  if (!lower.includes('token') && !lower.includes('%')) return false;
  for (const name of new URLSearchParams(query).keys()) {
    if (name.toLowerCase() === 'access_token') return true;
  }
  return false;
}
