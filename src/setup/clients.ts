import type { Dispatcher } from 'undici';
import { ArmClient } from '../azure/arm.js';
import { ArmManagementClient, DEFAULT_ARM_ENDPOINT } from '../azure/arm-manage.js';
import { DEFAULT_GRAPH_ENDPOINT, GraphClient } from '../azure/graph.js';
import { CachingTokenProvider } from '../azure/token-provider.js';
import type { AccessToken, TokenProvider } from '../azure/token.js';
import type { Logger } from '../ops/log.js';

/** The Azure clients `setup`, `grant` and `doctor` work with, all acting as the caller. */
export interface SetupClients {
  readonly graph: GraphClient;
  /** Cluster reads and role-assignment writes. */
  readonly arm: ArmManagementClient;
  /** The sidecar's own ARM reader (role assignments through groups, role definitions), for `doctor`. */
  readonly armReader: ArmClient;
}

export interface SetupClientsOptions {
  readonly graphEndpoint?: string;
  readonly armEndpoint?: string;
  /** A token for Microsoft Graph (`{graphEndpoint}/.default`). */
  readonly graphTokens: TokenProvider;
  /** A token for ARM (`{armEndpoint}/.default`). */
  readonly armTokens: TokenProvider;
  /** Deadline of one call; default 30 s. */
  readonly timeoutMs?: number;
  /** e.g. an undici Agent trusting the emulator's CA. */
  readonly dispatcher?: Dispatcher;
  readonly log?: Logger;
}

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export function createSetupClients(opts: SetupClientsOptions): SetupClients {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const armEndpoint = (opts.armEndpoint ?? DEFAULT_ARM_ENDPOINT).replace(/\/+$/, '');
  const common = {
    timeoutMs,
    ...(opts.dispatcher !== undefined ? { dispatcher: opts.dispatcher } : {}),
    ...(opts.log !== undefined ? { log: opts.log } : {}),
  };
  return {
    graph: new GraphClient({ ...common, endpoint: opts.graphEndpoint ?? DEFAULT_GRAPH_ENDPOINT, tokens: opts.graphTokens }),
    arm: new ArmManagementClient({ ...common, endpoint: armEndpoint, tokens: opts.armTokens }),
    armReader: new ArmClient({ ...common, endpoint: armEndpoint, tokens: opts.armTokens }),
  };
}

/** A cached token provider around any function that fetches a token (for `dev`: the emulator's token API). */
export function tokenProviderFrom(description: string, fetch: () => Promise<AccessToken>): TokenProvider {
  return new CachingTokenProvider({ description, fix: 'check that the token source is reachable', fetch });
}
