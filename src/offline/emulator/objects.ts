import { randomBytes } from 'node:crypto';
import type { Emulator } from './core.js';
import type { AppRoleAssignment, Application, PasswordCredential, ServicePrincipal } from './model.js';
import { hashSecret, newGuid, newOpaqueId } from './state.js';

/** Creating directory objects, shared by the admin API and the Graph endpoints. */

export interface ApplicationInput {
  readonly tenantId: string;
  readonly id?: string;
  readonly appId?: string;
  readonly displayName: string;
}

export function newApplication(em: Emulator, input: ApplicationInput): Application {
  return {
    id: input.id?.toLowerCase() ?? newGuid(),
    tenantId: input.tenantId,
    appId: input.appId?.toLowerCase() ?? newGuid(),
    displayName: input.displayName,
    createdDateTime: new Date(em.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
    identifierUris: [],
    signInAudience: 'AzureADMyOrg',
    isFallbackPublicClient: null,
    api: {
      requestedAccessTokenVersion: null,
      oauth2PermissionScopes: [],
      preAuthorizedApplications: [],
      knownClientApplications: [],
      acceptMappedClaims: null,
    },
    appRoles: [],
    passwordCredentials: [],
    federatedIdentityCredentials: [],
    extra: {},
  };
}

export function newServicePrincipal(em: Emulator, tenantId: string, appId: string, displayName: string, id?: string): ServicePrincipal {
  return {
    id: id?.toLowerCase() ?? newGuid(),
    tenantId,
    appId: appId.toLowerCase(),
    displayName,
    servicePrincipalType: 'Application',
    accountEnabled: true,
    appRoleAssignmentRequired: false,
    alternativeNames: [],
    tags: ['WindowsAzureActiveDirectoryIntegratedApp'],
    appOwnerOrganizationId: null,
    createdDateTime: new Date(em.now()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
}

/** A client secret in Entra's format (40 characters, `~` at position 4) and its stored credential (hash and 3-character hint only). */
export function newPasswordCredential(
  em: Emulator,
  displayName: string | null,
  endDateTime?: string,
  secretText?: string,
): { credential: PasswordCredential; secretText: string } {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.';
  const random = (n: number): string => Array.from(randomBytes(n), (b) => alphabet[b % alphabet.length]).join('');
  const secret = secretText ?? `${random(3)}8Q~${random(36)}`;
  const start = new Date(em.now());
  const end = endDateTime ?? new Date(start.getTime() + 730 * 86_400_000).toISOString();
  return {
    credential: {
      keyId: newGuid(),
      displayName,
      hint: secret.slice(0, 3),
      secretHash: hashSecret(secret),
      startDateTime: start.toISOString(),
      endDateTime: end,
    },
    secretText: secret,
  };
}

export function newAppRoleAssignment(
  em: Emulator,
  tenantId: string,
  principalId: string,
  principalType: AppRoleAssignment['principalType'],
  resourceId: string,
  appRoleId: string,
): AppRoleAssignment {
  return {
    id: newOpaqueId(),
    tenantId,
    principalId: principalId.toLowerCase(),
    principalType,
    resourceId: resourceId.toLowerCase(),
    appRoleId: appRoleId.toLowerCase(),
    createdDateTime: new Date(em.now()).toISOString(),
  };
}

/** Removes an application and what hangs off it in its tenant: its service principal, their app role assignments and grants. */
export function deleteApplication(em: Emulator, app: Application): void {
  const s = em.state;
  s.applications = s.applications.filter((a) => a !== app);
  const sp = em.directory.servicePrincipalByAppId(app.tenantId, app.appId);
  if (sp !== undefined) deleteServicePrincipal(em, sp);
}

export function deleteServicePrincipal(em: Emulator, sp: ServicePrincipal): void {
  const s = em.state;
  s.servicePrincipals = s.servicePrincipals.filter((p) => p !== sp);
  s.appRoleAssignments = s.appRoleAssignments.filter((a) => a.principalId !== sp.id && a.resourceId !== sp.id);
  s.oauth2PermissionGrants = s.oauth2PermissionGrants.filter((g) => g.clientId !== sp.id && g.resourceId !== sp.id);
  for (const g of s.groups) g.members = g.members.filter((m) => m !== sp.id);
}
