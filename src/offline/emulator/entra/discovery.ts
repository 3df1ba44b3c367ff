import type { Emulator } from '../core.js';
import { sendJson, type Exchange } from '../exchange.js';
import { rsaPublicJwk } from '../jwt.js';
import type { Tenant } from '../model.js';
import { aad, sendAadError } from './errors.js';

/** OpenID Connect discovery (v1 and v2) and the JWKS, per tenant, shaped as Entra ID serves them. */

const CLAIMS_SUPPORTED = [
  'sub',
  'iss',
  'cloud_instance_name',
  'cloud_instance_host_name',
  'cloud_graph_host_name',
  'msgraph_host',
  'aud',
  'exp',
  'iat',
  'auth_time',
  'acr',
  'nonce',
  'preferred_username',
  'name',
  'tid',
  'ver',
  'at_hash',
  'c_hash',
  'email',
];

/** `common` / `organizations` / `consumers` document every tenant: issuer with the `{tenantid}` placeholder, keys of all tenants. */
function isMultiTenant(segment: string): boolean {
  const s = segment.toLowerCase();
  return s === 'common' || s === 'organizations' || s === 'consumers';
}

function tenantOr404(em: Emulator, ex: Exchange, segment: string): Tenant | undefined {
  const t = em.directory.tenant(segment);
  if (t === undefined) sendAadError(em, ex, aad.tenantNotFound(segment));
  return t;
}

export function serveOpenIdConfiguration(em: Emulator, ex: Exchange, segment: string, v2: boolean): void {
  const multi = isMultiTenant(segment);
  const tenant = multi ? undefined : tenantOr404(em, ex, segment);
  if (!multi && tenant === undefined) return;
  const b = ex.base;
  const t = tenant?.id ?? segment.toLowerCase();
  const issuerTenant = tenant?.id ?? '{tenantid}';
  if (v2) {
    sendJson(ex.res, 200, {
      token_endpoint: `${b}/${t}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${b}/${t}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${b}/${issuerTenant}/v2.0`,
      request_uri_parameter_supported: false,
      userinfo_endpoint: `${b}/graph/oidc/userinfo`,
      authorization_endpoint: `${b}/${t}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${b}/${t}/oauth2/v2.0/devicecode`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      end_session_endpoint: `${b}/${t}/oauth2/v2.0/logout`,
      claims_supported: CLAIMS_SUPPORTED,
      kerberos_endpoint: `${b}/${t}/kerberos`,
      tenant_region_scope: 'NA',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
      rbac_url: 'https://pas.windows.net',
    });
    return;
  }
  sendJson(ex.res, 200, {
    token_endpoint: `${b}/${t}/oauth2/token`,
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
    jwks_uri: `${b}/${t}/discovery/keys`,
    response_modes_supported: ['query', 'fragment', 'form_post'],
    subject_types_supported: ['pairwise'],
    id_token_signing_alg_values_supported: ['RS256'],
    response_types_supported: ['code', 'id_token', 'code id_token', 'token id_token', 'token'],
    scopes_supported: ['openid'],
    issuer: `https://sts.windows.net/${issuerTenant}/`,
    microsoft_multi_refresh_token: true,
    authorization_endpoint: `${b}/${t}/oauth2/authorize`,
    device_authorization_endpoint: `${b}/${t}/oauth2/devicecode`,
    http_logout_supported: true,
    frontchannel_logout_supported: true,
    end_session_endpoint: `${b}/${t}/oauth2/logout`,
    claims_supported: [
      'sub',
      'iss',
      'cloud_instance_name',
      'cloud_instance_host_name',
      'cloud_graph_host_name',
      'msgraph_host',
      'aud',
      'exp',
      'iat',
      'auth_time',
      'acr',
      'amr',
      'nonce',
      'email',
      'given_name',
      'family_name',
      'nickname',
    ],
    check_session_iframe: `${b}/${t}/oauth2/checksession`,
    userinfo_endpoint: `${b}/${t}/openid/userinfo`,
    kerberos_endpoint: `${b}/${t}/kerberos`,
    tenant_region_scope: 'NA',
    cloud_instance_name: 'microsoftonline.com',
    cloud_graph_host_name: 'graph.windows.net',
    msgraph_host: 'graph.microsoft.com',
    rbac_url: 'https://pas.windows.net',
  });
}

/** Published keys: every key of the tenant still in rotation (the active one and the standby ones). */
export function serveJwks(em: Emulator, ex: Exchange, segment: string, v2: boolean): void {
  const multi = isMultiTenant(segment);
  const tenants = multi ? em.state.tenants : [tenantOr404(em, ex, segment)];
  if (tenants.some((t) => t === undefined)) return;
  const keys = tenants.flatMap((t) =>
    (t?.signingKeys ?? []).map((k) => {
      const jwk: Record<string, unknown> = { kty: 'RSA', use: 'sig', kid: k.kid, x5t: k.kid, ...rsaPublicJwk(k.keyPem), x5c: [k.certDer] };
      if (v2) {
        jwk['cloud_instance_name'] = 'microsoftonline.com';
        jwk['issuer'] = `${ex.base}/${multi ? '{tenantid}' : (t?.id ?? '')}/v2.0`;
      }
      return jwk;
    }),
  );
  sendJson(ex.res, 200, { keys }, { 'cache-control': 'max-age=86400, private' });
}
