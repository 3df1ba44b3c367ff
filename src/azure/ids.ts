/**
 * The identifiers foundry-auth puts into Azure URLs: object, client, tenant and role IDs (GUIDs) and
 * ARM resource IDs. Anything else must never become part of a URL path or an OData filter.
 */

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** An ARM scope or resource ID as a URL path, each segment percent-encoded so it can never add a query or `..`; undefined when it is not one. */
export function armPath(id: string): string | undefined {
  const segments = id.split('/');
  if (!id.startsWith('/') || segments.slice(1).some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return segments.map(encodeURIComponent).join('/');
}
