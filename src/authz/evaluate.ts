import type { RouteMatch } from '../contracts/route.js';
import { grantedBy } from './actions.js';
import { ROLE_IDS } from './roles.js';
import { sameScope, scopeCovers } from '../azure/scope.js';
import type { AccessSnapshot, EffectiveAssignment, EffectiveDenyAssignment, PermissionBlock } from './source.js';

/**
 * Pure Azure RBAC evaluation of one action for one principal at one scope (SPEC section 6). No I/O,
 * no clock: the same snapshot and route always give the same answer.
 */

export type DenyReason = 'no_assignment' | 'deny_assignment' | 'condition_only' | 'not_granted';

export type Evaluation =
  | {
      readonly allowed: true;
      /** Name of the role whose assignment granted the action (the first one, in the source's order). */
      readonly role: string;
      readonly assignment: EffectiveAssignment;
      /** Assignments that would have granted the action but carry a condition, so were ignored. */
      readonly ignoredConditional: readonly EffectiveAssignment[];
    }
  | {
      readonly allowed: false;
      readonly reason: DenyReason;
      /** Set when `reason` is `deny_assignment`. */
      readonly denyAssignment?: EffectiveDenyAssignment;
      readonly ignoredConditional: readonly EffectiveAssignment[];
    };

/** The seed's rule: this built-in role has no dataActions yet is granted the Cognitive Services data plane. */
const COGNITIVE_SERVICES_CONTRIBUTOR_DATA: PermissionBlock = {
  actions: [],
  notActions: [],
  dataActions: ['Microsoft.CognitiveServices/*'],
  notDataActions: [],
};

const NONE: readonly EffectiveAssignment[] = [];

/** True when some permission block grants the route's action on its plane (data actions vs actions). */
export function blocksGrant(blocks: readonly PermissionBlock[], route: RouteMatch): boolean {
  for (const b of blocks) {
    const granted = route.dataAction ? grantedBy(b.dataActions, b.notDataActions, route.action) : grantedBy(b.actions, b.notActions, route.action);
    if (granted) return true;
  }
  return false;
}

/**
 * True when the role definition grants the route's action, with the seed's access table applied to
 * the two roles it names: Cognitive Services Contributor (no dataActions) is granted the data plane,
 * and Cognitive Services OpenAI User is data plane only (its `Microsoft.CognitiveServices/*\/read`
 * does not open the Foundry Local control plane). Both are matched by role ID, never by name.
 */
export function roleGrants(
  role: { readonly roleDefinitionId: string; readonly permissions: readonly PermissionBlock[] },
  route: RouteMatch,
): boolean {
  if (!route.dataAction && role.roleDefinitionId.toLowerCase() === ROLE_IDS.openAiUser) return false;
  if (blocksGrant(role.permissions, route)) return true;
  return (
    route.dataAction &&
    role.roleDefinitionId.toLowerCase() === ROLE_IDS.cognitiveServicesContributor &&
    blocksGrant([COGNITIVE_SERVICES_CONTRIBUTOR_DATA], route)
  );
}

function denyApplies(deny: EffectiveDenyAssignment, scope: string): boolean {
  return deny.doNotApplyToChildScopes ? sameScope(deny.scope, scope) : scopeCovers(deny.scope, scope);
}

/** Decides the route's action for the principal the snapshot belongs to, at `scope` (the cluster). */
export function evaluate(snapshot: AccessSnapshot, route: RouteMatch, scope: string): Evaluation {
  let granting: EffectiveAssignment | undefined;
  let conditional: EffectiveAssignment[] | undefined;
  let applicable = 0;
  for (const a of snapshot.assignments) {
    if (!scopeCovers(a.scope, scope)) continue;
    applicable++;
    if (!roleGrants(a, route)) continue;
    // An ABAC condition cannot be evaluated here, so it grants nothing (fail closed).
    if (a.condition !== undefined && a.condition !== '') (conditional ??= []).push(a);
    else granting ??= a;
  }
  const ignoredConditional = conditional ?? NONE;

  for (const d of snapshot.denyAssignments) {
    if (denyApplies(d, scope) && blocksGrant(d.permissions, route)) {
      return { allowed: false, reason: 'deny_assignment', denyAssignment: d, ignoredConditional };
    }
  }
  if (granting !== undefined) return { allowed: true, role: granting.roleName, assignment: granting, ignoredConditional };
  if (conditional !== undefined) return { allowed: false, reason: 'condition_only', ignoredConditional };
  return { allowed: false, reason: applicable === 0 ? 'no_assignment' : 'not_granted', ignoredConditional };
}
