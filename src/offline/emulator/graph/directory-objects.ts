import type { DirectoryObject } from '../model.js';
import { newOpaqueId } from '../state.js';
import { GraphError, badRequest, notFound, type GraphCall } from './call.js';
import { odataFilter } from './odata.js';
import { directoryObjectJson, groupJson, permissionGrantJson, userJson } from './shapes.js';

/** `/users`, `/me`, `/groups` (+ members), `/oauth2PermissionGrants`, `/directoryObjects`, `/organization`. */

export function listUsers(call: GraphCall): void {
  call.require('users', false);
  const pick = odataFilter(call.ex.query.get('$filter'));
  call.list(
    'users',
    call.em.state.users
      .filter((u) => u.tenantId === call.tenantId)
      .map(userJson)
      .filter(pick),
  );
}

function findUser(call: GraphCall, idOrUpn: string) {
  const u = call.em.directory.user(call.tenantId, idOrUpn);
  if (u === undefined) throw notFound(idOrUpn);
  return u;
}

export function getUser(call: GraphCall, idOrUpn: string): void {
  call.require('users', false);
  call.entity('users', 200, userJson(findUser(call, idOrUpn)));
}

export function getMe(call: GraphCall): void {
  const c = call.caller;
  if (c?.kind !== 'user' || c.user === undefined)
    throw new GraphError(400, 'BadRequest', '/me request is only valid with delegated authentication flow.');
  call.entity('users', 200, userJson(c.user));
}

function objectsJson(call: GraphCall, objs: DirectoryObject[]): Array<Record<string, unknown>> {
  return objs.map((o) => directoryObjectJson(call.em, o));
}

export function userMemberOf(call: GraphCall, idOrUpn: string, transitive: boolean): void {
  call.require('users', false);
  const u = findUser(call, idOrUpn);
  const ids = transitive
    ? [...call.em.directory.transitiveGroups(call.tenantId, u.id)]
    : call.em.state.groups.filter((g) => g.tenantId === call.tenantId && g.members.includes(u.id)).map((g) => g.id);
  const groups = ids.flatMap((id) => {
    const g = call.em.directory.group(call.tenantId, id);
    return g === undefined ? [] : [{ kind: 'group' as const, group: g }];
  });
  call.list('directoryObjects', objectsJson(call, groups));
}

export function listGroups(call: GraphCall): void {
  call.require('groups', false);
  const pick = odataFilter(call.ex.query.get('$filter'));
  call.list(
    'groups',
    call.em.state.groups
      .filter((g) => g.tenantId === call.tenantId)
      .map(groupJson)
      .filter(pick),
  );
}

function findGroup(call: GraphCall, id: string) {
  const g = call.em.directory.group(call.tenantId, id);
  if (g === undefined) throw notFound(id);
  return g;
}

export function getGroup(call: GraphCall, id: string): void {
  call.require('groups', false);
  call.entity('groups', 200, groupJson(findGroup(call, id)));
}

export function groupMembers(call: GraphCall, id: string, transitive: boolean): void {
  call.require('groups', false);
  const g = findGroup(call, id);
  const objs = transitive
    ? call.em.directory.transitiveMembers(call.tenantId, g.id)
    : g.members.flatMap((m) => {
        const o = call.em.directory.object(call.tenantId, m);
        return o === undefined ? [] : [o];
      });
  const pick = odataFilter(call.ex.query.get('$filter'));
  call.list('directoryObjects', objectsJson(call, objs).filter(pick));
}

export function getDirectoryObject(call: GraphCall, id: string): void {
  call.require('applications', false);
  const o = call.em.directory.object(call.tenantId, id);
  if (o === undefined) throw notFound(id);
  call.entity('directoryObjects', 200, directoryObjectJson(call.em, o));
}

export function getByIds(call: GraphCall): void {
  call.require('applications', false);
  const b = call.body();
  const ids = b['ids'];
  if (!Array.isArray(ids) || ids.some((i) => typeof i !== 'string')) throw badRequest("Invalid value specified for property 'ids'.");
  const types = Array.isArray(b['types']) ? (b['types'] as unknown[]).map((t) => String(t).toLowerCase()) : undefined;
  const objs = (ids as string[]).flatMap((id) => {
    const o = call.em.directory.object(call.tenantId, id);
    return o === undefined || (types !== undefined && !types.includes(o.kind.toLowerCase())) ? [] : [o];
  });
  call.list('directoryObjects', objectsJson(call, objs));
}

