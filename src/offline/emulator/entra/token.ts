import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Emulator } from '../core.js';
import type { ClientApp, ResourceApp } from '../directory.js';
import { formBody, header, sendJson, type Exchange } from '../exchange.js';
import { GRAPH_APP_ID, OIDC_SCOPES, TOKEN_EXCHANGE_AUDIENCE } from '../first-party.js';
import { assertionClaims, verifyServiceAccountSignature } from '../k8s.js';
import type { FederatedCredential, Tenant, User } from '../model.js';
import { secretMatches } from '../state.js';
import { DEVICE_CODE_GRANT, deviceFlowTenant, redeemDeviceCode } from './device-code.js';
import { aad, sendAadError, type AadError } from './errors.js';
import {
  APP_TOKEN_EXPIRES_IN,
  USER_TOKEN_EXPIRES_IN,
  assignedAppRoles,
  directGroups,
  grantableScopes,
  mintAccessToken,
  mintIdToken,
  type ClientAuthMethod,
  type MintedToken,
} from './issue.js';
import { CLOCK_SKEW_SECONDS } from '../core.js';

/**
 * The token endpoint: `POST /{tenant}/oauth2/v2.0/token` (scopes) and the v1 `POST /{tenant}/oauth2/token`
 * (`resource`). Grants: client_credentials (client secret or federated client assertion), password,
 * refresh_token, device_code.
 */

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const REFRESH_TOKEN_LIFETIME = 90 * 86_400;

class Refused extends Error {
  constructor(readonly aad: AadError) {
    super(aad.message);
  }
}

function refuse(e: AadError): never {
  throw new Refused(e);
}

interface ScopeRequest {
  /** The resource as named (an appId, an identifier URI, or a first-party URL). */
  readonly resource: string;
  /** Scope names on the resource (`.default` included). */
  readonly names: readonly string[];
  readonly oidc: ReadonlySet<string>;
  /** True when no resource scope was asked for (only OpenID scopes): the token is for Microsoft Graph. */
  readonly implicitGraph: boolean;
}

function parseScopes(raw: string): ScopeRequest {
  const oidc = new Set<string>();
  let resource: string | undefined;
  const names: string[] = [];
  for (const s of raw.split(/\s+/).filter((x) => x !== '')) {
    if (OIDC_SCOPES.has(s)) {
      oidc.add(s);
      continue;
    }
    const slash = s.lastIndexOf('/');
    const res = slash < 0 ? GRAPH_APP_ID : s.slice(0, slash);
    const name = slash < 0 ? s : s.slice(slash + 1);
    if (res === '' || name === '') refuse(aad.invalidScope(s));
    if (resource !== undefined && resource.toLowerCase() !== res.toLowerCase()) refuse(aad.multipleResources());
    resource = res;
    names.push(name);
  }
  if (resource === undefined) return { resource: GRAPH_APP_ID, names: ['.default'], oidc, implicitGraph: true };
  return { resource, names, oidc, implicitGraph: false };
}

function tenantName(t: Tenant): string {
  return t.id;
}

/** `client_id` + secret/assertion (form or HTTP Basic) -> the authenticated client and how it authenticated. */
function authenticateClient(
  em: Emulator,
  ex: Exchange,
  tenant: Tenant,
  params: URLSearchParams,
  mustAuthenticate: boolean,
): { client: ClientApp; auth: ClientAuthMethod } {
  let clientId = params.get('client_id') ?? undefined;
  let secret = params.get('client_secret') ?? undefined;
  const basic = /^Basic\s+(\S+)$/i.exec(header(ex, 'authorization') ?? '');
  if (basic?.[1] !== undefined) {
    const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      clientId ??= decodeURIComponent(decoded.slice(0, colon));
      secret ??= decodeURIComponent(decoded.slice(colon + 1));
    }
  }
  if (clientId === undefined || clientId === '') refuse(aad.missingParameter('client_id'));
  const client = em.directory.client(tenant.id, clientId);
  if (client === undefined) refuse(aad.unknownClient(clientId, tenantName(tenant)));
  const assertion = params.get('client_assertion') ?? undefined;
  if (assertion !== undefined) {
    if (params.get('client_assertion_type') !== JWT_BEARER) refuse(aad.badAssertionType());
    checkFederatedAssertion(em, client, assertion);
    return { client, auth: 2 };
  }
  if (secret !== undefined && secret !== '') {
    const creds = client.application?.passwordCredentials ?? [];
    const match = creds.find((c) => secretMatches(secret, c.secretHash));
    if (match === undefined) refuse(aad.invalidSecret(client.appId));
    if (Date.parse(match.endDateTime) <= em.now()) refuse(aad.expiredSecret(client.appId));
    return { client, auth: 1 };
  }
  if (!mustAuthenticate && client.publicClient) return { client, auth: 0 };
  refuse(aad.credentialRequired());
}

