import type { Emulator } from './core.js';
import type { ClientApp } from './directory.js';
import { header, sendJson, type Exchange } from './exchange.js';
import { MSI_TOKEN_EXPIRES_IN, assignedAppRoles, mintAccessToken } from './entra/issue.js';
import { clusterByName } from './k8s.js';

/**
 * The msi-adapter / IMDS token endpoint: `GET .../metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
 * with `Metadata: true`. Without `client_id`/`object_id`/`msi_res_id` it serves the cluster's
 * system-assigned (Arc) identity; with one of them, a user-assigned managed identity.
 */

function imdsError(ex: Exchange, status: number, error: string, description: string): void {
  sendJson(ex.res, status, { error, error_description: description });
}

function identityFor(em: Emulator, ex: Exchange, clusterName: string | undefined): ClientApp | string {
  const clientId = ex.query.get('client_id');
  const objectId = ex.query.get('object_id') ?? ex.query.get('principal_id');
  const resId = ex.query.get('msi_res_id') ?? ex.query.get('mi_res_id');
  const cluster = clusterByName(em, clusterName);
  const tenantId = cluster?.tenantId ?? em.state.defaultTenantId;
  if (clientId !== null || objectId !== null || resId !== null) {
    const mi = em.state.managedIdentities.find(
      (m) =>
        m.tenantId === tenantId &&
        ((clientId !== null && m.clientId === clientId.toLowerCase()) ||
          (objectId !== null && m.principalId === objectId.toLowerCase()) ||
          (resId !== null && em.directory.servicePrincipal(m.tenantId, m.principalId)?.alternativeNames[1]?.toLowerCase() === resId.toLowerCase())),
    );
    if (mi === undefined) return 'Identity not found';
    return em.directory.client(mi.tenantId, mi.clientId) ?? 'Identity not found';
  }
  if (cluster === undefined) return 'Identity not found';
  const sp = em.directory.servicePrincipal(cluster.tenantId, cluster.principalId);
  if (sp === undefined) return 'Identity not found';
  return em.directory.identityClient(sp);
}

export function handleMsiToken(em: Emulator, ex: Exchange, clusterName: string | undefined): void {
  if (ex.method !== 'GET') return imdsError(ex, 405, 'invalid_request', 'The request method is not allowed; use GET.');
  if (header(ex, 'metadata')?.toLowerCase() !== 'true') return imdsError(ex, 400, 'invalid_request', 'Required metadata header not specified');
  if (!ex.query.get('api-version')) return imdsError(ex, 400, 'invalid_request', "Required query variable 'api-version' is missing");
  const resourceName = ex.query.get('resource');
  if (!resourceName) return imdsError(ex, 400, 'invalid_request', "Required query variable 'resource' is missing");
  if (clusterName !== undefined && clusterByName(em, clusterName) === undefined) return imdsError(ex, 400, 'invalid_request', 'Identity not found');
  const client = identityFor(em, ex, clusterName);
  if (typeof client === 'string') return imdsError(ex, 400, 'invalid_request', client);
  const sp = client.sp;
  const tenant = sp === undefined ? undefined : em.directory.tenant(sp.tenantId);
  if (sp === undefined || tenant === undefined) return imdsError(ex, 400, 'invalid_request', 'Identity not found');
  const resource = em.directory.resource(tenant.id, resourceName, em.ownUrls());
  if (resource === undefined || resource.sp === undefined) {
    return imdsError(
      ex,
      400,
      'invalid_resource',
      `AADSTS500011: The resource principal named ${resourceName} was not found in the tenant named ${tenant.id}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    );
  }
  const roles = assignedAppRoles(em, tenant.id, [sp.id], resource, 'Application');
  const t = mintAccessToken(em, {
    tenant,
    base: ex.base,
    resource,
    requestedResource: resourceName,
    client,
    clientAuth: 2,
    subject: { kind: 'app', objectId: sp.id },
    roles,
    expiresIn: MSI_TOKEN_EXPIRES_IN,
  });
  sendJson(ex.res, 200, {
    access_token: t.accessToken,
    client_id: client.appId,
    expires_in: String(t.expiresIn),
    expires_on: String(t.expiresOn),
    ext_expires_in: String(t.expiresIn),
    not_before: String(t.notBefore),
    resource: resourceName,
    token_type: 'Bearer',
  });
}
