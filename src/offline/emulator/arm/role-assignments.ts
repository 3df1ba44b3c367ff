import { sameScope } from '../../../azure/scope.js';
import { GUID, ROLE_DEFINITION_ID } from '../../../contracts/azure-ids.js';
import { jsonObject } from '../exchange.js';
import { principalTypeOf, type RoleAssignment } from '../model.js';
import type { ArmCall } from './call.js';
import { covers, principalAndGroups, roleDefinition, roleDefinitionResourceId, scopeInTenant, subscriptionOf } from './rbac.js';

/** `Microsoft.Authorization/roleAssignments` (api-version 2022-04-01 shape). */

const READ = 'Microsoft.Authorization/roleAssignments/read';

export function assignmentId(a: RoleAssignment): string {
  const prefix = a.scope === '/' ? '' : a.scope;
  return `${prefix}/providers/Microsoft.Authorization/roleAssignments/${a.name}`;
}

export function assignmentJson(a: RoleAssignment): Record<string, unknown> {
  return {
    properties: {
      roleDefinitionId: roleDefinitionResourceId(a.scope, a.roleDefinitionGuid),
      principalId: a.principalId,
      principalType: a.principalType,
      scope: a.scope,
      condition: a.condition,
      conditionVersion: a.conditionVersion,
      createdOn: a.createdOn,
      updatedOn: a.updatedOn,
      createdBy: a.createdBy,
      updatedBy: a.updatedBy,
      delegatedManagedIdentityResourceId: null,
      description: a.description,
    },
    id: assignmentId(a),
    type: 'Microsoft.Authorization/roleAssignments',
    name: a.name,
  };
}

interface Filter {
  atScope: boolean;
  assignedTo?: string;
  principalId?: string;
}

