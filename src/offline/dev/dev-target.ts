import type { CallerCredential } from '../../azure/credential.js';
import type { TokenProvider } from '../../azure/token.js';
import { UsageError, type DevTarget } from '../../setup/command-line.js';
import { EmulatorClient } from './emulator-client.js';
import { adminTokens } from './registration.js';
import { NoDevStackError, readDevStack, type DevStack } from './running.js';

/**
 * `--dev [STATE_DIR]` of setup, grant, doctor and token inspect: the running stack of that state
 * directory as their target. The caller is the emulator's admin (Global Administrator,
 * subscription Owner), signed in as `az login` would be, over HTTPS trusting only the emulator's CA.
 */

export function openDevStack(stateDir: string): DevTarget {
  let dev: DevStack;
  try {
    dev = readDevStack(stateDir);
  } catch (err) {
    if (err instanceof NoDevStackError) throw new UsageError(err.message);
    throw err;
  }
  const emulator = new EmulatorClient(dev.emulator, dev.caCertPem);
  return {
    stateDir,
    tenantId: dev.tenantId,
    clientId: dev.clientId,
    clusterId: dev.clusterId,
    authority: dev.emulator.authority,
    graphEndpoint: dev.emulator.graph,
    armEndpoint: dev.emulator.arm,
    credential: adminCredential(emulator, dev),
    dispatcher: emulator.dispatcher,
  };
}

function adminCredential(emulator: EmulatorClient, dev: DevStack): CallerCredential {
  const providers = new Map<string, TokenProvider>();
  return {
    description: `the emulator's admin ${dev.admin.userPrincipalName} (--dev ${dev.stateDir})`,
    forResource(resource: string): TokenProvider {
      const key = resource.replace(/\/+$/, '');
      let provider = providers.get(key);
      if (provider === undefined) {
        provider = adminTokens(emulator, dev.admin, key);
        providers.set(key, provider);
      }
      return provider;
    },
  };
}