/**
 * Federated identity credential matching as Entra does it: issuer, then subject, then audience
 * (case-sensitive), then the assertion's signature and lifetime. Only the emulator's own issuers
 * (the clusters' service-account issuers) can be verified offline.
 */
function checkFederatedAssertion(em: Emulator, client: ClientApp, assertion: string): void {
  const claims = assertionClaims(assertion);
  if (!claims.ok) refuse(aad.malformedAssertion());
  const byIssuer = client.federatedIdentityCredentials.filter((f) => f.issuer === claims.iss);
  if (byIssuer.length === 0) refuse(aad.noFicIssuer(claims.iss));
  const bySubject = byIssuer.filter((f) => f.subject === claims.sub);
  if (bySubject.length === 0) refuse(aad.noFicSubject(claims.sub));
  const audiences = (f: FederatedCredential): readonly string[] => (f.audiences.length > 0 ? f.audiences : [TOKEN_EXCHANGE_AUDIENCE]);
  if (!bySubject.some((f) => audiences(f).some((a) => claims.aud.includes(a)))) refuse(aad.noFicAudience(claims.aud.join(',')));
  const sig = verifyServiceAccountSignature(em, assertion, claims.iss);
  if (sig === 'unknown_issuer') refuse(aad.externalIssuer(claims.iss));
  if (sig === 'invalid') refuse(aad.assertionSignature());
  const now = em.nowSeconds();
  if (claims.exp === undefined || now > claims.exp + CLOCK_SKEW_SECONDS || (claims.nbf !== undefined && now + CLOCK_SKEW_SECONDS < claims.nbf)) {
    refuse(aad.assertionTime(now, claims.nbf, claims.exp));
  }
}

function resolveResource(em: Emulator, tenant: Tenant, name: string): ResourceApp {
  const resource = em.directory.resource(tenant.id, name, em.ownUrls());
  if (resource === undefined || resource.sp === undefined) refuse(aad.resourceNotFound(name, tenantName(tenant)));
  return resource;
}

function tokenResponse(t: MintedToken, v1Endpoint: boolean, resource: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  if (v1Endpoint) {
    return {
      token_type: 'Bearer',
      expires_in: String(t.expiresIn),
      ext_expires_in: String(t.expiresIn),
      expires_on: String(t.expiresOn),
      not_before: String(t.notBefore),
      resource,
      access_token: t.accessToken,
      ...extra,
    };
  }
  return { token_type: 'Bearer', expires_in: t.expiresIn, ext_expires_in: t.expiresIn, access_token: t.accessToken, ...extra };
}

function clientCredentials(em: Emulator, ex: Exchange, tenant: Tenant, params: URLSearchParams, req: ScopeRequest, v1Endpoint: boolean): void {
  for (const n of req.names) if (n !== '.default') refuse(aad.clientCredentialsScope(`${req.resource}/${n}`));
  const { client, auth } = authenticateClient(em, ex, tenant, params, true);
  const resource = resolveResource(em, tenant, req.resource);
  if (client.sp === undefined) refuse(aad.missingServicePrincipal(client.appId, tenant.id));
  const roles = assignedAppRoles(em, tenant.id, [client.sp.id], resource, 'Application');
  const t = mintAccessToken(em, {
    tenant,
    base: ex.base,
    resource,
    requestedResource: req.resource,
    client,
    clientAuth: auth,
    subject: { kind: 'app', objectId: client.sp.id },
    roles,
    expiresIn: APP_TOKEN_EXPIRES_IN,
  });
  sendJson(ex.res, 200, tokenResponse(t, v1Endpoint, req.resource));
}

function refreshTokenFor(em: Emulator, user: User, tenant: Tenant, clientAppId: string): string {
  const payload = Buffer.from(
    JSON.stringify({ v: 1, uid: user.id, tid: tenant.id, cid: clientAppId, exp: em.nowSeconds() + REFRESH_TOKEN_LIFETIME }),
  ).toString('base64url');
  return `${payload}.${refreshTokenMac(em, payload).toString('base64url')}`;
}

