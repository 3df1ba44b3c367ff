import { describe, expect, it } from 'vitest';
import { actionMatches, grantedBy } from '../../src/authz/actions.js';
import { evaluate } from '../../src/authz/evaluate.js';
import { rolesGranting } from '../../src/authz/grants.js';
import { BUILT_IN_ROLES, ROLE_IDS } from '../../src/authz/roles.js';
import { scopeCovers, sameScope } from '../../src/azure/scope.js';
import type { AccessSnapshot, EffectiveAssignment, EffectiveDenyAssignment, PermissionBlock } from '../../src/authz/source.js';
import { CLUSTER, RG, ROUTES, SUB, oid } from './helpers.js';

const CHAT = ROUTES.chat.action;

function block(p: Partial<PermissionBlock>): PermissionBlock {
  return { actions: p.actions ?? [], notActions: p.notActions ?? [], dataActions: p.dataActions ?? [], notDataActions: p.notDataActions ?? [] };
}

function assignment(roleId: string, over: Partial<EffectiveAssignment> = {}): EffectiveAssignment {
  const role = BUILT_IN_ROLES.find((r) => r.id === roleId);
  if (role === undefined) throw new Error(`no built-in role ${roleId}`);
  return { roleDefinitionId: role.id, roleName: role.roleName, scope: CLUSTER, principalId: oid(1), permissions: role.permissions, ...over };
}

function snapshot(assignments: EffectiveAssignment[], denyAssignments: EffectiveDenyAssignment[] = []): AccessSnapshot {
  return { assignments, denyAssignments };
}

describe('action matching', () => {
  it('lets * span any run of characters including /', () => {
    expect(actionMatches('Microsoft.CognitiveServices/*', CHAT)).toBe(true);
    expect(actionMatches('Microsoft.CognitiveServices/*/action', CHAT)).toBe(true);
    expect(actionMatches('Microsoft.CognitiveServices/accounts/OpenAI/*', CHAT)).toBe(true);
    expect(actionMatches('*/read', 'Microsoft.CognitiveServices/accounts/deployments/read')).toBe(true);
    expect(actionMatches('*/read', 'Microsoft.CognitiveServices/accounts/deployments/write')).toBe(false);
  });

  it('anchors both ends', () => {
    expect(actionMatches('Microsoft.CognitiveServices/*/read', 'Microsoft.CognitiveServices/accounts/deployments/readx')).toBe(false);
    expect(actionMatches('CognitiveServices/*', CHAT)).toBe(false);
    expect(actionMatches(CHAT, `${CHAT}/x`)).toBe(false);
  });

  it('ignores case in patterns and actions', () => {
    expect(actionMatches('microsoft.cognitiveservices/ACCOUNTS/openai/*', CHAT)).toBe(true);
    expect(actionMatches(CHAT.toUpperCase(), CHAT)).toBe(true);
    expect(actionMatches('*/READ', 'Microsoft.CognitiveServices/accounts/deployments/read')).toBe(true);
  });

  it('matches * alone against everything', () => {
    expect(actionMatches('*', CHAT)).toBe(true);
    expect(actionMatches('*', 'Microsoft.Authorization/roleAssignments/write')).toBe(true);
  });

  it('treats regular-expression metacharacters literally', () => {
    expect(actionMatches('Microsoft.CognitiveServices/*', 'MicrosoftXCognitiveServices/accounts/read')).toBe(false);
    expect(actionMatches('a+b/*', 'aab/x')).toBe(false);
    expect(actionMatches('a+b/*', 'a+b/x')).toBe(true);
    expect(actionMatches('a|b', 'a')).toBe(false);
    expect(actionMatches('(a)?/*', 'a/x')).toBe(false);
    expect(actionMatches('[ab]/*', 'a/x')).toBe(false);
    expect(actionMatches('^a$/*', '^a$/x')).toBe(true);
    expect(actionMatches('a\\d/*', 'a1/x')).toBe(false);
    expect(actionMatches('a.{2}/*', 'abb/x')).toBe(false);
  });

  it('subtracts notActions / notDataActions', () => {
    expect(grantedBy(['Microsoft.CognitiveServices/accounts/OpenAI/*'], [CHAT], CHAT)).toBe(false);
    expect(grantedBy(['Microsoft.CognitiveServices/accounts/OpenAI/*'], [CHAT], ROUTES.embeddings.action)).toBe(true);
    expect(grantedBy(['*'], ['*/deployments/*'], CHAT)).toBe(false);
    expect(grantedBy(['*'], ['MICROSOFT.COGNITIVESERVICES/*'], CHAT)).toBe(false);
    expect(grantedBy([], [], CHAT)).toBe(false);
  });
});

