import type { Dispatcher } from 'undici';
import { decodeCompactJws } from '../authn/jws.js';
import { SigningKeys } from '../authn/signing-keys.js';

import type { JsonObject, JsonValue } from '../authn/strict-json.js';
import { wellKnownResource, type TokenPolicy } from '../authn/token-checks.js';
import { DEFAULT_AUTHORITY_HOST } from '../azure/client-credentials.js';
import { GUID } from '../contracts/azure-ids.js';
import { systemClock } from '../ops/clock.js';
import { silentLogger } from '../ops/log.js';
import { Metrics } from '../ops/metrics.js';
import { APP_ROLE_VALUE, SCOPE_VALUE } from './names.js';
import { inspectToken, type CheckOutcome, type TokenInspection, type TokenVerdict } from './token-inspection.js';

/**
 * `token inspect` (and `doctor --token`): the same checks, in the same order, as the sidecar's
 * validator (`inspectToken`), against the tenant's published signing keys when they can be
 * fetched; plus the claims that matter and what to do about a failure, in the user's words.
 * What the command was not told (tenant, client ID) is taken from the token and said so.
 */

export interface InspectOptions {
  readonly tenantId?: string;
  readonly clientId?: string;
  /** Default `https://login.microsoftonline.com`. */
  readonly authority?: string;
  readonly audiences?: readonly string[];
  readonly requiredScope?: string;
  readonly requiredAppRole?: string;
  readonly clockSkewSeconds?: number;
  /** Fetch the tenant's JWKS to check the signature (default true). */
  readonly fetchKeys?: boolean;
  readonly nowMs?: number;
  readonly dispatcher?: Dispatcher;
  /** For the fix texts: the cluster, when known (`doctor --cluster-id`). */
  readonly clusterId?: string;
  /** For the fix texts: the common flags of printed foundry-auth commands. */
  readonly commandArgs?: readonly string[];
}

export interface ClaimLine {
  readonly claim: string;
  readonly value: string;
}

export interface InspectCheck extends CheckOutcome {
  /** Passed only because the value was taken from the token itself (no --tenant-id / --client-id). */
  readonly assumed?: boolean;
}

export interface InspectReport {
  /** The sidecar's configuration these checks assumed. */
  readonly policy: {
    readonly tenantId: string | null;
    readonly clientId: string | null;
    readonly authority: string;
    readonly audiences: readonly string[];
    readonly requiredScope: string;
    readonly requiredAppRole: string;
    readonly clockSkewSeconds: number;
  };
  /** What was inferred or not checked, one sentence each. */
  readonly notes: readonly string[];
  readonly header: Readonly<Record<string, string>>;
  readonly claims: readonly ClaimLine[];
  readonly kind: 'user' | 'app' | 'unknown';
  readonly checks: readonly InspectCheck[];
  /** What the sidecar would answer: 200 (authenticated; authorization comes next), 401 invalid_token, 503 identity_provider_unavailable. */
  readonly verdict: Omit<TokenVerdict, 'principal'> & {
    readonly principal?: { readonly type: string; readonly oid: string; readonly tid: string; readonly appId?: string };
  };
  /** What to do, when the sidecar would not accept it. */
  readonly fix?: string;
  /** True when the sidecar would accept the token and its signature was verified. */
  readonly accepted: boolean;
}

const DISPLAYED_CLAIMS = [
  'aud',
  'iss',
  'tid',
  'oid',
  'azp',
  'appid',
  'idtyp',
  'scp',
  'roles',
  'ver',
  'iat',
  'nbf',
  'exp',
  'name',
  'preferred_username',
  'upn',
  'app_displayname',
  'xms_mirid',
] as const;
const DATE_CLAIMS = new Set(['iat', 'nbf', 'exp']);

