import { GUID } from '../../../contracts/azure-ids.js';
import { TOKEN_EXCHANGE_AUDIENCE } from '../first-party.js';
import type { AppRole, Application, PermissionScope } from '../model.js';
import { deleteApplication, newApplication, newPasswordCredential } from '../objects.js';
import { newGuid } from '../state.js';
import { GraphError, badRequest, notFound, type GraphCall } from './call.js';
import { odataFilter } from './odata.js';
import { applicationJson, federatedCredentialJson, passwordCredentialJson } from './shapes.js';

/** `/applications`: create, get (by id or `(appId='…')`), list with `$filter`, PATCH with Graph's validation rules, delete, passwords, federated credentials. */

const READ_ONLY = new Set(['id', 'appId', 'createdDateTime', 'deletedDateTime', 'publisherDomain', 'passwordCredentials', 'keyCredentials']);
/** Properties stored as sent (shape not interpreted by the emulator). */
const PASS_THROUGH = new Set([
  'description',
  'notes',
  'tags',
  'web',
  'spa',
  'publicClient',
  'requiredResourceAccess',
  'optionalClaims',
  'groupMembershipClaims',
  'info',
  'serviceManagementReference',
  'isDeviceOnlyAuthSupported',
  'defaultRedirectUri',
]);

export function findApplication(call: GraphCall, key: { id?: string; appId?: string }): Application {
  const d = call.em.directory;
  const app = key.appId !== undefined ? d.applicationByAppId(call.tenantId, key.appId) : d.application(call.tenantId, key.id ?? '');
  if (app === undefined) throw notFound(key.appId ?? key.id ?? '');
  return app;
}

function str(v: unknown, prop: string): string {
  if (typeof v !== 'string') throw badRequest(`Invalid value specified for property '${prop}' of resource 'Application'.`);
  return v;
}

function nullableStr(v: unknown, prop: string): string | null {
  return v === null || v === undefined ? null : str(v, prop);
}

function bool(v: unknown, prop: string): boolean {
  if (typeof v !== 'boolean') throw badRequest(`Invalid value specified for property '${prop}' of resource 'Application'.`);
  return v;
}

function guidOf(v: unknown, prop: string): string {
  if (typeof v !== 'string' || !GUID.test(v)) throw badRequest(`Invalid value specified for property '${prop}' of resource 'Application'.`);
  return v.toLowerCase();
}

function objects(v: unknown, prop: string): Array<Record<string, unknown>> {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'object' || x === null || Array.isArray(x)))
    throw badRequest(`Invalid value specified for property '${prop}' of resource 'Application'.`);
  return v as Array<Record<string, unknown>>;
}

function parseScopes(v: unknown): PermissionScope[] {
  const out = objects(v, 'api.oauth2PermissionScopes').map((s) => {
    const value = str(s['value'], 'oauth2PermissionScopes.value');
    if (value === '' || /\s/.test(value) || value.startsWith('.'))
      throw badRequest(`Invalid value specified for property 'value' of resource 'PermissionScope'.`);
    const type = s['type'] ?? 'User';
    if (type !== 'User' && type !== 'Admin') throw badRequest(`Invalid value specified for property 'type' of resource 'PermissionScope'.`);
    return {
      id: guidOf(s['id'], 'oauth2PermissionScopes.id'),
      value,
      type,
      isEnabled: s['isEnabled'] === undefined ? true : bool(s['isEnabled'], 'oauth2PermissionScopes.isEnabled'),
      adminConsentDisplayName: nullableStr(s['adminConsentDisplayName'], 'adminConsentDisplayName'),
      adminConsentDescription: nullableStr(s['adminConsentDescription'], 'adminConsentDescription'),
      userConsentDisplayName: nullableStr(s['userConsentDisplayName'], 'userConsentDisplayName'),
      userConsentDescription: nullableStr(s['userConsentDescription'], 'userConsentDescription'),
    } satisfies PermissionScope;
  });
  unique(
    out.map((s) => s.id),
    'oauth2PermissionScopes.id',
  );
  unique(
    out.map((s) => s.value),
    'oauth2PermissionScopes.value',
  );
  return out;
}

