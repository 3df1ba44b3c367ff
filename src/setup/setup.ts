import { randomUUID } from 'node:crypto';
import { scopeCovers } from '../azure/scope.js';
import { AzureApiError } from '../azure/api-call.js';
import type { ApiApplication, AppRole, Application, PermissionScope, PreAuthorizedApplication } from '../azure/graph.js';
import type { SetupClients } from './clients.js';
import {
  APP_ROLE_DESCRIPTION,
  APP_ROLE_DISPLAY_NAME,
  APP_ROLE_VALUE,
  AZURE_CLI_APP_ID,
  CLUSTER_IDENTITY_ROLE,
  roleAssignmentName,
  SCOPE_ADMIN_CONSENT_DESCRIPTION,
  SCOPE_ADMIN_CONSENT_DISPLAY_NAME,
  SCOPE_VALUE,
} from './names.js';
import { collectingReporter, isChange, planned, type Reporter, type StepReport } from './report.js';
import { serveSettings, type ServeSettings } from './serve-settings.js';

/**
 * `foundry-auth setup`: the documentation's steps 1-5 and 7 against Microsoft Graph and ARM.
 * Each step reads what exists, computes what the documentation requires, and writes only the
 * difference, merging into what is there (other scopes, app roles, identifier URIs and
 * pre-authorized clients are kept). A second run therefore writes nothing, and a dry run takes
 * exactly the same path without the writes.
 */

export interface SetupOptions {
  /** The app registration's display name: found by it, or created with it. */
  readonly appName: string;
  /** Pins an existing app registration by its Application (client) ID instead of finding it by name. */
  readonly clientId?: string;
  /** ARM resource ID of the Arc connected cluster: enables step 7 and names `--rbac-scope`. */
  readonly clusterId?: string;
  /** The tenant, when known; otherwise the tenant of the caller's Graph token. */
  readonly tenantId?: string;
  /** Plan only: read everything, write nothing, report `would create` / `would update`. */
  readonly dryRun?: boolean;
  /** Only for the printed `serve` settings (`FOUNDRY_AUTH_AUTHORITY` / `_ARM_ENDPOINT` when not the defaults). */
  readonly authority?: string;
  readonly armEndpoint?: string;
  /** Waits before retrying a Graph call that failed because Entra has not replicated a new object yet (default 2, 5, 10 s). */
  readonly replicationRetryDelaysMs?: readonly number[];
}

export interface SetupResult {
  readonly tenantId: string;
  /** The Application (client) ID; null only in a dry run that would create the app. */
  readonly clientId: string | null;
  readonly applicationObjectId: string | null;
  readonly servicePrincipalId: string | null;
  readonly scopeId: string | null;
  readonly appRoleId: string | null;
  readonly clusterId?: string;
  /** The cluster's Arc identity (object ID). */
  readonly clusterPrincipalId?: string;
  readonly dryRun: boolean;
  /** True when some step changed (or, in a dry run, would change) something. */
  readonly changed: boolean;
  readonly steps: readonly StepReport[];
  readonly serve: ServeSettings;
}

/** Setup cannot proceed for a reason the user must resolve (not an Azure API failure): exit 1. */
export class SetupError extends Error {
  constructor(
    message: string,
    /** What to do about it. */
    readonly fix: string,
  ) {
    super(message);
    this.name = 'SetupError';
  }
}

/** The app registration as setup sees it: what Graph returned, plus the changes made (or planned) so far. */
interface AppDraft {
  objectId: string | null;
  appId: string | null;
  displayName: string;
  identifierUris: string[];
  api: ApiApplication;
  appRoles: AppRole[];
}

