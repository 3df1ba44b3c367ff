import { z } from 'zod';
import { builtInRoleByName } from '../../../authz/roles.js';
import { isAssignableScope } from '../../../azure/scope.js';
import { roleDefinition } from '../arm/rbac.js';
import { sendJson } from '../exchange.js';
import { clusterByName, serviceAccountIssuer } from '../k8s.js';
import { PermissionBlockSchema, principalTypeOf } from '../model.js';
import { DEFAULT_SEED, newCluster, newGuid } from '../state.js';
import { body, conflict, guid, idTaken, invalid, tenantOf, type AdminRoute } from './route.js';

/** Seeding Azure Resource Manager: connected clusters, role assignments, deny assignments. */

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

export const armRoutes: AdminRoute[] = [
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
      const def =
        b.roleName !== undefined
          ? (builtInRoleByName(b.roleName)?.id ?? ctx.em.state.customRoles.find((r) => r.roleName.toLowerCase() === b.roleName?.toLowerCase())?.id)
          : b.roleDefinitionId !== undefined
            ? roleDefinition(ctx.em, b.roleDefinitionId)?.guid
            : undefined;
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
        roleDefinitionGuid: def.toLowerCase(),
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
        permissions: b.permissions.map((p) => ({
          actions: p.actions ?? [],
          notActions: p.notActions ?? [],
          dataActions: p.dataActions ?? [],
          notDataActions: p.notDataActions ?? [],
        })),
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
];
