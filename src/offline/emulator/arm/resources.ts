import { z } from 'zod';
import { jsonObject } from '../exchange.js';
import { TOKEN_EXCHANGE_AUDIENCE } from '../first-party.js';
import { serviceAccountIssuer } from '../k8s.js';
import type { Cluster, ManagedIdentity } from '../model.js';
import { clusterResourceId, identityResourceId, newGuid } from '../state.js';
import type { ArmCall } from './call.js';
import { covers } from './rbac.js';

/** Subscriptions, Arc connected clusters, user-assigned managed identities and their federated credentials. */

const eq = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

function notFound(call: ArmCall, type: string, name: string, rg: string): void {
  call.error(
    404,
    'ResourceNotFound',
    `The Resource '${type}/${name}' under resource group '${rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

function resourceGroupKnown(call: ArmCall, sub: string, rg: string): boolean {
  const s = call.em.state;
  return (
    s.clusters.some((c) => eq(c.subscriptionId, sub) && eq(c.resourceGroup, rg)) ||
    s.managedIdentities.some((m) => eq(m.subscriptionId, sub) && eq(m.resourceGroup, rg))
  );
}

export function subscriptionJson(s: { id: string; tenantId: string; displayName: string }): Record<string, unknown> {
  return {
    id: `/subscriptions/${s.id}`,
    authorizationSource: 'RoleBased',
    managedByTenants: [],
    subscriptionId: s.id,
    tenantId: s.tenantId,
    displayName: s.displayName,
    state: 'Enabled',
    subscriptionPolicies: { locationPlacementId: 'Public_2014-09-01', quotaId: 'PayAsYouGo_2014-09-01', spendingLimit: 'Off' },
  };
}

/** A subscription is visible to a caller with any role assignment at, above or below it (as `az account list` shows). */
function canSeeSubscription(call: ArmCall, subId: string): boolean {
  const c = call.caller;
  if (c === undefined) return false;
  const scope = `/subscriptions/${subId}`;
  const ids = call.em.directory.transitiveGroups(c.tenantId, c.oid);
  ids.add(c.oid);
  return call.em.state.roleAssignments.some((a) => ids.has(a.principalId) && (covers(a.scope, scope) || covers(scope, a.scope)));
}

export function listSubscriptions(call: ArmCall): void {
  const c = call.caller;
  const items = call.em.state.subscriptions.filter((s) => s.tenantId === c?.tenantId && canSeeSubscription(call, s.id));
  call.json(200, { ...call.page(items.map(subscriptionJson)), count: { type: 'Total', value: items.length } });
}

/** `GET /tenants`: the caller's home tenant, as `az login` without `--tenant` lists it. */
export function listTenants(call: ArmCall): void {
  const tenant = call.caller === undefined ? undefined : call.em.directory.tenant(call.caller.tenantId);
  const items = tenant === undefined ? [] : [tenant];
  call.json(200, {
    value: items.map((t) => ({
      id: `/tenants/${t.id}`,
      tenantId: t.id,
      countryCode: 'US',
      displayName: t.displayName,
      domains: [t.domain],
      tenantCategory: 'Home',
      defaultDomain: t.domain,
      tenantType: 'AAD',
    })),
  });
}

/**
 * `GET /metadata/endpoints?api-version=2015-01-01` (no token, as on Azure): where to sign in for
 * this ARM and the token audiences it accepts. `az cloud register --endpoint-resource-manager` reads it.
 */
export function metadataEndpoints(call: ArmCall): void {
  const version = call.ex.query.get('api-version');
  if (version !== '2015-01-01' && version !== '2019-05-01') {
    return call.error(
      400,
      'InvalidApiVersionParameter',
      `The api-version '${version ?? ''}' is invalid. The supported versions are '2015-01-01,2019-05-01'.`,
    );
  }
  call.json(200, {
    galleryEndpoint: '',
    graphEndpoint: 'https://graph.windows.net/',
    portalEndpoint: '',
    authentication: { loginEndpoint: call.em.bases.https, audiences: ['https://management.core.windows.net/', 'https://management.azure.com/'] },
  });
}

export function getSubscription(call: ArmCall, subId: string): void {
  const s = call.em.state.subscriptions.find((x) => eq(x.id, subId));
  if (s === undefined || !canSeeSubscription(call, s.id))
    return call.error(404, 'SubscriptionNotFound', `The subscription '${subId}' could not be found.`);
  call.json(200, subscriptionJson(s));
}

export function getResourceGroup(call: ArmCall, sub: string, rg: string): void {
  const id = `/subscriptions/${sub}/resourceGroups/${rg}`;
  if (!call.authorize('Microsoft.Resources/subscriptions/resourceGroups/read', id)) return;
  if (!resourceGroupKnown(call, sub, rg)) return call.error(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
  const location =
    call.em.state.clusters.find((c) => eq(c.resourceGroup, rg))?.location ??
    call.em.state.managedIdentities.find((m) => eq(m.resourceGroup, rg))?.location ??
    'eastus';
  call.json(200, { id, name: rg, type: 'Microsoft.Resources/resourceGroups', location, properties: { provisioningState: 'Succeeded' } });
}

export function clusterJson(base: string, c: Cluster): Record<string, unknown> {
  return {
    id: clusterResourceId(c),
    name: c.name,
    type: 'microsoft.kubernetes/connectedclusters',
    location: c.location,
    tags: {},
    identity: { type: 'SystemAssigned', principalId: c.principalId, tenantId: c.tenantId },
    properties: {
      provisioningState: 'Succeeded',
      connectivityStatus: 'Connected',
      agentPublicKeyCertificate: '',
      kubernetesVersion: '1.30.4',
      totalNodeCount: 1,
      totalCoreCount: 4,
      agentVersion: '1.21.10',
      distribution: 'k3s',
      infrastructure: 'generic',
      offering: null,
      lastConnectivityTime: c.createdDateTime,
      azureHybridBenefit: 'NotApplicable',
      privateLinkState: 'Disabled',
      oidcIssuerProfile: { enabled: true, issuerUrl: serviceAccountIssuer(base, c), selfHostedIssuerUrl: null },
      securityProfile: { workloadIdentity: { enabled: true } },
    },
    systemData: {
      createdBy: null,
      createdByType: null,
      createdAt: c.createdDateTime,
      lastModifiedBy: null,
      lastModifiedByType: null,
      lastModifiedAt: c.createdDateTime,
    },
  };
}

export function getCluster(call: ArmCall, sub: string, rg: string, name: string): void {
  const id = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.Kubernetes/connectedClusters/${name}`;
  if (!call.authorize('Microsoft.Kubernetes/connectedClusters/read', id)) return;
  const c = call.em.state.clusters.find((x) => eq(x.subscriptionId, sub) && eq(x.resourceGroup, rg) && eq(x.name, name));
  if (c === undefined) {
    if (!resourceGroupKnown(call, sub, rg)) return call.error(404, 'ResourceGroupNotFound', `Resource group '${rg}' could not be found.`);
    return notFound(call, 'Microsoft.Kubernetes/connectedClusters', name, rg);
  }
  call.json(200, clusterJson(call.ex.base, c));
}

export function listClusters(call: ArmCall, sub: string, rg: string | undefined): void {
  const scope = rg === undefined ? `/subscriptions/${sub}` : `/subscriptions/${sub}/resourceGroups/${rg}`;
  if (!call.authorize('Microsoft.Kubernetes/connectedClusters/read', scope)) return;
  const items = call.em.state.clusters.filter((c) => eq(c.subscriptionId, sub) && (rg === undefined || eq(c.resourceGroup, rg)));
  call.json(200, call.page(items.map((c) => clusterJson(call.ex.base, c))));
}

export function identityJson(m: ManagedIdentity): Record<string, unknown> {
  return {
    id: identityResourceId(m),
    name: m.name,
    type: 'Microsoft.ManagedIdentity/userAssignedIdentities',
    location: m.location,
    tags: {},
    properties: { isolationScope: 'None', tenantId: m.tenantId, principalId: m.principalId, clientId: m.clientId },
  };
}

function findIdentity(call: ArmCall, sub: string, rg: string, name: string): ManagedIdentity | undefined {
  return call.em.state.managedIdentities.find((m) => eq(m.subscriptionId, sub) && eq(m.resourceGroup, rg) && eq(m.name, name));
}

export function getIdentity(call: ArmCall, sub: string, rg: string, name: string): void {
  const id = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
  if (!call.authorize('Microsoft.ManagedIdentity/userAssignedIdentities/read', id)) return;
  const m = findIdentity(call, sub, rg, name);
  if (m === undefined) return notFound(call, 'Microsoft.ManagedIdentity/userAssignedIdentities', name, rg);
  call.json(200, identityJson(m));
}

function ficJson(m: ManagedIdentity, f: ManagedIdentity['federatedIdentityCredentials'][number]): Record<string, unknown> {
  return {
    id: `${identityResourceId(m)}/federatedIdentityCredentials/${f.name}`,
    name: f.name,
    type: 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials',
    properties: { issuer: f.issuer, subject: f.subject, audiences: f.audiences },
  };
}

const FicBody = z.object({
  properties: z.object({ issuer: z.string().min(1), subject: z.string().min(1), audiences: z.array(z.string()).optional() }),
});

export function federatedCredentials(call: ArmCall, sub: string, rg: string, name: string, ficName: string | undefined): void {
  const id = `/subscriptions/${sub}/resourceGroups/${rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${name}`;
  const method = call.ex.method;
  const action = `Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/${method === 'GET' ? 'read' : method === 'DELETE' ? 'delete' : 'write'}`;
  if (!call.authorize(action, id)) return;
  const m = findIdentity(call, sub, rg, name);
  if (m === undefined) return notFound(call, 'Microsoft.ManagedIdentity/userAssignedIdentities', name, rg);
  const list = m.federatedIdentityCredentials;
  if (ficName === undefined) return call.json(200, call.page(list.map((f) => ficJson(m, f))));
  const existing = list.find((f) => eq(f.name, ficName));
  if (method === 'GET')
    return existing === undefined
      ? notFound(call, 'Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials', `${name}/${ficName}`, rg)
      : call.json(200, ficJson(m, existing));
  if (method === 'DELETE') {
    if (existing === undefined) return call.empty(204);
    list.splice(list.indexOf(existing), 1);
    call.em.changed();
    return call.empty(200);
  }
  const parsed = FicBody.safeParse(jsonObject(call.ex));
  if (!parsed.success)
    return call.error(400, 'InvalidRequestContent', 'The request content was invalid: properties.issuer and properties.subject are required.');
  const p = parsed.data.properties;
  const audiences = p.audiences ?? [TOKEN_EXCHANGE_AUDIENCE];
  if (existing !== undefined) {
    Object.assign(existing, { issuer: p.issuer, subject: p.subject, audiences });
    call.em.changed();
    return call.json(200, ficJson(m, existing));
  }
  const f = { id: newGuid(), name: ficName, issuer: p.issuer, subject: p.subject, audiences, description: null };
  list.push(f);
  call.em.changed();
  call.json(201, ficJson(m, f));
}
