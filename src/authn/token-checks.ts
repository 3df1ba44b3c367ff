import { GUID } from '../contracts/azure-ids.js';
import { verify } from 'node:crypto';
import type { EntraConfig } from '../config/config.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import { MAX_CREDENTIAL_CHARS } from './credentials.js';
import { decodeCompactJws, type CompactJws } from './jws.js';
import type { KeyLookup, SigningKey } from './signing-keys.js';
import type { JsonObject, JsonValue } from './strict-json.js';

/**
 * The checks of an Entra ID access token (SPEC section 4). The checks are data (`TOKEN_CHECKS`) so
 * that `token inspect` can run every one of them and report each outcome, while the validator
 * (`token-validator.ts`) runs the same functions in the same order and stops at the first failure.
 *
 * Order, cheapest first: size and shape, header, tenant (so no key fetch ever happens for a
 * tenant that is not allowed, and no URL is ever derived from a token), then the claim checks on
 * the still unverified payload, then the signing key (the only step that may fetch) and the RSA
 * signature. Unverified claims are only ever used to reject: nothing is accepted before the
 * signature verified. Checking claims before the signature means an expired token or a token for
 * another resource (a Graph token, whose signature nobody else can verify) gets the message that
 * says what to fix, and only a token that would otherwise pass can cause an unknown-kid refresh.
 */
export interface TokenPolicy {
  /** Without a trailing slash. */
  readonly authority: string;
  readonly clientId: string;
  /** Lower-case tenant GUIDs. */
  readonly allowedTenants: ReadonlySet<string>;
  /** Exact, case-sensitive `aud` values. */
  readonly audiences: ReadonlySet<string>;
  readonly requiredScope: string;
  readonly requiredAppRole: string;
  readonly clockSkewSeconds: number;
}

export function tokenPolicy(entra: EntraConfig): TokenPolicy {
  return {
    authority: entra.authority.replace(/\/+$/, ''),
    clientId: entra.clientId.toLowerCase(),
    allowedTenants: new Set(entra.allowedTenants.map((t) => t.toLowerCase())),
    audiences: new Set(entra.audiences),
    requiredScope: entra.requiredScope,
    requiredAppRole: entra.requiredAppRole,
    clockSkewSeconds: entra.clockSkewSeconds,
  };
}

/** Short reasons for metrics, the audit line and tests. */
export type TokenReason =
  | 'oversized'
  | 'malformed'
  | 'unsupported_alg'
  | 'forbidden_header'
  | 'invalid_kid'
  | 'foreign_tenant'
  | 'v1_token'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'expired'
  | 'not_yet_valid'
  | 'issued_in_future'
  | 'invalid_claim'
  | 'ambiguous_token_type'
  | 'missing_scope'
  | 'missing_app_role'
  | 'unknown_kid'
  | 'unusable_key'
  | 'key_issuer_mismatch'
  | 'bad_signature'
  | 'keys_unavailable';

export type TokenCheckName =
  | 'format'
  | 'header'
  | 'tenant'
  | 'version'
  | 'issuer'
  | 'audience'
  | 'expiry'
  | 'not_before'
  | 'issued_at'
  | 'subject'
  | 'claim_types'
  | 'permission'
  | 'signing_key'
  | 'signature';

export interface TokenFailure {
  readonly reason: TokenReason;
  /** Says what to fix; never contains the token, and no `"` or `\` (it goes into `WWW-Authenticate`). */
  readonly message: string;
}

/** One check on a decoded, not yet verified token. */
export interface TokenCheck {
  readonly name: TokenCheckName;
  /** What the sidecar requires, in one line, for `token inspect`. */
  readonly rule: (policy: TokenPolicy) => string;
  readonly run: (jws: CompactJws, policy: TokenPolicy, nowSeconds: number) => TokenFailure | undefined;
  /** Why it passed, for `token inspect` only (never on the request path). */
  readonly passed: (jws: CompactJws, policy: TokenPolicy, nowSeconds: number) => string;
  /** Not meaningful when this earlier check failed. */
  readonly dependsOn?: TokenCheckName;
}

/** Header parameters that could point key selection elsewhere or change what is signed; Entra never sends them. */
export const FORBIDDEN_HEADER_PARAMETERS = ['jku', 'x5u', 'jwk', 'x5c', 'crit', 'b64', 'zip', 'enc', 'cty'] as const;

