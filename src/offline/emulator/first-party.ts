import type { AppRole, PermissionScope } from './model.js';

/**
 * Microsoft's first-party applications the emulator knows: their application objects live in
 * Microsoft's own tenant, so only their service principals appear in each emulated tenant. IDs and
 * permission IDs are the real ones.
 */
export interface FirstPartyApp {
  readonly appId: string;
  readonly displayName: string;
  /** Resource identifiers (v1 `aud` values) besides the appId. */
  readonly identifierUris: readonly string[];
  readonly scopes: readonly PermissionScope[];
  readonly appRoles: readonly AppRole[];
  /** A public client (no secret), pre-authorized for every first-party resource's delegated scopes. */
  readonly publicClient: boolean;
  /** Which emulated API this resource is, so its own URLs also name it. */
  readonly serves?: 'graph' | 'arm';
}

export const MICROSOFT_TENANT_ID = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
export const AZURE_CLI_APP_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';
export const GRAPH_APP_ID = '00000003-0000-0000-c000-000000000000';
export const ARM_APP_ID = '797f4846-ba00-4fd7-ba43-dac1f8f63013';
/** The default `audiences` of a federated identity credential. */
export const TOKEN_EXCHANGE_AUDIENCE = 'api://AzureADTokenExchange';

function scope(id: string, value: string, type: 'User' | 'Admin' = 'Admin'): PermissionScope {
  return {
    id,
    value,
    type,
    isEnabled: true,
    adminConsentDisplayName: value,
    adminConsentDescription: value,
    userConsentDisplayName: type === 'User' ? value : null,
    userConsentDescription: type === 'User' ? value : null,
  };
}

function role(id: string, value: string): AppRole {
  return { id, value, displayName: value, description: value, isEnabled: true, allowedMemberTypes: ['Application'], origin: 'Application' };
}

/** Microsoft Graph permissions (delegated scope ID, application role ID) that setup, grant and doctor use. */
const GRAPH_PERMISSIONS: ReadonlyArray<readonly [string, string | null, string | null]> = [
  ['Application.Read.All', 'c79f8feb-a9db-4090-85f9-90d820caa0eb', '9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30'],
  ['Application.ReadWrite.All', 'bdfbf15f-ee85-4955-8675-146e8e5296b5', '1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9'],
  ['AppRoleAssignment.ReadWrite.All', '84bccea3-f856-4a8a-967b-dbe0a3d53a64', '06b708a9-e830-4db3-a914-8e69da51d44f'],
  ['DelegatedPermissionGrant.ReadWrite.All', '41ce6ca6-6826-4807-84f1-1c82854f7ee5', '8e8e4742-1d95-4f68-9d56-6ee75648c72a'],
  ['Directory.Read.All', '06da0dbc-49e2-44d2-8312-53f166ab848a', '7ab1d382-f21e-4acd-a863-ba3e13f7da61'],
  ['Directory.ReadWrite.All', 'c5366453-9fb0-48a5-a156-24f0c49a4b84', '19dbc75e-c2e2-444c-a770-ec69d8559fc7'],
  ['Directory.AccessAsUser.All', '0e263e50-5827-48a4-b97c-d940288653c7', null],
  ['User.Read', 'e1fe6dd8-ba31-4d61-89e7-88639da4683d', null],
  ['User.Read.All', 'a154be20-db9c-4678-8ab7-66f6cc099a59', 'df021288-bdef-4463-88db-98f22de89214'],
  ['Group.Read.All', '5f8c59db-677d-491f-a6b8-5f174b11ec1d', '5b567255-7703-4780-807c-7be8301ae99b'],
  ['GroupMember.Read.All', 'bc024368-1153-4739-b217-4326f2e966d0', '98830695-27a2-44f7-8c18-0c3ebc9698f6'],
  ['openid', '37f7f235-527c-4136-accd-4a02d197296e', null],
  ['profile', '14dad69e-099b-42c9-810b-d002981feec1', null],
  ['email', '64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0', null],
  ['offline_access', '7427e0e9-2fba-42fe-b0c0-848c9e6a8182', null],
];

export const FIRST_PARTY_APPS: readonly FirstPartyApp[] = [
  {
    appId: GRAPH_APP_ID,
    displayName: 'Microsoft Graph',
    identifierUris: ['https://graph.microsoft.com', 'https://graph.microsoft.com/', 'https://graph.windows.net', 'https://graph.windows.net/'],
    scopes: GRAPH_PERMISSIONS.filter(([, s]) => s !== null).map(([v, s]) =>
      scope(s ?? '', v, v === 'User.Read' || v === 'openid' || v === 'profile' || v === 'email' || v === 'offline_access' ? 'User' : 'Admin'),
    ),
    appRoles: GRAPH_PERMISSIONS.filter(([, , r]) => r !== null).map(([v, , r]) => role(r ?? '', v)),
    publicClient: false,
    serves: 'graph',
  },
  {
    appId: ARM_APP_ID,
    displayName: 'Windows Azure Service Management API',
    identifierUris: [
      'https://management.azure.com/',
      'https://management.azure.com',
      'https://management.core.windows.net/',
      'https://management.core.windows.net',
    ],
    scopes: [scope('41094075-9dad-400e-a0bd-54e686782033', 'user_impersonation', 'User')],
    appRoles: [],
    publicClient: false,
    serves: 'arm',
  },
  {
    appId: AZURE_CLI_APP_ID,
    displayName: 'Microsoft Azure CLI',
    identifierUris: [],
    scopes: [],
    appRoles: [],
    publicClient: true,
  },
];

export function firstPartyApp(appId: string): FirstPartyApp | undefined {
  return FIRST_PARTY_APPS.find((a) => a.appId === appId.toLowerCase());
}

/** Scopes the OpenID Connect layer handles; they never appear in an access token's `scp`. */
export const OIDC_SCOPES = new Set(['openid', 'profile', 'email', 'offline_access']);

/** Entra directory role templates (real IDs) the emulator recognises by name. */
export const DIRECTORY_ROLES: Readonly<Record<string, string>> = {
  'Global Administrator': '62e90394-69f5-4237-9190-012177145e10',
  'Application Administrator': '9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3',
  'Cloud Application Administrator': '158c047a-c907-4556-b7ef-446551a6b5f7',
  'Privileged Role Administrator': 'e8611ab8-c189-46e8-94e1-60213ab1f814',
  'User Administrator': 'fe930be7-5e62-47db-91af-98c3a49a38b1',
  'Global Reader': 'f2ef992c-3afb-46b9-b7cf-a126ee74c451',
  'Directory Readers': '88d8e3e3-8f55-4a1e-953a-9b9898b8876b',
};

/** The directory roles that may manage applications, service principals, consent and app role assignments. */
export const APPLICATION_ADMIN_ROLES = new Set([
  DIRECTORY_ROLES['Global Administrator'],
  DIRECTORY_ROLES['Application Administrator'],
  DIRECTORY_ROLES['Cloud Application Administrator'],
  DIRECTORY_ROLES['Privileged Role Administrator'],
]);

/** Directory role by display name (case-insensitive) or template ID; undefined when unknown. */
export function directoryRoleId(nameOrId: string): string | undefined {
  const lower = nameOrId.trim().toLowerCase();
  for (const [name, id] of Object.entries(DIRECTORY_ROLES)) {
    if (name.toLowerCase() === lower || id === lower) return id;
  }
  return undefined;
}
