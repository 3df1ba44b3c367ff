/**
 * Azure identifiers, defined once: object, client, tenant and role IDs (GUIDs), role definition IDs,
 * the Everyone principal and ARM resource IDs. They are what foundry-auth puts into Azure URLs and
 * OData filters; anything else must never become part of one.
 */

/** A GUID in any letter case (Entra and ARM compare them case-insensitively; we store them lower-case). */
export const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** The `principalId` ARM uses for the built-in "Everyone" principal of deny assignments. */
export const EVERYONE_PRINCIPAL_ID = '00000000-0000-0000-0000-000000000000';

/** A role definition ID at the tenant root, a management group or a subscription: `.../providers/Microsoft.Authorization/roleDefinitions/{guid}`. */
export const ROLE_DEFINITION_ID =
  /^(?:\/subscriptions\/[\w.()-]+|\/providers\/Microsoft\.Management\/managementGroups\/[\w.()-]+)?\/providers\/Microsoft\.Authorization\/roleDefinitions\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The lower-case GUID of a role definition ID or of a bare role definition GUID; undefined when it is neither. */
export function roleDefinitionGuid(idOrGuid: string): string | undefined {
  if (GUID.test(idOrGuid)) return idOrGuid.toLowerCase();
  return ROLE_DEFINITION_ID.exec(idOrGuid)?.[1]?.toLowerCase();
}

const ARM_RESOURCE_ID = /^\/subscriptions\/[0-9a-fA-F-]{36}(\/[A-Za-z0-9._()-]+\/[A-Za-z0-9._()-]+)*$/;

/** An ARM resource ID: `/subscriptions/{guid}` followed by name/value segment pairs, nothing that could rewrite the URL it is spliced into. */
export function isArmResourceId(value: string): boolean {
  return ARM_RESOURCE_ID.test(value) && !value.split('/').some((s) => s === '.' || s === '..');
}

/** An ARM scope or resource ID as a URL path, each segment percent-encoded so it can never add a query or `..`; undefined when it is not one. */
export function armPath(id: string): string | undefined {
  const segments = id.split('/');
  if (!id.startsWith('/') || segments.slice(1).some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.map(encodeURIComponent).join('/');
}