const KID = /^[\x21-\x7e]{1,256}$/;
// Token-supplied values echoed in messages must be harmless in JSON and in WWW-Authenticate.
const ECHOABLE = /^[A-Za-z0-9:/._-]{1,120}$/;
/** 9999-12-31T23:59:59Z: a larger NumericDate is nonsense (and would read as "never expires"). */
const MAX_NUMERIC_DATE = 253_402_300_799;
const V1_ISSUER_PREFIX = 'https://sts.windows.net/';

const fail = (reason: TokenReason, message: string): TokenFailure => ({ reason, message });

export function echo(value: JsonValue | undefined): string {
  return typeof value === 'string' && ECHOABLE.test(value) ? value : 'a value that is not accepted';
}

function iso(seconds: number): string {
  return new Date(Math.floor(seconds) * 1000).toISOString().replace('.000Z', 'Z');
}

function isNumericDate(value: JsonValue | undefined): value is number {
  return typeof value === 'number' && value >= 0 && value <= MAX_NUMERIC_DATE;
}

/** The token's `tid`, lower-cased, when it is a GUID. */
export function tenantOf(payload: JsonObject): string | undefined {
  const tid = payload.tid;
  return typeof tid === 'string' && GUID.test(tid) ? tid.toLowerCase() : undefined;
}

function scopeHint(policy: TokenPolicy): string {
  return `az account get-access-token --scope api://${policy.clientId}/${policy.requiredScope}`;
}

function audiencesOf(aud: JsonValue | undefined): readonly string[] | undefined {
  if (typeof aud === 'string') return [aud];
  if (Array.isArray(aud) && aud.every((a) => typeof a === 'string')) return aud;
  return undefined;
}

const checkHeader: TokenCheck = {
  name: 'header',
  rule: () => 'alg is RS256, kid names a key, no jku/x5u/jwk/x5c/crit/b64/zip/enc/cty',
  run(jws) {
    const { alg, kid } = jws.header;
    if (alg !== 'RS256') {
      return fail(
        'unsupported_alg',
        `The token is signed with ${alg === undefined ? 'no algorithm' : echo(alg)}: only RS256 tokens issued by Entra ID are accepted.`,
      );
    }
    for (const name of FORBIDDEN_HEADER_PARAMETERS) {
      if (Object.hasOwn(jws.header, name)) {
        return fail(
          'forbidden_header',
          `The token header carries ${name}, which foundry-auth never follows or trusts (Entra ID access tokens do not use it).`,
        );
      }
    }
    if (typeof kid !== 'string' || !KID.test(kid)) {
      return fail('invalid_kid', 'The token header has no usable kid (key ID): send an access token issued by Entra ID.');
    }
    return undefined;
  },
  passed: (jws) => `alg RS256, kid ${echo(jws.header.kid)}`,
};

const checkTenant: TokenCheck = {
  name: 'tenant',
  rule: (policy) => `tid is a GUID in the allowed tenants (${[...policy.allowedTenants].join(', ')})`,
  run(jws, policy) {
    const tid = tenantOf(jws.payload);
    if (tid === undefined)
      return fail('invalid_claim', 'The token has no tid (tenant ID) claim that is a GUID: send an access token issued by Entra ID.');
    if (!policy.allowedTenants.has(tid)) {
      const allowed = [...policy.allowedTenants];
      return fail(
        'foreign_tenant',
        `Tokens issued by tenant ${tid} are not accepted here: get a token from the tenant ${allowed.join(' or ')} (for example az login --tenant ${allowed[0] ?? ''}).`,
      );
    }
    return undefined;
  },
  passed: (jws) => `tenant ${tenantOf(jws.payload) ?? ''} is allowed`,
};

const checkVersion: TokenCheck = {
  name: 'version',
  rule: () => 'a v2.0 access token (ver 2.0, not issued by sts.windows.net)',
  run(jws) {
    const { ver, iss } = jws.payload;
    if (ver === '1.0' || (typeof iss === 'string' && iss.startsWith(V1_ISSUER_PREFIX))) {
      return fail(
        'v1_token',
        'This is a v1.0 access token and foundry-auth accepts v2.0 tokens only: in the manifest of the API app registration set accessTokenAcceptedVersion (api.requestedAccessTokenVersion) to 2, then get a new token.',
      );
    }
    if (ver !== undefined && ver !== '2.0') return fail('invalid_claim', 'The token claim ver must be 2.0: send an Entra ID v2.0 access token.');
    return undefined;
  },
  passed: (jws) => (jws.payload.ver === undefined ? 'no ver claim; issuer is not v1' : 'ver 2.0'),
};

