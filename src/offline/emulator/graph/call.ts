import type { Emulator } from '../core.js';
import { bearerToken, header, jsonObject, sendEmpty, sendJson, type Exchange } from '../exchange.js';
import { APPLICATION_ADMIN_ROLES, GRAPH_APP_ID } from '../first-party.js';
import { stringClaim } from '../jwt.js';
import type { Tenant, User } from '../model.js';

/** One Microsoft Graph request: the caller from its Graph token, Graph's permission checks, and Graph's response and error shapes. */

export interface GraphCaller {
  readonly tenant: Tenant;
  readonly oid: string;
  readonly kind: 'app' | 'user';
  readonly roles: ReadonlySet<string>;
  readonly scopes: ReadonlySet<string>;
  readonly user: User | undefined;
}

export type PermissionArea = 'applications' | 'appRoleAssignments' | 'grants' | 'users' | 'groups';

/** Application permissions (or delegated scopes) that allow reading / writing each area. */
const READ: Record<PermissionArea, readonly string[]> = {
  applications: ['Application.Read.All', 'Application.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  appRoleAssignments: [
    'Application.Read.All',
    'Application.ReadWrite.All',
    'AppRoleAssignment.ReadWrite.All',
    'Directory.Read.All',
    'Directory.ReadWrite.All',
  ],
  grants: ['DelegatedPermissionGrant.ReadWrite.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  users: ['User.Read.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
  groups: ['Group.Read.All', 'GroupMember.Read.All', 'Directory.Read.All', 'Directory.ReadWrite.All'],
};
const WRITE: Record<PermissionArea, readonly string[]> = {
  applications: ['Application.ReadWrite.All'],
  appRoleAssignments: ['AppRoleAssignment.ReadWrite.All'],
  grants: ['DelegatedPermissionGrant.ReadWrite.All'],
  users: ['User.ReadWrite.All', 'Directory.ReadWrite.All'],
  groups: ['Group.ReadWrite.All', 'Directory.ReadWrite.All'],
};

const GRAPH_AUDIENCES = [
  'https://graph.microsoft.com',
  'https://graph.microsoft.com/',
  GRAPH_APP_ID,
  'https://graph.windows.net',
  'https://graph.windows.net/',
];

export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (id: string): GraphError =>
  new GraphError(
    404,
    'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  );
export const badRequest = (message: string): GraphError => new GraphError(400, 'Request_BadRequest', message);

export class GraphCall {
  caller: GraphCaller | undefined;
  private readonly clientRequestId: string;

  constructor(
    readonly em: Emulator,
    readonly ex: Exchange,
  ) {
    this.clientRequestId = header(ex, 'client-request-id') ?? ex.requestId;
  }

  get tenantId(): string {
    return this.caller?.tenant.id ?? '';
  }

  private headers(): Record<string, string> {
    return {
      'request-id': this.ex.requestId,
      'client-request-id': this.clientRequestId,
      'x-ms-ags-diagnostic': '{"ServerInfo":{"DataCenter":"Emulator","Slice":"E","Ring":"0","ScaleUnit":"000","RoleInstance":"emulator"}}',
      'odata-version': '4.0',
    };
  }

  error(e: GraphError, extra: Record<string, string> = {}): void {
    sendJson(
      this.ex.res,
      e.status,
      {
        error: {
          code: e.code,
          message: e.message,
          innerError: {
            date: new Date(this.em.now()).toISOString().slice(0, 19),
            'request-id': this.ex.requestId,
            'client-request-id': this.clientRequestId,
          },
        },
      },
      { ...this.headers(), ...extra },
    );
  }

  context(fragment: string): string {
    return `${this.ex.base}/graph/v1.0/$metadata#${fragment}`;
  }

  entity(fragment: string, status: number, body: Record<string, unknown>): void {
    sendJson(
      this.ex.res,
      status,
      { '@odata.context': this.context(`${fragment}/$entity`), ...select(body, this.ex.query.get('$select')) },
      this.headers(),
    );
  }

  raw(status: number, body: Record<string, unknown>): void {
    sendJson(this.ex.res, status, body, this.headers());
  }

  noContent(): void {
    sendEmpty(this.ex.res, 204, this.headers());
  }

  /** A list with `$select`, `$top` and `@odata.nextLink` paging (`$skiptoken`). */
  list(fragment: string, items: ReadonlyArray<Record<string, unknown>>): void {
    const topRaw = this.ex.query.get('$top');
    const top = topRaw === null ? this.em.state.settings.graphPageSize : Number.parseInt(topRaw, 10);
    if (!Number.isFinite(top) || top < 1) throw badRequest(`Invalid page size specified: '${topRaw ?? ''}'. Must be between 1 and 999 inclusive.`);
    const skip = Number.parseInt(this.ex.query.get('$skiptoken') ?? '0', 10) || 0;
    const value = items.slice(skip, skip + top).map((i) => select(i, this.ex.query.get('$select')));
    const body: Record<string, unknown> = { '@odata.context': this.context(fragment) };
    if (skip + top < items.length) {
      const q = new URLSearchParams(this.ex.query);
      q.set('$skiptoken', String(skip + top));
      body['@odata.nextLink'] = `${this.ex.base}${this.ex.path}?${q.toString()}`;
    }
    body['value'] = value;
    sendJson(this.ex.res, 200, body, this.headers());
  }

  body(): Record<string, unknown> {
    const b = jsonObject(this.ex);
    if (b === null) throw badRequest('Write requests (excluding DELETE) must contain the Content-Type header declaration.');
    return b;
  }

  /** Validates the Graph token; false when a 401 was sent. */
  authenticate(): boolean {
    const token = bearerToken(this.ex);
    const fail = (message: string): false => {
      this.error(new GraphError(401, 'InvalidAuthenticationToken', message), {
        'www-authenticate': `Bearer realm="", authorization_uri="${this.ex.base}/common/oauth2/authorize", client_id="${GRAPH_APP_ID}"`,
      });
      return false;
    };
    if (token === undefined) return fail('Access token is empty.');
    const check = this.em.checkToken(token);
    if (!check.ok) return fail(check.reason === 'expired' ? 'Lifetime validation failed, the token is expired.' : 'Access token validation failure.');
    const aud = stringClaim(check.claims, 'aud') ?? '';
    const own = this.em.ownUrls().graph.flatMap((u) => [u, `${u}/`]);
    if (![...GRAPH_AUDIENCES, ...own].some((a) => a.toLowerCase() === aud.toLowerCase()))
      return fail('Access token validation failure. Invalid audience.');
    const oid = stringClaim(check.claims, 'oid') ?? '';
    const rolesClaim = check.claims['roles'];
    const roles = new Set(Array.isArray(rolesClaim) ? rolesClaim.filter((r): r is string => typeof r === 'string') : []);
    const scp = stringClaim(check.claims, 'scp');
    const kind = stringClaim(check.claims, 'idtyp') === 'app' || scp === undefined ? 'app' : 'user';
    const user = kind === 'user' ? this.em.directory.user(check.tenant.id, oid) : undefined;
    this.caller = { tenant: check.tenant, oid, kind, roles, scopes: new Set((scp ?? '').split(' ').filter((s) => s !== '')), user };
    return true;
  }

  /** Graph's permission model: app-only tokens need one of the area's app roles; delegated writes need the scope and an admin directory role. */
  require(area: PermissionArea, write: boolean): void {
    const c = this.caller;
    if (c === undefined) throw new GraphError(401, 'InvalidAuthenticationToken', 'Access token is empty.');
    const allowed = write ? WRITE[area] : READ[area];
    const denied = new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
    if (c.kind === 'app') {
      if (!allowed.some((p) => c.roles.has(p))) throw denied;
      return;
    }
    if (!write) return;
    const scoped = allowed.some((p) => c.scopes.has(p)) || c.scopes.has('Directory.AccessAsUser.All');
    const admin = c.user?.directoryRoles.some((r) => APPLICATION_ADMIN_ROLES.has(r)) ?? false;
    if (!scoped || !admin) throw denied;
  }
}

/** `$select=a,b`: only those top-level properties (and `id`, `@odata.type`), as Graph returns. */
function select(body: Record<string, unknown>, raw: string | null): Record<string, unknown> {
  if (raw === null || raw.trim() === '') return body;
  const keep = new Set(raw.split(',').map((s) => s.trim()));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(body)) if (keep.has(k) || k === '@odata.type' || k === '@odata.context') out[k] = v;
  return out;
}