describe('scope containment', () => {
  it.each([
    [CLUSTER, true],
    [CLUSTER.toUpperCase(), true],
    [`${CLUSTER}/`, true],
    [RG, true],
    [`/subscriptions/${SUB}`, true],
    [`/subscriptions/${SUB.toUpperCase()}/resourcegroups/RG`, true],
    ['/', true],
    ['/providers/Microsoft.Management/managementGroups/mg1', true],
    [`/subscriptions/${SUB}/resourceGroups/rg2`, false],
    [`/subscriptions/${SUB}/resourceGroups/rg-other`, false],
    [`/subscriptions/${SUB}/resourceGroups/r`, false],
    [`${RG}/providers/Microsoft.Kubernetes/connectedClusters/c2`, false],
    [`${RG}/providers/Microsoft.Kubernetes/connectedClusters/c10`, false],
    [`${CLUSTER}/child`, false],
    ['/subscriptions/99999999-1111-2222-3333-444444444444', false],
    ['', false],
    ['subscriptions', false],
    [`/subscriptions/${SUB}//resourceGroups/rg`, false],
    [`/subscriptions/${SUB}/resourceGroups/rg/..`, false],
    ['/providers/Microsoft.Management/managementGroups/mg1/extra', false],
  ])('an assignment at %s applies at the cluster: %s', (scope, covers) => {
    expect(scopeCovers(scope, CLUSTER)).toBe(covers);
  });

  it('compares whole scopes for doNotApplyToChildScopes', () => {
    expect(sameScope(CLUSTER, CLUSTER.toLowerCase())).toBe(true);
    expect(sameScope(RG, CLUSTER)).toBe(false);
  });
});

