/**
 * Azure RBAC action matching: `*` matches any run of characters including `/`, comparison is
 * case-insensitive (SPEC section 6). Patterns are compiled once and cached; the cache is bounded by
 * the role definitions the process has seen.
 */
const compiled = new Map<string, RegExp>();

function compile(pattern: string): RegExp {
  let re = compiled.get(pattern);
  if (re === undefined) {
    const body = pattern
      .split('*')
      .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    re = new RegExp(`^${body}$`, 'is');
    if (compiled.size > 10_000) compiled.clear();
    compiled.set(pattern, re);
  }
  return re;
}

/** True when `action` matches the RBAC `pattern`. */
export function actionMatches(pattern: string, action: string): boolean {
  if (!pattern.includes('*')) return pattern.length === action.length && pattern.toLowerCase() === action.toLowerCase();
  return compile(pattern).test(action);
}

/** True when some pattern of `allowed` matches and none of `excluded` does. */
export function grantedBy(allowed: readonly string[], excluded: readonly string[], action: string): boolean {
  return allowed.some((p) => actionMatches(p, action)) && !excluded.some((p) => actionMatches(p, action));
}
