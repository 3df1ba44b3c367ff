import { z } from 'zod';
import { DEMO_USERS, INFERENCE_CLIENT, type DemoUser, type DemoUserName } from './demo-principals.js';
import type { EmulatorClient } from './emulator-client.js';

/**
 * Fresh access tokens obtained the way each principal would get them: the users by password as the
 * Azure CLI (`az account get-access-token --scope api://<client-id>/.default`), the managed
 * identity from the IMDS-shaped endpoint with its `client_id`.
 */

const TestToken = z.object({ access_token: z.string().min(1) });

export type DemoPrincipal = DemoUserName | 'inference-client';

export interface DemoTokens {
  /** dev.json's `tokens`. */
  readonly tokens: Readonly<Record<DemoPrincipal, string>>;
  /** alice's token as the app would issue it were it left at token version 1: the banner's "v1 token" mistake. */
  readonly v1: string;
}

export async function demoTokens(emulator: EmulatorClient, clientId: string, users: Readonly<Record<DemoUserName, DemoUser>>): Promise<DemoTokens> {
  const scope = `api://${clientId}/.default`;
  const [alice, bob, carol, mi, v1] = await Promise.all([
    ...DEMO_USERS.map((name) => emulator.passwordToken(users[name].upn, users[name].password, scope)),
    emulator.managedIdentityToken(INFERENCE_CLIENT.clientId, `api://${clientId}`),
    // What alice gets were the app left at token version 1 (Entra's default): the emulator's test-token API.
    emulator
      .admin('POST', '/tokens', { principal: users.alice.upn, scope, tokenVersion: 1, listener: 'https' })
      .then((r) => ({ accessToken: TestToken.parse(r).access_token })),
  ]);
  return {
    tokens: { alice: alice.accessToken, bob: bob.accessToken, carol: carol!.accessToken, 'inference-client': mi!.accessToken },
    v1: v1!.accessToken,
  };
}
