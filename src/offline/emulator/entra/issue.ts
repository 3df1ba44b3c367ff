import { createHash, randomBytes } from 'node:crypto';
import type { Emulator } from '../core.js';
import type { ClientApp, ResourceApp } from '../directory.js';
import type { Claims } from '../jwt.js';
import type { PermissionScope, Tenant, User } from '../model.js';

/**
 * What goes into an access token, following Entra ID's rules: the token version comes from the
 * resource's manifest, `scp` holds only existing, enabled scopes that are pre-authorized or consented
 * for the client, `roles` only enabled app roles assigned to the caller on the resource.
 */

/** Lifetimes (seconds) as Entra issues them: `iat`/`nbf` are back-dated 5 minutes, `expires_in` counts from now. */
export const APP_TOKEN_EXPIRES_IN = 3599;
export const USER_TOKEN_EXPIRES_IN = 4799;
export const MSI_TOKEN_EXPIRES_IN = 86399;
const BACKDATE = 300;
const MEMBER_ROLE_TEMPLATE = 'b79fbf4d-3ef9-4689-8143-76b194e85509';

export type ClientAuthMethod = 0 | 1 | 2;

export type TokenSubject = { readonly kind: 'app'; readonly objectId: string } | { readonly kind: 'user'; readonly user: User };

export interface MintInput {
  readonly tenant: Tenant;
  /** Base URL of the listener the request came in on (the v2 issuer's origin). */
  readonly base: string;
  readonly resource: ResourceApp;
  /** The resource as the client named it (the v1 `aud`). */
  readonly requestedResource: string;
  readonly client: ClientApp;
  /** `azpacr`/`appidacr`: 0 public client, 1 client secret, 2 certificate or assertion. */
  readonly clientAuth: ClientAuthMethod;
  readonly subject: TokenSubject;
  readonly scp?: readonly string[];
  readonly roles?: readonly string[];
  readonly expiresIn: number;
  /** Issue the token as if this many seconds ago (iat, nbf and exp move together): the admin API's expired test tokens. */
  readonly ageSeconds?: number;
}

export interface MintedToken {
  readonly accessToken: string;
  readonly expiresIn: number;
  readonly expiresOn: number;
  readonly notBefore: number;
  readonly version: 1 | 2;
}

