import { firstPartyApp } from '../first-party.js';
import { principalTypeOf, type AppRoleAssignment, type ServicePrincipal } from '../model.js';
import { deleteServicePrincipal, newAppRoleAssignment, newServicePrincipal } from '../objects.js';
import { GraphError, badRequest, notFound, type GraphCall } from './call.js';
import { odataFilter } from './odata.js';
import { appRoleAssignmentJson, servicePrincipalJson } from './shapes.js';

/** `/servicePrincipals` and app role assignments (`appRoleAssignments`, `appRoleAssignedTo`, and the same on users and groups). */

const DEFAULT_ACCESS = '00000000-0000-0000-0000-000000000000';

export function findServicePrincipal(call: GraphCall, key: { id?: string; appId?: string }): ServicePrincipal {
  const d = call.em.directory;
  const sp = key.appId !== undefined ? d.servicePrincipalByAppId(call.tenantId, key.appId) : d.servicePrincipal(call.tenantId, key.id ?? '');
  if (sp === undefined) throw notFound(key.appId ?? key.id ?? '');
  return sp;
}

export function createServicePrincipal(call: GraphCall): void {
  call.require('applications', true);
  const appId = call.body()['appId'];
  if (typeof appId !== 'string') throw badRequest("Invalid value specified for property 'appId' of resource 'ServicePrincipal'.");
  const home = call.em.state.applications.find(
    (a) => a.appId === appId.toLowerCase() && (a.tenantId === call.tenantId || a.signInAudience !== 'AzureADMyOrg'),
  );
  const fp = firstPartyApp(appId);
  if (home === undefined && fp === undefined)
    throw badRequest(`The appId '${appId}' of the service principal does not reference a valid application object.`);
  if (call.em.directory.servicePrincipalByAppId(call.tenantId, appId)) {
    throw new GraphError(
      409,
      'Request_MultipleObjectsWithSameKeyValue',
      `The service principal cannot be created, updated, or restored because the service principal name ${appId.toLowerCase()} is already in use.`,
    );
  }
  const sp = newServicePrincipal(call.em, call.tenantId, appId, home?.displayName ?? fp?.displayName ?? appId);
  if (home !== undefined && home.tenantId !== call.tenantId) sp.appOwnerOrganizationId = home.tenantId;
  if (fp !== undefined) sp.appOwnerOrganizationId = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
  call.em.state.servicePrincipals.push(sp);
  call.em.changed();
  call.entity('servicePrincipals', 201, servicePrincipalJson(call.em, sp));
}

export function listServicePrincipals(call: GraphCall): void {
  call.require('applications', false);
  const pick = odataFilter(call.ex.query.get('$filter'));
  call.list(
    'servicePrincipals',
    call.em.state.servicePrincipals
      .filter((p) => p.tenantId === call.tenantId)
      .map((p) => servicePrincipalJson(call.em, p))
      .filter(pick),
  );
}

export function getServicePrincipal(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', false);
  call.entity('servicePrincipals', 200, servicePrincipalJson(call.em, findServicePrincipal(call, key)));
}

export function patchServicePrincipal(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', true);
  const sp = findServicePrincipal(call, key);
  const b = call.body();
  for (const [k, v] of Object.entries(b)) {
    if (k === 'appRoleAssignmentRequired' && typeof v === 'boolean') sp.appRoleAssignmentRequired = v;
    else if (k === 'accountEnabled' && typeof v === 'boolean') sp.accountEnabled = v;
    else if (k === 'tags' && Array.isArray(v)) sp.tags = v.filter((t): t is string => typeof t === 'string');
    else if (k === 'displayName' && typeof v === 'string') sp.displayName = v;
    else throw badRequest(`Property '${k}' does not exist on type 'microsoft.graph.servicePrincipal' or cannot be set.`);
  }
  call.em.changed();
  call.noContent();
}

export function removeServicePrincipal(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', true);
  deleteServicePrincipal(call.em, findServicePrincipal(call, key));
  call.em.changed();
  call.noContent();
}

function principalType(call: GraphCall, principalId: string): AppRoleAssignment['principalType'] {
  const obj = call.em.directory.object(call.tenantId, principalId);
  if (obj === undefined) throw notFound(principalId);
  return principalTypeOf(obj);
}

