import { z } from 'zod';

/**
 * Everything the emulator knows, as one JSON document (the `--state` file). The schemas both type
 * the in-memory state and check a state file when it is loaded.
 */

const guid = z.guid();
const iso = z.string();

export const SigningKeySchema = z.object({
  kid: z.string(),
  keyPem: z.string(),
  /** base64 DER of the self-signed certificate published in `x5c`. */
  certDer: z.string(),
  createdAt: iso,
  active: z.boolean(),
});
export type SigningKey = z.infer<typeof SigningKeySchema>;

export const TenantSchema = z.object({
  id: guid,
  displayName: z.string(),
  domain: z.string(),
  signingKeys: z.array(SigningKeySchema),
});
export type Tenant = z.infer<typeof TenantSchema>;

export const UserSchema = z.object({
  id: guid,
  tenantId: guid,
  userPrincipalName: z.string(),
  displayName: z.string(),
  givenName: z.string().nullable(),
  surname: z.string().nullable(),
  mail: z.string().nullable(),
  passwordHash: z.string(),
  /** Entra directory role template IDs (Global Administrator, Application Administrator, ...). */
  directoryRoles: z.array(guid),
  accountEnabled: z.boolean(),
  createdDateTime: iso,
});
export type User = z.infer<typeof UserSchema>;

export const GroupSchema = z.object({
  id: guid,
  tenantId: guid,
  displayName: z.string(),
  description: z.string().nullable(),
  mailNickname: z.string(),
  securityEnabled: z.boolean(),
  /** Object IDs of users, groups and service principals. */
  members: z.array(guid),
  createdDateTime: iso,
});
export type Group = z.infer<typeof GroupSchema>;

export const PasswordCredentialSchema = z.object({
  keyId: guid,
  displayName: z.string().nullable(),
  hint: z.string(),
  secretHash: z.string(),
  startDateTime: iso,
  endDateTime: iso,
});
export type PasswordCredential = z.infer<typeof PasswordCredentialSchema>;

export const FederatedCredentialSchema = z.object({
  id: guid,
  name: z.string(),
  issuer: z.string(),
  subject: z.string(),
  audiences: z.array(z.string()),
  description: z.string().nullable(),
});
export type FederatedCredential = z.infer<typeof FederatedCredentialSchema>;

export const PermissionScopeSchema = z.object({
  id: guid,
  value: z.string(),
  type: z.enum(['User', 'Admin']),
  isEnabled: z.boolean(),
  adminConsentDisplayName: z.string().nullable(),
  adminConsentDescription: z.string().nullable(),
  userConsentDisplayName: z.string().nullable(),
  userConsentDescription: z.string().nullable(),
});
export type PermissionScope = z.infer<typeof PermissionScopeSchema>;

export const AppRoleSchema = z.object({
  id: guid,
  value: z.string().nullable(),
  displayName: z.string().nullable(),
  description: z.string().nullable(),
  isEnabled: z.boolean(),
  allowedMemberTypes: z.array(z.enum(['User', 'Application'])),
  origin: z.string(),
});
export type AppRole = z.infer<typeof AppRoleSchema>;

export const PreAuthorizedApplicationSchema = z.object({ appId: z.string(), delegatedPermissionIds: z.array(z.string()) });
export type PreAuthorizedApplication = z.infer<typeof PreAuthorizedApplicationSchema>;

export const ApiSchema = z.object({
  requestedAccessTokenVersion: z.number().int().nullable(),
  oauth2PermissionScopes: z.array(PermissionScopeSchema),
  preAuthorizedApplications: z.array(PreAuthorizedApplicationSchema),
  knownClientApplications: z.array(z.string()),
  acceptMappedClaims: z.boolean().nullable(),
});
export type Api = z.infer<typeof ApiSchema>;

export const ApplicationSchema = z.object({
  id: guid,
  tenantId: guid,
  appId: guid,
  displayName: z.string(),
  createdDateTime: iso,
  identifierUris: z.array(z.string()),
  signInAudience: z.string(),
  isFallbackPublicClient: z.boolean().nullable(),
  api: ApiSchema,
  appRoles: z.array(AppRoleSchema),
  passwordCredentials: z.array(PasswordCredentialSchema),
  federatedIdentityCredentials: z.array(FederatedCredentialSchema),
  /** Other Graph properties (description, notes, tags, web, spa, publicClient, requiredResourceAccess, ...), stored as sent. */
  extra: z.record(z.string(), z.unknown()),
});
export type Application = z.infer<typeof ApplicationSchema>;

export const ServicePrincipalSchema = z.object({
  id: guid,
  tenantId: guid,
  appId: guid,
  displayName: z.string(),
  servicePrincipalType: z.enum(['Application', 'ManagedIdentity']),
  accountEnabled: z.boolean(),
  appRoleAssignmentRequired: z.boolean(),
  alternativeNames: z.array(z.string()),
  tags: z.array(z.string()),
  appOwnerOrganizationId: z.string().nullable(),
  createdDateTime: iso,
});
export type ServicePrincipal = z.infer<typeof ServicePrincipalSchema>;

export const AppRoleAssignmentSchema = z.object({
  id: z.string(),
  tenantId: guid,
  principalId: guid,
  principalType: z.enum(['User', 'Group', 'ServicePrincipal']),
  resourceId: guid,
  appRoleId: guid,
  createdDateTime: iso,
});
export type AppRoleAssignment = z.infer<typeof AppRoleAssignmentSchema>;