const checkIssuer: TokenCheck = {
  name: 'issuer',
  rule: (policy) => `iss is exactly ${policy.authority}/<tid>/v2.0`,
  dependsOn: 'tenant',
  run(jws, policy) {
    const tid = tenantOf(jws.payload);
    const expected = `${policy.authority}/${tid ?? '<tid>'}/v2.0`;
    if (jws.payload.iss !== expected) {
      return fail(
        'wrong_issuer',
        `The token issuer (iss) is not ${expected}: get the token from ${policy.authority}; for a sovereign cloud or the emulator, set --authority to its login endpoint.`,
      );
    }
    return undefined;
  },
  passed: (jws) => `iss ${echo(jws.payload.iss)}`,
};

/** Well-known resources a token is often mistakenly requested for (`az account get-access-token` without `--resource`). */
const KNOWN_RESOURCES: ReadonlyArray<readonly [RegExp, string]> = [
  [
    /^(https:\/\/graph\.microsoft\.com\/?|00000003-0000-0000-c000-000000000000|https:\/\/graph\.windows\.net\/?|00000002-0000-0000-c000-000000000000)$/i,
    'Microsoft Graph',
  ],
  [/^(https:\/\/management\.(core\.windows\.net|azure\.com)\/?|797f4846-ba00-4fd7-ba43-dac1f8f63013)$/i, 'Azure Resource Manager'],
];

/** Microsoft Graph or Azure Resource Manager, when `aud` names one of them. */
export function wellKnownResource(aud: string): string | undefined {
  return KNOWN_RESOURCES.find(([pattern]) => pattern.test(aud))?.[1];
}

/** What a token's `aud` names, in words: a Microsoft resource, or another app. */
function resourceName(aud: string): string {
  const known = wellKnownResource(aud);
  if (known !== undefined) return known;
  const app = /^(?:api:\/\/)?([0-9a-fA-F-]{36})$/.exec(aud)?.[1];
  return app !== undefined && GUID.test(app) ? `the app ${app.toLowerCase()}` : 'another app or resource';
}

const checkAudience: TokenCheck = {
  name: 'audience',
  rule: (policy) => `aud is one of ${[...policy.audiences].join(', ')}`,
  run(jws, policy) {
    const aud = audiencesOf(jws.payload.aud);
    if (aud !== undefined && aud.some((a) => policy.audiences.has(a))) return undefined;
    const given = aud === undefined ? 'missing or not a string' : aud.length === 1 ? echo(aud[0]) : 'other resources';
    const named = aud?.length === 1 ? resourceName(aud[0]!) : undefined;
    return fail(
      'wrong_audience',
      `The token is for another resource (${named === undefined ? '' : `${named}, `}aud ${given}): request a token for api://${policy.clientId}, for example az account get-access-token --resource api://${policy.clientId}.`,
    );
  },
  passed: (jws, policy) =>
    `aud ${(audiencesOf(jws.payload.aud) ?? [])
      .filter((a) => policy.audiences.has(a))
      .map(echo)
      .join(', ')}`,
};

const checkExpiry: TokenCheck = {
  name: 'expiry',
  rule: (policy) => `exp is a NumericDate and now < exp + ${policy.clockSkewSeconds}s`,
  run(jws, policy, now) {
    const exp = jws.payload.exp;
    if (exp === undefined) return fail('invalid_claim', 'The token has no exp (expiry) claim: send an access token issued by Entra ID.');
    if (!isNumericDate(exp)) return fail('invalid_claim', 'The token claim exp is not a valid NumericDate (a number of seconds since 1970).');
    if (now >= exp + policy.clockSkewSeconds) {
      return fail('expired', `The token expired at ${iso(exp)} (allowed clock skew ${policy.clockSkewSeconds}s): get a new token.`);
    }
    return undefined;
  },
  passed: (jws, _policy, now) => {
    const exp = jws.payload.exp as number;
    return `expires at ${iso(exp)} (in ${Math.round((exp - now) / 60)} min)`;
  },
};

