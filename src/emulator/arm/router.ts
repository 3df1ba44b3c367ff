import type { Emulator } from '../core.js';
import type { Exchange } from '../exchange.js';
import { ArmCall } from './call.js';
import { getDenyAssignment, listDenyAssignments } from './deny-assignments.js';
import { federatedCredentials, getCluster, getIdentity, getResourceGroup, getSubscription, listClusters, listSubscriptions } from './resources.js';
import { deleteRoleAssignment, getRoleAssignment, listRoleAssignments, putRoleAssignment } from './role-assignments.js';
import { deleteRoleDefinition, getRoleDefinition, listRoleDefinitions, putRoleDefinition } from './role-definitions.js';

/** Azure Resource Manager under `/arm`: the path after it is the ARM path (`/subscriptions/...`). */

export interface ArmRoute {
  /** The route pattern, for call counters. */
  readonly pattern: string;
  readonly run: (call: ArmCall) => void;
}

const AUTHZ = /^(.*?)\/providers\/Microsoft\.Authorization\/(roleAssignments|roleDefinitions|denyAssignments)(?:\/([^/]+))?$/i;
const CLUSTERS = /^\/subscriptions\/([^/]+)(?:\/resourceGroups\/([^/]+))?\/providers\/Microsoft\.Kubernetes\/connectedClusters(?:\/([^/]+))?$/i;
const IDENTITY = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/([^/]+)(\/federatedIdentityCredentials(?:\/([^/]+))?)?$/i;
const SUBSCRIPTION = /^\/subscriptions(?:\/([^/]+))?$/i;
const RESOURCE_GROUP = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)$/i;

function methodNotAllowed(call: ArmCall): void {
  call.error(405, 'MethodNotAllowed', `The requested resource does not support http method '${call.ex.method}'.`);
}

/** ARM path from the raw request path: `/arm` removed, segments percent-decoded, trailing `/` dropped. */
export function armPath(rawPath: string): string {
  const rest = rawPath.slice('/arm'.length);
  const decoded = rest
    .split('/')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    })
    .join('/');
  const trimmed = decoded.replace(/\/+$/, '');
  return trimmed === '' ? '/' : trimmed;
}

export function armRoute(method: string, path: string): ArmRoute | undefined {
  let m = AUTHZ.exec(path);
  if (m) {
    const scope = m[1] === '' || m[1] === undefined ? '/' : m[1];
    const kind = (m[2] ?? '').toLowerCase();
    const name = m[3];
    const pattern = `{scope}/providers/Microsoft.Authorization/${kind === 'roleassignments' ? 'roleAssignments' : kind === 'roledefinitions' ? 'roleDefinitions' : 'denyAssignments'}${name === undefined ? '' : '/{name}'}`;
    return {
      pattern,
      run: (call) => {
        if (kind === 'roleassignments') {
          if (name === undefined) return method === 'GET' ? listRoleAssignments(call, scope) : methodNotAllowed(call);
          if (method === 'GET') return getRoleAssignment(call, scope, name);
          if (method === 'PUT') return putRoleAssignment(call, scope, name);
          if (method === 'DELETE') return deleteRoleAssignment(call, scope, name);
          return methodNotAllowed(call);
        }
        if (kind === 'roledefinitions') {
          if (name === undefined) return method === 'GET' ? listRoleDefinitions(call, scope) : methodNotAllowed(call);
          if (method === 'GET') return getRoleDefinition(call, scope, name);
          if (method === 'PUT') return putRoleDefinition(call, scope, name);
          if (method === 'DELETE') return deleteRoleDefinition(call, scope, name);
          return methodNotAllowed(call);
        }
        if (method !== 'GET') return methodNotAllowed(call);
        return name === undefined ? listDenyAssignments(call, scope) : getDenyAssignment(call, scope, name);
      },
    };
  }
  m = CLUSTERS.exec(path);
  if (m) {
    const [, sub = '', rg, name] = m;
    const pattern = `/subscriptions/{sub}${rg === undefined ? '' : '/resourceGroups/{rg}'}/providers/Microsoft.Kubernetes/connectedClusters${name === undefined ? '' : '/{name}'}`;
    return {
      pattern,
      run: (call) => {
        if (method !== 'GET') return methodNotAllowed(call);
        return name === undefined || rg === undefined ? listClusters(call, sub, rg) : getCluster(call, sub, rg, name);
      },
    };
  }
  m = IDENTITY.exec(path);
  if (m) {
    const [, sub = '', rg = '', name = '', fics, ficName] = m;
    if (fics !== undefined) {
      return {
        pattern: `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}/federatedIdentityCredentials${ficName === undefined ? '' : '/{name}'}`,
        run: (call) => (ficName === undefined && method !== 'GET' ? methodNotAllowed(call) : federatedCredentials(call, sub, rg, name, ficName)),
      };
    }
    return {
      pattern: '/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}',
      run: (call) => (method === 'GET' ? getIdentity(call, sub, rg, name) : methodNotAllowed(call)),
    };
  }
  m = RESOURCE_GROUP.exec(path);
  if (m) {
    const [, sub = '', rg = ''] = m;
    return { pattern: '/subscriptions/{sub}/resourceGroups/{rg}', run: (call) => (method === 'GET' ? getResourceGroup(call, sub, rg) : methodNotAllowed(call)) };
  }
  m = SUBSCRIPTION.exec(path);
  if (m) {
    const sub = m[1];
    return {
      pattern: sub === undefined ? '/subscriptions' : '/subscriptions/{sub}',
      run: (call) => (method !== 'GET' ? methodNotAllowed(call) : sub === undefined ? listSubscriptions(call) : getSubscription(call, sub)),
    };
  }
  return undefined;
}

export function handleArm(em: Emulator, ex: Exchange, route: ArmRoute | undefined, path: string): void {
  const call = new ArmCall(em, ex, path);
  if (!ex.query.get('api-version')) return call.error(400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required for all requests.');
  if (!call.authenticate()) return;
  if (route === undefined) return call.error(404, 'InvalidResourceType', `The emulator does not serve the ARM path '${path}'.`);
  route.run(call);
}
