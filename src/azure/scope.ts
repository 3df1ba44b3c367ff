import { isArmResourceId } from '../contracts/azure-ids.js';

/**
 * ARM scope containment (SPEC section 6): an assignment made at a scope applies to that scope and
 * every scope below it. Comparison is per path segment and case-insensitive, so
 * `/subscriptions/s/resourceGroups/rg` covers `/subscriptions/s/resourceGroups/rg/providers/...`
 * but neither `.../rg2` nor `.../rg-other` covers `.../rg`.
 */

const MANAGEMENT_GROUP = /^\/providers\/microsoft\.management\/managementgroups\/[A-Za-z0-9._()-]+$/i;

/** The lower-case segments of a well-formed scope (`[]` for the root `/`), or null when it is malformed. */
export function scopeSegments(scope: string): string[] | null {
  if (!scope.startsWith('/')) return null;
  if (scope === '/') return [];
  const body = scope.endsWith('/') ? scope.slice(1, -1) : scope.slice(1);
  const parts = body.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') return null;
  }
  return parts.map((p) => p.toLowerCase());
}

/** True for the tenant root `/` and management-group scopes, which sit above every subscription. */
export function isTenantLevelScope(scope: string): boolean {
  return scope === '/' || MANAGEMENT_GROUP.test(scope);
}

/** A scope an assignment may be made at: the root, a management group, a subscription or anything below it. */
export function isAssignableScope(scope: string): boolean {
  return isTenantLevelScope(scope) || isArmResourceId(scope);
}

/**
 * True when an assignment at `assignmentScope` applies at `targetScope`: the same scope, an ancestor
 * by whole segments, or a tenant-level scope (root or management group) above a subscription scope.
 * Management-group membership cannot be read from the scope string; sources only return such
 * assignments when ARM says they apply (`atScope()`), and a static file states them deliberately.
 */
export function scopeCovers(assignmentScope: string, targetScope: string): boolean {
  const target = scopeSegments(targetScope);
  if (target === null || target.length === 0) return false;
  if (isTenantLevelScope(assignmentScope)) return target[0] === 'subscriptions';
  const ancestor = scopeSegments(assignmentScope);
  if (ancestor === null || ancestor.length === 0 || ancestor.length > target.length) return false;
  for (let i = 0; i < ancestor.length; i++) {
    if (ancestor[i] !== target[i]) return false;
  }
  return true;
}

/** True when both name the same scope (case-insensitive, ignoring one trailing `/`). */
export function sameScope(a: string, b: string): boolean {
  const sa = scopeSegments(a);
  const sb = scopeSegments(b);
  if (sa === null || sb === null || sa.length !== sb.length) return false;
  return sa.every((s, i) => s === sb[i]);
}
