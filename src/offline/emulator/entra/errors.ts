import type { Emulator } from '../core.js';
import { header, newRequestId, sendJson, type Exchange } from '../exchange.js';

/**
 * Entra ID's error body: `{error, error_description: "AADSTSnnnn: ...\r\nTrace ID: ...\r\nCorrelation ID:
 * ...\r\nTimestamp: ...", error_codes, timestamp, trace_id, correlation_id, error_uri}` (+ `suberror`).
 */
export interface AadError {
  readonly status: 400 | 401 | 403 | 404 | 500;
  readonly error: string;
  readonly code: number;
  readonly message: string;
  readonly suberror?: string;
}

export function entraTimestamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ') + 'Z';
}

export function sendAadError(em: Emulator, ex: Exchange, e: AadError): void {
  const timestamp = entraTimestamp(em.now());
  const traceId = newRequestId();
  const correlationId = header(ex, 'client-request-id') ?? newRequestId();
  const body: Record<string, unknown> = {
    error: e.error,
    error_description: `AADSTS${e.code}: ${e.message}\r\nTrace ID: ${traceId}\r\nCorrelation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [e.code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `${ex.base}/error?code=${e.code}`,
  };
  if (e.suberror !== undefined) body['suberror'] = e.suberror;
  sendJson(ex.res, e.status, body, { 'x-ms-request-id': traceId, 'client-request-id': correlationId });
}

/** The AADSTS errors the emulator reproduces, with Entra's wording. */
export const aad = {
  tenantNotFound: (t: string): AadError => ({
    status: 400,
    error: 'invalid_tenant',
    code: 90002,
    message: `Tenant '${t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
  }),
  missingParameter: (p: string): AadError => ({
    status: 400,
    error: 'invalid_request',
    code: 900144,
    message: `The request body must contain the following parameter: '${p}'.`,
  }),
  unsupportedGrant: (g: string): AadError => ({
    status: 400,
    error: 'unsupported_grant_type',
    code: 70003,
    message: `The app requested an unsupported grant type '${g}'.`,
  }),
  unknownClient: (clientId: string, tenantName: string): AadError => ({
    status: 400,
    error: 'unauthorized_client',
    code: 700016,
    message: `Application with identifier '${clientId}' was not found in the directory '${tenantName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
  }),
  invalidSecret: (appId: string): AadError => ({
    status: 401,
    error: 'invalid_client',
    code: 7000215,
    message: `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${appId}'.`,
  }),
  expiredSecret: (appId: string): AadError => ({
    status: 401,
    error: 'invalid_client',
    code: 7000222,
    message: `The provided client secret keys for app '${appId}' are expired. Visit the Azure portal to create new keys for your app.`,
  }),
  credentialRequired: (): AadError => ({
    status: 401,
    error: 'invalid_client',
    code: 7000218,
    message: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
  }),
  missingServicePrincipal: (appId: string, tenantId: string): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 7000229,
    message: `The client application ${appId} is missing service principal in the tenant ${tenantId}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119`,
  }),
  resourceNotFound: (resource: string, tenantName: string): AadError => ({
    status: 400,
    error: 'invalid_resource',
    code: 500011,
    message: `The resource principal named ${resource} was not found in the tenant named ${tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
  }),
  clientCredentialsScope: (scope: string): AadError => ({
    status: 400,
    error: 'invalid_scope',
    code: 1002012,
    message: `The provided value for scope ${scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
  }),
  invalidScope: (scope: string): AadError => ({
    status: 400,
    error: 'invalid_scope',
    code: 70011,
    message: `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope ${scope} is not valid.`,
  }),
  multipleResources: (): AadError => ({
    status: 400,
    error: 'invalid_scope',
    code: 28000,
    message: 'Provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.',
  }),
  scopeNotOnResource: (clientName: string, scope: string, resourceAppId: string): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 650053,
    message: `The application '${clientName}' asked for scope '${scope}' that doesn't exist on the resource '${resourceAppId}'. Contact the app vendor.`,
  }),
  consentRequired: (clientAppId: string, clientName: string): AadError => ({
    status: 400,
    error: 'invalid_grant',
    code: 65001,
    message: `The user or administrator has not consented to use the application with ID '${clientAppId}' named '${clientName}'. Send an interactive authorization request for this user and resource.`,
    suberror: 'consent_required',
  }),
  userNotFound: (tenantId: string): AadError => ({
    status: 400,
    error: 'invalid_grant',
    code: 50034,
    message: `The user account {EUII Hidden} does not exist in the ${tenantId} directory. To sign into this application, the account must be added to the directory.`,
  }),
  badPassword: (): AadError => ({
    status: 400,
    error: 'invalid_grant',
    code: 50126,
    message: 'Error validating credentials due to invalid username or password.',
  }),
  userDisabled: (): AadError => ({ status: 400, error: 'invalid_grant', code: 50057, message: 'The user account is disabled.' }),
  badRefreshToken: (): AadError => ({
    status: 400,
    error: 'invalid_grant',
    code: 9002313,
    message: 'Invalid request. Request is malformed or invalid.',
  }),
  expiredRefreshToken: (): AadError => ({
    status: 400,
    error: 'invalid_grant',
    code: 700082,
    message: 'The refresh token has expired due to inactivity.',
  }),
  badAssertionType: (): AadError => ({
    status: 400,
    error: 'invalid_request',
    code: 7000219,
    message: "'client_assertion_type' must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
  }),
  malformedAssertion: (): AadError => ({ status: 400, error: 'invalid_request', code: 50027, message: 'JWT token is invalid or malformed.' }),
  noFicIssuer: (iss: string): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 700211,
    message: `No matching federated identity record found for presented assertion issuer '${iss}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
  }),
  noFicSubject: (sub: string): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 700213,
    message: `No matching federated identity record found for presented assertion subject '${sub}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
  }),
  noFicAudience: (aud: string): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 700212,
    message: `No matching federated identity record found for presented assertion audience '${aud}'. Please note that the matching is done using a case-sensitive comparison. Check your federated identity credential Subject, Audience and Issuer against the presented assertion.`,
  }),
  externalIssuer: (iss: string): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 50166,
    message: `Request to External OIDC endpoint failed. The emulator can only verify assertions from its own issuers, not '${iss}'.`,
  }),
  assertionSignature: (): AadError => ({ status: 400, error: 'invalid_client', code: 50013, message: 'Assertion failed signature validation.' }),
  assertionTime: (now: number, nbf: number | undefined, exp: number | undefined): AadError => ({
    status: 400,
    error: 'invalid_client',
    code: 700024,
    message: `Client assertion is not within its valid time range. Current time: ${new Date(now * 1000).toISOString()}, assertion valid from ${nbf === undefined ? 'unset' : new Date(nbf * 1000).toISOString()}, expiry time of assertion ${exp === undefined ? 'unset' : new Date(exp * 1000).toISOString()}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .`,
  }),
  authorizationPending: (): AadError => ({
    status: 400,
    error: 'authorization_pending',
    code: 70016,
    message: 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.',
  }),
  expiredDeviceCode: (): AadError => ({
    status: 400,
    error: 'expired_token',
    code: 70020,
    message: "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
  }),
  authorizationDeclined: (): AadError => ({
    status: 400,
    error: 'authorization_declined',
    code: 70000,
    message: 'The user declined the sign-in request.',
  }),
  badDeviceCode: (): AadError => ({
    status: 400,
    error: 'bad_verification_code',
    code: 70019,
    message: "The provided value for the input parameter 'device_code' is not valid.",
  }),
  noTenantInformation: (): AadError => ({
    status: 400,
    error: 'invalid_request',
    code: 50059,
    message: 'No tenant-identifying information found in either the request or implied by any provided credentials.',
  }),
} as const;
