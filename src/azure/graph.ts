import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { decodeCompactJws } from '../authn/jws.js';
import type { Logger } from '../ops/log.js';
import { asAzureApiError, AzureApiError, callAzureApi, listAzurePages, type AzureApiConnection } from './api-call.js';
import { GUID } from '../contracts/azure-ids.js';
import type { TokenProvider } from './token.js';

/**
 * A thin Microsoft Graph v1.0 client for what `setup`, `grant` and `doctor` read and write:
 * applications, service principals, directory objects (users, groups, service principals) and
 * app role assignments. Objects are parsed loosely: properties this client does not know are kept,
 * so a PATCH built from what was read never drops what someone else configured.
 */

export const DEFAULT_GRAPH_ENDPOINT = 'https://graph.microsoft.com';

const permissionScopeSchema = z.looseObject({
  id: z.string(),
  value: z.string().nullish(),
  type: z.string().nullish(),
  isEnabled: z.boolean().nullish(),
  adminConsentDisplayName: z.string().nullish(),
  adminConsentDescription: z.string().nullish(),
});
export type PermissionScope = z.infer<typeof permissionScopeSchema>;

const appRoleSchema = z.looseObject({
  id: z.string(),
  value: z.string().nullish(),
  isEnabled: z.boolean().nullish(),
  allowedMemberTypes: z.array(z.string()).nullish(),
  displayName: z.string().nullish(),
  description: z.string().nullish(),
});
export type AppRole = z.infer<typeof appRoleSchema>;

const preAuthorizedApplicationSchema = z.looseObject({
  appId: z.string(),
  delegatedPermissionIds: z.array(z.string()).nullish(),
});
export type PreAuthorizedApplication = z.infer<typeof preAuthorizedApplicationSchema>;

const apiSchema = z.looseObject({
  requestedAccessTokenVersion: z.number().nullish(),
  oauth2PermissionScopes: z.array(permissionScopeSchema).nullish(),
  preAuthorizedApplications: z.array(preAuthorizedApplicationSchema).nullish(),
});
export type ApiApplication = z.infer<typeof apiSchema>;

const applicationSchema = z.looseObject({
  id: z.string(),
  appId: z.string(),
  displayName: z.string().nullish(),
  identifierUris: z.array(z.string()).nullish(),
  api: apiSchema.nullish(),
  appRoles: z.array(appRoleSchema).nullish(),
});
export type Application = z.infer<typeof applicationSchema>;

const servicePrincipalSchema = z.looseObject({
  id: z.string(),
  appId: z.string(),
  displayName: z.string().nullish(),
  servicePrincipalType: z.string().nullish(),
  appRoles: z.array(appRoleSchema).nullish(),
});
export type ServicePrincipal = z.infer<typeof servicePrincipalSchema>;

const directoryObjectSchema = z.looseObject({
  '@odata.type': z.string().optional(),
  id: z.string(),
  displayName: z.string().nullish(),
  userPrincipalName: z.string().nullish(),
  appId: z.string().nullish(),
  servicePrincipalType: z.string().nullish(),
});

const appRoleAssignmentSchema = z.looseObject({
  id: z.string(),
  appRoleId: z.string(),
  principalId: z.string(),
  resourceId: z.string(),
  principalType: z.string().nullish(),
  principalDisplayName: z.string().nullish(),
});
export type AppRoleAssignment = z.infer<typeof appRoleAssignmentSchema>;

/** A user, group or service principal, as RBAC and app role assignments name them. */
export interface DirectoryPrincipal {
  readonly kind: 'user' | 'group' | 'servicePrincipal';
  /** Lower case. */
  readonly id: string;
  readonly displayName?: string;
  readonly userPrincipalName?: string;
  /** Service principals: the client ID. */
  readonly appId?: string;
  /** Service principals: `Application`, `ManagedIdentity`, ... */
  readonly servicePrincipalType?: string;
}

