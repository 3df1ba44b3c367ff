import { createHash } from 'node:crypto';
import { ROLE_IDS } from '../authz/roles.js';

/** The names the documentation's setup steps use, in one place. */

/** The delegated scope user tokens must carry (step 2; `--required-scope`). */
export const SCOPE_VALUE = 'foundry_access';
/** Its consent texts. The documentation shows the scope but not these strings; these are foundry-auth's choice. */
export const SCOPE_ADMIN_CONSENT_DISPLAY_NAME = 'Access Foundry Local';
export const SCOPE_ADMIN_CONSENT_DESCRIPTION = 'Allows the app to access Foundry Local inference endpoints';
/** The app role app-only tokens must carry (step 4; `--required-app-role`). */
export const APP_ROLE_VALUE = 'FoundryInferenceAccess';
export const APP_ROLE_DISPLAY_NAME = 'Foundry Local inference access';
export const APP_ROLE_DESCRIPTION = 'Allows applications and managed identities to call Foundry Local inference endpoints';
/** Microsoft Azure CLI, the public client pre-authorized for the scope (step 5). */
export const AZURE_CLI_APP_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

/** `grant --access`: the documentation's access table. */
export type AccessLevel = 'inference' | 'admin';
export const ACCESS_ROLES: Readonly<Record<AccessLevel, { readonly guid: string; readonly name: string }>> = {
  inference: { guid: ROLE_IDS.openAiUser, name: 'Cognitive Services OpenAI User' },
  admin: { guid: ROLE_IDS.cognitiveServicesContributor, name: 'Cognitive Services Contributor' },
};

/** The role the cluster's Arc identity needs at the cluster so the sidecar can read role assignments (step 7). */
export const CLUSTER_IDENTITY_ROLE = ACCESS_ROLES.inference;

const NAMESPACE = Buffer.from('6f0c1f7a3d2b4e5f8a9b0c1d2e3f4a5b', 'hex');

/**
 * The name (a GUID) of a role assignment setup or grant creates: an RFC 4122 version-5 UUID of
 * scope, principal and role, so a rerun names the same assignment and never creates a second one.
 */
export function roleAssignmentName(scope: string, principalId: string, roleGuid: string): string {
  const h = createHash('sha1').update(NAMESPACE).update(`${scope.toLowerCase()}|${principalId.toLowerCase()}|${roleGuid.toLowerCase()}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}
