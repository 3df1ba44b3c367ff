import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { AZURE_CLI_APP_ID } from '../emulator/first-party.js';
import type { EmulatorClient } from './emulator-client.js';

/**
 * The demo tenant's principals: alice, bob and carol (users) and `inference-client` (a
 * user-assigned managed identity), with fixed object IDs so messages and docs stay the same from
 * run to run, and a second app registration left at token version 1 for the "v1 token" mistake.
 */

export const DEMO_USERS = ['alice', 'bob', 'carol'] as const;
export type DemoUserName = (typeof DEMO_USERS)[number];

export const DEMO_USER_IDS: Readonly<Record<DemoUserName, string>> = {
  alice: 'c0ffee00-0000-4000-8000-0000000000a1',
  bob: 'c0ffee00-0000-4000-8000-0000000000b0',
  carol: 'c0ffee00-0000-4000-8000-0000000000c1',
};

export const INFERENCE_CLIENT = {
  name: 'inference-client',
  principalId: 'c0ffee00-0000-4000-8000-0000000000d1',
  clientId: 'c0ffee00-0000-4000-8000-0000000000d2',
} as const;

/** An API app registration nobody moved to v2 tokens: what the documentation's step 4 prevents. */
export const V1_APP = {
  displayName: 'foundry-auth dev: app left at token version 1',
  appId: 'c0ffee00-0000-4000-8000-0000000000e1',
  scopeId: 'c0ffee00-0000-4000-8000-0000000000e2',
} as const;

export interface DemoUser {
  readonly name: DemoUserName;
  readonly upn: string;
  readonly objectId: string;
  readonly password: string;
}

const SecretsFile = z.object({ passwords: z.object({ alice: z.string().min(16), bob: z.string().min(16), carol: z.string().min(16) }) });

/** The demo users' passwords: made once per state directory, kept there (mode 0600), printed nowhere. */
export function demoPasswords(file: string): Record<DemoUserName, string> {
  if (existsSync(file)) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      raw = undefined;
    }
    const parsed = SecretsFile.safeParse(raw);
    if (parsed.success) return parsed.data.passwords;
    throw new Error(`${file} is not the demo users' password file; start over with --fresh`);
  }
  const passwords = { alice: newPassword(), bob: newPassword(), carol: newPassword() };
  writeFileSync(file, `${JSON.stringify({ passwords }, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return passwords;
}

function newPassword(): string {
  return `Dev-${randomBytes(18).toString('base64url')}`;
}

const StateView = z.object({
  tenants: z.array(z.object({ id: z.string(), domain: z.string() })),
  users: z.array(z.object({ id: z.string(), userPrincipalName: z.string() })),
  managedIdentities: z.array(z.object({ name: z.string(), clientId: z.string(), principalId: z.string() })),
  applications: z.array(z.object({ appId: z.string() })),
});
type StateView = z.infer<typeof StateView>;

async function stateOf(emulator: EmulatorClient): Promise<StateView> {
  return StateView.parse(await emulator.admin('GET', '/state'));
}

/**
 * Seeds what is missing (a reused emulator state already has it): the users with their passwords,
 * the managed identity, and the v1 app registration.
 */
export async function seedDemoPrincipals(
  emulator: EmulatorClient,
  passwords: Record<DemoUserName, string>,
): Promise<{ users: Record<DemoUserName, DemoUser> }> {
  const state = await stateOf(emulator);
  const domain = state.tenants.find((t) => t.id === emulator.tenantId)?.domain;
  if (domain === undefined) throw new Error(`the emulator has no tenant ${emulator.tenantId}`);
  const users = {} as Record<DemoUserName, DemoUser>;
  for (const name of DEMO_USERS) {
    const user: DemoUser = { name, upn: `${name}@${domain}`, objectId: DEMO_USER_IDS[name], password: passwords[name] };
    const existing = state.users.find((u) => u.userPrincipalName.toLowerCase() === user.upn);
    if (existing === undefined) {
      await emulator.admin('POST', '/users', {
        id: user.objectId,
        userPrincipalName: user.upn,
        password: user.password,
        displayName: name[0]!.toUpperCase() + name.slice(1),
      });
    } else if (existing.id !== user.objectId) {
      throw new Error(`the emulator state has a user ${user.upn} that dev did not create; start over with --fresh`);
    }
    users[name] = user;
  }
  if (!state.managedIdentities.some((m) => m.clientId === INFERENCE_CLIENT.clientId)) {
    await emulator.admin('POST', '/managed-identities', {
      name: INFERENCE_CLIENT.name,
      principalId: INFERENCE_CLIENT.principalId,
      clientId: INFERENCE_CLIENT.clientId,
    });
  }
  if (!state.applications.some((a) => a.appId === V1_APP.appId)) {
    await emulator.admin('POST', '/applications', {
      appId: V1_APP.appId,
      displayName: V1_APP.displayName,
      identifierUris: [`api://${V1_APP.appId}`],
      requestedAccessTokenVersion: null,
      scopes: [{ id: V1_APP.scopeId, value: 'foundry_access', type: 'Admin' }],
      preAuthorizedApplications: [{ appId: AZURE_CLI_APP_ID, delegatedPermissionIds: [V1_APP.scopeId] }],
      createServicePrincipal: true,
    });
  }
  return { users };
}