const checkNotBefore: TokenCheck = {
  name: 'not_before',
  rule: (policy) => `nbf, when present, is a NumericDate and nbf <= now + ${policy.clockSkewSeconds}s`,
  run(jws, policy, now) {
    const nbf = jws.payload.nbf;
    if (nbf === undefined) return undefined;
    if (!isNumericDate(nbf)) return fail('invalid_claim', 'The token claim nbf is not a valid NumericDate (a number of seconds since 1970).');
    if (nbf > now + policy.clockSkewSeconds) {
      return fail(
        'not_yet_valid',
        `The token is not valid before ${iso(nbf)} (allowed clock skew ${policy.clockSkewSeconds}s): check the clocks of this host and of the client.`,
      );
    }
    return undefined;
  },
  passed: (jws) => (jws.payload.nbf === undefined ? 'no nbf claim' : `valid since ${iso(jws.payload.nbf as number)}`),
};

const checkIssuedAt: TokenCheck = {
  name: 'issued_at',
  rule: (policy) => `iat, when present, is a NumericDate and iat <= now + ${policy.clockSkewSeconds}s`,
  run(jws, policy, now) {
    const iat = jws.payload.iat;
    if (iat === undefined) return undefined;
    if (!isNumericDate(iat)) return fail('invalid_claim', 'The token claim iat is not a valid NumericDate (a number of seconds since 1970).');
    if (iat > now + policy.clockSkewSeconds) {
      return fail(
        'issued_in_future',
        `The token says it was issued at ${iso(iat)}, in the future (allowed clock skew ${policy.clockSkewSeconds}s): check the clock of this host.`,
      );
    }
    return undefined;
  },
  passed: (jws) => (jws.payload.iat === undefined ? 'no iat claim' : `issued at ${iso(jws.payload.iat as number)}`),
};

const checkSubject: TokenCheck = {
  name: 'subject',
  rule: () => 'oid (the caller object ID) is a GUID',
  run(jws) {
    const oid = jws.payload.oid;
    if (typeof oid !== 'string' || !GUID.test(oid)) {
      return fail(
        'invalid_claim',
        'The token has no oid (object ID) claim that is a GUID: send an Entra ID access token for a user, service principal or managed identity.',
      );
    }
    return undefined;
  },
  // Only called after run() found oid to be a GUID string.
  passed: (jws) => `oid ${(jws.payload.oid as string).toLowerCase()}`,
};

const OPTIONAL_STRING_CLAIMS = ['scp', 'idtyp', 'azp', 'appid', 'ver'] as const;

const checkClaimTypes: TokenCheck = {
  name: 'claim_types',
  rule: () => 'scp, idtyp, azp, appid are strings and roles is a list of strings, when present (never coerced)',
  run(jws) {
    for (const name of OPTIONAL_STRING_CLAIMS) {
      const value = jws.payload[name];
      if (value !== undefined && typeof value !== 'string') return fail('invalid_claim', `The token claim ${name} is not a string.`);
    }
    const roles = jws.payload.roles;
    if (roles !== undefined && !(Array.isArray(roles) && roles.every((r) => typeof r === 'string'))) {
      return fail('invalid_claim', 'The token claim roles is not a list of strings.');
    }
    return undefined;
  },
  passed: () => 'scp, roles and the client claims have the expected types',
};

const checkPermission: TokenCheck = {
  name: 'permission',
  rule: (policy) =>
    `a user token carries scope ${policy.requiredScope} in scp; an app-only token carries app role ${policy.requiredAppRole} in roles`,
  dependsOn: 'claim_types',
  run(jws, policy) {
    const { scp, idtyp, roles } = jws.payload;
    if (scp !== undefined && idtyp === 'app') {
      return fail(
        'ambiguous_token_type',
        'The token carries delegated scopes (scp) but says it is an app-only token (idtyp app): send an access token issued by Entra ID.',
      );
    }
    if (isDelegated(jws.payload)) {
      if (typeof scp === 'string' && scp.split(' ').includes(policy.requiredScope)) return undefined;
      return fail(
        'missing_scope',
        `The user token does not carry the delegated scope ${policy.requiredScope} in scp: request it, for example ${scopeHint(policy)} (the scope needs admin consent for the client application).`,
      );
    }
    if (Array.isArray(roles) && roles.includes(policy.requiredAppRole)) return undefined;
    return fail(
      'missing_app_role',
      `The app-only token does not carry the app role ${policy.requiredAppRole} in roles: assign the app role ${policy.requiredAppRole} of the API application ${policy.clientId} to the calling service principal or managed identity (foundry-auth grant), then get a new token.`,
    );
  },
  passed: (jws, policy) =>
    isDelegated(jws.payload) ? `user token with scope ${policy.requiredScope}` : `app-only token with app role ${policy.requiredAppRole}`,
};

