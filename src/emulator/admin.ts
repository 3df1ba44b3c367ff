import { z } from 'zod';
import { builtInRoleByName, roleDefinitionGuid } from '../authz/roles.js';
import { isAssignableScope } from '../azure/scope.js';
import type { Emulator } from './core.js';
import { mintAccessToken, APP_TOKEN_EXPIRES_IN, USER_TOKEN_EXPIRES_IN, assignedAppRoles, directGroups, grantableScopes } from './entra/issue.js';
import { jsonObject, sendEmpty, sendJson, type Exchange } from './exchange.js';
import { FaultInputSchema } from './faults.js';
import { AZURE_CLI_APP_ID, TOKEN_EXCHANGE_AUDIENCE, directoryRoleId } from './first-party.js';
import { appRoleAssignmentJson, applicationJson, groupJson, permissionGrantJson, servicePrincipalJson, userJson } from './graph/shapes.js';
import { clusterByName, mintServiceAccountToken, serviceAccountIssuer } from './k8s.js';
import { PermissionBlockSchema, principalTypeOf, type Application, type FederatedCredential, type ServicePrincipal, type Tenant } from './model.js';
import { newAppRoleAssignment, newApplication, newPasswordCredential, newServicePrincipal } from './objects.js';
import { roleDefinition } from './arm/rbac.js';
import { firstPartyServicePrincipals, hashSecret, identityResourceId, newCluster, newGuid, newOpaqueId, newSigningKey, newTenant, seededState, keysOf, tenantDomainFor, DEFAULT_SEED } from './state.js';

/**
 * The `/_emulator` admin API (loopback only, no authentication): seeding, keys, faults, counters,
 * clock, reset. Every body is JSON; errors are `{"error":{"code","message"}}`.
 */

export interface AdminContext {
  readonly em: Emulator;
  /** The endpoints document (`GET /_emulator/endpoints`). */
  readonly endpoints: () => Record<string, unknown>;
}

const guid = z.guid();

/** A refusal: the route dispatcher answers it as `{"error":{"code","message"}}` with `status`. */
class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (message: string): AdminError => new AdminError(400, 'invalid_request', message);
const notFound = (message: string): AdminError => new AdminError(404, 'not_found', message);
const conflict = (message: string): AdminError => new AdminError(409, 'conflict', message);

function fail(ex: Exchange, status: number, code: string, message: string): void {
  sendJson(ex.res, status, { error: { code, message } });
}

