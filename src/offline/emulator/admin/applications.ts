import { z } from 'zod';
import { sendJson } from '../exchange.js';
import { appRoleAssignmentJson, applicationJson, permissionGrantJson, servicePrincipalJson } from '../graph/shapes.js';
import { principalTypeOf, type Application } from '../model.js';
import { newAppRoleAssignment, newApplication, newPasswordCredential, newServicePrincipal } from '../objects.js';
import { DEFAULT_SEED, identityResourceId, newGuid, newOpaqueId } from '../state.js';
import {
  body,
  conflict,
  FicInput,
  federatedCredentials,
  guid,
  idTaken,
  invalid,
  notFound,
  servicePrincipalOf,
  tenantOf,
  type AdminRoute,
} from './route.js';

/** Seeding identities and what they are granted in Entra ID: applications, service principals, managed identities, app role assignments, permission grants. */

const ScopeInput = z.strictObject({
  value: z.string().min(1),
  id: guid.optional(),
  type: z.enum(['User', 'Admin']).optional(),
  isEnabled: z.boolean().optional(),
  displayName: z.string().optional(),
  description: z.string().optional(),
});
const AppRoleInput = z.strictObject({
  value: z.string().min(1),
  id: guid.optional(),
  allowedMemberTypes: z.array(z.enum(['User', 'Application'])).optional(),
  isEnabled: z.boolean().optional(),
  displayName: z.string().optional(),
  description: z.string().optional(),
});
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

export const applicationRoutes: AdminRoute[] = [
  {
    method: 'POST',
    pattern: /^\/applications$/,
    name: '/_emulator/applications',
    handler: (ctx, ex) => {
      const b = body(ex, ApplicationBody);
      const tenant = tenantOf(ctx, b.tenantId);
      if (b.appId !== undefined && ctx.em.state.applications.some((a) => a.tenantId === tenant.id && a.appId === b.appId?.toLowerCase()))
        throw conflict(`application with appId ${b.appId} exists`);
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
      app.api.preAuthorizedApplications = (b.preAuthorizedApplications ?? []).map((p) => ({
        appId: p.appId.toLowerCase(),
        delegatedPermissionIds: p.delegatedPermissionIds.map((d) => d.toLowerCase()),
      }));
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
      sendJson(ex.res, 201, {
        application: applicationJson(ctx.em, app),
        servicePrincipal: sp === undefined ? null : servicePrincipalJson(ctx.em, sp),
        secret: secretText ?? null,
      });
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
      if (ctx.em.state.servicePrincipals.some((p) => p.tenantId === tenant.id && p.appId === clientId))
        throw conflict(`client ID ${clientId} is in use`);
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
    pattern: /^\/app-role-assignments$/,
    name: '/_emulator/app-role-assignments',
    handler: (ctx, ex) => {
      const b = body(ex, AppRoleAssignmentBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const d = ctx.em.directory;
      const resource = servicePrincipalOf(ctx, tenant.id, b.resourceId, b.resourceAppId);
      if (resource === undefined) throw notFound('resourceId or resourceAppId must name a service principal in the tenant');
      const role = d
        .exposed(resource)
        .appRoles.find((r) => (b.appRoleId !== undefined ? r.id === b.appRoleId.toLowerCase() : r.value === b.appRoleValue));
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
      const g = {
        id: newOpaqueId(),
        tenantId: tenant.id,
        clientId: client.id,
        consentType,
        principalId: consentType === 'Principal' ? (b.principalId?.toLowerCase() ?? null) : null,
        resourceId: resource.id,
        scope: b.scope,
      };
      ctx.em.state.oauth2PermissionGrants.push(g);
      ctx.em.changed();
      sendJson(ex.res, 201, permissionGrantJson(g));
    },
  },
];