/** Delegated (user) token: carries `scp`, or says it is a user token; anything else is app-only. */
export function isDelegated(payload: JsonObject): boolean {
  return payload.scp !== undefined || payload.idtyp === 'user';
}

/** Every check before the signing key, in the order the validator runs them. */
export const TOKEN_CHECKS: readonly TokenCheck[] = [
  checkHeader,
  checkTenant,
  // Before the version: a Graph or ARM token is v1, and "set the token version to 2" would send the user to the wrong fix.
  checkAudience,
  checkVersion,
  checkIssuer,
  checkExpiry,
  checkNotBefore,
  checkIssuedAt,
  checkSubject,
  checkClaimTypes,
  checkPermission,
];

/** A decoded token, or the `format` failure, told apart by `ok`. */
export type TokenDecoding = { readonly ok: true; readonly jws: CompactJws } | { readonly ok: false; readonly failure: TokenFailure };

/** Decodes a token for the checks; a failure is `format`. */
export function decodeToken(token: string): TokenDecoding {
  if (token.length > MAX_CREDENTIAL_CHARS) {
    return {
      ok: false,
      failure: fail('oversized', `The bearer token is longer than ${MAX_CREDENTIAL_CHARS} characters: send an Entra ID access token.`),
    };
  }
  const decoded = decodeCompactJws(token);
  if (!decoded.ok) {
    return {
      ok: false,
      failure: fail('malformed', `The bearer token is not a well-formed JWT (${decoded.detail}): send an access token issued by Entra ID.`),
    };
  }
  return decoded;
}

/** The outcome of the signing-key step, told apart by `kind`. */
export type SigningKeyOutcome =
  | { readonly kind: 'key'; readonly key: SigningKey }
  | { readonly kind: 'rejected'; readonly failure: TokenFailure }
  /** The tenant's keys never loaded: the sidecar answers 503, not 401. */
  | { readonly kind: 'unavailable'; readonly rejection: Rejection };

/** The signing-key step: a key, a token failure, or the 503 when the tenant's keys never loaded. */
export function checkSigningKey(lookup: KeyLookup, jws: CompactJws, policy: TokenPolicy): SigningKeyOutcome {
  const tid = tenantOf(jws.payload) ?? '';
  switch (lookup.state) {
    case 'found': {
      const issuer = lookup.key.issuer;
      // Storm-0558: a key published with an issuer signs for that issuer only.
      if (issuer !== undefined && issuer.replaceAll('{tenantid}', tid) !== jws.payload.iss) {
        return rejected(
          'key_issuer_mismatch',
          'The token signing key is restricted to another issuer than the token iss: send an access token issued by Entra ID for this tenant.',
        );
      }
      return { kind: 'key', key: lookup.key };
    }
    case 'unknown':
      return rejected(
        'unknown_kid',
        `The token is signed with a key (kid) that tenant ${tid} does not publish: get a new token from ${policy.authority}.`,
      );
    case 'unusable':
      return rejected('unusable_key', `The token names a signing key that may not verify RS256 access tokens (${lookup.detail}).`);
    case 'unavailable':
      return {
        kind: 'unavailable',
        rejection: rejection(
          'identity_provider_unavailable',
          `The signing keys of tenant ${tid} could not be loaded from ${policy.authority} yet: retry later.`,
          {
            retryAfterSeconds: lookup.retryAfterSeconds,
            reason: 'keys_unavailable',
          },
        ),
      };
  }
}

const rejected = (reason: TokenReason, message: string): SigningKeyOutcome => ({ kind: 'rejected', failure: fail(reason, message) });

/** The RSA-SHA256 (PKCS#1 v1.5) signature over `header.payload` with a pre-imported KeyObject. */
export function checkSignature(jws: CompactJws, key: SigningKey): TokenFailure | undefined {
  if (jws.signature.length === key.modulusBytes && verify('RSA-SHA256', Buffer.from(jws.signingInput, 'latin1'), key.key, jws.signature)) {
    return undefined;
  }
  return fail('bad_signature', 'The token signature does not verify: the token was altered or was not issued by Entra ID for this tenant.');
}

export function rejectionOf(failure: TokenFailure): Rejection {
  return rejection('invalid_token', failure.message, { bearerError: 'invalid_token', reason: failure.reason });
}