describe('evaluate', () => {
  it('grants the data plane to Cognitive Services Contributor only through the seed rule', () => {
    const csc = evaluate(snapshot([assignment(ROLE_IDS.cognitiveServicesContributor)]), ROUTES.chat, CLUSTER);
    expect(csc).toMatchObject({ allowed: true, role: 'Cognitive Services Contributor' });
    for (const id of [ROLE_IDS.owner, ROLE_IDS.contributor, ROLE_IDS.reader]) {
      expect(evaluate(snapshot([assignment(id)]), ROUTES.chat, CLUSTER)).toMatchObject({ allowed: false, reason: 'not_granted' });
    }
  });

  it('applies the seed rule by role definition ID, not by name', () => {
    const impostor: EffectiveAssignment = {
      roleDefinitionId: 'c0ffee00-0000-0000-0000-000000000001',
      roleName: 'Cognitive Services Contributor',
      scope: CLUSTER,
      principalId: oid(1),
      permissions: [block({ actions: ['Microsoft.CognitiveServices/*'] })],
    };
    expect(evaluate(snapshot([impostor]), ROUTES.chat, CLUSTER)).toMatchObject({ allowed: false, reason: 'not_granted' });
    expect(evaluate(snapshot([impostor]), ROUTES.deploymentsWrite, CLUSTER)).toMatchObject({ allowed: true });
  });

  it('gives no data plane to a control-plane wildcard and no control plane to a data-plane wildcard', () => {
    const control = { ...assignment(ROLE_IDS.owner), permissions: [block({ actions: ['*'] })] };
    const data = { ...assignment(ROLE_IDS.owner), permissions: [block({ dataActions: ['*'] })] };
    expect(evaluate(snapshot([control]), ROUTES.chat, CLUSTER).allowed).toBe(false);
    expect(evaluate(snapshot([data]), ROUTES.deploymentsRead, CLUSTER).allowed).toBe(false);
    expect(evaluate(snapshot([data]), ROUTES.chat, CLUSTER).allowed).toBe(true);
  });

  it('distinguishes no assignment from assignments that do not grant', () => {
    expect(evaluate(snapshot([]), ROUTES.chat, CLUSTER)).toMatchObject({ allowed: false, reason: 'no_assignment' });
    const elsewhere = assignment(ROLE_IDS.openAiUser, { scope: `/subscriptions/${SUB}/resourceGroups/rg2` });
    expect(evaluate(snapshot([elsewhere]), ROUTES.chat, CLUSTER)).toMatchObject({ allowed: false, reason: 'no_assignment' });
    expect(evaluate(snapshot([assignment(ROLE_IDS.reader)]), ROUTES.chat, CLUSTER)).toMatchObject({ allowed: false, reason: 'not_granted' });
  });

  it('ignores assignments with a condition and reports them', () => {
    const conditional = assignment(ROLE_IDS.openAiUser, { condition: "@Resource[x] StringEquals 'y'" });
    const alone = evaluate(snapshot([conditional]), ROUTES.chat, CLUSTER);
    expect(alone).toMatchObject({ allowed: false, reason: 'condition_only' });
    expect(alone.ignoredConditional).toEqual([conditional]);
    // An unconditional grant still works and the conditional one is reported for the log.
    const both = evaluate(snapshot([conditional, assignment(ROLE_IDS.cognitiveServicesUser)]), ROUTES.chat, CLUSTER);
    expect(both).toMatchObject({ allowed: true, role: 'Cognitive Services User', ignoredConditional: [conditional] });
    // A conditional assignment of a role that would not grant the action anyway is not "condition_only".
    const reader = evaluate(snapshot([assignment(ROLE_IDS.reader, { condition: 'x' })]), ROUTES.chat, CLUSTER);
    expect(reader).toMatchObject({ allowed: false, reason: 'not_granted', ignoredConditional: [] });
  });

  it('lets a deny assignment win over any grant', () => {
    const deny: EffectiveDenyAssignment = {
      id: 'd1',
      name: 'no chat',
      scope: `/subscriptions/${SUB}`,
      doNotApplyToChildScopes: false,
      permissions: [block({ dataActions: ['Microsoft.CognitiveServices/*/chat/*'] })],
    };
    const owner = [assignment(ROLE_IDS.openAiContributor), assignment(ROLE_IDS.cognitiveServicesContributor)];
    expect(evaluate(snapshot(owner, [deny]), ROUTES.chat, CLUSTER)).toMatchObject({
      allowed: false,
      reason: 'deny_assignment',
      denyAssignment: deny,
    });
    expect(evaluate(snapshot(owner, [deny]), ROUTES.embeddings, CLUSTER)).toMatchObject({ allowed: true });
    // Matched on its own plane only: a deny of control actions does not block the data plane.
    const controlDeny = { ...deny, permissions: [block({ actions: ['*'] })] };
    expect(evaluate(snapshot(owner, [controlDeny]), ROUTES.chat, CLUSTER).allowed).toBe(true);
    expect(evaluate(snapshot(owner, [controlDeny]), ROUTES.deploymentsRead, CLUSTER).allowed).toBe(false);
  });

  it('honours notActions and notDataActions of deny assignments', () => {
    const deny: EffectiveDenyAssignment = {
      id: 'd2',
      name: 'all but chat',
      scope: CLUSTER,
      doNotApplyToChildScopes: false,
      permissions: [block({ dataActions: ['*'], notDataActions: [CHAT] })],
    };
    const grants = [assignment(ROLE_IDS.openAiUser)];
    expect(evaluate(snapshot(grants, [deny]), ROUTES.chat, CLUSTER).allowed).toBe(true);
    expect(evaluate(snapshot(grants, [deny]), ROUTES.embeddings, CLUSTER)).toMatchObject({ reason: 'deny_assignment' });
  });

  it('applies a doNotApplyToChildScopes deny assignment only at its own scope', () => {
    const deny = (scope: string): EffectiveDenyAssignment => ({
      id: 'd3',
      name: 'here only',
      scope,
      doNotApplyToChildScopes: true,
      permissions: [block({ dataActions: ['*'] })],
    });
    const grants = [assignment(ROLE_IDS.openAiUser)];
    expect(evaluate(snapshot(grants, [deny(RG)]), ROUTES.chat, CLUSTER).allowed).toBe(true);
    expect(evaluate(snapshot(grants, [deny(CLUSTER.toLowerCase())]), ROUTES.chat, CLUSTER)).toMatchObject({ reason: 'deny_assignment' });
  });

  it('ignores deny assignments at sibling scopes', () => {
    const deny: EffectiveDenyAssignment = {
      id: 'd4',
      name: 'sibling',
      scope: `${RG}-other`,
      doNotApplyToChildScopes: false,
      permissions: [block({ dataActions: ['*'] })],
    };
    expect(evaluate(snapshot([assignment(ROLE_IDS.openAiUser)], [deny]), ROUTES.chat, CLUSTER).allowed).toBe(true);
  });
});

describe('rolesGranting', () => {
  it('lists the built-in roles that grant each default action, least privilege first', () => {
    const dataRoles = [
      'Cognitive Services OpenAI User',
      'Cognitive Services OpenAI Contributor',
      'Cognitive Services User',
      'Cognitive Services Contributor',
    ];
    expect(rolesGranting(ROUTES.chat)).toEqual(dataRoles);
    expect(rolesGranting(ROUTES.embeddings)).toEqual(dataRoles);
    expect(rolesGranting(ROUTES.models)).toEqual(dataRoles);
    // Cognitive Services OpenAI User is data plane only (the seed's access table).
    expect(rolesGranting(ROUTES.deploymentsRead)).toEqual([...dataRoles.slice(1), 'Reader', 'Contributor', 'Owner']);
    expect(rolesGranting(ROUTES.deploymentsWrite)).toEqual([
      'Cognitive Services OpenAI Contributor',
      'Cognitive Services Contributor',
      'Contributor',
      'Owner',
    ]);
    expect(rolesGranting(ROUTES.deploymentsDelete)).toEqual([
      'Cognitive Services OpenAI Contributor',
      'Cognitive Services Contributor',
      'Contributor',
      'Owner',
    ]);
  });
});