export function organization(call: GraphCall): void {
  const t = call.caller?.tenant;
  if (t === undefined) throw notFound('organization');
  call.list('organization', [
    {
      id: t.id,
      deletedDateTime: null,
      businessPhones: [],
      city: null,
      country: null,
      countryLetterCode: null,
      createdDateTime: null,
      displayName: t.displayName,
      tenantType: 'AAD',
      verifiedDomains: [{ capabilities: 'Email, OfficeCommunicationsOnline', isDefault: true, isInitial: true, name: t.domain, type: 'Managed' }],
    },
  ]);
}

export function permissionGrants(call: GraphCall, id: string | undefined): void {
  const method = call.ex.method;
  const list = call.em.state.oauth2PermissionGrants;
  if (id === undefined) {
    if (method === 'GET') {
      call.require('grants', false);
      const pick = odataFilter(call.ex.query.get('$filter'));
      return call.list(
        'oauth2PermissionGrants',
        list
          .filter((g) => g.tenantId === call.tenantId)
          .map(permissionGrantJson)
          .filter(pick),
      );
    }
    if (method !== 'POST') throw new GraphError(405, 'Request_BadRequest', `${method} is not supported on this resource.`);
    call.require('grants', true);
    const b = call.body();
    const clientId = b['clientId'];
    const resourceId = b['resourceId'];
    const consentType = b['consentType'];
    const scope = b['scope'];
    const principalId = b['principalId'] ?? null;
    if (typeof clientId !== 'string' || call.em.directory.servicePrincipal(call.tenantId, clientId) === undefined) throw notFound(String(clientId));
    if (typeof resourceId !== 'string' || call.em.directory.servicePrincipal(call.tenantId, resourceId) === undefined)
      throw notFound(String(resourceId));
    if (consentType !== 'AllPrincipals' && consentType !== 'Principal')
      throw badRequest("Invalid value specified for property 'consentType' of resource 'OAuth2PermissionGrant'.");
    if (consentType === 'Principal' && (typeof principalId !== 'string' || call.em.directory.user(call.tenantId, principalId) === undefined))
      throw badRequest("Property 'principalId' must name a user when consentType is 'Principal'.");
    if (consentType === 'AllPrincipals' && principalId !== null)
      throw badRequest("Property 'principalId' must be null when consentType is 'AllPrincipals'.");
    if (typeof scope !== 'string') throw badRequest("Invalid value specified for property 'scope' of resource 'OAuth2PermissionGrant'.");
    const dup = list.some(
      (g) =>
        g.tenantId === call.tenantId &&
        g.clientId === clientId.toLowerCase() &&
        g.resourceId === resourceId.toLowerCase() &&
        g.consentType === consentType &&
        g.principalId === (typeof principalId === 'string' ? principalId.toLowerCase() : null),
    );
    if (dup) throw new GraphError(409, 'Request_MultipleObjectsWithSameKeyValue', 'Permission entry already exists.');
    const g = {
      id: newOpaqueId(),
      tenantId: call.tenantId,
      clientId: clientId.toLowerCase(),
      consentType,
      principalId: typeof principalId === 'string' ? principalId.toLowerCase() : null,
      resourceId: resourceId.toLowerCase(),
      scope,
    } as const;
    list.push({ ...g });
    call.em.changed();
    return call.entity('oauth2PermissionGrants', 201, permissionGrantJson({ ...g }));
  }
  const g = list.find((x) => x.tenantId === call.tenantId && x.id === id);
  if (g === undefined) throw notFound(id);
  if (method === 'GET') {
    call.require('grants', false);
    return call.entity('oauth2PermissionGrants', 200, permissionGrantJson(g));
  }
  call.require('grants', true);
  if (method === 'DELETE') {
    list.splice(list.indexOf(g), 1);
    call.em.changed();
    return call.noContent();
  }
  if (method === 'PATCH') {
    const scope = call.body()['scope'];
    if (typeof scope !== 'string') throw badRequest("Invalid value specified for property 'scope' of resource 'OAuth2PermissionGrant'.");
    g.scope = scope;
    call.em.changed();
    return call.noContent();
  }
  throw new GraphError(405, 'Request_BadRequest', `${method} is not supported on this resource.`);
}
