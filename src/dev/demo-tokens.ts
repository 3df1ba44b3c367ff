import { DEMO_USERS, INFERENCE_CLIENT, V1_APP, type DemoUser, type DemoUserName } from './demo-principals.js';
import type { EmulatorClient } from './emulator-client.js';

/**
 * Fresh access tokens obtained the way each principal would get them: the users by password as the
 * Azure CLI (`az account get-access-token --scope api://<client-id>/.default`), the managed
 * identity from the IMDS-shaped endpoint with its `client_id`.
 */

export type DemoPrincipal = DemoUserName | 'inference-client';

export interface DemoTokens {
  /** dev.json's `tokens`. */
  readonly tokens: Readonly<Record<DemoPrincipal, string>>;
  /** alice's token for the app left at token version 1: the banner's "v1 token" mistake. */
  readonly v1: string;
}

export async function demoTokens(emulator: EmulatorClient, clientId: string, users: Readonly<Record<DemoUserName, DemoUser>>): Promise<DemoTokens> {
  const scope = `api://${clientId}/.default`;
  const [alice, bob, carol, mi, v1] = await Promise.all([
    ...DEMO_USERS.map((name) => emulator.passwordToken(users[name].upn, users[name].password, scope)),
    emulator.managedIdentityToken(INFERENCE_CLIENT.clientId, `api://${clientId}`),
    emulator.passwordToken(users.alice.upn, users.alice.password, `api://${V1_APP.appId}/.default`),
  ]);
  return {
    tokens: { alice: alice.accessToken, bob: bob.accessToken, carol: carol!.accessToken, 'inference-client': mi!.accessToken },
    v1: v1!.accessToken,
  };
}
