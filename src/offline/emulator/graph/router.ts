import type { Emulator } from '../core.js';
import { sendJson, type Exchange } from '../exchange.js';
import {
  addPassword,
  createApplication,
  federatedCredentials,
  getApplication,
  listApplications,
  patchApplication,
  removeApplication,
  removePassword,
} from './applications.js';
import { GraphCall, GraphError } from './call.js';
import {
  getByIds,
  getDirectoryObject,
  getGroup,
  getMe,
  getUser,
  groupMembers,
  listGroups,
  listUsers,
  organization,
  permissionGrants,
  userMemberOf,
} from './directory-objects.js';
import {
  appRoleAssignments,
  createServicePrincipal,
  getServicePrincipal,
  listServicePrincipals,
  patchServicePrincipal,
  removeServicePrincipal,
} from './service-principals.js';

/** Microsoft Graph v1.0 under `/graph` (`--graph-endpoint https://127.0.0.1:P/graph` -> `/graph/v1.0/applications`). */

export interface GraphRoute {
  readonly pattern: string;
  readonly run: (call: GraphCall) => void;
}

type Key = { id?: string; appId?: string };

/** `{id}` or `(appId='{appId}')` / `(appId=%27...%27)` alternate key syntax. */
function keyOf(segment: string): Key {
  const m = /^\(appId='([^']*)'\)$/i.exec(segment);
  return m ? { appId: m[1] ?? '' } : { id: segment.replace(/^\//, '') };
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function unsupported(call: GraphCall): never {
  throw new GraphError(405, 'Request_BadRequest', `Specified HTTP method '${call.ex.method}' is not supported for this resource.`);
}

export function graphRoute(method: string, rawPath: string): GraphRoute | undefined {
  const path = decode(rawPath).replace(/\/+$/, '');
  const m = /^\/(v1\.0|beta)(\/.*)?$/.exec(path);
  if (m === null) return undefined;
  const rest = m[2] ?? '';
  let r: RegExpExecArray | null;

  if ((r = /^\/(applications|servicePrincipals)(\/[^/()]+|\(appId='[^']*'\))?(?:\/([A-Za-z.]+)(?:\/([^/]+))?)?$/.exec(rest)) !== null) {
    const kind = r[1] as 'applications' | 'servicePrincipals';
    const keySeg = r[2];
    const sub = r[3];
    const subId = r[4];
    const key = keySeg === undefined ? undefined : keyOf(keySeg);
    const keyPattern = keySeg?.startsWith('(') ? "(appId='{appId}')" : '/{id}';
    const pattern = `/v1.0/${kind}${key === undefined ? '' : keyPattern}${sub === undefined ? '' : `/${sub}`}${subId === undefined ? '' : '/{id}'}`;
    return {
      pattern,
      run: (call) => {
        if (key === undefined) {
          if (method === 'GET') return kind === 'applications' ? listApplications(call) : listServicePrincipals(call);
          if (method === 'POST') return kind === 'applications' ? createApplication(call) : createServicePrincipal(call);
          return unsupported(call);
        }
        if (sub === undefined) {
          if (method === 'GET') return kind === 'applications' ? getApplication(call, key) : getServicePrincipal(call, key);
          if (method === 'PATCH') return kind === 'applications' ? patchApplication(call, key) : patchServicePrincipal(call, key);
          if (method === 'DELETE') return kind === 'applications' ? removeApplication(call, key) : removeServicePrincipal(call, key);
          return unsupported(call);
        }
        if (kind === 'applications') {
          if (sub === 'addPassword' && method === 'POST' && subId === undefined) return addPassword(call, key);
          if (sub === 'removePassword' && method === 'POST' && subId === undefined) return removePassword(call, key);
          if (sub === 'federatedIdentityCredentials') return federatedCredentials(call, key, subId);
        } else {
          if (sub === 'appRoleAssignments') return appRoleAssignments(call, { kind: 'servicePrincipals', key }, false, subId);
          if (sub === 'appRoleAssignedTo') return appRoleAssignments(call, { kind: 'servicePrincipals', key }, true, subId);
        }
        throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${sub}'.`);
      },
    };
  }
  if ((r = /^\/(users|groups)(?:\/([^/]+))?(?:\/([A-Za-z]+)(?:\/([^/]+))?)?$/.exec(rest)) !== null) {
    const kind = r[1] as 'users' | 'groups';
    const id = r[2];
    const sub = r[3];
    const subId = r[4];
    const pattern = `/v1.0/${kind}${id === undefined ? '' : '/{id}'}${sub === undefined ? '' : `/${sub}`}${subId === undefined ? '' : '/{id}'}`;
    return {
      pattern,
      run: (call) => {
        if (id === undefined) return method === 'GET' ? (kind === 'users' ? listUsers(call) : listGroups(call)) : unsupported(call);
        if (sub === undefined) return method === 'GET' ? (kind === 'users' ? getUser(call, id) : getGroup(call, id)) : unsupported(call);
        if (sub === 'appRoleAssignments')
          return appRoleAssignments(
            call,
            { kind, key: { id: kind === 'users' ? (call.em.directory.user(call.tenantId, id)?.id ?? id) : id } },
            false,
            subId,
          );
        if (method !== 'GET' || subId !== undefined) return unsupported(call);
        if (kind === 'users' && (sub === 'memberOf' || sub === 'transitiveMemberOf')) return userMemberOf(call, id, sub === 'transitiveMemberOf');
        if (kind === 'groups' && (sub === 'members' || sub === 'transitiveMembers')) return groupMembers(call, id, sub === 'transitiveMembers');
        throw new GraphError(400, 'BadRequest', `Resource not found for the segment '${sub}'.`);
      },
    };
  }
  if (rest === '/me') return { pattern: '/v1.0/me', run: (call) => (method === 'GET' ? getMe(call) : unsupported(call)) };
  if ((r = /^\/oauth2PermissionGrants(?:\/([^/]+))?$/.exec(rest)) !== null) {
    const id = r[1];
    return { pattern: `/v1.0/oauth2PermissionGrants${id === undefined ? '' : '/{id}'}`, run: (call) => permissionGrants(call, id) };
  }
  if (rest === '/directoryObjects/getByIds')
    return { pattern: '/v1.0/directoryObjects/getByIds', run: (call) => (method === 'POST' ? getByIds(call) : unsupported(call)) };
  if ((r = /^\/directoryObjects\/([^/]+)$/.exec(rest)) !== null) {
    const id = r[1] ?? '';
    return { pattern: '/v1.0/directoryObjects/{id}', run: (call) => (method === 'GET' ? getDirectoryObject(call, id) : unsupported(call)) };
  }
  if (rest === '/organization') return { pattern: '/v1.0/organization', run: (call) => (method === 'GET' ? organization(call) : unsupported(call)) };
  return undefined;
}

export function handleGraph(em: Emulator, ex: Exchange, route: GraphRoute | undefined): void {
  const call = new GraphCall(em, ex);
  if (route === undefined) {
    sendJson(ex.res, 400, { error: { code: 'BadRequest', message: `Resource not found for the segment '${ex.path.split('/').pop() ?? ''}'.` } });
    return;
  }
  if (!call.authenticate()) return;
  try {
    route.run(call);
  } catch (err) {
    if (err instanceof GraphError) return call.error(err);
    throw err;
  }
}