function parseAppRoles(v: unknown): AppRole[] {
  const out = objects(v, 'appRoles').map((r) => {
    const types = r['allowedMemberTypes'];
    if (!Array.isArray(types) || types.length === 0 || types.some((t) => t !== 'User' && t !== 'Application'))
      throw badRequest(`Invalid value specified for property 'allowedMemberTypes' of resource 'AppRole'.`);
    const value = nullableStr(r['value'], 'appRoles.value');
    if (value !== null && (/\s/.test(value) || value.startsWith('.')))
      throw badRequest(`Invalid value specified for property 'value' of resource 'AppRole'.`);
    return {
      id: guidOf(r['id'], 'appRoles.id'),
      value,
      displayName: nullableStr(r['displayName'], 'appRoles.displayName'),
      description: nullableStr(r['description'], 'appRoles.description'),
      isEnabled: r['isEnabled'] === undefined ? true : bool(r['isEnabled'], 'appRoles.isEnabled'),
      allowedMemberTypes: types as Array<'User' | 'Application'>,
      origin: 'Application',
    } satisfies AppRole;
  });
  unique(
    out.map((r) => r.id),
    'appRoles.id',
  );
  unique(
    out.flatMap((r) => (r.value === null ? [] : [r.value])),
    'appRoles.value',
  );
  return out;
}

function unique(values: string[], prop: string): void {
  if (new Set(values.map((v) => v.toLowerCase())).size !== values.length)
    throw badRequest(`Request contains a property with duplicate values: '${prop}'.`);
}

