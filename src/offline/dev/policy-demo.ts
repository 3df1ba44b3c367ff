import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { z } from 'zod';
import type { EmulatorClient } from './emulator-client.js';
import { writePrivate } from './files.js';
import type { DemoUser, DemoUserName } from './demo-principals.js';
import { adminClients } from './registration.js';

/**
 * The dev stack's policy file: one model, `qwen2.5-0.5b`, is for the app role FoundryQwenUsers
 * only, which the group `qwen-team` holds and alice is a member of (so the role reaches her token
 * through a group assignment, as it would in a real tenant); bob lacks it. The role's principals
 * get 100 tokens a minute, so a few requests show the 429.
 */
export const POLICY_DEMO = {
  model: 'qwen2.5-0.5b',
  role: 'FoundryQwenUsers',
  tokensPerMinute: 100,
  group: { id: 'c0ffee00-0000-4000-8000-0000000000f1', displayName: 'qwen-team' },
} as const;

const StateGroups = z.object({ groups: z.array(z.object({ id: z.string() })) });

/** Adds the app role to the dev app, the group with alice in it, the role's assignment to the group (each only when missing); writes the policy file. */
export async function setUpPolicyDemo(
  emulator: EmulatorClient,
  clientId: string,
  users: Readonly<Record<DemoUserName, DemoUser>>,
  stateDir: string,
): Promise<string> {
  const { graph } = adminClients(emulator);
  const app = await graph.applicationByAppId(clientId);
  const sp = await graph.servicePrincipalByAppId(clientId);
  if (app === null || sp === null)
    throw new Error(`the dev app registration ${clientId} or its service principal is missing; start over with --fresh`);
  let role = (app.appRoles ?? []).find((r) => r.value === POLICY_DEMO.role);
  if (role === undefined) {
    role = {
      id: randomUUID(),
      value: POLICY_DEMO.role,
      displayName: 'Qwen users',
      description: `May use ${POLICY_DEMO.model} through foundry-auth (dev policy file)`,
      allowedMemberTypes: ['User'],
      isEnabled: true,
    };
    await graph.updateApplication(app.id, { appRoles: [...(app.appRoles ?? []), role] });
  }
  const { groups } = StateGroups.parse(await emulator.admin('GET', '/state'));
  if (!groups.some((g) => g.id === POLICY_DEMO.group.id)) {
    await emulator.admin('POST', '/groups', {
      id: POLICY_DEMO.group.id,
      displayName: POLICY_DEMO.group.displayName,
      members: [users.alice.objectId],
    });
  }
  const assigned = await graph.appRoleAssignedTo(sp.id);
  if (!assigned.some((a) => a.principalId === POLICY_DEMO.group.id && a.appRoleId === role.id))
    await graph.assignAppRole(sp.id, POLICY_DEMO.group.id, role.id);

  const file = join(stateDir, 'policy.yaml');
  writePrivate(
    file,
    [
      '# foundry-auth dev: written at every start (docs/POLICY.md explains the format)',
      'models:',
      `  - match: "${POLICY_DEMO.model}"`,
      `    allow: { roles: [${POLICY_DEMO.role}] }   # alice has it through the group ${POLICY_DEMO.group.displayName}; bob does not`,
      'limits:',
      `  - for: { roles: [${POLICY_DEMO.role}] }`,
      `    tokensPerMinute: ${POLICY_DEMO.tokensPerMinute}`,
      '',
    ].join('\n'),
  );
  return file;
}
