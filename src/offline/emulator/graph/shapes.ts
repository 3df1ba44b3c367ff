import type { Emulator } from '../core.js';
import { firstPartyApp } from '../first-party.js';
import type {
  AppRoleAssignment,
  Application,
  FederatedCredential,
  Group,
  PasswordCredential,
  PermissionGrant,
  ServicePrincipal,
  User,
} from '../model.js';

/** Microsoft Graph v1.0 JSON shapes of the directory objects (property order and nulls as Graph returns them). */

export function passwordCredentialJson(c: PasswordCredential): Record<string, unknown> {
  return {
    customKeyIdentifier: null,
    displayName: c.displayName,
    endDateTime: c.endDateTime,
    hint: c.hint,
    keyId: c.keyId,
    secretText: null,
    startDateTime: c.startDateTime,
  };
}

export function applicationJson(em: Emulator, a: Application): Record<string, unknown> {
  const x = a.extra;
  const tenant = em.directory.tenant(a.tenantId);
  return {
    id: a.id,
    deletedDateTime: null,
    appId: a.appId,
    applicationTemplateId: null,
    disabledByMicrosoftStatus: null,
    createdDateTime: a.createdDateTime,
    displayName: a.displayName,
    description: x['description'] ?? null,
    groupMembershipClaims: x['groupMembershipClaims'] ?? null,
    identifierUris: a.identifierUris,
    isDeviceOnlyAuthSupported: x['isDeviceOnlyAuthSupported'] ?? null,
    isFallbackPublicClient: a.isFallbackPublicClient,
    nativeAuthenticationApisEnabled: null,
    notes: x['notes'] ?? null,
    publisherDomain: tenant?.domain ?? null,
    serviceManagementReference: x['serviceManagementReference'] ?? null,
    signInAudience: a.signInAudience,
    tags: x['tags'] ?? [],
    tokenEncryptionKeyId: null,
    samlMetadataUrl: null,
    defaultRedirectUri: x['defaultRedirectUri'] ?? null,
    certification: null,
    optionalClaims: x['optionalClaims'] ?? null,
    servicePrincipalLockConfiguration: null,
    requestSignatureVerification: null,
    addIns: [],
    api: {
      acceptMappedClaims: a.api.acceptMappedClaims,
      knownClientApplications: a.api.knownClientApplications,
      requestedAccessTokenVersion: a.api.requestedAccessTokenVersion,
      oauth2PermissionScopes: a.api.oauth2PermissionScopes,
      preAuthorizedApplications: a.api.preAuthorizedApplications,
    },
    appRoles: a.appRoles,
    info: x['info'] ?? { logoUrl: null, marketingUrl: null, privacyStatementUrl: null, supportUrl: null, termsOfServiceUrl: null },
    keyCredentials: [],
    parentalControlSettings: { countriesBlockedForMinors: [], legalAgeGroupRule: 'Allow' },
    passwordCredentials: a.passwordCredentials.map(passwordCredentialJson),
    publicClient: x['publicClient'] ?? { redirectUris: [] },
    requiredResourceAccess: x['requiredResourceAccess'] ?? [],
    verifiedPublisher: { displayName: null, verifiedPublisherId: null, addedDateTime: null },
    web: x['web'] ?? {
      homePageUrl: null,
      logoutUrl: null,
      redirectUris: [],
      implicitGrantSettings: { enableAccessTokenIssuance: false, enableIdTokenIssuance: false },
      redirectUriSettings: [],
    },
    spa: x['spa'] ?? { redirectUris: [] },
  };
}

export function federatedCredentialJson(f: FederatedCredential): Record<string, unknown> {
  return { id: f.id, name: f.name, issuer: f.issuer, subject: f.subject, description: f.description, audiences: f.audiences };
}