/** ARM's `$filter` grammar for role assignments; URLSearchParams already turned `+` into spaces and `%27` into quotes. */
function parseFilter(raw: string | null): Filter | string {
  const f: Filter = { atScope: false };
  if (raw === null || raw.trim() === '') return f;
  for (const term of raw.trim().split(/\s+and\s+/i)) {
    const t = term.trim();
    let m: RegExpExecArray | null;
    if (/^atScope\(\)$/i.test(t)) f.atScope = true;
    else if ((m = /^assignedTo\('([^']*)'\)$/i.exec(t)) !== null) f.assignedTo = (m[1] ?? '').toLowerCase();
    else if ((m = /^principalId\s+eq\s+'([^']*)'$/i.exec(t)) !== null) f.principalId = (m[1] ?? '').toLowerCase();
    else return raw;
  }
  return f;
}

export function listRoleAssignments(call: ArmCall, scope: string): void {
  const filter = parseFilter(call.ex.query.get('$filter'));
  if (typeof filter === 'string') {
    return call.error(
      400,
      'UnsupportedQuery',
      `The filter '${filter}' is not supported. Supported filters are either 'atScope()' or 'principalId eq '{value}' or assignedTo('{value}')'.`,
    );
  }
  if (!call.authorize(READ, scope)) return;
  const tenantId = call.caller?.tenantId ?? '';
  const principals = filter.assignedTo !== undefined ? principalAndGroups(call.em, tenantId, filter.assignedTo) : undefined;
  const items = call.em.state.roleAssignments.filter((a) => {
    const inScope = covers(a.scope, scope) || (!filter.atScope && covers(scope, a.scope));
    if (!inScope || !scopeInTenant(call.em, a.scope, tenantId)) return false;
    if (filter.principalId !== undefined && a.principalId !== filter.principalId) return false;
    if (principals !== undefined && !principals.has(a.principalId)) return false;
    return true;
  });
  call.json(200, call.page(items.map(assignmentJson)));
}

export function getRoleAssignment(call: ArmCall, scope: string, name: string): void {
  if (!call.authorize(READ, scope)) return;
  const a = call.em.state.roleAssignments.find((r) => r.name === name.toLowerCase() && sameScopeOrRoot(r.scope, scope));
  if (a === undefined) return call.error(404, 'RoleAssignmentNotFound', `The role assignment '${name}' is not found.`);
  call.json(200, assignmentJson(a));
}

function sameScopeOrRoot(a: string, b: string): boolean {
  return a === '/' || b === '/' ? a === b : sameScope(a, b);
}

type PrincipalType = RoleAssignment['principalType'];

export function putRoleAssignment(call: ArmCall, scope: string, name: string): void {
  if (!GUID.test(name))
    return call.error(400, 'InvalidRoleAssignmentId', `The role assignment ID '${name}' is not valid. The role assignment ID must be a GUID.`);
  const body = jsonObject(call.ex);
  const props = body?.['properties'];
  if (typeof props !== 'object' || props === null)
    return call.error(
      400,
      'InvalidRequestContent',
      'The request content was invalid and could not be deserialized: the properties object is missing.',
    );
  const p = props as Record<string, unknown>;
  const roleDefinitionId = p['roleDefinitionId'];
  const principalId = p['principalId'];
  if (typeof roleDefinitionId !== 'string' || typeof principalId !== 'string' || !GUID.test(principalId)) {
    return call.error(
      400,
      'InvalidRequestContent',
      'The request content was invalid and could not be deserialized: properties.roleDefinitionId and a GUID properties.principalId are required.',
    );
  }
  if (!call.authorize('Microsoft.Authorization/roleAssignments/write', scope)) return;
  const m = ROLE_DEFINITION_ID.exec(roleDefinitionId);
  if (m === null) return call.error(400, 'InvalidRoleDefinitionId', `The role definition ID '${roleDefinitionId}' is not valid.`);
  const def = roleDefinition(call.em, m[1] ?? '');
  if (def === undefined)
    return call.error(400, 'RoleDefinitionDoesNotExist', `The specified role definition with ID '${(m[1] ?? '').toLowerCase()}' does not exist.`);
  if (!def.assignableScopes.some((s) => covers(s, scope))) {
    return call.error(
      403,
      'RoleAssignmentScopeNotAssignableToRoleDefinition',
      `The role ${def.roleName} is not available for assignment at the requested scope.`,
    );
  }
  const tenantId = call.em.state.subscriptions.find((s) => s.id === subscriptionOf(scope))?.tenantId ?? call.caller?.tenantId ?? '';
  const obj = call.em.directory.object(tenantId, principalId);
  const givenType = p['principalType'];
  const actualType: PrincipalType | undefined = obj === undefined ? undefined : principalTypeOf(obj);
  if (actualType === undefined) {
    return call.error(
      400,
      'PrincipalNotFound',
      `Principal ${principalId.toLowerCase().replace(/-/g, '')} does not exist in the directory ${tenantId}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype`,
    );
  }
  if (typeof givenType === 'string' && givenType !== actualType) {
    return call.error(
      400,
      'UnmatchedPrincipalType',
      `The PrincipalId '${principalId.toLowerCase().replace(/-/g, '')}' has type '${actualType}' , which is different from specified PrincipalType '${givenType}'.`,
    );
  }
  const condition = typeof p['condition'] === 'string' ? p['condition'] : null;
  const conditionVersion = typeof p['conditionVersion'] === 'string' ? p['conditionVersion'] : condition !== null ? '2.0' : null;
  const description = typeof p['description'] === 'string' ? p['description'] : null;
  const now = new Date(call.em.now()).toISOString();
  const roleGuid = def.guid;
  const pid = principalId.toLowerCase();
  const list = call.em.state.roleAssignments;
  const existing = list.find((a) => a.name === name.toLowerCase());
  if (existing !== undefined) {
    if (!sameScopeOrRoot(existing.scope, scope) || existing.principalId !== pid || existing.roleDefinitionGuid !== roleGuid) {
      return call.error(400, 'RoleAssignmentUpdateNotPermitted', 'Tenant ID, application ID, principal ID, and scope are not allowed to be updated.');
    }
    if (existing.condition !== condition || existing.description !== description || existing.conditionVersion !== conditionVersion) {
      Object.assign(existing, { condition, conditionVersion, description, updatedOn: now, updatedBy: call.caller?.oid ?? null });
      call.em.changed();
    }
    return call.json(200, assignmentJson(existing));
  }
  const duplicate = list.find((a) => a.principalId === pid && a.roleDefinitionGuid === roleGuid && sameScopeOrRoot(a.scope, scope));
  if (duplicate !== undefined)
    return call.error(
      409,
      'RoleAssignmentExists',
      `The role assignment already exists. The ID of the existing role assignment is ${duplicate.name.replace(/-/g, '')}.`,
    );
  const created: RoleAssignment = {
    name: name.toLowerCase(),
    scope,
    roleDefinitionGuid: roleGuid,
    principalId: pid,
    principalType: actualType,
    condition,
    conditionVersion,
    description,
    createdOn: now,
    updatedOn: now,
    createdBy: call.caller?.oid ?? null,
    updatedBy: call.caller?.oid ?? null,
  };
  list.push(created);
  call.em.changed();
  call.json(201, assignmentJson(created));
}

export function deleteRoleAssignment(call: ArmCall, scope: string, name: string): void {
  if (!call.authorize('Microsoft.Authorization/roleAssignments/delete', scope)) return;
  const list = call.em.state.roleAssignments;
  const i = list.findIndex((r) => r.name === name.toLowerCase() && sameScopeOrRoot(r.scope, scope));
  if (i < 0) return call.empty(204);
  const [removed] = list.splice(i, 1);
  call.em.changed();
  call.json(200, removed === undefined ? {} : assignmentJson(removed));
}