export interface GraphClientOptions {
  /** e.g. `https://graph.microsoft.com` (the `/v1.0` is added here). */
  readonly endpoint: string;
  readonly tokens: TokenProvider;
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher;
  readonly log?: Logger;
}

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export class GraphClient {
  private readonly base: string;
  private readonly conn: AzureApiConnection;

  constructor(private readonly opts: GraphClientOptions) {
    const url = new URL(opts.endpoint);
    this.base = `${url.href.replace(/\/+$/, '')}/v1.0`;
    this.conn = { api: 'graph', tokens: opts.tokens, timeoutMs: opts.timeoutMs, dispatcher: opts.dispatcher, log: opts.log };
  }

  /** The tenant the caller's Graph token was issued by (its `tid`; the token is ours, only read, never verified). */
  async callerTenantId(): Promise<string | undefined> {
    let token: string;
    try {
      token = (await this.opts.tokens.getToken()).token;
    } catch (err) {
      throw asAzureApiError('graph', 'graph.token', err);
    }
    const decoded = decodeCompactJws(token);
    const tid = decoded.ok ? decoded.jws.payload.tid : undefined;
    return typeof tid === 'string' && GUID.test(tid) ? tid.toLowerCase() : undefined;
  }

  /** Applications whose displayName is exactly `name` (Graph compares case-insensitively). */
  async applicationsNamed(name: string): Promise<Application[]> {
    return this.list('graph.applications.read', `/applications?$filter=${odataEq('displayName', name)}`, applicationSchema);
  }

  /** The application with this Application (client) ID, or null. */
  async applicationByAppId(appId: string): Promise<Application | null> {
    const body = await this.send('graph.applications.read', 'GET', `/applications(appId='${guid(appId)}')`, undefined, { notFound: null });
    return body === null ? null : this.parse('graph.applications.read', applicationSchema, body);
  }

  async createApplication(displayName: string): Promise<Application> {
    const body = await this.send('graph.applications.write', 'POST', '/applications', { displayName, signInAudience: 'AzureADMyOrg' });
    return this.parse('graph.applications.write', applicationSchema, body);
  }

  /** PATCH /applications/{objectId}: top-level properties given are replaced; collections as a whole. */
  async updateApplication(objectId: string, changes: Record<string, unknown>): Promise<void> {
    await this.send('graph.applications.write', 'PATCH', `/applications/${encodeURIComponent(objectId)}`, changes);
  }

  async servicePrincipalByAppId(appId: string): Promise<ServicePrincipal | null> {
    const found = await this.list(
      'graph.service_principals.read',
      `/servicePrincipals?$filter=${odataEq('appId', guid(appId))}`,
      servicePrincipalSchema,
    );
    return found[0] ?? null;
  }

  async createServicePrincipal(appId: string): Promise<ServicePrincipal> {
    const body = await this.send('graph.service_principals.write', 'POST', '/servicePrincipals', { appId: guid(appId) });
    return this.parse('graph.service_principals.write', servicePrincipalSchema, body);
  }

  /** A user, group or service principal by object ID, or null. */
  async directoryObject(id: string): Promise<DirectoryPrincipal | null> {
    const body = await this.send('graph.directory_objects.read', 'GET', `/directoryObjects/${guid(id)}`, undefined, { notFound: null });
    return body === null ? null : principalOf(this.parse('graph.directory_objects.read', directoryObjectSchema, body), undefined);
  }

  /** A user by user principal name (or object ID), or null. */
  async user(upn: string): Promise<DirectoryPrincipal | null> {
    const body = await this.send('graph.users.read', 'GET', `/users/${encodeURIComponent(upn)}`, undefined, { notFound: null });
    return body === null ? null : principalOf(this.parse('graph.users.read', directoryObjectSchema, body), 'user');
  }

  /** App role assignments granted on the resource service principal (`appRoleAssignedTo`), every page. */
  async appRoleAssignedTo(resourceSpId: string): Promise<AppRoleAssignment[]> {
    return this.list('graph.app_role_assignments.read', `/servicePrincipals/${guid(resourceSpId)}/appRoleAssignedTo`, appRoleAssignmentSchema);
  }

  async assignAppRole(resourceSpId: string, principalId: string, appRoleId: string): Promise<AppRoleAssignment> {
    const body = await this.send('graph.app_role_assignments.write', 'POST', `/servicePrincipals/${guid(resourceSpId)}/appRoleAssignedTo`, {
      principalId: guid(principalId),
      resourceId: guid(resourceSpId),
      appRoleId: guid(appRoleId),
    });
    return this.parse('graph.app_role_assignments.write', appRoleAssignmentSchema, body);
  }

  async removeAppRoleAssignment(resourceSpId: string, assignmentId: string): Promise<void> {
    await this.send(
      'graph.app_role_assignments.write',
      'DELETE',
      `/servicePrincipals/${guid(resourceSpId)}/appRoleAssignedTo/${encodeURIComponent(assignmentId)}`,
      undefined,
      { notFound: null },
    );
  }

  private list<T>(operation: string, path: string, schema: z.ZodType<T>): Promise<T[]> {
    const pageSchema = z.object({ value: z.array(schema), '@odata.nextLink': z.string().nullish() });
    return listAzurePages(this.conn, operation, `${this.base}${path}`, '@odata.nextLink', (body) => {
      const page = this.parse(operation, pageSchema, body);
      return { value: page.value, nextLink: page['@odata.nextLink'] ?? undefined };
    });
  }

  /** One authenticated call; `path` is relative to `/v1.0`. A 404 answers `notFound` when given. */
  private send(operation: string, method: Method, path: string, body?: unknown, opts: { notFound?: null } = {}): Promise<unknown> {
    return callAzureApi(this.conn, {
      operation,
      method,
      url: `${this.base}${path}`,
      body,
      ...('notFound' in opts ? { notFound: { value: null } } : {}),
    });
  }

  private parse<T>(operation: string, schema: z.ZodType<T>, body: unknown): T {
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new AzureApiError('graph', operation, {
        kind: 'bad_response',
        detail: `Graph answered with an unexpected shape (${issue ? `${issue.path.join('.') || 'body'}: ${issue.message}` : 'invalid'})`,
      });
    }
    return parsed.data;
  }
}

