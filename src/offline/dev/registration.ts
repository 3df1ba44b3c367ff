import { DEFAULT_SEED } from '../emulator/state.js';
import type { AccessToken, TokenProvider } from '../../azure/token.js';
import { createSetupClients, tokenProviderFrom, type SetupClients } from '../../setup/clients.js';
import { runGrant, type GrantOptions } from '../../setup/grant.js';
import { collectingReporter, isChange, type StepReport } from '../../setup/report.js';
import { runSetup } from '../../setup/setup.js';
import type { EmulatorClient } from './emulator-client.js';
import type { AdminCredential } from './running.js';
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

/** The emulator's seeded admin user: Global Administrator and subscription Owner. */
export const EMULATOR_ADMIN: AdminCredential = {
  userPrincipalName: `${DEFAULT_SEED.adminUserName}@${DEFAULT_SEED.tenantDomain}`,
  password: DEFAULT_SEED.adminPassword,
};

/** Tokens for `resource` as the admin signs in with the Azure CLI (password grant). */
export function adminTokens(emulator: EmulatorClient, admin: AdminCredential, resource: string): TokenProvider {
  return tokenProviderFrom(`the emulator admin ${admin.userPrincipalName} for ${resource}`, async (): Promise<AccessToken> => {
    const issued = await emulator.passwordToken(admin.userPrincipalName, admin.password, `${resource.replace(/\/+$/, '')}/.default`);
    return { token: issued.accessToken, expiresOnMs: Date.now() + issued.expiresIn * 1000 };
  });
}

export function adminClients(emulator: EmulatorClient): SetupClients {
  const { graph, arm } = emulator.endpoints;
  return createSetupClients({
    graphEndpoint: graph,
    armEndpoint: arm,
    graphTokens: adminTokens(emulator, EMULATOR_ADMIN, graph),
    armTokens: adminTokens(emulator, EMULATOR_ADMIN, arm),
    dispatcher: emulator.dispatcher,
  });
}

/** setup's steps 1-5 and 7 for the demo app at the emulator's cluster, then grant's step 6 for the demo principals. */
export async function registerAndGrant(
  emulator: EmulatorClient,
  clusterId: string,
  users: Readonly<Record<DemoUserName, DemoUser>>,
): Promise<Registration> {
  const clients = adminClients(emulator);
  const setup = await runSetup(
    { appName: DEV_APP_NAME, clusterId, tenantId: emulator.tenantId, authority: emulator.endpoints.authority, armEndpoint: emulator.endpoints.arm },
    clients,
    collectingReporter(),
  );
  if (setup.clientId === null) throw new Error('setup did not return the app registration');
  const changes = [...changesOf('setup', setup.steps), ...(await grantDemoAccess(clients, setup.clientId, clusterId, users))];
  return { clientId: setup.clientId, changes };
}

/** Step 6 as `foundry-auth grant` does it: alice inference, bob admin, the managed identity inference (+ the app role). */
async function grantDemoAccess(
  clients: SetupClients,
  clientId: string,
  clusterId: string,
  users: Readonly<Record<DemoUserName, DemoUser>>,
): Promise<string[]> {
  const grants: GrantOptions[] = [
    { clientId, clusterId, assignee: users.alice.upn, access: 'inference' },
    { clientId, clusterId, assignee: users.bob.upn, access: 'admin' },
    { clientId, clusterId, assignee: INFERENCE_CLIENT.clientId, access: 'inference' },
  ];
  const changes: string[] = [];
  for (const grant of grants) {
    const result = await runGrant(grant, clients, collectingReporter());
    changes.push(...changesOf('grant', result.steps));
  }
  return changes;
}

function changesOf(command: 'setup' | 'grant', steps: readonly StepReport[]): string[] {
  return steps.filter((s) => isChange(s.outcome)).map((s) => `${command}: ${s.subject} ${s.outcome}`);
}
