import { MAX_CREDENTIAL_CHARS } from '../authn/credentials.js';
import type { Principal } from '../contracts/principal.js';
import type { SigningKeySource } from '../authn/signing-keys.js';
import type { JsonObject } from '../authn/strict-json.js';
import {
  TOKEN_CHECKS,
  checkSignature,
  checkSigningKey,
  decodeToken,
  echo,
  tenantOf,
  type TokenCheckName,
  type TokenPolicy,
  type TokenReason,
} from '../authn/token-checks.js';
import { principalOf } from '../authn/token-validator.js';
import { statusOf, type ErrorCode, type Rejection } from '../contracts/errors.js';

export interface CheckOutcome {
  readonly check: TokenCheckName;
  readonly ok: boolean;
  /** The check could not run (an earlier check it depends on failed, or no keys were available). */
  readonly skipped: boolean;
  readonly rule: string;
  readonly detail: string;
  readonly reason?: TokenReason;
}

export interface TokenVerdict {
  /** What the sidecar answers (200 = authenticated; authorization is a later step). */
  readonly status: number;
  readonly code: ErrorCode | null;
  readonly message: string;
  readonly reason?: string;
  readonly retryAfterSeconds?: number;
  /** False when no signing keys were available to check the signature. */
  readonly signatureVerified: boolean;
  readonly principal?: Principal;
}

export interface TokenInspection {
  readonly checks: readonly CheckOutcome[];
  /** The decoded header and payload (never the signature), when the token could be decoded. */
  readonly header?: JsonObject;
  readonly payload?: JsonObject;
  readonly verdict: TokenVerdict;
}

/**
 * The inspection report behind `token inspect` and `doctor --token`: runs every check of SPEC
 * section 4 on a token and reports each outcome, plus the verdict the
 * sidecar would give (the first failure in validator order). Without `keys`, the signing key and
 * signature are reported as not checked.
 */
export async function inspectToken(
  token: string,
  policy: TokenPolicy,
  opts: { readonly nowMs: number; readonly keys?: SigningKeySource },
): Promise<TokenInspection> {
  const checks: CheckOutcome[] = [];
  const formatRule = `a compact JWS of at most ${MAX_CREDENTIAL_CHARS} characters: three canonical base64url parts, strict JSON objects`;
  const decoded = decodeToken(token);
  if (!decoded.ok) {
    const { failure } = decoded;
    checks.push({ check: 'format', ok: false, skipped: false, rule: formatRule, detail: failure.message, reason: failure.reason });
    for (const check of TOKEN_CHECKS) checks.push(skipped(check.name, check.rule(policy), 'the token could not be decoded'));
    checks.push(skipped('signing_key', 'kid is published by the tenant JWKS', 'the token could not be decoded'));
    checks.push(skipped('signature', 'RS256 signature verifies', 'the token could not be decoded'));
    return { checks, verdict: verdictOf(checks, false) };
  }
  const { jws } = decoded;
  checks.push({ check: 'format', ok: true, skipped: false, rule: formatRule, detail: 'three canonical base64url parts, strict JSON objects' });
  const now = opts.nowMs / 1000;
  const failed = new Set<TokenCheckName>();
  for (const check of TOKEN_CHECKS) {
    const rule = check.rule(policy);
    if (check.dependsOn !== undefined && failed.has(check.dependsOn)) {
      checks.push(skipped(check.name, rule, `not meaningful: the ${check.dependsOn} check failed`));
      continue;
    }
    const failure = check.run(jws, policy, now);
    if (failure === undefined) {
      checks.push({ check: check.name, ok: true, skipped: false, rule, detail: check.passed(jws, policy, now) });
    } else {
      failed.add(check.name);
      checks.push({ check: check.name, ok: false, skipped: false, rule, detail: failure.message, reason: failure.reason });
    }
  }

  const keyRule = 'kid is published by the tenant JWKS, usable for RS256 and scoped to the token issuer';
  const signatureRule = 'the RS256 signature verifies with that key';
  let signatureVerified = false;
  let unavailable: Rejection | undefined;
  const tid = tenantOf(jws.payload);
  if (failed.has('header') || failed.has('tenant') || tid === undefined) {
    checks.push(skipped('signing_key', keyRule, 'not looked up: keys are only fetched for allowed tenants and well-formed headers'));
    checks.push(skipped('signature', signatureRule, 'no signing key'));
  } else if (opts.keys === undefined) {
    checks.push(skipped('signing_key', keyRule, 'not checked: no signing keys available'));
    checks.push(skipped('signature', signatureRule, 'not checked: no signing keys available'));
  } else {
    const outcome = checkSigningKey(await opts.keys.resolve(tid, jws.header.kid as string), jws, policy);
    if (outcome.kind === 'unavailable') {
      unavailable = outcome.rejection;
      checks.push({ check: 'signing_key', ok: false, skipped: false, rule: keyRule, detail: unavailable.message, reason: 'keys_unavailable' });
      checks.push(skipped('signature', signatureRule, 'no signing key'));
    } else if (outcome.kind === 'rejected') {
      checks.push({
        check: 'signing_key',
        ok: false,
        skipped: false,
        rule: keyRule,
        detail: outcome.failure.message,
        reason: outcome.failure.reason,
      });
      checks.push(skipped('signature', signatureRule, 'no signing key'));
    } else {
      const key = outcome.key;
      checks.push({ check: 'signing_key', ok: true, skipped: false, rule: keyRule, detail: `kid ${echo(key.kid)} found` });
      const bad = checkSignature(jws, key);
      signatureVerified = bad === undefined;
      checks.push(
        bad === undefined
          ? { check: 'signature', ok: true, skipped: false, rule: signatureRule, detail: 'the signature verifies' }
          : { check: 'signature', ok: false, skipped: false, rule: signatureRule, detail: bad.message, reason: bad.reason },
      );
    }
  }
  const verdict = verdictOf(checks, signatureVerified, unavailable);
  return {
    checks,
    header: jws.header,
    payload: jws.payload,
    verdict: verdict.status === 200 && signatureVerified ? { ...verdict, principal: principalOf(jws.payload) } : verdict,
  };
}

function skipped(check: TokenCheckName, rule: string, detail: string): CheckOutcome {
  return { check, ok: false, skipped: true, rule, detail };
}

function verdictOf(checks: readonly CheckOutcome[], signatureVerified: boolean, unavailable?: Rejection): TokenVerdict {
  const first = checks.find((c) => !c.ok && !c.skipped);
  if (first === undefined) {
    return {
      status: 200,
      code: null,
      message: signatureVerified
        ? 'The token would be accepted (authorization is checked next).'
        : 'Every claim check passes; the signature was not checked, so this is not proof the token would be accepted.',
      signatureVerified,
    };
  }
  if (first.check === 'signing_key' && unavailable !== undefined) {
    return {
      status: statusOf(unavailable.code),
      code: unavailable.code,
      message: unavailable.message,
      ...(unavailable.reason !== undefined ? { reason: unavailable.reason } : {}),
      ...(unavailable.retryAfterSeconds !== undefined ? { retryAfterSeconds: unavailable.retryAfterSeconds } : {}),
      signatureVerified,
    };
  }
  return {
    status: statusOf('invalid_token'),
    code: 'invalid_token',
    message: first.detail,
    ...(first.reason !== undefined ? { reason: first.reason } : {}),
    signatureVerified,
  };
}
