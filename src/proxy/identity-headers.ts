import type { Principal } from '../contracts/principal.js';

/**
 * The identity headers the upstream receives for an authenticated principal (SPEC section 7), in
 * the shape Azure App Service Authentication uses, so apps written for Easy Auth work unchanged:
 *
 *   x-ms-client-principal-id      object ID (API keys: the key ID)
 *   x-ms-client-principal-name    principal name (UPN/display name), else app ID, else object ID
 *   x-ms-client-principal-idp     `aad` (API keys: `api-key`)
 *   x-ms-client-principal         base64 of `{"auth_typ":"aad","claims":[{"typ","val"}],"name_typ":"name","role_typ":"roles"}`
 *                                 (Entra principals only; API keys carry no claims)
 *   x-foundry-auth-principal-type `user`, `app` or `api-key`
 *   x-foundry-auth-tenant-id      `tid` (Entra principals only)
 *
 * `x-request-id` is per request and added by the header policy, not here.
 *
 * Values are always safe header values: a value outside printable ASCII (or containing `%`) is
 * sent percent-encoded as UTF-8 (`decodeURIComponent` restores it). The unencoded name is in the
 * base64 JSON of `x-ms-client-principal`.
 */

/** Every identity header name, in the order they are sent: a forward-auth allow carries all of them, empty when one does not apply. */
export const IDENTITY_HEADER_NAMES = [
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
  'x-ms-client-principal-idp',
  'x-ms-client-principal',
  'x-foundry-auth-principal-type',
  'x-foundry-auth-tenant-id',
] as const;

/** The claims copied into `x-ms-client-principal`: who the caller is, nothing more. */
const IDENTITY_CLAIMS = ['oid', 'tid', 'azp', 'appid', 'name', 'preferred_username', 'scp', 'idtyp'] as const;

/** Cache per Principal object: the authentication stage reuses the object for a cached token. */
const byPrincipal = new WeakMap<Principal, readonly string[]>();

/** Flat name/value pairs for the upstream request (computed once per Principal object). */
export function identityHeaders(principal: Principal): readonly string[] {
  let headers = byPrincipal.get(principal);
  if (headers === undefined) {
    headers = buildIdentityHeaders(principal);
    byPrincipal.set(principal, headers);
  }
  return headers;
}

function buildIdentityHeaders(principal: Principal): readonly string[] {
  const id = headerSafe(principal.oid);
  const name = headerSafe(principal.name ?? principal.appId ?? principal.oid);
  if (principal.type === 'api-key') {
    return [
      'x-ms-client-principal-id',
      id,
      'x-ms-client-principal-name',
      name,
      'x-ms-client-principal-idp',
      'api-key',
      'x-foundry-auth-principal-type',
      'api-key',
    ];
  }
  return [
    'x-ms-client-principal-id',
    id,
    'x-ms-client-principal-name',
    name,
    'x-ms-client-principal-idp',
    'aad',
    'x-ms-client-principal',
    clientPrincipal(principal),
    'x-foundry-auth-principal-type',
    principal.type,
    'x-foundry-auth-tenant-id',
    headerSafe(principal.tid),
  ];
}

interface ClaimEntry {
  readonly typ: string;
  readonly val: string;
}

/** Base64 JSON in the App Service `x-ms-client-principal` shape, from the verified claims. */
export function clientPrincipal(principal: Principal): string {
  const claims: ClaimEntry[] = [];
  const source = principal.claims ?? {};
  for (const typ of IDENTITY_CLAIMS) {
    const val = source[typ];
    if (typeof val === 'string') claims.push({ typ, val });
  }
  const roles = source.roles;
  if (Array.isArray(roles)) for (const role of roles) if (typeof role === 'string') claims.push({ typ: 'roles', val: role });
  // A principal built without claims still names itself.
  if (source.oid === undefined) claims.unshift({ typ: 'oid', val: principal.oid });
  const body = { auth_typ: 'aad', claims, name_typ: 'name', role_typ: 'roles' };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64');
}

/** Printable ASCII except `%`: sent as is. */
const SAFE = /^[\x20-\x24\x26-\x7e]*$/;

/**
 * A value any HTTP parser accepts and no one can use to inject a header: printable ASCII is kept;
 * anything else (non-ASCII, CR, LF, NUL, other controls) and `%` is percent-encoded as UTF-8.
 */
export function headerSafe(value: string): string {
  if (SAFE.test(value)) return value;
  let out = '';
  // Buffer.from replaces lone surrogates with U+FFFD, so the result is always decodable.
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
