import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStaticAuthorizer, type CachingAuthorizer } from '../../src/authz/authorizer.js';
import type { Decision } from '../../src/contracts/decision.js';
import { rolesGranting } from '../../src/authz/grants.js';
import { ROLE_IDS } from '../../src/authz/roles.js';
import type { RouteMatch } from '../../src/contracts/route.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { CLUSTER, OTHER_SUB, RG, ROUTES, SUB, oid, rbacConfig, tempDir, user } from './helpers.js';

/**
 * The semantics matrix of SPEC section 6 through the static source: which role, at which scope,
 * through which path, grants which route. Each case writes its own role assignments file.
 */

const dir = tempDir();
const open: CachingAuthorizer[] = [];
afterAll(async () => {
  await Promise.all(open.map((a) => a.close()));
  dir.cleanup();
});

let files = 0;
async function authorizerFor(content: Record<string, unknown>): Promise<CachingAuthorizer> {
  const file = dir.file(`assignments-${files++}.json`, JSON.stringify({ scope: CLUSTER, ...content }));
  const authorizer = await createStaticAuthorizer(rbacConfig({ roleAssignmentsFile: file }), {
    clock: new ManualClock(),
    log: silentLogger(),
    metrics: new Metrics({ defaultMetrics: false }),
    pollIntervalMs: 0,
  });
  open.push(authorizer);
  return authorizer;
}

const ME = oid(1);
const GROUP = oid(0xa1);
const INNER_GROUP = oid(0xa2);

type Plane = { chat: boolean; embeddings: boolean; models: boolean; read: boolean; write: boolean; delete: boolean };
const DATA_AND_READ: Plane = { chat: true, embeddings: true, models: true, read: true, write: false, delete: false };
const DATA_ONLY: Plane = { chat: true, embeddings: true, models: true, read: false, write: false, delete: false };
const EVERYTHING: Plane = { chat: true, embeddings: true, models: true, read: true, write: true, delete: true };
const CONTROL_ONLY: Plane = { chat: false, embeddings: false, models: false, read: true, write: true, delete: true };
const READS_ONLY: Plane = { chat: false, embeddings: false, models: false, read: true, write: false, delete: false };
const NOTHING: Plane = { chat: false, embeddings: false, models: false, read: false, write: false, delete: false };

const ROUTE_OF: Record<keyof Plane, RouteMatch> = {
  chat: ROUTES.chat,
  embeddings: ROUTES.embeddings,
  models: ROUTES.models,
  read: ROUTES.deploymentsRead,
  write: ROUTES.deploymentsWrite,
  delete: ROUTES.deploymentsDelete,
};

function assigned(role: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { roleAssignments: [{ principalId: ME, role, ...extra }] };
}

/** Every 403 names the object ID and type, the action, the scope and the built-in roles that would grant it. */
function expectExplainedDenial(decision: Decision, route: RouteMatch): void {
  expect(decision.kind).toBe('deny');
  if (decision.kind !== 'deny') return;
  expect(decision.message).toContain(`principal ${ME} (user)`);
  expect(decision.message).toContain(route.action);
  expect(decision.message).toContain(CLUSTER);
  if (decision.reason !== 'deny_assignment') {
    expect(decision.message).toContain(`assign one of: ${rolesGranting(route).join(', ')}`);
  }
}

