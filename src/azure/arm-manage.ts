import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { sameScope } from './scope.js';
import type { Logger } from '../ops/log.js';
import { AzureApiError, callAzureApi, listAzurePages, type AzureApiConnection } from './api-call.js';
import { ARM_API_VERSION, roleAssignmentPageSchema, toRoleAssignment, type RoleAssignment } from './arm.js';
import { armPath, GUID } from '../contracts/azure-ids.js';
import type { TokenProvider } from './token.js';

/**
 * The ARM writes and resource reads of `setup` and `grant`, made as the person running them: the
 * connected cluster (for its identity), a principal's role assignments, and creating or deleting
 * one. The sidecar's read path stays in `arm.ts`; both share the role-assignment shape.
 */

export const DEFAULT_ARM_ENDPOINT = 'https://management.azure.com';
const CONNECTED_CLUSTER_API_VERSION = '2024-01-01';

const connectedClusterSchema = z.looseObject({
  id: z.string(),
  name: z.string().nullish(),
  identity: z.looseObject({ type: z.string().nullish(), principalId: z.string().nullish(), tenantId: z.string().nullish() }).nullish(),
});

export interface ConnectedCluster {
  readonly id: string;
  readonly name?: string;
  /** The system-assigned (Arc) identity's object ID, lower case; absent when the cluster has none. */
  readonly principalId?: string;
}

export type PrincipalType = 'User' | 'Group' | 'ServicePrincipal';

export interface ArmManagementClientOptions {
  /** e.g. `https://management.azure.com`, without a trailing slash. */
  readonly endpoint: string;
  readonly tokens: TokenProvider;
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher;
  readonly log?: Logger;
}

/** A role assignment to create: which role, for whom. */
export interface NewRoleAssignment {
  readonly roleGuid: string;
  readonly principalId: string;
  readonly principalType: PrincipalType;
}

/** The body of ARM's role assignment PUT. */
export interface RoleAssignmentPutBody {
  readonly properties: { readonly roleDefinitionId: string; readonly principalId: string; readonly principalType: PrincipalType };
}

export class ArmManagementClient {
  private readonly base: string;
  private readonly conn: AzureApiConnection;

  constructor(opts: ArmManagementClientOptions) {
    const url = new URL(opts.endpoint);
    this.base = url.href.replace(/\/+$/, '');
    this.conn = { api: 'arm', tokens: opts.tokens, timeoutMs: opts.timeoutMs, dispatcher: opts.dispatcher, log: opts.log };
  }

  /** The Arc connected cluster; null when ARM says it does not exist. */
  async connectedCluster(clusterId: string): Promise<ConnectedCluster | null> {
    const body = await this.send(
      'arm.connected_cluster.read',
      'GET',
      `${this.base}${scopePath(clusterId)}?api-version=${CONNECTED_CLUSTER_API_VERSION}`,
      undefined,
      { notFound: true },
    );
    if (body === null) return null;
    const parsed = connectedClusterSchema.safeParse(body);
    if (!parsed.success) throw badShape('arm.connected_cluster.read', 'connected cluster');
    const c = parsed.data;
    const principalId = c.identity?.principalId;
    return { id: c.id, ...(c.name ? { name: c.name } : {}), ...(principalId ? { principalId: principalId.toLowerCase() } : {}) };
  }

  /**
   * The principal's own role assignments (not through groups) at, above or below `scope`:
   * `$filter=principalId eq '{id}'`, which unlike `assignedTo` also accepts a group's object ID.
   */
  async roleAssignmentsOf(scope: string, principalId: string): Promise<RoleAssignment[]> {
    const operation = 'arm.role_assignments.read';
    const url = `${this.base}${scopePath(scope)}/providers/Microsoft.Authorization/roleAssignments?api-version=${ARM_API_VERSION}&$filter=principalId+eq+'${guid(principalId)}'`;
    const items = await listAzurePages(this.conn, operation, url, 'nextLink', (body) => {
      const parsed = roleAssignmentPageSchema.safeParse(body);
      if (!parsed.success) throw badShape(operation, 'role assignment page');
      return { value: parsed.data.value, nextLink: parsed.data.nextLink ?? undefined };
    });
    return items.map(toRoleAssignment);
  }

  /** The principal's assignment of exactly this role at exactly this scope, if any. */
  async roleAssignmentAt(scope: string, principalId: string, roleGuid: string): Promise<RoleAssignment | undefined> {
    const all = await this.roleAssignmentsOf(scope, principalId);
    return all.find(
      (a) => a.roleDefinitionGuid === roleGuid.toLowerCase() && sameScope(a.scope, scope) && a.principalId === principalId.toLowerCase(),
    );
  }

  /**
   * PUT a role assignment named `name` (a GUID); `exists` when ARM answers 409 RoleAssignmentExists
   * (the same role for the same principal at the same scope under another name).
   */
  async createRoleAssignment(scope: string, name: string, assignment: NewRoleAssignment): Promise<'created' | 'exists'> {
    const { url, body } = this.roleAssignmentPut(scope, name, assignment);
    try {
      await this.send('arm.role_assignments.write', 'PUT', url, body);
      return 'created';
    } catch (err) {
      if (err instanceof AzureApiError && err.status === 409 && err.code === 'RoleAssignmentExists') return 'exists';
      throw err;
    }
  }

  /**
   * The URL and body of the PUT that creates a role assignment named `name` (a GUID): what
   * `createRoleAssignment` sends, and what `az rest --method PUT` sends when a person runs it.
   */
  roleAssignmentPut(scope: string, name: string, assignment: NewRoleAssignment): { readonly url: string; readonly body: RoleAssignmentPutBody } {
    const subscription = /^\/subscriptions\/[^/]+/i.exec(scope)?.[0] ?? '';
    return {
      url: `${this.base}${scopePath(scope)}/providers/Microsoft.Authorization/roleAssignments/${guid(name)}?api-version=${ARM_API_VERSION}`,
      body: {
        properties: {
          roleDefinitionId: `${subscription}/providers/Microsoft.Authorization/roleDefinitions/${guid(assignment.roleGuid)}`,
          principalId: guid(assignment.principalId),
          principalType: assignment.principalType,
        },
      },
    };
  }

  /** DELETE a role assignment by its full ID; gone already is fine. */
  async deleteRoleAssignment(assignmentId: string): Promise<void> {
    await this.send('arm.role_assignments.write', 'DELETE', `${this.base}${scopePath(assignmentId)}?api-version=${ARM_API_VERSION}`, undefined, {
      notFound: true,
    });
  }

  private send(operation: string, method: 'GET' | 'PUT' | 'DELETE', url: string, body?: unknown, opts: { notFound?: true } = {}): Promise<unknown> {
    return callAzureApi(this.conn, { operation, method, url, body, ...(opts.notFound === true ? { notFound: { value: null } } : {}) });
  }
}

function badShape(operation: string, what: string): AzureApiError {
  return new AzureApiError('arm', operation, { kind: 'bad_response', detail: `ARM answered with a ${what} of an unexpected shape` });
}

function guid(id: string): string {
  if (!GUID.test(id)) throw new TypeError(`not a GUID: ${id.slice(0, 60)}`);
  return id.toLowerCase();
}

function scopePath(scope: string): string {
  const path = armPath(scope);
  if (path === undefined) throw new TypeError(`not an ARM ID: ${scope.slice(0, 200)}`);
  return path;
}
