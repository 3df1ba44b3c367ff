import type { Emulator } from '../core.js';
import type { Exchange } from '../exchange.js';
import { ArmCall } from './call.js';
import { getDenyAssignment, listDenyAssignments } from './deny-assignments.js';
import {
  federatedCredentials,
  getCluster,
  getIdentity,
  getResourceGroup,
  getSubscription,
  listClusters,
  listSubscriptions,
  listTenants,
  metadataEndpoints,
} from './resources.js';
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
const IDENTITY =
  /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ManagedIdentity\/userAssignedIdentities\/([^/]+)(\/federatedIdentityCredentials(?:\/([^/]+))?)?$/i;
const SUBSCRIPTION = /^\/subscriptions(?:\/([^/]+))?$/i;
const RESOURCE_GROUP = /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)$/i;

/** The Microsoft.Authorization collections: each lists at a scope and reads by name; deny assignments are read-only. */
interface AuthorizationKind {
  readonly segment: string;
  readonly list: (call: ArmCall, scope: string) => void;
  readonly get: (call: ArmCall, scope: string, name: string) => void;
  readonly put?: (call: ArmCall, scope: string, name: string) => void;
  readonly delete?: (call: ArmCall, scope: string, name: string) => void;
}

const AUTHZ_KINDS: Readonly<Record<string, AuthorizationKind>> = {
  roleassignments: {
    segment: 'roleAssignments',
    list: listRoleAssignments,
    get: getRoleAssignment,
    put: putRoleAssignment,
    delete: deleteRoleAssignment,
  },
  roledefinitions: {
    segment: 'roleDefinitions',
    list: listRoleDefinitions,
    get: getRoleDefinition,
    put: putRoleDefinition,
    delete: deleteRoleDefinition,
  },
  denyassignments: { segment: 'denyAssignments', list: listDenyAssignments, get: getDenyAssignment },
};

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
    const kind = AUTHZ_KINDS[(m[2] ?? '').toLowerCase()];
    const name = m[3];
    if (kind === undefined) return undefined;
    return {
      pattern: `{scope}/providers/Microsoft.Authorization/${kind.segment}${name === undefined ? '' : '/{name}'}`,
      run: (call) => {
        if (name === undefined) return method === 'GET' ? kind.list(call, scope) : methodNotAllowed(call);
        if (method === 'GET') return kind.get(call, scope, name);
        if (method === 'PUT' && kind.put !== undefined) return kind.put(call, scope, name);
        if (method === 'DELETE' && kind.delete !== undefined) return kind.delete(call, scope, name);
        return methodNotAllowed(call);
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
    return {
      pattern: '/subscriptions/{sub}/resourceGroups/{rg}',
      run: (call) => (method === 'GET' ? getResourceGroup(call, sub, rg) : methodNotAllowed(call)),
    };
  }
  if (/^\/tenants$/i.test(path)) return { pattern: '/tenants', run: (call) => (method === 'GET' ? listTenants(call) : methodNotAllowed(call)) };
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
  if (!ex.query.get('api-version'))
    return call.error(400, 'MissingApiVersionParameter', 'The api-version query parameter (?api-version=) is required for all requests.');
  // The one ARM resource read without a token: clients read it to learn where to sign in.
  if (/^\/metadata\/endpoints$/i.test(path) && ex.method === 'GET') return metadataEndpoints(call);
  if (!call.authenticate()) return;
  if (route === undefined) return call.error(404, 'InvalidResourceType', `The emulator does not serve the ARM path '${path}'.`);
  route.run(call);
}