export function servicePrincipalJson(em: Emulator, sp: ServicePrincipal): Record<string, unknown> {
  const { appRoles, scopes } = em.directory.exposed(sp);
  const app = em.directory.applicationByAppId(sp.tenantId, sp.appId);
  const fp = firstPartyApp(sp.appId);
  const names = [sp.appId, ...(app?.identifierUris ?? fp?.identifierUris ?? [])];
  if (sp.servicePrincipalType === 'ManagedIdentity' && sp.alternativeNames[1] !== undefined) names.push(sp.alternativeNames[1]);
  return {
    id: sp.id,
    deletedDateTime: null,
    accountEnabled: sp.accountEnabled,
    alternativeNames: sp.alternativeNames,
    appDisplayName: sp.servicePrincipalType === 'ManagedIdentity' ? null : (app?.displayName ?? sp.displayName),
    appDescription: null,
    appId: sp.appId,
    applicationTemplateId: null,
    appOwnerOrganizationId: sp.appOwnerOrganizationId ?? (sp.servicePrincipalType === 'ManagedIdentity' ? null : sp.tenantId),
    appRoleAssignmentRequired: sp.appRoleAssignmentRequired,
    createdDateTime: sp.createdDateTime,
    description: null,
    disabledByMicrosoftStatus: null,
    displayName: sp.displayName,
    homepage: null,
    loginUrl: null,
    logoutUrl: null,
    notes: null,
    notificationEmailAddresses: [],
    preferredSingleSignOnMode: null,
    preferredTokenSigningKeyThumbprint: null,
    replyUrls: [],
    servicePrincipalNames: names,
    servicePrincipalType: sp.servicePrincipalType,
    signInAudience: sp.servicePrincipalType === 'ManagedIdentity' ? null : (app?.signInAudience ?? 'AzureADMultipleOrgs'),
    tags: sp.tags,
    tokenEncryptionKeyId: null,
    samlSingleSignOnSettings: null,
    addIns: [],
    appRoles,
    info: { logoUrl: null, marketingUrl: null, privacyStatementUrl: null, supportUrl: null, termsOfServiceUrl: null },
    keyCredentials: [],
    oauth2PermissionScopes: scopes,
    passwordCredentials: [],
    resourceSpecificApplicationPermissions: [],
    verifiedPublisher: { displayName: null, verifiedPublisherId: null, addedDateTime: null },
  };
}

export function userJson(u: User): Record<string, unknown> {
  return {
    businessPhones: [],
    displayName: u.displayName,
    givenName: u.givenName,
    jobTitle: null,
    mail: u.mail,
    mobilePhone: null,
    officeLocation: null,
    preferredLanguage: null,
    surname: u.surname,
    userPrincipalName: u.userPrincipalName,
    id: u.id,
  };
}

export function groupJson(g: Group): Record<string, unknown> {
  return {
    id: g.id,
    deletedDateTime: null,
    classification: null,
    createdDateTime: g.createdDateTime,
    creationOptions: [],
    description: g.description,
    displayName: g.displayName,
    expirationDateTime: null,
    groupTypes: [],
    isAssignableToRole: null,
    mail: null,
    mailEnabled: false,
    mailNickname: g.mailNickname,
    membershipRule: null,
    membershipRuleProcessingState: null,
    onPremisesSyncEnabled: null,
    preferredDataLocation: null,
    proxyAddresses: [],
    renewedDateTime: g.createdDateTime,
    resourceBehaviorOptions: [],
    resourceProvisioningOptions: [],
    securityEnabled: g.securityEnabled,
    securityIdentifier: null,
    theme: null,
    visibility: null,
    onPremisesProvisioningErrors: [],
    serviceProvisioningErrors: [],
  };
}

/** A directory object with its `@odata.type`, as member lists return them. */
export function directoryObjectJson(
  em: Emulator,
  obj: { kind: 'user'; user: User } | { kind: 'group'; group: Group } | { kind: 'servicePrincipal'; sp: ServicePrincipal },
): Record<string, unknown> {
  if (obj.kind === 'user') return { '@odata.type': '#microsoft.graph.user', ...userJson(obj.user) };
  if (obj.kind === 'group') return { '@odata.type': '#microsoft.graph.group', ...groupJson(obj.group) };
  return { '@odata.type': '#microsoft.graph.servicePrincipal', ...servicePrincipalJson(em, obj.sp) };
}

export function appRoleAssignmentJson(em: Emulator, a: AppRoleAssignment): Record<string, unknown> {
  const obj = em.directory.object(a.tenantId, a.principalId);
  const principalDisplayName =
    obj === undefined ? null : obj.kind === 'user' ? obj.user.displayName : obj.kind === 'group' ? obj.group.displayName : obj.sp.displayName;
  return {
    id: a.id,
    deletedDateTime: null,
    appRoleId: a.appRoleId,
    createdDateTime: a.createdDateTime,
    principalDisplayName,
    principalId: a.principalId,
    principalType: a.principalType,
    resourceDisplayName: em.directory.servicePrincipal(a.tenantId, a.resourceId)?.displayName ?? null,
    resourceId: a.resourceId,
  };
}

export function permissionGrantJson(g: PermissionGrant): Record<string, unknown> {
  return { clientId: g.clientId, consentType: g.consentType, id: g.id, principalId: g.principalId, resourceId: g.resourceId, scope: g.scope };
}