function canonical(o: object): string {
  return JSON.stringify(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** Graph refuses to remove or change an enabled scope or app role: it has to be disabled (in an earlier PATCH) first. */
function guardEnabledEntitlements<T extends { id: string; isEnabled: boolean }>(before: readonly T[], after: readonly T[]): void {
  for (const old of before) {
    if (!old.isEnabled) continue;
    const next = after.find((n) => n.id === old.id);
    const same = next !== undefined && canonical({ ...next, isEnabled: true }) === canonical({ ...old, isEnabled: true });
    if (!same)
      throw new GraphError(
        400,
        'CannotDeleteOrUpdateEnabledEntitlement',
        'Permission (scope or role) cannot be deleted or updated unless disabled first.',
      );
  }
}

function checkIdentifierUris(call: GraphCall, app: Application, uris: string[]): void {
  const tenant = call.caller?.tenant;
  for (const uri of uris) {
    let parsed: URL;
    try {
      parsed = new URL(uri);
    } catch {
      throw badRequest(`Invalid value specified for property 'identifierUris' of resource 'Application'.`);
    }
    if ((parsed.protocol === 'https:' || parsed.protocol === 'http:') && tenant !== undefined) {
      const host = parsed.hostname.toLowerCase();
      const domain = tenant.domain.toLowerCase();
      if (host !== domain && !host.endsWith(`.${domain}`)) {
        throw new GraphError(
          400,
          'HostNameNotOnVerifiedDomain',
          `Values of identifierUris property must use a verified domain of the organization or its subdomain: '${uri}'`,
        );
      }
    }
    const clash = call.em.state.applications.find(
      (a) => a !== app && a.tenantId === app.tenantId && a.identifierUris.some((u) => u.toLowerCase() === uri.toLowerCase()),
    );
    if (clash !== undefined)
      throw new GraphError(
        400,
        'Request_MultipleObjectsWithSameKeyValue',
        'Another object with the same value for property identifierUris already exists.',
      );
  }
  unique(uris, 'identifierUris');
}

/** Applies a POST or PATCH body to a copy of `app` and validates it; the caller stores the result. */
function applyChanges(call: GraphCall, app: Application, body: Record<string, unknown>, creating: boolean): Application {
  const next: Application = structuredClone(app);
  for (const [key, value] of Object.entries(body)) {
    if (key.startsWith('@odata')) continue;
    if (READ_ONLY.has(key)) throw badRequest(`Property '${key}' is read-only and cannot be set.`);
    switch (key) {
      case 'displayName':
        next.displayName = str(value, key);
        if (next.displayName.trim() === '') throw badRequest(`Invalid value specified for property 'displayName' of resource 'Application'.`);
        break;
      case 'identifierUris':
        if (!Array.isArray(value) || value.some((u) => typeof u !== 'string'))
          throw badRequest(`Invalid value specified for property 'identifierUris' of resource 'Application'.`);
        checkIdentifierUris(call, app, value as string[]);
        next.identifierUris = value as string[];
        break;
      case 'signInAudience':
        if (!['AzureADMyOrg', 'AzureADMultipleOrgs', 'AzureADandPersonalMicrosoftAccount', 'PersonalMicrosoftAccount'].includes(String(value)))
          throw badRequest(`Invalid value specified for property 'signInAudience' of resource 'Application'.`);
        next.signInAudience = String(value);
        break;
      case 'isFallbackPublicClient':
        next.isFallbackPublicClient = value === null ? null : bool(value, key);
        break;
      case 'appRoles':
        next.appRoles = parseAppRoles(value);
        break;
      case 'api': {
        if (typeof value !== 'object' || value === null || Array.isArray(value))
          throw badRequest(`Invalid value specified for property 'api' of resource 'Application'.`);
        for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
          if (k === 'requestedAccessTokenVersion') {
            if (v !== null && v !== 1 && v !== 2)
              throw badRequest(`Invalid value specified for property 'requestedAccessTokenVersion' of resource 'ApiApplication'.`);
            next.api.requestedAccessTokenVersion = v;
          } else if (k === 'oauth2PermissionScopes') next.api.oauth2PermissionScopes = parseScopes(v);
          else if (k === 'preAuthorizedApplications') {
            next.api.preAuthorizedApplications = objects(v, 'api.preAuthorizedApplications').map((p) => {
              const ids = p['delegatedPermissionIds'];
              if (!Array.isArray(ids))
                throw badRequest(`Invalid value specified for property 'delegatedPermissionIds' of resource 'PreAuthorizedApplication'.`);
              return {
                appId: guidOf(p['appId'], 'preAuthorizedApplications.appId'),
                delegatedPermissionIds: ids.map((i) => guidOf(i, 'delegatedPermissionIds')),
              };
            });
          } else if (k === 'knownClientApplications') {
            if (!Array.isArray(v)) throw badRequest(`Invalid value specified for property 'knownClientApplications' of resource 'ApiApplication'.`);
            next.api.knownClientApplications = v.map((i) => guidOf(i, 'knownClientApplications'));
          } else if (k === 'acceptMappedClaims') next.api.acceptMappedClaims = v === null ? null : bool(v, k);
          else throw badRequest(`Property '${k}' does not exist on type 'microsoft.graph.apiApplication'.`);
        }
        break;
      }
      default:
        if (!PASS_THROUGH.has(key)) throw badRequest(`Property '${key}' does not exist on type 'microsoft.graph.application'.`);
        next.extra[key] = value;
    }
  }
  if (!creating) {
    guardEnabledEntitlements(app.api.oauth2PermissionScopes, next.api.oauth2PermissionScopes);
    guardEnabledEntitlements(app.appRoles, next.appRoles);
  }
  const scopeIds = new Set(next.api.oauth2PermissionScopes.map((s) => s.id));
  for (const p of next.api.preAuthorizedApplications) {
    for (const id of p.delegatedPermissionIds) {
      if (!scopeIds.has(id))
        throw badRequest(
          `Property 'api.preAuthorizedApplications.delegatedPermissionIds' references permission '${id}', which is not defined in api.oauth2PermissionScopes.`,
        );
    }
  }
  return next;
}

export function createApplication(call: GraphCall): void {
  call.require('applications', true);
  const body = call.body();
  if (typeof body['displayName'] !== 'string' || body['displayName'].trim() === '')
    throw badRequest("Invalid value specified for property 'displayName' of resource 'Application'.");
  const base = newApplication(call.em, { tenantId: call.tenantId, displayName: body['displayName'] });
  const app = applyChanges(call, base, body, true);
  call.em.state.applications.push(app);
  call.em.changed();
  call.entity('applications', 201, applicationJson(call.em, app));
}

export function listApplications(call: GraphCall): void {
  call.require('applications', false);
  const pick = odataFilter(call.ex.query.get('$filter'));
  const items = call.em.state.applications
    .filter((a) => a.tenantId === call.tenantId)
    .map((a) => applicationJson(call.em, a))
    .filter(pick);
  call.list('applications', items);
}

export function getApplication(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', false);
  call.entity('applications', 200, applicationJson(call.em, findApplication(call, key)));
}

export function patchApplication(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', true);
  const app = findApplication(call, key);
  const next = applyChanges(call, app, call.body(), false);
  const list = call.em.state.applications;
  list[list.indexOf(app)] = next;
  const sp = call.em.directory.servicePrincipalByAppId(app.tenantId, app.appId);
  if (sp !== undefined && next.displayName !== app.displayName) sp.displayName = next.displayName;
  call.em.changed();
  call.noContent();
}

export function removeApplication(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', true);
  deleteApplication(call.em, findApplication(call, key));
  call.em.changed();
  call.noContent();
}

export function addPassword(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', true);
  const app = findApplication(call, key);
  const body = call.body();
  const pc =
    typeof body['passwordCredential'] === 'object' && body['passwordCredential'] !== null
      ? (body['passwordCredential'] as Record<string, unknown>)
      : {};
  const end = pc['endDateTime'];
  if (end !== undefined && (typeof end !== 'string' || !Number.isFinite(Date.parse(end))))
    throw badRequest("Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.");
  const { credential, secretText } = newPasswordCredential(call.em, typeof pc['displayName'] === 'string' ? pc['displayName'] : null, end);
  app.passwordCredentials.push(credential);
  call.em.changed();
  call.raw(200, { '@odata.context': call.context('microsoft.graph.passwordCredential'), ...passwordCredentialJson(credential), secretText });
}

export function removePassword(call: GraphCall, key: { id?: string; appId?: string }): void {
  call.require('applications', true);
  const app = findApplication(call, key);
  const keyId = call.body()['keyId'];
  const i = app.passwordCredentials.findIndex((c) => typeof keyId === 'string' && c.keyId === keyId.toLowerCase());
  if (i < 0) throw badRequest(`No password credential found with keyId ${String(keyId)}.`);
  app.passwordCredentials.splice(i, 1);
  call.em.changed();
  call.noContent();
}

export function federatedCredentials(call: GraphCall, key: { id?: string; appId?: string }, ficId: string | undefined): void {
  const method = call.ex.method;
  const write = method !== 'GET';
  call.require('applications', write);
  const app = findApplication(call, key);
  const list = app.federatedIdentityCredentials;
  const fragment = `applications('${app.id}')/federatedIdentityCredentials`;
  if (ficId === undefined) {
    if (method === 'GET') return call.list(fragment, list.map(federatedCredentialJson));
    const b = call.body();
    const name = b['name'];
    const issuer = b['issuer'];
    const subject = b['subject'];
    if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_-]{2,119}$/.test(name))
      throw badRequest("Invalid value specified for property 'name' of resource 'FederatedIdentityCredential'.");
    if (typeof issuer !== 'string' || typeof subject !== 'string')
      throw badRequest("Properties 'issuer' and 'subject' are required on 'FederatedIdentityCredential'.");
    if (list.some((f) => f.name.toLowerCase() === name.toLowerCase()))
      throw new GraphError(409, 'Request_MultipleObjectsWithSameKeyValue', 'FederatedIdentityCredential with name ' + name + ' already exists.');
    if (list.some((f) => f.issuer === issuer && f.subject === subject))
      throw new GraphError(
        409,
        'Request_MultipleObjectsWithSameKeyValue',
        'FederatedIdentityCredential with the same issuer and subject already exists.',
      );
    if (list.length >= 20) throw badRequest('An application can have at most 20 federated identity credentials.');
    const audiences = Array.isArray(b['audiences']) ? b['audiences'].filter((a): a is string => typeof a === 'string') : [TOKEN_EXCHANGE_AUDIENCE];
    const f = { id: newGuid(), name, issuer, subject, audiences, description: typeof b['description'] === 'string' ? b['description'] : null };
    list.push(f);
    call.em.changed();
    return call.entity(fragment, 201, federatedCredentialJson(f));
  }
  const f = list.find((x) => x.id === ficId.toLowerCase() || x.name.toLowerCase() === ficId.toLowerCase());
  if (f === undefined) throw notFound(ficId);
  if (method === 'GET') return call.entity(fragment, 200, federatedCredentialJson(f));
  if (method === 'DELETE') {
    list.splice(list.indexOf(f), 1);
    call.em.changed();
    return call.noContent();
  }
  const b = call.body();
  if (typeof b['issuer'] === 'string') f.issuer = b['issuer'];
  if (typeof b['subject'] === 'string') f.subject = b['subject'];
  if (Array.isArray(b['audiences'])) f.audiences = b['audiences'].filter((a): a is string => typeof a === 'string');
  if (typeof b['description'] === 'string') f.description = b['description'];
  call.em.changed();
  call.noContent();
}