export async function runSetup(options: SetupOptions, clients: SetupClients, reporter: Reporter = collectingReporter()): Promise<SetupResult> {
  const dryRun = options.dryRun === true;
  const { graph, arm } = clients;
  const steps: StepReport[] = [];
  const retrying = <T>(work: () => Promise<T>): Promise<T> => afterReplication(work, options.replicationRetryDelaysMs ?? REPLICATION_RETRY_DELAYS_MS);
  const report = (r: StepReport): void => {
    steps.push(r);
    reporter.step(r);
  };

  const tenantId = options.tenantId ?? (await reporter.waiting('reading the tenant', () => graph.callerTenantId()));
  if (tenantId === undefined) throw new SetupError('the tenant of the signed-in account could not be determined', 'pass --tenant-id');

  // Step 7's cluster is checked first: a wrong --cluster-id should fail before anything is written.
  const cluster = options.clusterId !== undefined ? await clusterIdentity(options.clusterId, clients, reporter) : undefined;

  // Step 1: the app registration and its service principal.
  const found = await findApp(options, clients, reporter);
  let draft: AppDraft;
  if (found !== null) {
    draft = draftOf(found);
    report({ step: 'app', seedStep: 1, subject: `app registration ${draft.displayName}`, outcome: 'unchanged', detail: `client ID ${found.appId}` });
  } else if (dryRun) {
    draft = { objectId: null, appId: null, displayName: options.appName, identifierUris: [], api: {}, appRoles: [] };
    report({ step: 'app', seedStep: 1, subject: `app registration ${options.appName}`, outcome: 'would create' });
  } else {
    const created = await reporter.waiting('creating the app registration', () => graph.createApplication(options.appName));
    draft = draftOf(created);
    report({ step: 'app', seedStep: 1, subject: `app registration ${draft.displayName}`, outcome: 'created', detail: `client ID ${created.appId}` });
  }

  let servicePrincipalId: string | null = null;
  if (draft.appId === null) {
    report({ step: 'service_principal', seedStep: 1, subject: 'service principal', outcome: 'would create' });
  } else {
    const appId = draft.appId;
    const sp = await reporter.waiting('reading the service principal', () => graph.servicePrincipalByAppId(appId));
    if (sp !== null) {
      servicePrincipalId = sp.id;
      report({ step: 'service_principal', seedStep: 1, subject: 'service principal', outcome: 'unchanged', detail: `object ID ${sp.id}` });
    } else if (dryRun) {
      report({ step: 'service_principal', seedStep: 1, subject: 'service principal', outcome: 'would create' });
    } else {
      const created = await reporter.waiting('creating the service principal', () => retrying(() => graph.createServicePrincipal(appId)));
      servicePrincipalId = created.id;
      report({ step: 'service_principal', seedStep: 1, subject: 'service principal', outcome: 'created', detail: `object ID ${created.id}` });
    }
  }

  const patch = async (label: string, changes: Record<string, unknown>): Promise<void> => {
    if (dryRun || draft.objectId === null) return;
    const objectId = draft.objectId;
    await reporter.waiting(label, () => retrying(() => graph.updateApplication(objectId, changes)));
  };

  // Step 2: the Application ID URI and the delegated scope.
  const uri = draft.appId === null ? 'api://<client ID>' : `api://${draft.appId}`;
  if (draft.identifierUris.some((u) => u.toLowerCase() === uri.toLowerCase())) {
    report({ step: 'identifier_uri', seedStep: 2, subject: `identifier URI ${uri}`, outcome: 'unchanged' });
  } else {
    draft.identifierUris = [...draft.identifierUris, uri];
    await patch('setting the identifier URI', { identifierUris: draft.identifierUris });
    report({ step: 'identifier_uri', seedStep: 2, subject: `identifier URI ${uri}`, outcome: planned('created', dryRun) });
  }

  const scope = planScope(draft.api.oauth2PermissionScopes ?? []);
  if (scope.outcome === 'unchanged') {
    report({ step: 'scope', seedStep: 2, subject: `scope ${SCOPE_VALUE}`, outcome: 'unchanged', detail: 'admin consent only, enabled' });
  } else {
    if (scope.disableFirst !== undefined)
      await patch(`disabling scope ${SCOPE_VALUE} before changing it`, { api: { ...draft.api, oauth2PermissionScopes: scope.disableFirst } });
    draft.api = { ...draft.api, oauth2PermissionScopes: scope.list };
    await patch(`writing scope ${SCOPE_VALUE}`, { api: draft.api });
    report({ step: 'scope', seedStep: 2, subject: `scope ${SCOPE_VALUE}`, outcome: planned(scope.outcome, dryRun), detail: scope.detail });
  }

  // Step 3: v2 access tokens.
  const version = draft.api.requestedAccessTokenVersion ?? null;
  if (version === 2) {
    report({ step: 'token_version', seedStep: 3, subject: 'access token version 2', outcome: 'unchanged' });
  } else {
    draft.api = { ...draft.api, requestedAccessTokenVersion: 2 };
    await patch('setting the access token version', { api: draft.api });
    report({
      step: 'token_version',
      seedStep: 3,
      subject: 'access token version 2',
      outcome: planned('updated', dryRun),
      detail: `requestedAccessTokenVersion ${String(version)} -> 2`,
    });
  }

  // Step 4: the app role app-only tokens carry.
  const role = planAppRole(draft.appRoles);
  if (role.outcome === 'unchanged') {
    report({ step: 'app_role', seedStep: 4, subject: `app role ${APP_ROLE_VALUE}`, outcome: 'unchanged', detail: 'for applications, enabled' });
  } else {
    if (role.disableFirst !== undefined) await patch(`disabling app role ${APP_ROLE_VALUE} before changing it`, { appRoles: role.disableFirst });
    draft.appRoles = role.list;
    await patch(`writing app role ${APP_ROLE_VALUE}`, { appRoles: draft.appRoles });
    report({ step: 'app_role', seedStep: 4, subject: `app role ${APP_ROLE_VALUE}`, outcome: planned(role.outcome, dryRun), detail: role.detail });
  }

  // Step 5: the Azure CLI may ask for the scope without a consent prompt.
  const preauth = planPreAuthorization(draft.api.preAuthorizedApplications ?? [], scope.id);
  if (preauth.outcome === 'unchanged') {
    report({
      step: 'preauthorized_client',
      seedStep: 5,
      subject: 'Azure CLI pre-authorized',
      outcome: 'unchanged',
      detail: `${AZURE_CLI_APP_ID} for ${SCOPE_VALUE}`,
    });
  } else {
    draft.api = { ...draft.api, preAuthorizedApplications: preauth.list };
    await patch('pre-authorizing the Azure CLI', { api: draft.api });
    report({
      step: 'preauthorized_client',
      seedStep: 5,
      subject: 'Azure CLI pre-authorized',
      outcome: planned(preauth.outcome, dryRun),
      detail: `${AZURE_CLI_APP_ID} for ${SCOPE_VALUE}`,
    });
  }

  // Step 7: the cluster's Arc identity may read role assignments at the cluster.
  if (options.clusterId !== undefined && cluster !== undefined) {
    const clusterId = options.clusterId;
    const subject = `${CLUSTER_IDENTITY_ROLE.name} for the cluster identity`;
    const held = cluster.assignments.find(
      (a) => a.roleDefinitionGuid === CLUSTER_IDENTITY_ROLE.guid && scopeCovers(a.scope, clusterId) && a.condition === undefined,
    );
    if (held !== undefined) {
      report({ step: 'cluster_role', seedStep: 7, subject, outcome: 'unchanged', detail: `object ID ${cluster.principalId} at ${held.scope}` });
    } else {
      let outcome: 'created' | 'exists' = 'created';
      if (!dryRun) {
        const name = roleAssignmentName(clusterId, cluster.principalId, CLUSTER_IDENTITY_ROLE.guid);
        outcome = await reporter.waiting('assigning the cluster identity its role', () =>
          arm.createRoleAssignment(clusterId, name, {
            roleGuid: CLUSTER_IDENTITY_ROLE.guid,
            principalId: cluster.principalId,
            principalType: 'ServicePrincipal',
          }),
        );
      }
      report({
        step: 'cluster_role',
        seedStep: 7,
        subject,
        outcome: outcome === 'exists' ? 'unchanged' : planned('created', dryRun),
        detail: `object ID ${cluster.principalId} at the cluster`,
      });
    }
  }

  return {
    tenantId,
    clientId: draft.appId,
    applicationObjectId: draft.objectId,
    servicePrincipalId,
    scopeId: draft.appId === null ? null : scope.id,
    appRoleId: draft.appId === null ? null : role.id,
    ...(options.clusterId !== undefined ? { clusterId: options.clusterId } : {}),
    ...(cluster !== undefined ? { clusterPrincipalId: cluster.principalId } : {}),
    dryRun,
    changed: steps.some((s) => isChange(s.outcome)),
    steps,
    serve: serveSettings({
      tenantId,
      clientId: draft.appId,
      ...(options.clusterId !== undefined ? { rbacScope: options.clusterId } : {}),
      ...(options.authority !== undefined ? { authority: options.authority } : {}),
      ...(options.armEndpoint !== undefined ? { armEndpoint: options.armEndpoint } : {}),
    }),
  };
}