function refreshTokenMac(em: Emulator, payload: string): Buffer {
  return createHmac('sha256', Buffer.from(em.state.refreshTokenKey, 'hex')).update(payload).digest();
}

function readRefreshToken(em: Emulator, token: string): { uid: string; tid: string; cid: string } {
  const [payload = '', mac = ''] = token.split('.');
  const expected = refreshTokenMac(em, payload);
  const given = Buffer.from(mac, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) refuse(aad.badRefreshToken());
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    refuse(aad.badRefreshToken());
  }
  if (typeof parsed !== 'object' || parsed === null) refuse(aad.badRefreshToken());
  const p = parsed as Record<string, unknown>;
  if (typeof p['uid'] !== 'string' || typeof p['tid'] !== 'string' || typeof p['cid'] !== 'string' || typeof p['exp'] !== 'number')
    refuse(aad.badRefreshToken());
  if (p['exp'] < em.nowSeconds()) refuse(aad.expiredRefreshToken());
  return { uid: p['uid'], tid: p['tid'], cid: p['cid'] };
}

/** A delegated (user) token: the scope and consent rules, then the token, ID token and refresh token. */
function delegated(
  em: Emulator,
  ex: Exchange,
  tenant: Tenant,
  client: ClientApp,
  auth: ClientAuthMethod,
  user: User,
  req: ScopeRequest,
  params: URLSearchParams,
  v1Endpoint: boolean,
): void {
  const resource = resolveResource(em, tenant, req.resource);
  const grantable = grantableScopes(em, tenant.id, client, resource, user);
  const roles = assignedAppRoles(em, tenant.id, [user.id, ...directGroups(em, tenant.id, user.id)], resource, 'User');
  if (req.names.includes('.default')) {
    if (grantable.length === 0 && roles.length === 0 && !req.implicitGraph) refuse(aad.consentRequired(client.appId, client.displayName));
  } else {
    for (const name of req.names) {
      const scope = resource.scopes.find((s) => s.value === name && s.isEnabled);
      if (scope === undefined) refuse(aad.scopeNotOnResource(client.displayName, name, resource.appId));
      if (!grantable.some((g) => g.id === scope.id)) refuse(aad.consentRequired(client.appId, client.displayName));
    }
  }
  const scp = grantable.map((s) => s.value);
  const t = mintAccessToken(em, {
    tenant,
    base: ex.base,
    resource,
    requestedResource: req.resource,
    client,
    clientAuth: auth,
    subject: { kind: 'user', user },
    scp,
    roles,
    expiresIn: USER_TOKEN_EXPIRES_IN,
  });
  const prefix = resource.appId === GRAPH_APP_ID ? '' : `${req.resource}/`;
  const extra: Record<string, unknown> = { scope: [...scp.map((s) => `${prefix}${s}`), ...req.oidc].join(' ') };
  if (req.oidc.has('offline_access') || v1Endpoint) extra['refresh_token'] = refreshTokenFor(em, user, tenant, client.appId);
  if (req.oidc.has('openid')) extra['id_token'] = mintIdToken(em, tenant, ex.base, user, client.appId);
  if (params.get('client_info') === '1') extra['client_info'] = Buffer.from(JSON.stringify({ uid: user.id, utid: tenant.id })).toString('base64url');
  sendJson(ex.res, 200, tokenResponse(t, v1Endpoint, req.resource, extra));
}

function password(em: Emulator, ex: Exchange, tenant: Tenant, params: URLSearchParams, req: ScopeRequest, v1Endpoint: boolean): void {
  const username = params.get('username');
  const pw = params.get('password');
  if (username === null || username === '') refuse(aad.missingParameter('username'));
  if (pw === null) refuse(aad.missingParameter('password'));
  const { client, auth } = authenticateClient(em, ex, tenant, params, false);
  const user = em.state.users.find((u) => u.tenantId === tenant.id && u.userPrincipalName.toLowerCase() === username.toLowerCase());
  if (user === undefined) refuse(aad.userNotFound(tenant.id));
  if (!secretMatches(pw, user.passwordHash)) refuse(aad.badPassword());
  if (!user.accountEnabled) refuse(aad.userDisabled());
  delegated(em, ex, tenant, client, auth, user, req, params, v1Endpoint);
}