function opaque(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/** A pairwise subject: stable for one user and one client app, different across apps. */
function pairwiseSub(objectId: string, appId: string): string {
  return createHash('sha256').update(`${objectId}|${appId}`).digest('base64url').slice(0, 43);
}

export function mintAccessToken(em: Emulator, m: MintInput): MintedToken {
  const now = em.nowSeconds() - (m.ageSeconds ?? 0);
  const iat = now - BACKDATE;
  const exp = now + m.expiresIn;
  const v1 = m.resource.tokenVersion === 1;
  const tid = m.tenant.id;
  const claims: Claims = {
    aud: v1 ? m.requestedResource : m.resource.appId,
    iss: v1 ? `https://sts.windows.net/${tid}/` : em.v2Issuer(m.base, tid),
    iat,
    nbf: iat,
    exp,
  };
  if (v1 && m.subject.kind === 'user') {
    claims['acr'] = '1';
  }
  claims['aio'] = opaque(48);
  if (v1 && m.subject.kind === 'user') claims['amr'] = ['pwd'];
  if (v1) {
    claims['appid'] = m.client.appId;
    claims['appidacr'] = String(m.clientAuth);
  } else {
    claims['azp'] = m.client.appId;
    claims['azpacr'] = String(m.clientAuth);
  }
  if (m.subject.kind === 'user') {
    const u = m.subject.user;
    if (v1) {
      if (u.surname !== null) claims['family_name'] = u.surname;
      if (u.givenName !== null) claims['given_name'] = u.givenName;
    }
    claims['idtyp'] = 'user';
    if (v1) claims['ipaddr'] = '127.0.0.1';
    claims['name'] = u.displayName;
    claims['oid'] = u.id;
    if (!v1) claims['preferred_username'] = u.userPrincipalName;
  } else {
    if (v1) claims['idp'] = `https://sts.windows.net/${tid}/`;
    claims['idtyp'] = 'app';
    claims['oid'] = m.subject.objectId;
  }
  claims['rh'] = `1.${opaque(60)}.`;
  if (m.roles !== undefined && m.roles.length > 0) claims['roles'] = [...m.roles];
  if (m.scp !== undefined && m.scp.length > 0) claims['scp'] = m.scp.join(' ');
  if (m.subject.kind === 'user') claims['sid'] = opaque(24);
  claims['sub'] = m.subject.kind === 'user' ? pairwiseSub(m.subject.user.id, m.client.appId) : m.subject.objectId;
  claims['tid'] = tid;
  if (v1 && m.subject.kind === 'user') {
    claims['unique_name'] = m.subject.user.userPrincipalName;
    claims['upn'] = m.subject.user.userPrincipalName;
  }
  claims['uti'] = opaque(16);
  claims['ver'] = v1 ? '1.0' : '2.0';
  // Every member user carries the "User" directory role template; admins carry theirs too.
  if (m.subject.kind === 'user') claims['wids'] = [...m.subject.user.directoryRoles, MEMBER_ROLE_TEMPLATE];
  if (m.client.managedIdentityResourceId !== undefined) claims['xms_mirid'] = m.client.managedIdentityResourceId;
  return { accessToken: em.sign(m.tenant, claims, v1), expiresIn: m.expiresIn, expiresOn: exp, notBefore: iat, version: v1 ? 1 : 2 };
}

/** An OpenID Connect ID token (v2) for the password and refresh-token grants when `openid` was asked for. */
export function mintIdToken(em: Emulator, tenant: Tenant, base: string, user: User, clientAppId: string): string {
  const now = em.nowSeconds();
  return em.sign(
    tenant,
    {
      aud: clientAppId,
      iss: em.v2Issuer(base, tenant.id),
      iat: now - BACKDATE,
      nbf: now - BACKDATE,
      exp: now + 3600,
      name: user.displayName,
      oid: user.id,
      preferred_username: user.userPrincipalName,
      rh: `1.${opaque(60)}.`,
      sub: pairwiseSub(user.id, clientAppId),
      tid: tenant.id,
      uti: opaque(16),
      ver: '2.0',
    },
    false,
  );
}

/**
 * Enabled app role values assigned on the resource to any of `principalIds` (the caller, and for a
 * user the groups it is a direct member of: Entra does not pass app roles through nested groups),
 * whose `allowedMemberTypes` admit the caller.
 */
export function assignedAppRoles(
  em: Emulator,
  tenantId: string,
  principalIds: readonly string[],
  resource: ResourceApp,
  memberType: 'User' | 'Application',
): string[] {
  const sp = resource.sp;
  if (sp === undefined) return [];
  const ids = new Set(principalIds);
  const values = new Set<string>();
  for (const a of em.state.appRoleAssignments) {
    if (a.tenantId !== tenantId || a.resourceId !== sp.id || !ids.has(a.principalId)) continue;
    const role = resource.appRoles.find((r) => r.id === a.appRoleId);
    if (role && role.isEnabled && role.value && role.allowedMemberTypes.includes(memberType)) values.add(role.value);
  }
  return [...values];
}

/** Groups a user is a direct member of (app roles assigned to a group reach its direct members only). */
export function directGroups(em: Emulator, tenantId: string, objectId: string): string[] {
  return em.state.groups.filter((g) => g.tenantId === tenantId && g.members.includes(objectId)).map((g) => g.id);
}

/**
 * The resource's enabled scopes this client may use for this user without asking: pre-authorized in
 * `api.preAuthorizedApplications`, consented through an oauth2PermissionGrant (for all principals or
 * this user), or — for Microsoft's first-party public clients such as the Azure CLI — any scope of a
 * first-party resource.
 */
export function grantableScopes(em: Emulator, tenantId: string, client: ClientApp, resource: ResourceApp, user: User): PermissionScope[] {
  const enabled = resource.scopes.filter((s) => s.isEnabled);
  if (client.firstParty?.publicClient === true && resource.firstParty !== undefined) return enabled;
  const granted = new Set<string>();
  const pre = resource.preAuthorizedApplications.find((p) => p.appId.toLowerCase() === client.appId);
  for (const id of pre?.delegatedPermissionIds ?? []) granted.add(`id:${id.toLowerCase()}`);
  if (client.sp !== undefined && resource.sp !== undefined) {
    for (const g of em.state.oauth2PermissionGrants) {
      if (g.tenantId !== tenantId || g.clientId !== client.sp.id || g.resourceId !== resource.sp.id) continue;
      if (g.consentType === 'Principal' && g.principalId !== user.id) continue;
      for (const v of g.scope.split(/\s+/)) if (v !== '') granted.add(`value:${v}`);
    }
  }
  return enabled.filter((s) => granted.has(`id:${s.id}`) || granted.has(`value:${s.value}`));
}
