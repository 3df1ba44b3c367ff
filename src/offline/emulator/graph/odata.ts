import { badRequest } from './call.js';

/**
 * The OData `$filter` subset setup, grant and doctor use: `prop eq 'v'`, `prop eq true|false|null`,
 * `startswith(prop,'v')`, `coll/any(x:x eq 'v')`, joined with `and`. String comparison is
 * case-insensitive, as Graph's directory queries are.
 */

type Predicate = (o: Record<string, unknown>) => boolean;

const STRING = `'((?:[^']|'')*)'`;
const unquote = (s: string): string => s.replace(/''/g, "'");
const ieq = (a: unknown, b: string): boolean => typeof a === 'string' && a.toLowerCase() === b.toLowerCase();

function term(t: string): Predicate {
  let m = new RegExp(`^([A-Za-z][\\w/]*)\\s+eq\\s+${STRING}$`).exec(t);
  if (m) {
    const path = (m[1] ?? '').split('/');
    const v = unquote(m[2] ?? '');
    return (o) =>
      ieq(
        path.reduce<unknown>((acc, k) => (acc !== null && typeof acc === 'object' ? (acc as Record<string, unknown>)[k] : undefined), o),
        v,
      );
  }
  m = /^([A-Za-z]\w*)\s+eq\s+(true|false|null)$/.exec(t);
  if (m) {
    const prop = m[1] ?? '';
    const v = m[2] === 'null' ? null : m[2] === 'true';
    return (o) => (o[prop] ?? null) === v;
  }
  m = new RegExp(`^startswith\\(([A-Za-z]\\w*),\\s*${STRING}\\)$`, 'i').exec(t);
  if (m) {
    const prop = m[1] ?? '';
    const v = unquote(m[2] ?? '').toLowerCase();
    return (o) => typeof o[prop] === 'string' && o[prop].toLowerCase().startsWith(v);
  }
  m = new RegExp(`^([A-Za-z]\\w*)/any\\((\\w+):\\s*\\2\\s+eq\\s+${STRING}\\)$`).exec(t);
  if (m) {
    const prop = m[1] ?? '';
    const v = unquote(m[3] ?? '');
    return (o) => Array.isArray(o[prop]) && (o[prop] as unknown[]).some((x) => ieq(x, v));
  }
  throw badRequest(`Unsupported or invalid query filter clause specified for property '${t}'.`);
}

/** A predicate for `$filter`; everything passes when there is none. Throws a Graph 400 for what it cannot evaluate. */
export function odataFilter(raw: string | null): Predicate {
  if (raw === null || raw.trim() === '') return () => true;
  const terms = raw
    .trim()
    .split(/\s+and\s+/i)
    .map((t) => term(t.trim().replace(/^\((.*)\)$/, '$1')));
  return (o) => terms.every((p) => p(o));
}
