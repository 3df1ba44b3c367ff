import type { Rejection } from '../contracts/errors.js';
import type { Clock } from '../ops/clock.js';
import type { CompactJws } from './jws.js';
import type { Principal } from '../contracts/principal.js';
import type { KeyLookup, SigningKeySource } from './signing-keys.js';
import type { JsonObject, JsonValue } from './strict-json.js';
import { TOKEN_CHECKS, checkSignature, checkSigningKey, decodeToken, isDelegated, rejectionOf, tenantOf, type TokenPolicy } from './token-checks.js';

/**
 * The request-path validator of Entra ID access tokens: the checks of `token-checks.ts` in their
 * order, stopping at the first failure, then the signing key (the only step that may fetch) and
 * the signature. A valid token becomes the principal the rest of the pipeline sees.
 */

/**
 * The principal a verified payload describes. Its claims are a copy: the strict parser's strings
 * are slices of the decoded payload text (and its objects null-prototype dictionaries), so keeping
 * the payload itself would keep every cached token's whole text alive in the token cache.
 */
export function principalOf(payload: JsonObject): Principal {
  const claims = copyOf(payload);
  const appId = str(claims.azp) ?? str(claims.appid);
  const name = str(claims.preferred_username) ?? str(claims.name) ?? str(claims.app_displayname);
  return {
    type: isDelegated(claims) ? 'user' : 'app',
    oid: (claims.oid as string).toLowerCase(),
    tid: (claims.tid as string).toLowerCase(),
    ...(appId !== undefined ? { appId } : {}),
    ...(name !== undefined ? { name } : {}),
    claims,
  };
}

/** A deep copy with its own strings: V8 may keep a substring as a view of its whole source text. */
function copyOf<T extends JsonValue>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function str(value: JsonValue | undefined): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

export type TokenValidation =
  | {
      readonly ok: true;
      readonly principal: Principal;
      readonly tenantId: string;
      readonly kid: string;
      /** The time checks pass from `validFromMs` (inclusive) to `validUntilMs` (exclusive), epoch ms. */
      readonly validFromMs: number;
      readonly validUntilMs: number;
    }
  | { readonly ok: false; readonly rejection: Rejection };

/** The request-path validator: the same checks as `token inspect`, stopping at the first failure. */
export class EntraTokenValidator {
  constructor(
    readonly policy: TokenPolicy,
    private readonly keys: SigningKeySource,
    private readonly clock: Clock,
  ) {}

  validate(token: string): TokenValidation | Promise<TokenValidation> {
    const decoded = decodeToken(token);
    if (!decoded.ok) return { ok: false, rejection: rejectionOf(decoded.failure) };
    const jws = decoded.jws;
    const now = this.clock.now() / 1000;
    for (const check of TOKEN_CHECKS) {
      const failure = check.run(jws, this.policy, now);
      if (failure !== undefined) return { ok: false, rejection: rejectionOf(failure) };
    }
    const tid = tenantOf(jws.payload)!;
    const kid = jws.header.kid as string;
    const lookup = this.keys.resolve(tid, kid);
    if (lookup instanceof Promise) return lookup.then((settled) => this.verified(jws, settled, tid, kid));
    return this.verified(jws, lookup, tid, kid);
  }

  private verified(jws: CompactJws, lookup: KeyLookup, tenantId: string, kid: string): TokenValidation {
    const outcome = checkSigningKey(lookup, jws, this.policy);
    if (outcome.kind === 'unavailable') return { ok: false, rejection: outcome.rejection };
    if (outcome.kind === 'rejected') return { ok: false, rejection: rejectionOf(outcome.failure) };
    const bad = checkSignature(jws, outcome.key);
    if (bad !== undefined) return { ok: false, rejection: rejectionOf(bad) };
    const { exp, nbf, iat } = jws.payload as { exp: number; nbf?: number; iat?: number };
    const skew = this.policy.clockSkewSeconds;
    const from = Math.max(nbf ?? Number.NEGATIVE_INFINITY, iat ?? Number.NEGATIVE_INFINITY);
    const principal = principalOf(jws.payload);
    return {
      ok: true,
      principal,
      // Copies, not slices of the token's header and payload text (see principalOf).
      tenantId: copyOf(tenantId),
      kid: copyOf(kid),
      validFromMs: (from - skew) * 1000,
      validUntilMs: (exp + skew) * 1000,
    };
  }
}
