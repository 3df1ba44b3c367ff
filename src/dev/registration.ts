import { DEFAULT_SEED } from '../emulator/state.js';
import type { AccessToken, TokenProvider } from '../azure/token.js';
import { createSetupClients, tokenProviderFrom, type SetupClients } from '../setup/clients.js';
import { collectingReporter } from '../setup/report.js';
import { runSetup } from '../setup/setup.js';
import type { EmulatorClient } from './emulator-client.js';
import { INFERENCE_CLIENT, type DemoUser, type DemoUserName } from './demo-principals.js';

/**
 * The demo app registration and its access, through the same library code as `foundry-auth setup`
 * and `grant`, acting as the emulator's admin user (Global Administrator, subscription Owner)
 * whose tokens come from the emulator's token endpoint, as `az login` would get them.
 */

export const DEV_APP_NAME = 'foundry-auth-dev';

export interface Registration {
  readonly clientId: string;
  /** One line per setup/grant step that changed something (empty on a warm start). */
  readonly changes: readonly string[];
}

function adminTokens(emulator: EmulatorClient, resource: string): TokenProvider {
  return tokenProviderFrom(`the emulator admin ${DEFAULT_SEED.adminUserName} for ${resource}`, async (): Promise<AccessToken> => {
    const upn = `${DEFAULT_SEED.adminUserName}@${DEFAULT_SEED.tenantDomain}`;
    const issued = await emulator.passwordToken(upn, DEFAULT_SEED.adminPassword, `${resource}/.default`);
    return { token: issued.accessToken, expiresOnMs: Date.now() + issued.expiresIn * 1000 };
  });
}

export function adminClients(emulator: EmulatorClient): SetupClients {
  const { graph, arm } = emulator.endpoints;
  return createSetupClients({
    graphEndpoint: graph,
    armEndpoint: arm,
    graphTokens: adminTokens(emulator, graph),
    armTokens: adminTokens(emulator, arm),
    dispatcher: emulator.dispatcher,
  });
}

/** setup's steps 1-5 and 7 for the demo app at the emulator's cluster, then the demo principals' access (step 6). */
export async function registerAndGrant(emulator: EmulatorClient, clusterId: string, users: Record<DemoUserName, DemoUser>): Promise<Registration> {
  const clients = adminClients(emulator);
  const setup = await runSetup(
    { appName: DEV_APP_NAME, clusterId, tenantId: emulator.tenantId, authority: emulator.endpoints.authority, armEndpoint: emulator.endpoints.arm },
    clients,
    collectingReporter(),
  );
  if (setup.clientId === null) throw new Error('setup did not return the app registration');
  const changes = setup.steps.filter((s) => s.outcome !== 'unchanged').map((s) => `setup: ${s.subject} ${s.outcome}`);
  changes.push(...(await grantDemoAccess(emulator, setup.clientId, clusterId, users)));
  return { clientId: setup.clientId, changes };
}

/** INTERIM until grant's library function lands: the same assignments through the emulator's admin API. */
async function grantDemoAccess(emulator: EmulatorClient, clientId: string, clusterId: string, users: Record<DemoUserName, DemoUser>): Promise<string[]> {
  const state = (await emulator.admin('GET', '/state')) as { roleAssignments: { principalId: string }[]; appRoleAssignments: { principalId: string }[] };
  const changes: string[] = [];
  const assign = async (principalId: string, roleName: string): Promise<void> => {
    if (state.roleAssignments.some((a) => a.principalId === principalId)) return;
    await emulator.admin('POST', '/role-assignments', { scope: clusterId, roleName, principalId });
    changes.push(`grant: ${roleName} for ${principalId}`);
  };
  await assign(users.alice.objectId, 'Cognitive Services OpenAI User');
  await assign(users.bob.objectId, 'Cognitive Services Contributor');
  await assign(INFERENCE_CLIENT.principalId, 'Cognitive Services OpenAI User');
  if (!state.appRoleAssignments.some((a) => a.principalId === INFERENCE_CLIENT.principalId)) {
    await emulator.admin('POST', '/app-role-assignments', { principalId: INFERENCE_CLIENT.principalId, resourceAppId: clientId, appRoleValue: 'FoundryInferenceAccess' });
  }
  return changes;
}
