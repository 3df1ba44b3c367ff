import { randomBytes, randomInt } from 'node:crypto';
import type { Emulator } from '../core.js';
import { formBody, sendJson, type Exchange } from '../exchange.js';
import type { Tenant, User } from '../model.js';
import { aad, sendAadError, type AadError } from './errors.js';

/**
 * The device-code flow (RFC 8628) as Entra ID runs it: `POST /{tenant}/oauth2/v2.0/devicecode`
 * hands out a user code and a device code, the client polls the token endpoint with the device
 * code, and the answer is `authorization_pending` until someone signs in. Nobody can open
 * microsoft.com/devicelogin offline, so the sign-in is the admin API's `POST /_emulator/device-codes`
 * (user code + user). Flows live in memory: a restarted emulator forgets them, as an expired code.
 */

export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const VERIFICATION_URI = 'https://microsoft.com/devicelogin';
const EXPIRES_IN = 900;
const INTERVAL = 5;
/** Entra's user codes: nine characters, no easily confused ones. */
const USER_CODE_ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';

export interface DeviceFlow {
  readonly deviceCode: string;
  readonly userCode: string;
  /** Undefined for `common`/`organizations`: the signed-in user's tenant decides. */
  readonly tenantId: string | undefined;
  readonly clientId: string;
  readonly scope: string;
  readonly expiresAt: number;
  state:
    { readonly kind: 'pending' } | { readonly kind: 'approved'; readonly userId: string; readonly tenantId: string } | { readonly kind: 'declined' };
}

const flows = new WeakMap<Emulator, Map<string, DeviceFlow>>();

function flowsOf(em: Emulator): Map<string, DeviceFlow> {
  let m = flows.get(em);
  if (m === undefined) {
    m = new Map();
    flows.set(em, m);
  }
  for (const [code, f] of m) if (f.expiresAt + 3600 < em.nowSeconds()) m.delete(code);
  return m;
}

function isMultiTenant(segment: string): boolean {
  const s = segment.toLowerCase();
  return s === 'common' || s === 'organizations';
}

/** `POST /{tenant}/oauth2/v2.0/devicecode`. */
export function handleDeviceCodeRequest(em: Emulator, ex: Exchange, tenantSegment: string): void {
  const params = formBody(ex);
  const tenant = isMultiTenant(tenantSegment) ? undefined : em.directory.tenant(tenantSegment);
  if (!isMultiTenant(tenantSegment) && tenant === undefined) return sendAadError(em, ex, aad.tenantNotFound(tenantSegment));
  const clientId = params.get('client_id');
  if (clientId === null || clientId === '') return sendAadError(em, ex, aad.missingParameter('client_id'));
  const scope = params.get('scope');
  if (scope === null || scope.trim() === '') return sendAadError(em, ex, aad.missingParameter('scope'));
  const client = em.directory.client(tenant?.id ?? em.state.defaultTenantId, clientId);
  if (client === undefined) return sendAadError(em, ex, aad.unknownClient(clientId, tenant?.domain ?? tenantSegment));
  if (!client.publicClient) return sendAadError(em, ex, aad.credentialRequired());
  const userCode = Array.from({ length: 9 }, () => USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]).join('');
  const flow: DeviceFlow = {
    deviceCode: randomBytes(48).toString('base64url'),
    userCode,
    tenantId: tenant?.id,
    clientId: client.appId,
    scope,
    expiresAt: em.nowSeconds() + EXPIRES_IN,
    state: { kind: 'pending' },
  };
  flowsOf(em).set(flow.deviceCode, flow);
  sendJson(ex.res, 200, {
    user_code: userCode,
    device_code: flow.deviceCode,
    verification_uri: VERIFICATION_URI,
    expires_in: EXPIRES_IN,
    interval: INTERVAL,
    message: `To sign in, use a web browser to open the page ${VERIFICATION_URI} and enter the code ${userCode} to authenticate.`,
  });
}

/** The pending flows (admin API: what a test or a person may approve). */
export function pendingFlows(em: Emulator): DeviceFlow[] {
  return [...flowsOf(em).values()].filter((f) => f.state.kind === 'pending' && f.expiresAt > em.nowSeconds());
}

/** Signs `user` in on the flow with `userCode` (or declines it); undefined when no such pending flow. */
export function decideFlow(
  em: Emulator,
  userCode: string,
  decision: { readonly kind: 'approve'; readonly user: User } | { readonly kind: 'decline' },
): DeviceFlow | undefined {
  const code = userCode.toUpperCase().replace(/[^A-Z0-9]/g, '');
  const flow = pendingFlows(em).find((f) => f.userCode === code);
  if (flow === undefined) return undefined;
  if (decision.kind === 'decline') flow.state = { kind: 'declined' };
  else flow.state = { kind: 'approved', userId: decision.user.id, tenantId: decision.user.tenantId };
  return flow;
}

/** The tenant a device-code token request is for, before the client is authenticated. */
export function deviceFlowTenant(em: Emulator, deviceCode: string): string | undefined {
  const flow = flowsOf(em).get(deviceCode);
  return flow === undefined ? undefined : flow.state.kind === 'approved' ? flow.state.tenantId : flow.tenantId;
}

/** A poll: the signed-in user and the flow's scope, or the error the client keeps polling on (or gives up on). */
export function redeemDeviceCode(
  em: Emulator,
  tenant: Tenant,
  clientId: string,
  deviceCode: string,
): { readonly user: User; readonly scope: string } | AadError {
  const all = flowsOf(em);
  const flow = all.get(deviceCode);
  if (flow === undefined || flow.clientId !== clientId.toLowerCase()) return aad.badDeviceCode();
  if (flow.expiresAt <= em.nowSeconds()) {
    all.delete(deviceCode);
    return aad.expiredDeviceCode();
  }
  if (flow.state.kind === 'pending') return aad.authorizationPending();
  all.delete(deviceCode);
  if (flow.state.kind === 'declined') return aad.authorizationDeclined();
  const user = flow.state.tenantId === tenant.id ? em.directory.user(tenant.id, flow.state.userId) : undefined;
  if (user === undefined) return aad.badDeviceCode();
  return { user, scope: flow.scope };
}