const CASES: [string, Record<string, unknown>, Plane][] = [
  // The seed's access table is binding: Cognitive Services OpenAI User is data plane only, although its
  // real Actions include Microsoft.CognitiveServices/*/read (Cognitive Services User keeps its reads).
  ['OpenAI User at the cluster', assigned('Cognitive Services OpenAI User'), DATA_ONLY],
  ['OpenAI User at the resource group (inherited)', assigned('Cognitive Services OpenAI User', { scope: RG }), DATA_ONLY],
  ['OpenAI User at the subscription (inherited)', assigned('Cognitive Services OpenAI User', { scope: `/subscriptions/${SUB}` }), DATA_ONLY],
  [
    'OpenAI User at a management group (inherited)',
    assigned('Cognitive Services OpenAI User', { scope: '/providers/Microsoft.Management/managementGroups/mg' }),
    DATA_ONLY,
  ],
  ['OpenAI User by role definition GUID', assigned(ROLE_IDS.openAiUser.toUpperCase()), DATA_ONLY],
  [
    'OpenAI User by full role definition ID',
    assigned(`/subscriptions/${SUB}/providers/Microsoft.Authorization/roleDefinitions/${ROLE_IDS.openAiUser}`),
    DATA_ONLY,
  ],
  ['role name in another case', assigned('cognitive services openai user'), DATA_ONLY],
  [
    'OpenAI User through a group',
    { groups: [{ id: GROUP, members: [ME] }], roleAssignments: [{ principalId: GROUP, role: 'Cognitive Services OpenAI User' }] },
    DATA_ONLY,
  ],
  [
    'OpenAI User through a nested group',
    {
      groups: [
        { id: GROUP, members: [INNER_GROUP] },
        { id: INNER_GROUP, members: [ME] },
      ],
      roleAssignments: [{ principalId: GROUP, role: 'Cognitive Services OpenAI User' }],
    },
    DATA_ONLY,
  ],
  [
    'OpenAI User through groups that contain each other',
    {
      groups: [
        { id: GROUP, members: [INNER_GROUP] },
        { id: INNER_GROUP, members: [GROUP, ME] },
      ],
      roleAssignments: [{ principalId: GROUP, role: 'Cognitive Services OpenAI User' }],
    },
    DATA_ONLY,
  ],
  ['Cognitive Services Contributor (data plane by the seed rule)', assigned('Cognitive Services Contributor'), EVERYTHING],
  ['Cognitive Services OpenAI Contributor', assigned('Cognitive Services OpenAI Contributor'), EVERYTHING],
  ['Cognitive Services User', assigned('Cognitive Services User'), DATA_AND_READ],
  ['Reader', assigned('Reader'), READS_ONLY],
  ['Contributor (no data plane)', assigned('Contributor'), CONTROL_ONLY],
  ['Owner (no data plane)', assigned('Owner'), CONTROL_ONLY],
  [
    'custom role with only the chat action',
    {
      roleDefinitions: [{ id: oid(0xc1), roleName: 'Chat Only', permissions: [{ dataActions: [ROUTES.chat.action] }] }],
      ...assigned('Chat Only'),
    },
    { ...NOTHING, chat: true },
  ],
  [
    'custom role whose notDataActions exclude chat',
    {
      roleDefinitions: [
        {
          id: oid(0xc2),
          roleName: 'No Chat',
          permissions: [
            {
              dataActions: ['Microsoft.CognitiveServices/accounts/OpenAI/*'],
              notDataActions: ['microsoft.cognitiveservices/accounts/openai/deployments/chat/*'],
            },
          ],
        },
      ],
      ...assigned('No Chat'),
    },
    { ...NOTHING, embeddings: true, models: true },
  ],
  [
    'a conditional assignment',
    assigned('Cognitive Services OpenAI User', { condition: "@Resource[Microsoft.CognitiveServices/accounts:name] StringEquals 'x'" }),
    NOTHING,
  ],
  [
    'an assignment on another cluster',
    assigned('Cognitive Services OpenAI User', { scope: `${RG}/providers/Microsoft.Kubernetes/connectedClusters/c2` }),
    NOTHING,
  ],
  ['an assignment on a prefix-similar cluster', assigned('Cognitive Services OpenAI User', { scope: `${CLUSTER}0` }), NOTHING],
  [
    'an assignment on a sibling resource group',
    assigned('Cognitive Services OpenAI User', { scope: `/subscriptions/${SUB}/resourceGroups/rg2` }),
    NOTHING,
  ],
  ['an assignment on a prefix-similar resource group', assigned('Cognitive Services OpenAI User', { scope: `${RG}-other` }), NOTHING],
  ['an assignment in another subscription', assigned('Cognitive Services Contributor', { scope: `/subscriptions/${OTHER_SUB}` }), NOTHING],
  ['an assignment to someone else', { roleAssignments: [{ principalId: oid(2), role: 'Cognitive Services Contributor' }] }, NOTHING],
  [
    'a group the principal is not in',
    { groups: [{ id: GROUP, members: [oid(2)] }], roleAssignments: [{ principalId: GROUP, role: 'Cognitive Services Contributor' }] },
    NOTHING,
  ],
  ['no assignment at all', {}, NOTHING],
];

describe.each(CASES)('%s', (_name, content, expected) => {
  let authorizer: CachingAuthorizer;
  beforeAll(async () => {
    authorizer = await authorizerFor(content);
  });

  it.each(Object.keys(ROUTE_OF) as (keyof Plane)[])('%s', async (key) => {
    const route = ROUTE_OF[key];
    const decision = await authorizer.authorize(user(ME), route);
    if (expected[key]) {
      expect(decision).toMatchObject({ kind: 'allow', source: 'static' });
    } else {
      expectExplainedDenial(decision, route);
    }
  });
});