/** The request body checked against `schema` (an empty body counts as `{}`). */
function body<T>(ex: Exchange, schema: z.ZodType<T>): T {
  const raw = ex.body.length === 0 ? {} : jsonObject(ex);
  if (raw === null) throw new AdminError(400, 'invalid_json', 'the request body must be a JSON object');
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(`${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** The tenant named in a body, or the default tenant when none is. */
function tenantOf(ctx: AdminContext, id: string | undefined): Tenant {
  const t = ctx.em.directory.tenant(id ?? ctx.em.state.defaultTenantId);
  if (t === undefined) throw new AdminError(404, 'tenant_not_found', `no tenant '${id ?? ''}'`);
  return t;
}

/** A service principal named by object ID or, failing that, by app ID. */
function servicePrincipalOf(ctx: AdminContext, tenantId: string, id: string | undefined, appId: string | undefined): ServicePrincipal | undefined {
  const d = ctx.em.directory;
  return id !== undefined ? d.servicePrincipal(tenantId, id) : appId !== undefined ? d.servicePrincipalByAppId(tenantId, appId) : undefined;
}

const TenantBody = z.strictObject({ id: guid.optional(), displayName: z.string().optional(), domain: z.string().optional() });
const SubscriptionBody = z.strictObject({ id: guid.optional(), tenantId: guid.optional(), displayName: z.string().optional() });
const UserBody = z.strictObject({
  tenantId: guid.optional(),
  id: guid.optional(),
  userPrincipalName: z.string().min(3),
  password: z.string().min(1),
  displayName: z.string().optional(),
  givenName: z.string().optional(),
  surname: z.string().optional(),
  mail: z.string().optional(),
  directoryRoles: z.array(z.string()).optional(),
  accountEnabled: z.boolean().optional(),
});
const GroupBody = z.strictObject({ tenantId: guid.optional(), id: guid.optional(), displayName: z.string().min(1), description: z.string().optional(), members: z.array(guid).optional() });
const MemberBody = z.strictObject({ id: guid.optional(), ids: z.array(guid).optional() });
const FicInput = z.strictObject({ name: z.string().min(1), issuer: z.string().min(1), subject: z.string().min(1), audiences: z.array(z.string()).optional(), description: z.string().optional() });
const federatedCredentials = (inputs: ReadonlyArray<z.infer<typeof FicInput>> | undefined): FederatedCredential[] =>
  (inputs ?? []).map((f) => ({ id: newGuid(), name: f.name, issuer: f.issuer, subject: f.subject, audiences: f.audiences ?? [TOKEN_EXCHANGE_AUDIENCE], description: f.description ?? null }));
const ScopeInput = z.strictObject({ value: z.string().min(1), id: guid.optional(), type: z.enum(['User', 'Admin']).optional(), isEnabled: z.boolean().optional(), displayName: z.string().optional(), description: z.string().optional() });
const AppRoleInput = z.strictObject({ value: z.string().min(1), id: guid.optional(), allowedMemberTypes: z.array(z.enum(['User', 'Application'])).optional(), isEnabled: z.boolean().optional(), displayName: z.string().optional(), description: z.string().optional() });
const ApplicationBody = z.strictObject({
  tenantId: guid.optional(),
  id: guid.optional(),
  appId: guid.optional(),
  displayName: z.string().min(1),
  identifierUris: z.array(z.string()).optional(),
  requestedAccessTokenVersion: z.number().int().nullable().optional(),
  scopes: z.array(ScopeInput).optional(),
  appRoles: z.array(AppRoleInput).optional(),
  preAuthorizedApplications: z.array(z.strictObject({ appId: z.string(), delegatedPermissionIds: z.array(z.string()) })).optional(),
  isFallbackPublicClient: z.boolean().optional(),
  secret: z.string().min(1).optional(),
  createServicePrincipal: z.boolean().optional(),
  servicePrincipalId: guid.optional(),
  federatedIdentityCredentials: z.array(FicInput).optional(),
});
const ServicePrincipalBody = z.strictObject({ tenantId: guid.optional(), appId: guid, id: guid.optional(), displayName: z.string().optional() });
const ManagedIdentityBody = z.strictObject({
  tenantId: guid.optional(),
  subscriptionId: guid.optional(),
  resourceGroup: z.string().min(1).optional(),
  name: z.string().min(1),
  location: z.string().optional(),
  clientId: guid.optional(),
  principalId: guid.optional(),
  federatedIdentityCredentials: z.array(FicInput).optional(),
});
const ClusterBody = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/),
  subscriptionId: guid.optional(),
  resourceGroup: z.string().min(1).optional(),
  location: z.string().optional(),
  tenantId: guid.optional(),
  principalId: guid.optional(),
  clientId: guid.optional(),
  default: z.boolean().optional(),
});
const RoleAssignmentBody = z.strictObject({
  scope: z.string().min(1),
  roleDefinitionId: z.string().optional(),
  roleName: z.string().optional(),
  principalId: guid,
  principalType: z.enum(['User', 'Group', 'ServicePrincipal']).optional(),
  name: guid.optional(),
  condition: z.string().optional(),
  description: z.string().optional(),
});
const AppRoleAssignmentBody = z.strictObject({
  tenantId: guid.optional(),
  principalId: guid,
  resourceId: guid.optional(),
  resourceAppId: guid.optional(),
  appRoleId: guid.optional(),
  appRoleValue: z.string().optional(),
});
const GrantBody = z.strictObject({
  tenantId: guid.optional(),
  clientId: guid.optional(),
  clientAppId: guid.optional(),
  resourceId: guid.optional(),
  resourceAppId: guid.optional(),
  scope: z.string().min(1),
  consentType: z.enum(['AllPrincipals', 'Principal']).optional(),
  principalId: guid.optional(),
});
const DenyBody = z.strictObject({
  id: guid.optional(),
  denyAssignmentName: z.string().min(1),
  description: z.string().optional(),
  scope: z.string().min(1),
  permissions: z.array(PermissionBlockSchema.partial()).min(1),
  principals: z.array(z.strictObject({ id: guid, type: z.string() })).min(1),
  excludePrincipals: z.array(z.strictObject({ id: guid, type: z.string() })).optional(),
  doNotApplyToChildScopes: z.boolean().optional(),
  isSystemProtected: z.boolean().optional(),
});
const RotateBody = z.strictObject({ tenantId: guid.optional(), retireOldest: z.boolean().optional() });
const ClockBody = z.strictObject({ advanceSeconds: z.number().finite().optional(), set: z.union([z.string(), z.number()]).optional() });
const SettingsBody = z.strictObject({ armPageSize: z.number().int().min(1).optional(), graphPageSize: z.number().int().min(1).optional() });
const Listener = z.enum(['https', 'http']).optional();
const FederatedTokenBody = z.strictObject({ listener: Listener, cluster: z.string().optional(), subject: z.string().min(1), audience: z.string().optional(), expiresInSeconds: z.number().int().min(1).max(86_400 * 2).optional() });
const TokenBody = z.strictObject({ listener: Listener, tenantId: guid.optional(), principal: z.string().min(1), client: z.string().optional(), scope: z.string().min(1) });

type Handler = (ctx: AdminContext, ex: Exchange, params: string[]) => void | Promise<void>;

interface AdminRoute {
  readonly method: string;
  readonly pattern: RegExp;
  readonly name: string;
  readonly handler: Handler;
}

function uniqueUpn(ctx: AdminContext, tenantId: string, upn: string): boolean {
  return !ctx.em.state.users.some((u) => u.tenantId === tenantId && u.userPrincipalName.toLowerCase() === upn.toLowerCase());
}

function idTaken(ctx: AdminContext, id: string): boolean {
  const s = ctx.em.state;
  return s.users.some((u) => u.id === id) || s.groups.some((g) => g.id === id) || s.servicePrincipals.some((p) => p.id === id) || s.applications.some((a) => a.id === id);
}

const ROUTES: AdminRoute[] = [
  { method: 'GET', pattern: /^\/endpoints$/, name: '/_emulator/endpoints', handler: (ctx, ex) => sendJson(ex.res, 200, ctx.endpoints()) },
  {
    method: 'GET',
    pattern: /^\/state$/,
    name: '/_emulator/state',
    handler: (ctx, ex) => {
      const s = ctx.em.state;
      sendJson(ex.res, 200, {
        defaultTenantId: s.defaultTenantId,
        now: new Date(ctx.em.now()).toISOString(),
        settings: s.settings,
        tenants: s.tenants.map((t) => ({ id: t.id, displayName: t.displayName, domain: t.domain, signingKeys: t.signingKeys.map((k) => ({ kid: k.kid, active: k.active, createdAt: k.createdAt })) })),
        subscriptions: s.subscriptions,
        users: s.users.map((u) => ({ ...userJson(u), tenantId: u.tenantId, directoryRoles: u.directoryRoles })),
        groups: s.groups.map((g) => ({ id: g.id, tenantId: g.tenantId, displayName: g.displayName, members: g.members })),
        applications: s.applications.map((a) => ({ id: a.id, appId: a.appId, tenantId: a.tenantId, displayName: a.displayName, identifierUris: a.identifierUris })),
        servicePrincipals: s.servicePrincipals.map((p) => ({ id: p.id, appId: p.appId, tenantId: p.tenantId, displayName: p.displayName, servicePrincipalType: p.servicePrincipalType })),
        managedIdentities: s.managedIdentities.map((m) => ({ ...m, resourceId: identityResourceId(m) })),
        clusters: s.clusters.map((c) => ({ name: c.name, subscriptionId: c.subscriptionId, resourceGroup: c.resourceGroup, tenantId: c.tenantId, principalId: c.principalId, clientId: c.clientId, isDefault: c.isDefault })),
        roleAssignments: s.roleAssignments,
        customRoles: s.customRoles,
        denyAssignments: s.denyAssignments,
        appRoleAssignments: s.appRoleAssignments,
        oauth2PermissionGrants: s.oauth2PermissionGrants,
      });
    },
  },
  {
    method: 'POST',
    pattern: /^\/reset$/,
    name: '/_emulator/reset',
    handler: async (ctx, ex) => {
      const s = ctx.em.state;
      const next = await seededState({ ca: s.ca, server: s.server, refreshTokenKey: s.refreshTokenKey }, s.defaultTenantId, ctx.em.now() - s.clockOffsetMs, keysOf(s));
      ctx.em.state = next;
      ctx.em.faults.clear();
      ctx.em.counters.reset();
      ctx.em.changed();
      sendJson(ex.res, 200, { reset: true });
    },
  },
  {
    method: 'GET',
    pattern: /^\/clock$/,
    name: '/_emulator/clock',
    handler: (ctx, ex) => sendJson(ex.res, 200, { now: new Date(ctx.em.now()).toISOString(), epochSeconds: ctx.em.nowSeconds(), offsetSeconds: ctx.em.state.clockOffsetMs / 1000 }),
  },
  {
    method: 'POST',
    pattern: /^\/clock$/,
    name: '/_emulator/clock',
    handler: (ctx, ex) => {
      const b = body(ex, ClockBody);
      if (b.set !== undefined) {
        const ms = typeof b.set === 'number' ? b.set * 1000 : Date.parse(b.set);
        if (!Number.isFinite(ms)) throw invalid('set: an ISO date-time or epoch seconds');
        ctx.em.setNow(ms);
      } else if (b.advanceSeconds !== undefined) {
        ctx.em.setNow(ctx.em.now() + b.advanceSeconds * 1000);
      } else {
        throw invalid('give advanceSeconds or set');
      }
      sendJson(ex.res, 200, { now: new Date(ctx.em.now()).toISOString(), epochSeconds: ctx.em.nowSeconds(), offsetSeconds: ctx.em.state.clockOffsetMs / 1000 });
    },
  },
  {
    method: 'POST',
    pattern: /^\/keys\/rotate$/,
    name: '/_emulator/keys/rotate',
    handler: async (ctx, ex) => {
      const b = body(ex, RotateBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const key = await newSigningKey(ctx.em.now(), true);
      for (const k of tenant.signingKeys) k.active = false;
      tenant.signingKeys.push(key);
      const retired = b.retireOldest === true && tenant.signingKeys.length > 1 ? tenant.signingKeys.shift() : undefined;
      ctx.em.changed();
      sendJson(ex.res, 200, { tenantId: tenant.id, activeKid: key.kid, retiredKid: retired?.kid ?? null, kids: tenant.signingKeys.map((k) => k.kid) });
    },
  },
  { method: 'GET', pattern: /^\/faults$/, name: '/_emulator/faults', handler: (ctx, ex) => sendJson(ex.res, 200, { value: ctx.em.faults.all() }) },
  {
    method: 'POST',
    pattern: /^\/faults$/,
    name: '/_emulator/faults',
    handler: (ctx, ex) => {
      const b = body(ex, FaultInputSchema);
      if (b.status === undefined && b.drop !== true && b.latencyMs === undefined) throw invalid('a fault needs status, drop or latencyMs');
      sendJson(ex.res, 201, ctx.em.faults.add(b));
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/faults$/,
    name: '/_emulator/faults',
    handler: (ctx, ex) => {
      ctx.em.faults.clear();
      sendEmpty(ex.res, 204);
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/faults\/(\d+)$/,
    name: '/_emulator/faults/{id}',
    handler: (ctx, ex, [id]) => {
      if (!ctx.em.faults.remove(Number(id))) throw notFound(`no fault ${id ?? ''}`);
      sendEmpty(ex.res, 204);
    },
  },
  { method: 'GET', pattern: /^\/counters$/, name: '/_emulator/counters', handler: (ctx, ex) => sendJson(ex.res, 200, ctx.em.counters.snapshot()) },
  {
    method: 'DELETE',
    pattern: /^\/counters$/,
    name: '/_emulator/counters',
    handler: (ctx, ex) => {
      ctx.em.counters.reset();
      sendEmpty(ex.res, 204);
    },
  },
  {
    method: 'PUT',
    pattern: /^\/settings$/,
    name: '/_emulator/settings',
    handler: (ctx, ex) => {
      const b = body(ex, SettingsBody);
      Object.assign(ctx.em.state.settings, b);
      ctx.em.changed();
      sendJson(ex.res, 200, ctx.em.state.settings);
    },
  },
  {
    method: 'POST',
    pattern: /^\/tenants$/,
    name: '/_emulator/tenants',
    handler: async (ctx, ex) => {
      const b = body(ex, TenantBody);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (ctx.em.directory.tenant(id)) throw conflict(`tenant ${id} exists`);
      const tenant = await newTenant(id, b.displayName ?? 'Emulator Tenant', b.domain ?? tenantDomainFor(id), ctx.em.now());
      ctx.em.state.tenants.push(tenant);
      ctx.em.state.servicePrincipals.push(...firstPartyServicePrincipals(id, ctx.em.now()));
      ctx.em.changed();
      sendJson(ex.res, 201, { id, displayName: tenant.displayName, domain: tenant.domain });
    },
  },
  {
    method: 'POST',
    pattern: /^\/subscriptions$/,
    name: '/_emulator/subscriptions',
    handler: (ctx, ex) => {
      const b = body(ex, SubscriptionBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (ctx.em.state.subscriptions.some((s) => s.id === id)) throw conflict(`subscription ${id} exists`);
      const sub = { id, tenantId: tenant.id, displayName: b.displayName ?? `Subscription ${id.slice(0, 8)}` };
      ctx.em.state.subscriptions.push(sub);
      ctx.em.changed();
      sendJson(ex.res, 201, sub);
    },
  },
  {
    method: 'POST',
    pattern: /^\/users$/,
    name: '/_emulator/users',
    handler: (ctx, ex) => {
      const b = body(ex, UserBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const upn = b.userPrincipalName.includes('@') ? b.userPrincipalName : `${b.userPrincipalName}@${tenant.domain}`;
      if (!uniqueUpn(ctx, tenant.id, upn)) throw conflict(`user ${upn} exists`);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (idTaken(ctx, id)) throw conflict(`object ${id} exists`);
      const roles: string[] = [];
      for (const r of b.directoryRoles ?? []) {
        const rid = directoryRoleId(r);
        if (rid === undefined) throw invalid(`unknown directory role '${r}'`);
        roles.push(rid);
      }
      const user = {
        id,
        tenantId: tenant.id,
        userPrincipalName: upn,
        displayName: b.displayName ?? upn.split('@')[0] ?? upn,
        givenName: b.givenName ?? null,
        surname: b.surname ?? null,
        mail: b.mail ?? null,
        passwordHash: hashSecret(b.password),
        directoryRoles: roles,
        accountEnabled: b.accountEnabled ?? true,
        createdDateTime: new Date(ctx.em.now()).toISOString(),
      };
      ctx.em.state.users.push(user);
      ctx.em.changed();
      sendJson(ex.res, 201, { ...userJson(user), tenantId: tenant.id, directoryRoles: roles });
    },
  },
  {
    method: 'POST',
    pattern: /^\/groups$/,
    name: '/_emulator/groups',
    handler: (ctx, ex) => {
      const b = body(ex, GroupBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (idTaken(ctx, id)) throw conflict(`object ${id} exists`);
      const members = (b.members ?? []).map((m) => m.toLowerCase());
      const group = {
        id,
        tenantId: tenant.id,
        displayName: b.displayName,
        description: b.description ?? null,
        mailNickname: b.displayName.replace(/[^A-Za-z0-9]/g, '').slice(0, 64) || 'group',
        securityEnabled: true,
        members,
        createdDateTime: new Date(ctx.em.now()).toISOString(),
      };
      ctx.em.state.groups.push(group);
      ctx.em.changed();
      sendJson(ex.res, 201, { ...groupJson(group), members });
    },
  },
  {
    method: 'POST',
    pattern: /^\/groups\/([^/]+)\/members$/,
    name: '/_emulator/groups/{id}/members',
    handler: (ctx, ex, [groupId]) => {
      const b = body(ex, MemberBody);
      const group = ctx.em.state.groups.find((g) => g.id === (groupId ?? '').toLowerCase());
      if (group === undefined) throw notFound(`no group ${groupId ?? ''}`);
      for (const m of [...(b.ids ?? []), ...(b.id === undefined ? [] : [b.id])]) {
        const id = m.toLowerCase();
        if (!group.members.includes(id)) group.members.push(id);
      }
      ctx.em.changed();
      sendJson(ex.res, 200, { id: group.id, members: group.members });
    },
  },
  {
    method: 'POST',
    pattern: /^\/applications$/,
    name: '/_emulator/applications',
    handler: (ctx, ex) => {
      const b = body(ex, ApplicationBody);
      const tenant = tenantOf(ctx, b.tenantId);
      if (b.appId !== undefined && ctx.em.state.applications.some((a) => a.tenantId === tenant.id && a.appId === b.appId?.toLowerCase())) throw conflict(`application with appId ${b.appId} exists`);
      if (b.id !== undefined && idTaken(ctx, b.id.toLowerCase())) throw conflict(`object ${b.id} exists`);
      const app: Application = newApplication(ctx.em, { tenantId: tenant.id, id: b.id, appId: b.appId, displayName: b.displayName });
      app.identifierUris = b.identifierUris ?? [];
      app.api.requestedAccessTokenVersion = b.requestedAccessTokenVersion ?? null;
      app.api.oauth2PermissionScopes = (b.scopes ?? []).map((s) => ({
        id: s.id?.toLowerCase() ?? newGuid(),
        value: s.value,
        type: s.type ?? 'Admin',
        isEnabled: s.isEnabled ?? true,
        adminConsentDisplayName: s.displayName ?? s.value,
        adminConsentDescription: s.description ?? s.value,
        userConsentDisplayName: null,
        userConsentDescription: null,
      }));
      app.appRoles = (b.appRoles ?? []).map((r) => ({
        id: r.id?.toLowerCase() ?? newGuid(),
        value: r.value,
        displayName: r.displayName ?? r.value,
        description: r.description ?? r.value,
        isEnabled: r.isEnabled ?? true,
        allowedMemberTypes: r.allowedMemberTypes ?? ['Application'],
        origin: 'Application',
      }));
      app.api.preAuthorizedApplications = (b.preAuthorizedApplications ?? []).map((p) => ({ appId: p.appId.toLowerCase(), delegatedPermissionIds: p.delegatedPermissionIds.map((d) => d.toLowerCase()) }));
      app.isFallbackPublicClient = b.isFallbackPublicClient ?? null;
      app.federatedIdentityCredentials = federatedCredentials(b.federatedIdentityCredentials);
      let secretText: string | undefined;
      if (b.secret !== undefined) {
        const pc = newPasswordCredential(ctx.em, 'seeded', undefined, b.secret);
        app.passwordCredentials.push(pc.credential);
        secretText = pc.secretText;
      }
      ctx.em.state.applications.push(app);
      let sp;
      if (b.createServicePrincipal !== false) {
        sp = newServicePrincipal(ctx.em, tenant.id, app.appId, app.displayName, b.servicePrincipalId);
        ctx.em.state.servicePrincipals.push(sp);
      }
      ctx.em.changed();
      sendJson(ex.res, 201, { application: applicationJson(ctx.em, app), servicePrincipal: sp === undefined ? null : servicePrincipalJson(ctx.em, sp), secret: secretText ?? null });
    },
  },
  {
    method: 'POST',
    pattern: /^\/service-principals$/,
    name: '/_emulator/service-principals',
    handler: (ctx, ex) => {
      const b = body(ex, ServicePrincipalBody);
      const tenant = tenantOf(ctx, b.tenantId);
      if (ctx.em.directory.servicePrincipalByAppId(tenant.id, b.appId)) throw conflict(`a service principal for ${b.appId} exists`);
      const app = ctx.em.state.applications.find((a) => a.appId === b.appId.toLowerCase());
      const sp = newServicePrincipal(ctx.em, tenant.id, b.appId, b.displayName ?? app?.displayName ?? b.appId, b.id);
      if (app !== undefined && app.tenantId !== tenant.id) sp.appOwnerOrganizationId = app.tenantId;
      ctx.em.state.servicePrincipals.push(sp);
      ctx.em.changed();
      sendJson(ex.res, 201, servicePrincipalJson(ctx.em, sp));
    },
  },
  {
    method: 'POST',
    pattern: /^\/managed-identities$/,
    name: '/_emulator/managed-identities',
    handler: (ctx, ex) => {
      const b = body(ex, ManagedIdentityBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const subscriptionId = b.subscriptionId?.toLowerCase() ?? ctx.em.state.subscriptions.find((s) => s.tenantId === tenant.id)?.id;
      if (subscriptionId === undefined) throw invalid('no subscription in this tenant; give subscriptionId');
      const principalId = b.principalId?.toLowerCase() ?? newGuid();
      const clientId = b.clientId?.toLowerCase() ?? newGuid();
      if (idTaken(ctx, principalId)) throw conflict(`object ${principalId} exists`);
      if (ctx.em.state.servicePrincipals.some((p) => p.tenantId === tenant.id && p.appId === clientId)) throw conflict(`client ID ${clientId} is in use`);
      const mi = {
        principalId,
        tenantId: tenant.id,
        clientId,
        name: b.name,
        subscriptionId,
        resourceGroup: b.resourceGroup ?? DEFAULT_SEED.clusterResourceGroup,
        location: b.location ?? 'eastus',
        federatedIdentityCredentials: federatedCredentials(b.federatedIdentityCredentials),
      };
      const sp = newServicePrincipal(ctx.em, tenant.id, clientId, b.name, principalId);
      sp.servicePrincipalType = 'ManagedIdentity';
      sp.alternativeNames = ['isExplicit=True', identityResourceId(mi)];
      sp.tags = [];
      ctx.em.state.managedIdentities.push(mi);
      ctx.em.state.servicePrincipals.push(sp);
      ctx.em.changed();
      sendJson(ex.res, 201, { ...mi, resourceId: identityResourceId(mi) });
    },
  },
  {
    method: 'POST',
    pattern: /^\/clusters$/,
    name: '/_emulator/clusters',
    handler: async (ctx, ex) => {
      const b = body(ex, ClusterBody);
      const tenant = tenantOf(ctx, b.tenantId);
      if (clusterByName(ctx.em, b.name) !== undefined) throw conflict(`cluster ${b.name} exists`);
      const subscriptionId = b.subscriptionId?.toLowerCase() ?? ctx.em.state.subscriptions.find((s) => s.tenantId === tenant.id)?.id;
      if (subscriptionId === undefined) throw invalid('no subscription in this tenant; give subscriptionId');
      const principalId = b.principalId?.toLowerCase() ?? newGuid();
      if (idTaken(ctx, principalId)) throw conflict(`object ${principalId} exists`);
      const { cluster, sp } = await newCluster(
        {
          name: b.name,
          subscriptionId,
          resourceGroup: b.resourceGroup ?? DEFAULT_SEED.clusterResourceGroup,
          location: b.location ?? 'eastus',
          tenantId: tenant.id,
          principalId,
          clientId: b.clientId?.toLowerCase() ?? newGuid(),
          isDefault: b.default === true,
        },
        ctx.em.now(),
      );
      if (cluster.isDefault) for (const c of ctx.em.state.clusters) c.isDefault = false;
      ctx.em.state.clusters.push(cluster);
      ctx.em.state.servicePrincipals.push(sp);
      ctx.em.changed();
      sendJson(ex.res, 201, {
        name: cluster.name,
        id: sp.alternativeNames[1],
        subscriptionId,
        resourceGroup: cluster.resourceGroup,
        tenantId: tenant.id,
        principalId,
        clientId: cluster.clientId,
        isDefault: cluster.isDefault,
        serviceAccountIssuer: serviceAccountIssuer(ex.base, cluster),
      });
    },
  },
  {
    method: 'POST',
    pattern: /^\/role-assignments$/,
    name: '/_emulator/role-assignments',
    handler: (ctx, ex) => {
      const b = body(ex, RoleAssignmentBody);
      if (!isAssignableScope(b.scope)) throw invalid(`scope '${b.scope}' is not an ARM scope`);
      const def = b.roleName !== undefined ? (builtInRoleByName(b.roleName)?.id ?? ctx.em.state.customRoles.find((r) => r.roleName.toLowerCase() === b.roleName?.toLowerCase())?.id) : b.roleDefinitionId !== undefined ? roleDefinition(ctx.em, b.roleDefinitionId)?.guid : undefined;
      if (def === undefined) throw invalid('roleName or roleDefinitionId must name a known role');
      const sub = ctx.em.state.subscriptions.find((s) => b.scope.toLowerCase().startsWith(`/subscriptions/${s.id}`));
      const obj = ctx.em.directory.object(sub?.tenantId ?? ctx.em.state.defaultTenantId, b.principalId);
      const principalType = b.principalType ?? (obj === undefined ? undefined : principalTypeOf(obj));
      if (principalType === undefined) throw invalid(`principal ${b.principalId} not found; give principalType to assign anyway`);
      const name = b.name?.toLowerCase() ?? newGuid();
      if (ctx.em.state.roleAssignments.some((a) => a.name === name)) throw conflict(`role assignment ${name} exists`);
      const now = new Date(ctx.em.now()).toISOString();
      const a = {
        name,
        scope: b.scope,
        roleDefinitionGuid: roleDefinitionGuid(def),
        principalId: b.principalId.toLowerCase(),
        principalType,
        condition: b.condition ?? null,
        conditionVersion: b.condition === undefined ? null : '2.0',
        description: b.description ?? null,
        createdOn: now,
        updatedOn: now,
        createdBy: null,
        updatedBy: null,
      };
      ctx.em.state.roleAssignments.push(a);
      ctx.em.changed();
      sendJson(ex.res, 201, a);
    },
  },
  {
    method: 'POST',
    pattern: /^\/app-role-assignments$/,
    name: '/_emulator/app-role-assignments',
    handler: (ctx, ex) => {
      const b = body(ex, AppRoleAssignmentBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const d = ctx.em.directory;
      const resource = servicePrincipalOf(ctx, tenant.id, b.resourceId, b.resourceAppId);
      if (resource === undefined) throw notFound('resourceId or resourceAppId must name a service principal in the tenant');
      const role = d.exposed(resource).appRoles.find((r) => (b.appRoleId !== undefined ? r.id === b.appRoleId.toLowerCase() : r.value === b.appRoleValue));
      if (role === undefined) throw invalid('appRoleId or appRoleValue must name an app role of the resource');
      const obj = d.object(tenant.id, b.principalId);
      if (obj === undefined) throw notFound(`principal ${b.principalId} not found`);
      const a = newAppRoleAssignment(ctx.em, tenant.id, b.principalId, principalTypeOf(obj), resource.id, role.id);
      ctx.em.state.appRoleAssignments.push(a);
      ctx.em.changed();
      sendJson(ex.res, 201, appRoleAssignmentJson(ctx.em, a));
    },
  },
  {
    method: 'POST',
    pattern: /^\/oauth2-permission-grants$/,
    name: '/_emulator/oauth2-permission-grants',
    handler: (ctx, ex) => {
      const b = body(ex, GrantBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const client = servicePrincipalOf(ctx, tenant.id, b.clientId, b.clientAppId);
      const resource = servicePrincipalOf(ctx, tenant.id, b.resourceId, b.resourceAppId);
      if (client === undefined || resource === undefined) throw notFound('client and resource must name service principals in the tenant');
      const consentType = b.consentType ?? (b.principalId === undefined ? 'AllPrincipals' : 'Principal');
      const g = { id: newOpaqueId(), tenantId: tenant.id, clientId: client.id, consentType, principalId: consentType === 'Principal' ? (b.principalId?.toLowerCase() ?? null) : null, resourceId: resource.id, scope: b.scope };
      ctx.em.state.oauth2PermissionGrants.push(g);
      ctx.em.changed();
      sendJson(ex.res, 201, permissionGrantJson(g));
    },
  },
  {
    method: 'POST',
    pattern: /^\/deny-assignments$/,
    name: '/_emulator/deny-assignments',
    handler: (ctx, ex) => {
      const b = body(ex, DenyBody);
      if (!isAssignableScope(b.scope)) throw invalid(`scope '${b.scope}' is not an ARM scope`);
      const d = {
        id: b.id?.toLowerCase() ?? newGuid(),
        denyAssignmentName: b.denyAssignmentName,
        description: b.description ?? null,
        scope: b.scope,
        permissions: b.permissions.map((p) => ({ actions: p.actions ?? [], notActions: p.notActions ?? [], dataActions: p.dataActions ?? [], notDataActions: p.notDataActions ?? [] })),
        principals: b.principals.map((p) => ({ id: p.id.toLowerCase(), type: p.type })),
        excludePrincipals: (b.excludePrincipals ?? []).map((p) => ({ id: p.id.toLowerCase(), type: p.type })),
        doNotApplyToChildScopes: b.doNotApplyToChildScopes ?? false,
        isSystemProtected: b.isSystemProtected ?? true,
      };
      ctx.em.state.denyAssignments.push(d);
      ctx.em.changed();
      sendJson(ex.res, 201, d);
    },
  },
  {
    method: 'POST',
    pattern: /^\/federated-token$/,
    name: '/_emulator/federated-token',
    handler: (ctx, ex) => {
      const b = body(ex, FederatedTokenBody);
      const cluster = clusterByName(ctx.em, b.cluster);
      if (cluster === undefined) throw notFound(`no cluster '${b.cluster ?? '(default)'}'`);
      const base = issuerBase(ctx, ex, b.listener);
      const t = mintServiceAccountToken(ctx.em, { cluster, base, subject: b.subject, audience: b.audience ?? TOKEN_EXCHANGE_AUDIENCE, expiresInSeconds: b.expiresInSeconds ?? 3600 });
      sendJson(ex.res, 200, { token: t.token, issuer: serviceAccountIssuer(base, cluster), expiresOn: t.expiresOn });
    },
  },
  {
    method: 'POST',
    pattern: /^\/tokens$/,
    name: '/_emulator/tokens',
    handler: (ctx, ex) => issueTestToken(ctx, ex),
  },
];

/** The base URL a minted token's issuer names: the listener asked for, else the one the admin request came in on. */
function issuerBase(ctx: AdminContext, ex: Exchange, listener: 'https' | 'http' | undefined): string {
  return listener === undefined ? ex.base : ctx.em.bases[listener];
}

/**
 * `POST /_emulator/tokens`: a token for a seeded principal without its credentials, by the same
 * rules as the token endpoint (version, scp, roles). A user is named by UPN or object ID (client:
 * the Azure CLI unless given); an app or managed identity by its client ID or service principal ID.
 */
function issueTestToken(ctx: AdminContext, ex: Exchange): void {
  const b = body(ex, TokenBody);
  const tenant = tenantOf(ctx, b.tenantId);
  const d = ctx.em.directory;
  const base = issuerBase(ctx, ex, b.listener);
  const scope = b.scope.trim();
  const resourceName = scope.endsWith('/.default') ? scope.slice(0, -'/.default'.length) : scope.slice(0, Math.max(0, scope.lastIndexOf('/')));
  const resource = d.resource(tenant.id, resourceName, ctx.em.ownUrls());
  if (resource === undefined || resource.sp === undefined) throw new AdminError(400, 'invalid_resource', `AADSTS500011: The resource principal named ${resourceName} was not found in the tenant named ${tenant.id}.`);
  const user = d.user(tenant.id, b.principal);
  if (user !== undefined) {
    const client = d.client(tenant.id, b.client ?? AZURE_CLI_APP_ID);
    if (client === undefined) throw notFound(`no client app '${b.client ?? ''}'`);
    const grantable = grantableScopes(ctx.em, tenant.id, client, resource, user);
    const roles = assignedAppRoles(ctx.em, tenant.id, [user.id, ...directGroups(ctx.em, tenant.id, user.id)], resource, 'User');
    if (grantable.length === 0 && roles.length === 0) {
      throw new AdminError(400, 'consent_required', `AADSTS65001: The user or administrator has not consented to use the application with ID '${client.appId}' named '${client.displayName}'.`);
    }
    const t = mintAccessToken(ctx.em, { tenant, base, resource, requestedResource: resourceName, client, clientAuth: client.publicClient ? 0 : 1, subject: { kind: 'user', user }, scp: grantable.map((s) => s.value), roles, expiresIn: USER_TOKEN_EXPIRES_IN });
    return sendJson(ex.res, 200, { token_type: 'Bearer', expires_in: t.expiresIn, expires_on: t.expiresOn, access_token: t.accessToken, version: t.version });
  }
  const sp = d.servicePrincipal(tenant.id, b.principal) ?? d.servicePrincipalByAppId(tenant.id, b.principal);
  const client = sp === undefined ? undefined : (d.client(tenant.id, sp.appId) ?? (sp.servicePrincipalType === 'ManagedIdentity' ? d.identityClient(sp) : undefined));
  if (sp === undefined || client === undefined) throw notFound(`no user, application or managed identity '${b.principal}' in tenant ${tenant.id}`);
  const roles = assignedAppRoles(ctx.em, tenant.id, [sp.id], resource, 'Application');
  const t = mintAccessToken(ctx.em, { tenant, base, resource, requestedResource: resourceName, client, clientAuth: sp.servicePrincipalType === 'ManagedIdentity' ? 2 : 1, subject: { kind: 'app', objectId: sp.id }, roles, expiresIn: APP_TOKEN_EXPIRES_IN });
  sendJson(ex.res, 200, { token_type: 'Bearer', expires_in: t.expiresIn, expires_on: t.expiresOn, access_token: t.accessToken, version: t.version });
}

/** Runs a handler; a refusal it throws becomes the error response. */
async function answer(ex: Exchange, handler: () => void | Promise<void>): Promise<void> {
  try {
    await handler();
  } catch (err) {
    if (!(err instanceof AdminError)) throw err;
    fail(ex, err.status, err.code, err.message);
  }
}

/** The admin route for a path under `/_emulator` (path without the prefix), for counters and dispatch. */
export function adminRoute(method: string, path: string): { name: string; run: (ctx: AdminContext, ex: Exchange) => void | Promise<void> } | undefined {
  let pathMatched = false;
  for (const r of ROUTES) {
    const m = r.pattern.exec(path);
    if (m === null) continue;
    pathMatched = true;
    if (r.method !== method) continue;
    return { name: r.name, run: (ctx, ex) => answer(ex, () => r.handler(ctx, ex, m.slice(1))) };
  }
  if (pathMatched) return { name: `/_emulator${path}`, run: (_ctx, ex) => fail(ex, 405, 'method_not_allowed', `${method} is not allowed on /_emulator${path}`) };
  return undefined;
}
