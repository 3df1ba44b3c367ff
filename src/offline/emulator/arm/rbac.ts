import { grantedBy } from '../../../authz/actions.js';
import { BUILT_IN_ROLES } from '../../../authz/roles.js';
import { sameScope, scopeCovers, scopeSegments } from '../../../azure/scope.js';
import { EVERYONE_PRINCIPAL_ID, roleDefinitionGuid } from '../../../contracts/azure-ids.js';
import type { Emulator } from '../core.js';
import type { DenyAssignment, Permissions, RoleAssignment } from '../model.js';

/**
 * Azure RBAC as ARM evaluates it for the emulator's own callers: role assignments of the principal
 * and its (transitive) groups at the scope or above, minus deny assignments, with the same role data
 * and action matching the sidecar uses.
 */

export interface RoleDefinitionView {
  readonly guid: string;
  readonly roleName: string;
  readonly description: string | null;
  readonly type: 'BuiltInRole' | 'CustomRole';
  readonly permissions: readonly Permissions[];
  readonly assignableScopes: readonly string[];
  readonly createdOn: string;
  readonly updatedOn: string;
  readonly createdBy: string | null;
}

const BUILT_IN_CREATED = '2015-02-02T21:55:09.8806423Z';
const BUILT_IN_UPDATED = '2024-01-01T00:00:00.0000000Z';

export function roleDefinitions(em: Emulator): RoleDefinitionView[] {
  const builtIns: RoleDefinitionView[] = BUILT_IN_ROLES.map((r) => ({
    guid: r.id,
    roleName: r.roleName,
    description: r.description,
    type: 'BuiltInRole',
    permissions: r.permissions.map((p) => ({
      actions: [...p.actions],
      notActions: [...p.notActions],
      dataActions: [...p.dataActions],
      notDataActions: [...p.notDataActions],
    })),
    assignableScopes: ['/'],
    createdOn: BUILT_IN_CREATED,
    updatedOn: BUILT_IN_UPDATED,
    createdBy: null,
  }));
  const custom: RoleDefinitionView[] = em.state.customRoles.map((r) => ({
    guid: r.id,
    roleName: r.roleName,
    description: r.description,
    type: 'CustomRole',
    permissions: r.permissions,
    assignableScopes: r.assignableScopes,
    createdOn: r.createdOn,
    updatedOn: r.updatedOn,
    createdBy: r.createdBy,
  }));
  return [...builtIns, ...custom];
}

export function roleDefinition(em: Emulator, idOrGuid: string): RoleDefinitionView | undefined {
  const guid = roleDefinitionGuid(idOrGuid);
  if (guid === undefined) return undefined;
  return roleDefinitions(em).find((r) => r.guid === guid);
}

/** True when an assignment (or definition, or deny assignment) made at `outer` applies at `inner` ("at or above"). */
export function covers(outer: string, inner: string): boolean {
  if (inner === '/' || scopeSegments(inner)?.length === 0) return outer === '/' || scopeSegments(outer)?.length === 0;
  return scopeCovers(outer, inner);
}

/** The subscription GUID of a scope, lower case; undefined for tenant-level scopes. */
export function subscriptionOf(scope: string): string | undefined {
  const segs = scopeSegments(scope);
  return segs !== null && segs[0] === 'subscriptions' ? segs[1] : undefined;
}

/** `/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}` under a subscription, the tenant-level form otherwise. */
export function roleDefinitionResourceId(scope: string, guid: string): string {
  const sub = subscriptionOf(scope);
  return sub === undefined
    ? `/providers/Microsoft.Authorization/roleDefinitions/${guid}`
    : `/subscriptions/${sub}/providers/Microsoft.Authorization/roleDefinitions/${guid}`;
}

/** True when the scope belongs to the tenant: tenant-level scopes belong to every tenant, subscription scopes to the subscription's. */
export function scopeInTenant(em: Emulator, scope: string, tenantId: string): boolean {
  const sub = subscriptionOf(scope);
  return sub === undefined || em.state.subscriptions.some((s) => s.id === sub && s.tenantId === tenantId);
}

/** The principal and every group that contains it, transitively. */
export function principalAndGroups(em: Emulator, tenantId: string, principalId: string): Set<string> {
  const ids = em.directory.transitiveGroups(tenantId, principalId);
  ids.add(principalId.toLowerCase());
  return ids;
}

export function denyAppliesTo(d: DenyAssignment, ids: ReadonlySet<string>): boolean {
  const named = d.principals.some((p) => p.id === EVERYONE_PRINCIPAL_ID || ids.has(p.id));
  return named && !d.excludePrincipals.some((p) => ids.has(p.id));
}

export function denyCoversScope(d: DenyAssignment, scope: string): boolean {
  return d.doNotApplyToChildScopes ? sameScope(d.scope, scope) : covers(d.scope, scope);
}

/** Whether `principalId` may perform the control-plane `action` at `scope` (assignments with a condition grant nothing). */
export function isPermitted(em: Emulator, tenantId: string, principalId: string, action: string, scope: string): boolean {
  const ids = principalAndGroups(em, tenantId, principalId);
  for (const d of em.state.denyAssignments) {
    if (denyAppliesTo(d, ids) && denyCoversScope(d, scope) && d.permissions.some((p) => grantedBy(p.actions, p.notActions, action))) return false;
  }
  return em.state.roleAssignments.some((a: RoleAssignment) => {
    if (!ids.has(a.principalId) || !covers(a.scope, scope) || (a.condition !== null && a.condition !== '')) return false;
    const def = roleDefinition(em, a.roleDefinitionGuid);
    return def !== undefined && def.permissions.some((p) => grantedBy(p.actions, p.notActions, action));
  });
}
