import type { Principal } from '../contracts/principal.js';
import type { RouteMatch } from '../contracts/route.js';
import { roleGrants, type Evaluation } from './evaluate.js';
import { BUILT_IN_ROLES, ROLE_IDS, type RoleDefinition } from './roles.js';

/** Built-in roles in least-privilege-first order, so a 403 suggests the narrowest role first. */
const SUGGESTION_ORDER: readonly string[] = [
  ROLE_IDS.openAiUser,
  ROLE_IDS.openAiContributor,
  ROLE_IDS.cognitiveServicesUser,
  ROLE_IDS.cognitiveServicesContributor,
  ROLE_IDS.reader,
  ROLE_IDS.contributor,
  ROLE_IDS.owner,
];

function suggestionRank(role: RoleDefinition): number {
  const i = SUGGESTION_ORDER.indexOf(role.id);
  return i === -1 ? SUGGESTION_ORDER.length : i;
}

const ORDERED_ROLES = [...BUILT_IN_ROLES].sort((a, b) => suggestionRank(a) - suggestionRank(b));
const memo = new Map<string, readonly string[]>();

/** Names of the built-in roles that grant the route's action, least privilege first. */
export function rolesGranting(route: RouteMatch): readonly string[] {
  const key = `${route.dataAction ? 'data' : 'control'} ${route.action}`;
  let names = memo.get(key);
  if (names === undefined) {
    names = ORDERED_ROLES.filter((r) => roleGrants({ roleDefinitionId: r.id, permissions: r.permissions }, route)).map((r) => r.roleName);
    // Route tables are small; the bound only guards against a pathological routes file.
    if (memo.size > 1_000) memo.clear();
    memo.set(key, names);
  }
  return names;
}

/**
 * Where the principal's role assignments come from, which decides how a 403 says to fix it; for
 * ARM, what the grant command needs to run as printed besides cluster and assignee.
 */
export type FixHint = { readonly kind: 'arm'; readonly grantArgs: readonly string[] } | { readonly kind: 'static' };

function howToFix(principal: Principal, route: RouteMatch, scope: string, hint: FixHint): string {
  // The file's path is not named: the message goes to the caller, the path is the operator's business.
  if (hint.kind === 'static') return `add a roleAssignments entry for ${principal.oid} to the --role-assignments-file`;
  const access = route.plane === 'data' ? 'inference' : 'admin';
  return ['foundry-auth grant', ...hint.grantArgs.map(shellWord), '--cluster-id', scope, '--assignee', principal.oid, '--access', access].join(' ');
}

/** A word a POSIX shell reads back unchanged (a state directory with spaces, say). */
function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function assignOneOf(route: RouteMatch): string {
  const roles = rolesGranting(route);
  return roles.length === 0 ? 'a custom role that includes it' : `one of: ${roles.join(', ')}`;
}

/**
 * The 403 message: names the principal's object ID and type, the required action, the scope, the
 * built-in roles that would grant it, and how to fix it. Never contains a credential.
 */
export function denialMessage(
  principal: Principal,
  route: RouteMatch,
  scope: string,
  evaluation: Evaluation & { allowed: false },
  hint: FixHint,
): string {
  const who = `principal ${principal.oid} (${principal.type})`;
  const kind = route.dataAction ? 'data action' : 'action';
  const fix = howToFix(principal, route, scope, hint);
  switch (evaluation.reason) {
    case 'deny_assignment': {
      const d = evaluation.denyAssignment;
      const named = d === undefined ? 'a deny assignment' : `deny assignment "${d.name}" (${d.id}) at ${d.scope}`;
      return `${who} is denied ${kind} ${route.action} at ${scope} by ${named}; a deny assignment overrides every role assignment: remove it or add the principal to its excludePrincipals`;
    }
    case 'condition_only': {
      const which = evaluation.ignoredConditional.map((a) => `${a.roleName} at ${a.scope}`).join(', ');
      return `${who} lacks ${kind} ${route.action} at ${scope}: the role assignments that would grant it (${which}) have a condition, and conditions are not supported, so they grant nothing; assign ${assignOneOf(route)} without a condition (${fix})`;
    }
    case 'no_assignment':
    case 'not_granted':
      return `${who} lacks ${kind} ${route.action} at ${scope}; assign ${assignOneOf(route)} (${fix})`;
  }
}