export const PermissionGrantSchema = z.object({
  id: z.string(),
  tenantId: guid,
  /** Object ID of the client's service principal. */
  clientId: guid,
  consentType: z.enum(['AllPrincipals', 'Principal']),
  principalId: guid.nullable(),
  /** Object ID of the resource's service principal. */
  resourceId: guid,
  scope: z.string(),
});
export type PermissionGrant = z.infer<typeof PermissionGrantSchema>;

export const ManagedIdentitySchema = z.object({
  /** The principal (service principal object) ID. */
  principalId: guid,
  tenantId: guid,
  clientId: guid,
  name: z.string(),
  subscriptionId: guid,
  resourceGroup: z.string(),
  location: z.string(),
  federatedIdentityCredentials: z.array(FederatedCredentialSchema),
});
export type ManagedIdentity = z.infer<typeof ManagedIdentitySchema>;

export const ClusterSchema = z.object({
  name: z.string(),
  subscriptionId: guid,
  resourceGroup: z.string(),
  location: z.string(),
  tenantId: guid,
  /** The system-assigned (Arc) identity: its service principal's object ID and app (client) ID. */
  principalId: guid,
  clientId: guid,
  isDefault: z.boolean(),
  /** The cluster's Kubernetes service-account issuer signing key. */
  serviceAccountKey: SigningKeySchema,
  createdDateTime: iso,
});
export type Cluster = z.infer<typeof ClusterSchema>;

export const SubscriptionSchema = z.object({ id: guid, tenantId: guid, displayName: z.string() });
export type Subscription = z.infer<typeof SubscriptionSchema>;

export const PermissionBlockSchema = z.object({
  actions: z.array(z.string()),
  notActions: z.array(z.string()),
  dataActions: z.array(z.string()),
  notDataActions: z.array(z.string()),
});
export type Permissions = z.infer<typeof PermissionBlockSchema>;

export const RoleAssignmentSchema = z.object({
  name: guid,
  scope: z.string(),
  /** The role definition's GUID, lower case. */
  roleDefinitionGuid: guid,
  principalId: guid,
  principalType: z.enum(['User', 'Group', 'ServicePrincipal', 'ForeignGroup', 'Device']),
  condition: z.string().nullable(),
  conditionVersion: z.string().nullable(),
  description: z.string().nullable(),
  createdOn: iso,
  updatedOn: iso,
  createdBy: z.string().nullable(),
  updatedBy: z.string().nullable(),
});
export type RoleAssignment = z.infer<typeof RoleAssignmentSchema>;

export const CustomRoleSchema = z.object({
  id: guid,
  roleName: z.string(),
  description: z.string().nullable(),
  assignableScopes: z.array(z.string()),
  permissions: z.array(PermissionBlockSchema),
  createdOn: iso,
  updatedOn: iso,
  createdBy: z.string().nullable(),
});
export type CustomRole = z.infer<typeof CustomRoleSchema>;

export const DenyPrincipalSchema = z.object({ id: guid, type: z.string() });

export const DenyAssignmentSchema = z.object({
  id: guid,
  denyAssignmentName: z.string(),
  description: z.string().nullable(),
  scope: z.string(),
  permissions: z.array(PermissionBlockSchema),
  principals: z.array(DenyPrincipalSchema),
  excludePrincipals: z.array(DenyPrincipalSchema),
  doNotApplyToChildScopes: z.boolean(),
  isSystemProtected: z.boolean(),
});
export type DenyAssignment = z.infer<typeof DenyAssignmentSchema>;

export const KeyAndCertSchema = z.object({ keyPem: z.string(), certPem: z.string() });

export const SettingsSchema = z.object({
  /** Items per page in ARM lists before a `nextLink`. */
  armPageSize: z.number().int().min(1),
  /** Items per page in Graph lists before an `@odata.nextLink`. */
  graphPageSize: z.number().int().min(1),
});
export type Settings = z.infer<typeof SettingsSchema>;

export const StateSchema = z.object({
  version: z.literal(1),
  ca: KeyAndCertSchema,
  server: KeyAndCertSchema.extend({ hosts: z.array(z.string()) }),
  defaultTenantId: guid,
  clockOffsetMs: z.number(),
  /** HMAC key for the emulator's refresh tokens (hex). */
  refreshTokenKey: z.string(),
  settings: SettingsSchema,
  tenants: z.array(TenantSchema),
  users: z.array(UserSchema),
  groups: z.array(GroupSchema),
  applications: z.array(ApplicationSchema),
  servicePrincipals: z.array(ServicePrincipalSchema),
  appRoleAssignments: z.array(AppRoleAssignmentSchema),
  oauth2PermissionGrants: z.array(PermissionGrantSchema),
  managedIdentities: z.array(ManagedIdentitySchema),
  clusters: z.array(ClusterSchema),
  subscriptions: z.array(SubscriptionSchema),
  roleAssignments: z.array(RoleAssignmentSchema),
  customRoles: z.array(CustomRoleSchema),
  denyAssignments: z.array(DenyAssignmentSchema),
});
export type State = z.infer<typeof StateSchema>;

/** The directory object types a principal ID can name. */
export type DirectoryObject =
  | { readonly kind: 'user'; readonly user: User }
  | { readonly kind: 'group'; readonly group: Group }
  | { readonly kind: 'servicePrincipal'; readonly sp: ServicePrincipal };

/** How ARM and Graph name a directory object's kind (`principalType`). */
export function principalTypeOf(obj: DirectoryObject): 'User' | 'Group' | 'ServicePrincipal' {
  return obj.kind === 'user' ? 'User' : obj.kind === 'group' ? 'Group' : 'ServicePrincipal';
}