/** POST of an app role assignment, with Graph's checks: principal and resource exist, the role exists, is enabled and admits the principal's type, no duplicate. */
function createAssignment(call: GraphCall, fixed: { principalId?: string; resourceId?: string }, fragment: string): void {
  call.require('appRoleAssignments', true);
  const b = call.body();
  const principalId = b['principalId'];
  const resourceId = b['resourceId'];
  const appRoleId = b['appRoleId'] ?? DEFAULT_ACCESS;
  if (typeof principalId !== 'string' || typeof resourceId !== 'string' || typeof appRoleId !== 'string')
    throw badRequest('principalId, resourceId and appRoleId are required.');
  if (fixed.principalId !== undefined && principalId.toLowerCase() !== fixed.principalId)
    throw badRequest('The principalId in the request body does not match the principal in the request URL.');
  if (fixed.resourceId !== undefined && resourceId.toLowerCase() !== fixed.resourceId)
    throw badRequest('The resourceId in the request body does not match the resource in the request URL.');
  const type = principalType(call, principalId);
  const resource = call.em.directory.servicePrincipal(call.tenantId, resourceId);
  if (resource === undefined) throw notFound(resourceId);
  const roleId = appRoleId.toLowerCase();
  if (roleId !== DEFAULT_ACCESS) {
    const role = call.em.directory.exposed(resource).appRoles.find((r) => r.id === roleId);
    const member = type === 'ServicePrincipal' ? 'Application' : 'User';
    if (role === undefined || !role.isEnabled || !role.allowedMemberTypes.includes(member))
      throw badRequest(`Permission being assigned was not found on application '${resource.appId}'.`);
  }
  const dup = call.em.state.appRoleAssignments.some(
    (a) => a.tenantId === call.tenantId && a.principalId === principalId.toLowerCase() && a.resourceId === resource.id && a.appRoleId === roleId,
  );
  if (dup) throw badRequest('Permission being assigned already exists on the object');
  const a = newAppRoleAssignment(call.em, call.tenantId, principalId, type, resource.id, roleId);
  call.em.state.appRoleAssignments.push(a);
  call.em.changed();
  call.entity(fragment, 201, appRoleAssignmentJson(call.em, a));
}

function deleteAssignment(call: GraphCall, id: string, belongs: (a: AppRoleAssignment) => boolean): void {
  call.require('appRoleAssignments', true);
  const list = call.em.state.appRoleAssignments;
  const i = list.findIndex((a) => a.tenantId === call.tenantId && a.id === id && belongs(a));
  if (i < 0) throw notFound(id);
  list.splice(i, 1);
  call.em.changed();
  call.noContent();
}

/**
 * `/{servicePrincipals|users|groups}/{id}/appRoleAssignments[/{aid}]` (the object as principal) and
 * `/servicePrincipals/{id}/appRoleAssignedTo[/{aid}]` (the service principal as resource).
 */
export function appRoleAssignments(
  call: GraphCall,
  owner: { kind: 'servicePrincipals' | 'users' | 'groups'; key: { id?: string; appId?: string } },
  asResource: boolean,
  assignmentId: string | undefined,
): void {
  let ownerId: string;
  if (owner.kind === 'servicePrincipals') ownerId = findServicePrincipal(call, owner.key).id;
  else {
    const obj =
      owner.kind === 'users' ? call.em.directory.user(call.tenantId, owner.key.id ?? '') : call.em.directory.group(call.tenantId, owner.key.id ?? '');
    if (obj === undefined) throw notFound(owner.key.id ?? '');
    ownerId = obj.id;
  }
  const fragment = `${owner.kind}('${ownerId}')/${asResource ? 'appRoleAssignedTo' : 'appRoleAssignments'}`;
  const belongs = (a: AppRoleAssignment): boolean => (asResource ? a.resourceId === ownerId : a.principalId === ownerId);
  const method = call.ex.method;
  if (assignmentId !== undefined) {
    if (method === 'DELETE') return deleteAssignment(call, assignmentId, belongs);
    if (method !== 'GET') throw new GraphError(405, 'Request_BadRequest', `${method} is not supported on this resource.`);
    call.require('appRoleAssignments', false);
    const a = call.em.state.appRoleAssignments.find((x) => x.tenantId === call.tenantId && x.id === assignmentId && belongs(x));
    if (a === undefined) throw notFound(assignmentId);
    return call.entity(fragment, 200, appRoleAssignmentJson(call.em, a));
  }
  if (method === 'POST') return createAssignment(call, asResource ? { resourceId: ownerId } : { principalId: ownerId }, fragment);
  if (method !== 'GET') throw new GraphError(405, 'Request_BadRequest', `${method} is not supported on this resource.`);
  call.require('appRoleAssignments', false);
  const pick = odataFilter(call.ex.query.get('$filter'));
  call.list(
    fragment,
    call.em.state.appRoleAssignments
      .filter((a) => a.tenantId === call.tenantId && belongs(a))
      .map((a) => appRoleAssignmentJson(call.em, a))
      .filter(pick),
  );
}