/** The device-code grant: a token once the flow's user signed in (through the admin API), else the error to keep polling on. */
function deviceCode(em: Emulator, ex: Exchange, tenant: Tenant, params: URLSearchParams, v1Endpoint: boolean): void {
  const code = params.get('device_code') ?? params.get('code');
  if (code === null || code === '') refuse(aad.missingParameter('device_code'));
  const { client, auth } = authenticateClient(em, ex, tenant, params, false);
  const redeemed = redeemDeviceCode(em, tenant, client.appId, code);
  if ('error' in redeemed) refuse(redeemed);
  if (!redeemed.user.accountEnabled) refuse(aad.userDisabled());
  delegated(em, ex, tenant, client, auth, redeemed.user, parseScopes(redeemed.scope), params, v1Endpoint);
}

function refreshToken(em: Emulator, ex: Exchange, tenant: Tenant, params: URLSearchParams, req: ScopeRequest, v1Endpoint: boolean): void {
  const rt = params.get('refresh_token');
  if (rt === null || rt === '') refuse(aad.missingParameter('refresh_token'));
  const info = readRefreshToken(em, rt);
  if (info.tid !== tenant.id) refuse(aad.badRefreshToken());
  const { client, auth } = authenticateClient(em, ex, tenant, params, false);
  if (client.appId !== info.cid) refuse(aad.badRefreshToken());
  const user = em.directory.user(tenant.id, info.uid);
  if (user === undefined) refuse(aad.userNotFound(tenant.id));
  if (!user.accountEnabled) refuse(aad.userDisabled());
  delegated(em, ex, tenant, client, auth, user, req, params, v1Endpoint);
}

/** `common`/`organizations` name no tenant: the password grant finds it from the user name, refresh tokens carry it. */
function tenantFor(em: Emulator, segment: string, params: URLSearchParams): Tenant {
  const key = segment.toLowerCase();
  if (key === 'common' || key === 'organizations') {
    const username = params.get('username');
    const user = username === null ? undefined : em.state.users.find((u) => u.userPrincipalName.toLowerCase() === username.toLowerCase());
    if (user) return em.directory.tenant(user.tenantId) ?? refuse(aad.noTenantInformation());
    const device = params.get('device_code');
    const flowTenant = device === null ? undefined : deviceFlowTenant(em, device);
    if (flowTenant !== undefined) return em.directory.tenant(flowTenant) ?? refuse(aad.noTenantInformation());
    const rt = params.get('refresh_token');
    if (rt !== null) {
      const t = em.directory.tenant(readRefreshToken(em, rt).tid);
      if (t) return t;
    }
    refuse(aad.noTenantInformation());
  }
  return em.directory.tenant(segment) ?? refuse(aad.tenantNotFound(segment));
}

export function handleTokenRequest(em: Emulator, ex: Exchange, tenantSegment: string, v1Endpoint: boolean): void {
  try {
    const params = formBody(ex);
    const grantType = params.get('grant_type');
    if (grantType === null || grantType === '') refuse(aad.missingParameter('grant_type'));
    const tenant = tenantFor(em, tenantSegment, params);
    // The device code carries the scope it was issued for.
    if (grantType === DEVICE_CODE_GRANT) return deviceCode(em, ex, tenant, params, v1Endpoint);
    const scopeParam = v1Endpoint ? params.get('resource') : params.get('scope');
    let req: ScopeRequest;
    if (v1Endpoint) {
      req =
        scopeParam === null || scopeParam === ''
          ? { resource: GRAPH_APP_ID, names: ['.default'], oidc: new Set(), implicitGraph: true }
          : { resource: scopeParam, names: ['.default'], oidc: new Set(), implicitGraph: false };
    } else {
      if (scopeParam === null || scopeParam.trim() === '') refuse(aad.missingParameter('scope'));
      req = parseScopes(scopeParam);
    }
    switch (grantType) {
      case 'client_credentials':
        return clientCredentials(em, ex, tenant, params, req, v1Endpoint);
      case 'password':
        return password(em, ex, tenant, params, req, v1Endpoint);
      case 'refresh_token':
        return refreshToken(em, ex, tenant, params, req, v1Endpoint);
      default:
        refuse(aad.unsupportedGrant(grantType));
    }
  } catch (err) {
    if (err instanceof Refused) return sendAadError(em, ex, err.aad);
    throw err;
  }
}