export async function inspectForUser(token: string, options: InspectOptions = {}): Promise<InspectReport> {
  const nowMs = options.nowMs ?? Date.now();
  const decoded = decodeCompactJws(token);
  const payload: JsonObject = decoded.ok ? decoded.jws.payload : {};
  const notes: string[] = [];
  const assumed = new Set<string>();

  const tokenTid = typeof payload.tid === 'string' && GUID.test(payload.tid) ? payload.tid.toLowerCase() : undefined;
  let tenantId = options.tenantId?.toLowerCase();
  if (tenantId === undefined && tokenTid !== undefined) {
    tenantId = tokenTid;
    assumed.add('tenant');
    notes.push(`tenant ${tenantId} taken from the token's tid (pass --tenant-id to check it)`);
  }
  let clientId = options.clientId?.toLowerCase();
  if (clientId === undefined) {
    const fromAud = audienceAppId(payload.aud);
    if (fromAud !== undefined) {
      clientId = fromAud;
      if (options.audiences === undefined) assumed.add('audience');
      notes.push(`client ID ${clientId} taken from the token's aud (pass --client-id to check the audience)`);
    } else if (audienceList(payload.aud).some(isMicrosoftResource)) {
      notes.push('no --client-id: the audience check expects a token for an app, and aud names a Microsoft service');
    } else {
      notes.push('the audience was not checked: no --client-id, and aud does not name an app');
    }
  }
  const authority = (options.authority ?? DEFAULT_AUTHORITY_HOST).replace(/\/+$/, '');
  // A token for Microsoft Graph or ARM names no app of ours: the audience check fails and says which resource it is for.
  const audiences =
    options.audiences ??
    (clientId !== undefined ? [clientId, `api://${clientId}`] : audienceList(payload.aud).filter((a) => !isMicrosoftResource(a)));
  if (clientId === undefined) assumed.add('audience');
  const policy: TokenPolicy = {
    authority,
    clientId: clientId ?? '<client-id>',
    allowedTenants: new Set(tenantId !== undefined ? [tenantId] : []),
    audiences: new Set(audiences),
    requiredScope: options.requiredScope ?? SCOPE_VALUE,
    requiredAppRole: options.requiredAppRole ?? APP_ROLE_VALUE,
    clockSkewSeconds: options.clockSkewSeconds ?? 300,
  };

  let inspection: TokenInspection;
  const claimsOnly = await inspectToken(token, policy, { nowMs });
  const notIssuedHere = claimsOnly.checks.some((c) => c.check === 'issuer' && !c.ok && !c.skipped);
  const issuer = str(payload.iss);
  if (notIssuedHere && issuer !== undefined && isLoopbackIssuer(issuer) && options.commandArgs?.includes('--dev') !== true) {
    notes.push(`the token comes from a local emulator (iss ${issuer}): for a token of the running dev stack, add --dev`);
  }
  if (options.fetchKeys === false || tenantId === undefined || notIssuedHere) {
    inspection = claimsOnly;
    notes.push(
      options.fetchKeys === false
        ? 'the signature was not checked (offline)'
        : tenantId === undefined
          ? 'the signature was not checked: the tenant is unknown'
          : `the signature was not checked: the token was not issued by ${authority}, so its keys were not fetched`,
    );
  } else {
    const keys = new SigningKeys({
      authority,
      tenants: [tenantId],
      clock: systemClock,
      log: silentLogger(),
      metrics: new Metrics({ defaultMetrics: false }),
      ...(options.dispatcher !== undefined ? { dispatcher: options.dispatcher } : {}),
      fetchTimeoutMs: 10_000,
    });
    try {
      inspection = await inspectToken(token, policy, { nowMs, keys });
      const keyCheck = inspection.checks.find((c) => c.check === 'signing_key');
      if (keyCheck?.reason === 'keys_unavailable') {
        // The sidecar would answer 503 here, but this host may simply not reach the IdP: say so and check the rest.
        notes.push(
          `the signature was not checked: the signing keys of tenant ${tenantId} could not be fetched from ${authority} (${keys.readiness() ?? 'unknown error'})`,
        );
        inspection = await inspectToken(token, policy, { nowMs });
      }
    } finally {
      await keys.close();
    }
  }

  const checks: InspectCheck[] = inspection.checks.map((c) => (c.ok && assumed.has(c.check) ? { ...c, assumed: true } : c));
  const verdict = inspection.verdict;
  const kind = !decoded.ok ? 'unknown' : payload.scp !== undefined || payload.idtyp === 'user' ? 'user' : 'app';
  const accepted = verdict.status === 200 && verdict.signatureVerified;
  const fix = verdict.status === 200 ? undefined : fixFor(verdict, payload, { ...options, clientId: clientId ?? '<client-id>', authority });
  return {
    policy: {
      tenantId: tenantId ?? null,
      clientId: clientId ?? null,
      authority,
      audiences: [...policy.audiences],
      requiredScope: policy.requiredScope,
      requiredAppRole: policy.requiredAppRole,
      clockSkewSeconds: policy.clockSkewSeconds,
    },
    notes,
    header: headerLines(inspection.header),
    claims: claimLines(inspection.payload, nowMs),
    kind,
    checks,
    verdict: {
      status: verdict.status,
      code: verdict.code,
      message: verdict.message,
      ...(verdict.reason !== undefined ? { reason: verdict.reason } : {}),
      ...(verdict.retryAfterSeconds !== undefined ? { retryAfterSeconds: verdict.retryAfterSeconds } : {}),
      signatureVerified: verdict.signatureVerified,
      ...(verdict.principal !== undefined
        ? {
            principal: {
              type: verdict.principal.type,
              oid: verdict.principal.oid,
              tid: verdict.principal.tid,
              ...(verdict.principal.appId !== undefined ? { appId: verdict.principal.appId } : {}),
            },
          }
        : {}),
    },
    ...(fix !== undefined ? { fix } : {}),
    accepted,
  };
}