function principalOf(o: z.infer<typeof directoryObjectSchema>, known: DirectoryPrincipal['kind'] | undefined): DirectoryPrincipal | null {
  const type = o['@odata.type']?.toLowerCase();
  const kind =
    known ??
    (type === '#microsoft.graph.user'
      ? 'user'
      : type === '#microsoft.graph.group'
        ? 'group'
        : type === '#microsoft.graph.serviceprincipal'
          ? 'servicePrincipal'
          : undefined);
  if (kind === undefined) return null;
  return {
    kind,
    id: o.id.toLowerCase(),
    ...(o.displayName ? { displayName: o.displayName } : {}),
    ...(o.userPrincipalName ? { userPrincipalName: o.userPrincipalName } : {}),
    ...(o.appId ? { appId: o.appId.toLowerCase() } : {}),
    ...(o.servicePrincipalType ? { servicePrincipalType: o.servicePrincipalType } : {}),
  };
}

/** `prop eq 'value'` for `$filter`, the value's quotes doubled, percent-encoded for the query. */
function odataEq(property: string, value: string): string {
  return encodeURIComponent(`${property} eq '${value.replace(/'/g, "''")}'`);
}

/** Object and client IDs are GUIDs; anything else must never become part of a URL. */
function guid(id: string): string {
  if (!GUID.test(id)) throw new TypeError(`not an object or client ID (GUID): ${id.slice(0, 60)}`);
  return id.toLowerCase();
}
