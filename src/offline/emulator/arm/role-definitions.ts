import { GUID } from '../../../contracts/azure-ids.js';
import { jsonObject } from '../exchange.js';
import { PermissionBlockSchema, type CustomRole } from '../model.js';
import type { ArmCall } from './call.js';
import { covers, roleDefinition, roleDefinitionResourceId, roleDefinitions, type RoleDefinitionView } from './rbac.js';
import { z } from 'zod';

/** `Microsoft.Authorization/roleDefinitions`: the built-ins with their real IDs and permissions, and custom roles. */

const READ = 'Microsoft.Authorization/roleDefinitions/read';

export function definitionJson(d: RoleDefinitionView, scope: string): Record<string, unknown> {
  return {
    properties: {
      roleName: d.roleName,
      type: d.type,
      description: d.description,
      assignableScopes: d.assignableScopes,
      permissions: d.permissions.map((p) => ({
        actions: p.actions,
        notActions: p.notActions,
        dataActions: p.dataActions,
        notDataActions: p.notDataActions,
      })),
      createdOn: d.createdOn,
      updatedOn: d.updatedOn,
      createdBy: d.createdBy,
      updatedBy: d.createdBy,
    },
    id: roleDefinitionResourceId(scope, d.guid),
    type: 'Microsoft.Authorization/roleDefinitions',
    name: d.guid,
  };
}

/** Reading role definitions at the tenant root needs only a valid token; below it, `roleDefinitions/read` at the scope. */
function mayRead(call: ArmCall, scope: string): boolean {
  return scope === '/' || call.authorize(READ, scope);
}

function visibleAt(d: RoleDefinitionView, scope: string): boolean {
  return d.type === 'BuiltInRole' || scope === '/' || d.assignableScopes.some((s) => covers(s, scope));
}

export function listRoleDefinitions(call: ArmCall, scope: string): void {
  if (!mayRead(call, scope)) return;
  const raw = call.ex.query.get('$filter');
  let pick: (d: RoleDefinitionView) => boolean = () => true;
  if (raw !== null && raw.trim() !== '') {
    const byName = /^roleName\s+eq\s+'([^']*)'$/i.exec(raw.trim());
    const byType = /^type\s+eq\s+'([^']*)'$/i.exec(raw.trim());
    if (byName) pick = (d) => d.roleName.toLowerCase() === (byName[1] ?? '').toLowerCase();
    else if (byType) pick = (d) => d.type.toLowerCase() === (byType[1] ?? '').toLowerCase();
    else if (!/^atScopeAndBelow\(\)$/i.test(raw.trim()))
      return call.error(
        400,
        'UnsupportedQuery',
        `The filter '${raw}' is not supported. Supported filters are 'roleName eq '{value}'', 'type eq '{value}'' and 'atScopeAndBelow()'.`,
      );
  }
  const items = roleDefinitions(call.em).filter((d) => visibleAt(d, scope) && pick(d));
  call.json(200, call.page(items.map((d) => definitionJson(d, scope))));
}

export function getRoleDefinition(call: ArmCall, scope: string, id: string): void {
  if (!mayRead(call, scope)) return;
  const d = GUID.test(id) ? roleDefinition(call.em, id) : undefined;
  if (d === undefined || !visibleAt(d, scope))
    return call.error(404, 'RoleDefinitionDoesNotExist', `The specified role definition with ID '${id}' does not exist.`);
  call.json(200, definitionJson(d, scope));
}

const CustomRoleBody = z.object({
  properties: z.object({
    roleName: z.string().min(1),
    description: z.string().nullable().optional(),
    type: z.string().optional(),
    permissions: z.array(PermissionBlockSchema.partial()).min(1),
    assignableScopes: z.array(z.string()).min(1),
  }),
});

export function putRoleDefinition(call: ArmCall, scope: string, id: string): void {
  if (!GUID.test(id)) return call.error(400, 'InvalidRoleDefinitionId', `The role definition ID '${id}' is not valid.`);
  const parsed = CustomRoleBody.safeParse(jsonObject(call.ex));
  if (!parsed.success)
    return call.error(
      400,
      'InvalidRequestContent',
      `The request content was invalid and could not be deserialized: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`.trim(),
    );
  if (!call.authorize('Microsoft.Authorization/roleDefinitions/write', scope)) return;
  const guid = id.toLowerCase();
  const existingDef = roleDefinition(call.em, guid);
  if (existingDef?.type === 'BuiltInRole') return call.error(400, 'RoleDefinitionCannotBeModified', 'Built-in role definitions cannot be modified.');
  const p = parsed.data.properties;
  const clash = call.em.state.customRoles.find((r) => r.id !== guid && r.roleName.toLowerCase() === p.roleName.toLowerCase());
  if (
    clash !== undefined ||
    roleDefinitions(call.em).some((d) => d.type === 'BuiltInRole' && d.roleName.toLowerCase() === p.roleName.toLowerCase())
  ) {
    return call.error(
      409,
      'RoleDefinitionWithSameNameExists',
      'A custom role with the same name already exists in this directory. Use a different name.',
    );
  }
  const now = new Date(call.em.now()).toISOString();
  const permissions = p.permissions.map((b) => ({
    actions: b.actions ?? [],
    notActions: b.notActions ?? [],
    dataActions: b.dataActions ?? [],
    notDataActions: b.notDataActions ?? [],
  }));
  const existing = call.em.state.customRoles.find((r) => r.id === guid);
  if (existing !== undefined) {
    Object.assign(existing, {
      roleName: p.roleName,
      description: p.description ?? null,
      permissions,
      assignableScopes: p.assignableScopes,
      updatedOn: now,
    });
    call.em.changed();
    const view = roleDefinition(call.em, guid);
    return view === undefined ? call.empty(500) : call.json(200, definitionJson(view, scope));
  }
  const role: CustomRole = {
    id: guid,
    roleName: p.roleName,
    description: p.description ?? null,
    assignableScopes: p.assignableScopes,
    permissions,
    createdOn: now,
    updatedOn: now,
    createdBy: call.caller?.oid ?? null,
  };
  call.em.state.customRoles.push(role);
  call.em.changed();
  const view = roleDefinition(call.em, guid);
  call.json(201, view === undefined ? {} : definitionJson(view, scope));
}

export function deleteRoleDefinition(call: ArmCall, scope: string, id: string): void {
  if (!call.authorize('Microsoft.Authorization/roleDefinitions/delete', scope)) return;
  const guid = id.toLowerCase();
  const i = call.em.state.customRoles.findIndex((r) => r.id === guid);
  if (i < 0) return call.empty(204);
  if (call.em.state.roleAssignments.some((a) => a.roleDefinitionGuid === guid)) {
    return call.error(409, 'RoleDefinitionHasAssignments', 'There are existing role assignments referencing role. Remove the assignments first.');
  }
  const view = roleDefinition(call.em, guid);
  call.em.state.customRoles.splice(i, 1);
  call.em.changed();
  call.json(200, view === undefined ? {} : definitionJson(view, scope));
}