/** What to do about a rejected token, as commands the user can run. */
function fixFor(verdict: TokenVerdict, payload: JsonObject, ctx: InspectOptions & { clientId: string; authority: string }): string {
  const extra = ctx.commandArgs !== undefined && ctx.commandArgs.length > 0 ? ` ${ctx.commandArgs.join(' ')}` : '';
  const cluster = ctx.clusterId ?? '<cluster resource ID>';
  const setup = `foundry-auth setup --client-id ${ctx.clientId}${extra}`;
  const caller = str(payload.azp) ?? str(payload.appid) ?? '<caller client ID>';
  switch (verdict.reason) {
    case 'v1_token':
      return `the API app issues v1.0 tokens: set api.requestedAccessTokenVersion (accessTokenAcceptedVersion) to 2 with ${setup} (step 3), then get a new token`;
    case 'missing_scope':
      return `request the scope: az account get-access-token --scope api://${ctx.clientId}/${ctx.requiredScope ?? SCOPE_VALUE}; if Entra answers AADSTS65001 (consent required), the scope is missing or the Azure CLI is not pre-authorized: ${setup}`;
    case 'missing_app_role':
      return `assign the app role ${ctx.requiredAppRole ?? APP_ROLE_VALUE} to the caller: foundry-auth grant --client-id ${ctx.clientId} --cluster-id ${cluster} --assignee ${caller} --access inference${extra}, then get a new token`;
    case 'wrong_audience':
      return `get a token for the API app: az account get-access-token --resource api://${ctx.clientId} (or --scope api://${ctx.clientId}/${ctx.requiredScope ?? SCOPE_VALUE})`;
    case 'expired':
    case 'not_yet_valid':
    case 'issued_in_future':
      return "get a new token (and check that this host's clock is right)";
    case 'foreign_tenant':
      return `get the token from the sidecar's tenant (az login --tenant ${ctx.tenantId ?? '<tenant ID>'}), or add its tenant to --allowed-tenants`;
    case 'wrong_issuer':
      return `the token comes from another authority than ${ctx.authority}: set --authority to the cloud or emulator that issued it`;
    case 'keys_unavailable':
      return `the sidecar cannot load the signing keys from ${ctx.authority}: check --authority and that the sidecar reaches it`;
    case 'unknown_kid':
    case 'bad_signature':
    case 'key_issuer_mismatch':
      return `the token was not issued (or was altered) for tenant ${ctx.tenantId ?? '<tenant ID>'} at ${ctx.authority}: get a new token from it`;
    default:
      return verdict.message;
  }
}

function audienceAppId(aud: JsonValue | undefined): string | undefined {
  const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  for (const a of list) {
    if (typeof a !== 'string' || isMicrosoftResource(a)) continue;
    const id = a.startsWith('api://') ? a.slice('api://'.length) : a;
    if (GUID.test(id)) return id.toLowerCase();
  }
  return undefined;
}

/** Graph, ARM: resources whose tokens are a common mistake, never the API app. */
function isMicrosoftResource(aud: string): boolean {
  return wellKnownResource(aud) !== undefined;
}

function isLoopbackIssuer(iss: string): boolean {
  try {
    return ['localhost', '127.0.0.1', '[::1]'].includes(new URL(iss).hostname);
  } catch {
    return false;
  }
}

function audienceList(aud: JsonValue | undefined): string[] {
  if (typeof aud === 'string') return [aud];
  return Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
}

function headerLines(header: JsonObject | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['alg', 'typ', 'kid', 'x5t']) {
    const v = header?.[name];
    if (v !== undefined) out[name] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

function claimLines(payload: JsonObject | undefined, nowMs: number): ClaimLine[] {
  if (payload === undefined) return [];
  const lines: ClaimLine[] = [];
  for (const claim of DISPLAYED_CLAIMS) {
    const v = payload[claim];
    if (v === undefined) continue;
    if (DATE_CLAIMS.has(claim) && typeof v === 'number' && Number.isFinite(v)) {
      lines.push({ claim, value: `${new Date(v * 1000).toISOString().replace('.000Z', 'Z')} (${relative(v * 1000 - nowMs)})` });
    } else {
      lines.push({ claim, value: typeof v === 'string' ? v : JSON.stringify(v) });
    }
  }
  return lines;
}

function relative(ms: number): string {
  const minutes = Math.round(Math.abs(ms) / 60_000);
  const text = minutes < 120 ? `${minutes} min` : minutes < 48 * 60 ? `${Math.round(minutes / 60)} h` : `${Math.round(minutes / 1440)} days`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}