const REPLICATION_RETRY_DELAYS_MS = [2_000, 5_000, 10_000];

/**
 * Entra replicates a new application within seconds to a minute: until then Graph may answer 404
 * for it, or refuse its service principal ("does not reference a valid application object").
 * Such a call is retried after each delay; any other failure is not.
 */
async function afterReplication<T>(work: () => Promise<T>, delaysMs: readonly number[]): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await work();
    } catch (err) {
      const delay = delaysMs[attempt];
      if (delay === undefined || !isReplicationLag(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}

function isReplicationLag(err: unknown): boolean {
  if (!(err instanceof AzureApiError) || err.api !== 'graph') return false;
  if (err.status === 404) return true;
  return err.status === 400 && /does not reference a valid application object/i.test(err.azureMessage ?? '');
}

/** The app by `--client-id`, or the single app with this display name; null when there is none. */
async function findApp(options: SetupOptions, { graph }: SetupClients, reporter: Reporter): Promise<Application | null> {
  if (options.clientId !== undefined) {
    const clientId = options.clientId;
    const app = await reporter.waiting('reading the app registration', () => graph.applicationByAppId(clientId));
    if (app === null) {
      throw new SetupError(
        `no app registration with client ID ${clientId} in this tenant`,
        `check --client-id, or drop it to find or create the app named "${options.appName}"`,
      );
    }
    return app;
  }
  const named = await reporter.waiting('looking up the app registration', () => graph.applicationsNamed(options.appName));
  if (named.length > 1) {
    throw new SetupError(
      `${named.length} app registrations are named "${options.appName}": ${named.map((a) => a.appId).join(', ')}`,
      'pass --client-id with the one to use (or choose another --app-name)',
    );
  }
  return named[0] ?? null;
}

function draftOf(app: Application): AppDraft {
  return {
    objectId: app.id,
    appId: app.appId.toLowerCase(),
    displayName: app.displayName ?? app.appId,
    identifierUris: [...(app.identifierUris ?? [])],
    api: app.api ?? {},
    appRoles: [...(app.appRoles ?? [])],
  };
}

/** A change to one entry of an app's scopes or app roles; the other entries are kept as they are. */
interface EntryPlan<T> {
  readonly outcome: 'created' | 'updated' | 'unchanged';
  readonly id: string;
  /** The whole collection as it is to be written. */
  readonly list: T[];
  /** Graph refuses to change an enabled scope or app role: this list (the entry disabled, nothing else changed) goes first. */
  readonly disableFirst?: T[];
  readonly detail?: string;
}

/** The plan for an entry that exists: `desired` replaces it when anything changed, after disabling it if it is enabled. */
function updatePlan<T extends { readonly id: string; isEnabled?: boolean | null | undefined }>(
  list: readonly T[],
  existing: T,
  desired: T,
  changes: readonly string[],
): EntryPlan<T> {
  if (changes.length === 0) return { outcome: 'unchanged', id: existing.id, list: [...list] };
  const replace = (entry: T): T[] => list.map((x) => (x === existing ? entry : x));
  return {
    outcome: 'updated',
    id: existing.id,
    list: replace(desired),
    ...(existing.isEnabled === true ? { disableFirst: replace({ ...existing, isEnabled: false }) } : {}),
    detail: changes.join(', '),
  };
}

/** `foundry_access`: admin consent only, enabled, with consent texts; every other scope kept as it is. */
export function planScope(scopes: readonly PermissionScope[]): EntryPlan<PermissionScope> {
  const existing = scopes.find((s) => s.value === SCOPE_VALUE);
  if (existing === undefined) {
    const created: PermissionScope = {
      id: randomUUID(),
      value: SCOPE_VALUE,
      type: 'Admin',
      isEnabled: true,
      adminConsentDisplayName: SCOPE_ADMIN_CONSENT_DISPLAY_NAME,
      adminConsentDescription: SCOPE_ADMIN_CONSENT_DESCRIPTION,
      userConsentDisplayName: null,
      userConsentDescription: null,
    };
    return { outcome: 'created', id: created.id, list: [...scopes, created], detail: 'admin consent only, enabled' };
  }
  const changes: string[] = [];
  const desired: PermissionScope = { ...existing };
  if (existing.type !== 'Admin') {
    changes.push(`type ${existing.type ?? 'unset'} -> Admin (admin consent only)`);
    desired.type = 'Admin';
  }
  if (!existing.adminConsentDisplayName) {
    changes.push('admin consent display name set');
    desired.adminConsentDisplayName = SCOPE_ADMIN_CONSENT_DISPLAY_NAME;
  }
  if (!existing.adminConsentDescription) {
    changes.push('admin consent description set');
    desired.adminConsentDescription = SCOPE_ADMIN_CONSENT_DESCRIPTION;
  }
  if (existing.isEnabled !== true) {
    changes.push('enabled');
    desired.isEnabled = true;
  }
  return updatePlan(scopes, existing, desired, changes);
}

/** `FoundryInferenceAccess`: assignable to applications, enabled; other app roles kept. */
export function planAppRole(roles: readonly AppRole[]): EntryPlan<AppRole> {
  const existing = roles.find((r) => r.value === APP_ROLE_VALUE);
  if (existing === undefined) {
    const created: AppRole = {
      id: randomUUID(),
      value: APP_ROLE_VALUE,
      displayName: APP_ROLE_DISPLAY_NAME,
      description: APP_ROLE_DESCRIPTION,
      allowedMemberTypes: ['Application'],
      isEnabled: true,
    };
    return { outcome: 'created', id: created.id, list: [...roles, created], detail: 'for applications, enabled' };
  }
  const changes: string[] = [];
  const desired: AppRole = { ...existing };
  const types = existing.allowedMemberTypes ?? [];
  if (!types.includes('Application')) {
    changes.push('allowed member types + Application');
    desired.allowedMemberTypes = [...types, 'Application'];
  }
  if (!existing.displayName) desired.displayName = APP_ROLE_DISPLAY_NAME;
  if (!existing.description) desired.description = APP_ROLE_DESCRIPTION;
  if (desired.displayName !== existing.displayName || desired.description !== existing.description) changes.push('display name and description set');
  if (existing.isEnabled !== true) {
    changes.push('enabled');
    desired.isEnabled = true;
  }
  return updatePlan(roles, existing, desired, changes);
}

/** The Azure CLI pre-authorized for the scope; other clients and their permissions kept. */
export function planPreAuthorization(
  list: readonly PreAuthorizedApplication[],
  scopeId: string,
): { outcome: 'created' | 'updated' | 'unchanged'; list: PreAuthorizedApplication[] } {
  const entry = list.find((p) => p.appId.toLowerCase() === AZURE_CLI_APP_ID);
  if (entry === undefined) return { outcome: 'created', list: [...list, { appId: AZURE_CLI_APP_ID, delegatedPermissionIds: [scopeId] }] };
  const ids = entry.delegatedPermissionIds ?? [];
  if (ids.some((id) => id.toLowerCase() === scopeId.toLowerCase())) return { outcome: 'unchanged', list: [...list] };
  return { outcome: 'updated', list: list.map((p) => (p === entry ? { ...p, delegatedPermissionIds: [...ids, scopeId] } : p)) };
}

/** The cluster's Arc identity and its role assignments at (or around) the cluster. */
async function clusterIdentity(clusterId: string, { arm }: SetupClients, reporter: Reporter) {
  const cluster = await reporter.waiting('reading the connected cluster', () => arm.connectedCluster(clusterId));
  if (cluster === null) {
    throw new SetupError(
      `ARM has no connected cluster ${clusterId}`,
      'check --cluster-id: az connectedk8s show --resource-group <group> --name <cluster> --query id -o tsv',
    );
  }
  if (cluster.principalId === undefined) {
    throw new SetupError(
      `the connected cluster ${clusterId} has no system-assigned identity`,
      'reconnect the cluster with az connectedk8s connect (Arc gives every connected cluster a system-assigned identity), then rerun setup',
    );
  }
  const principalId = cluster.principalId;
  const assignments = await reporter.waiting("reading the cluster identity's role assignments", () => arm.roleAssignmentsOf(clusterId, principalId));
  return { principalId, assignments };
}