describe('deny assignments', () => {
  const GRANT = { principalId: ME, role: 'Cognitive Services OpenAI Contributor' };
  const CHAT_ONLY = [{ dataActions: ['Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/*'] }];

  async function chatAndEmbeddings(content: Record<string, unknown>): Promise<[Decision, Decision]> {
    const authorizer = await authorizerFor({ roleAssignments: [GRANT], ...content });
    return [await authorizer.authorize(user(ME), ROUTES.chat), await authorizer.authorize(user(ME), ROUTES.embeddings)];
  }

  it('direct: blocks what it names and nothing else, and says so', async () => {
    const [chat, embeddings] = await chatAndEmbeddings({ denyAssignments: [{ name: 'no-chat', principals: [ME], permissions: CHAT_ONLY }] });
    expect(chat).toMatchObject({ kind: 'deny', reason: 'deny_assignment' });
    expectExplainedDenial(chat, ROUTES.chat);
    expect(chat.kind === 'deny' && chat.message).toContain('deny assignment "no-chat"');
    expect(embeddings.kind).toBe('allow');
  });

  it('through a nested group', async () => {
    const [chat] = await chatAndEmbeddings({
      groups: [
        { id: GROUP, members: [INNER_GROUP] },
        { id: INNER_GROUP, members: [ME] },
      ],
      denyAssignments: [{ name: 'group-deny', principals: [GROUP], permissions: CHAT_ONLY }],
    });
    expect(chat).toMatchObject({ kind: 'deny', reason: 'deny_assignment' });
  });

  it('Everyone, except the excluded principals (directly or through a group)', async () => {
    const deny = (exclude: string[]) => ({ name: 'everyone', principals: ['Everyone'], excludePrincipals: exclude, permissions: CHAT_ONLY });
    const [denied] = await chatAndEmbeddings({ denyAssignments: [deny([oid(2)])] });
    expect(denied).toMatchObject({ kind: 'deny', reason: 'deny_assignment' });
    const [excluded] = await chatAndEmbeddings({ denyAssignments: [deny([ME])] });
    expect(excluded.kind).toBe('allow');
    const [viaGroup] = await chatAndEmbeddings({ groups: [{ id: GROUP, members: [ME] }], denyAssignments: [deny([GROUP])] });
    expect(viaGroup.kind).toBe('allow');
    const [zeroGuid] = await chatAndEmbeddings({ denyAssignments: [{ ...deny([]), principals: ['00000000-0000-0000-0000-000000000000'] }] });
    expect(zeroGuid).toMatchObject({ kind: 'deny', reason: 'deny_assignment' });
  });

  it('doNotApplyToChildScopes at an ancestor does not apply at the cluster; at the cluster it does', async () => {
    const at = (scope: string) => ({ name: 'here-only', principals: [ME], scope, doNotApplyToChildScopes: true, permissions: CHAT_ONLY });
    const [ancestor] = await chatAndEmbeddings({ denyAssignments: [at(RG)] });
    expect(ancestor.kind).toBe('allow');
    const [here] = await chatAndEmbeddings({ denyAssignments: [at(CLUSTER)] });
    expect(here).toMatchObject({ kind: 'deny', reason: 'deny_assignment' });
    const [inherited] = await chatAndEmbeddings({ denyAssignments: [{ ...at(RG), doNotApplyToChildScopes: false }] });
    expect(inherited).toMatchObject({ kind: 'deny', reason: 'deny_assignment' });
  });

  it('at a sibling scope does not apply', async () => {
    const [chat] = await chatAndEmbeddings({
      denyAssignments: [{ name: 'sibling', principals: [ME], scope: `${RG}-other`, permissions: CHAT_ONLY }],
    });
    expect(chat.kind).toBe('allow');
  });
});

describe('403 messages', () => {
  it('spell out the principal, action, scope, roles and the fix', async () => {
    const authorizer = await authorizerFor({});
    const decision = await authorizer.authorize({ type: 'app', oid: ME, tid: oid(9) }, ROUTES.chat);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'no_assignment', source: 'static', cache: 'miss' });
    expect(decision.kind === 'deny' && decision.message).toBe(
      `principal ${ME} (app) lacks data action ${ROUTES.chat.action} at ${CLUSTER}; assign one of: Cognitive Services OpenAI User, ` +
        `Cognitive Services OpenAI Contributor, Cognitive Services User, Cognitive Services Contributor (add a roleAssignments entry for ${ME} to the --role-assignments-file)`,
    );
  });

  it('say that conditions are not supported', async () => {
    const authorizer = await authorizerFor(assigned('Cognitive Services OpenAI User', { condition: 'x' }));
    const decision = await authorizer.authorize(user(ME), ROUTES.chat);
    expect(decision).toMatchObject({ kind: 'deny', reason: 'condition_only' });
    expect(decision.kind === 'deny' && decision.message).toContain('conditions are not supported');
    expect(decision.kind === 'deny' && decision.message).toContain(`Cognitive Services OpenAI User at ${CLUSTER}`);
  });

  it('name the granting role on allows', async () => {
    const authorizer = await authorizerFor({
      roleAssignments: [
        { principalId: ME, role: 'Reader' },
        { principalId: ME, role: 'Cognitive Services OpenAI User' },
      ],
    });
    expect(await authorizer.authorize(user(ME), ROUTES.chat)).toMatchObject({ kind: 'allow', role: 'Cognitive Services OpenAI User' });
  });
});
