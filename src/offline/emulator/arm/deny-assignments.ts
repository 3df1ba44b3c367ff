import type { DenyAssignment } from '../model.js';
import type { ArmCall } from './call.js';
import { covers, denyAppliesTo, principalAndGroups, scopeInTenant } from './rbac.js';

/** `Microsoft.Authorization/denyAssignments` (read-only in ARM; seeded through the admin API). */

const READ = 'Microsoft.Authorization/denyAssignments/read';

export function denyAssignmentJson(d: DenyAssignment): Record<string, unknown> {
  return {
    properties: {
      denyAssignmentName: d.denyAssignmentName,
      description: d.description,
      permissions: d.permissions.map((p) => ({ ...p, condition: null, conditionVersion: null })),
      scope: d.scope,
      doNotApplyToChildScopes: d.doNotApplyToChildScopes,
      principals: d.principals,
      excludePrincipals: d.excludePrincipals,
      isSystemProtected: d.isSystemProtected,
    },
    id: `${d.scope === '/' ? '' : d.scope}/providers/Microsoft.Authorization/denyAssignments/${d.id}`,
    type: 'Microsoft.Authorization/denyAssignments',
    name: d.id,
  };
}

export function listDenyAssignments(call: ArmCall, scope: string): void {
  const raw = call.ex.query.get('$filter');
  let atScope = false;
  let assignedTo: string | undefined;
  let principalId: string | undefined;
  if (raw !== null && raw.trim() !== '') {
    for (const term of raw.trim().split(/\s+and\s+/i)) {
      let m: RegExpExecArray | null;
      if (/^atScope\(\)$/i.test(term)) atScope = true;
      else if ((m = /^assignedTo\('([^']*)'\)$/i.exec(term)) !== null) assignedTo = (m[1] ?? '').toLowerCase();
      else if ((m = /^principalId\s+eq\s+'([^']*)'$/i.exec(term)) !== null) principalId = (m[1] ?? '').toLowerCase();
      else if (!/^gdprExportPrincipalId\s+eq/i.test(term))
        return call.error(
          400,
          'UnsupportedQuery',
          `The filter '${raw}' is not supported. Supported filters are 'atScope()', 'assignedTo('{value}')' and 'principalId eq '{value}''.`,
        );
    }
  }
  if (!call.authorize(READ, scope)) return;
  const ids = assignedTo === undefined ? undefined : principalAndGroups(call.em, call.caller?.tenantId ?? '', assignedTo);
  const items = call.em.state.denyAssignments.filter((d) => {
    if (!(covers(d.scope, scope) || (!atScope && covers(scope, d.scope))) || !scopeInTenant(call.em, d.scope, call.caller?.tenantId ?? ''))
      return false;
    if (ids !== undefined && !denyAppliesTo(d, ids)) return false;
    if (principalId !== undefined && !d.principals.some((p) => p.id === principalId)) return false;
    return true;
  });
  call.json(200, call.page(items.map(denyAssignmentJson)));
}

export function getDenyAssignment(call: ArmCall, scope: string, id: string): void {
  if (!call.authorize(READ, scope)) return;
  const d = call.em.state.denyAssignments.find((x) => x.id === id.toLowerCase());
  if (d === undefined) return call.error(404, 'DenyAssignmentNotFound', `The deny assignment '${id}' is not found.`);
  call.json(200, denyAssignmentJson(d));
}
