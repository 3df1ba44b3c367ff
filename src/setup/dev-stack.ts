import type { Dispatcher } from 'undici';
import type { CallerCredential } from '../azure/credential.js';
import type { TokenProvider } from '../azure/token.js';
import { EmulatorClient } from '../dev/emulator-client.js';
import { adminTokens } from '../dev/registration.js';
import type { DevStack } from '../dev/running.js';

/**
 * `--dev`: the caller is the dev stack's emulator admin (Global Administrator, subscription
 * Owner), signed in as `az login` would be, over HTTPS trusting only the emulator's CA.
 */

const clients = new WeakMap<DevStack, EmulatorClient>();

function emulatorOf(dev: DevStack): EmulatorClient {
  let client = clients.get(dev);
  if (client === undefined) {
    client = new EmulatorClient(dev.emulator, dev.caCertPem);
    clients.set(dev, client);
  }
  return client;
}

/** HTTPS to the emulator (Graph, ARM, its JWKS), trusting its CA. */
export function devDispatcher(dev: DevStack): Dispatcher {
  return emulatorOf(dev).dispatcher;
}

export function devAdminCredential(dev: DevStack): CallerCredential {
  const providers = new Map<string, TokenProvider>();
  return {
    description: `the emulator's admin ${dev.admin.userPrincipalName} (--dev ${dev.stateDir})`,
    forResource(resource: string): TokenProvider {
      const key = resource.replace(/\/+$/, '');
      let provider = providers.get(key);
      if (provider === undefined) {
        provider = adminTokens(emulatorOf(dev), dev.admin, key);
        providers.set(key, provider);
      }
      return provider;
    },
  };
}
