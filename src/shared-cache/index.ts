import { createHash } from 'node:crypto';
import type { EntraConfig, RbacConfig, SharedCacheConfig } from '../config/config.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { SharedReadBudget } from './budget.js';
import { SharedConnection } from './connection.js';
import { SharedDecisions } from './decisions.js';

export { SharedConnection } from './connection.js';
export type { SharedMessage } from './connection.js';

/**
 * Everything `--shared-cache` adds to a replica: the connection, the shared decision tier and the
 * shared ARM read budget, opened together for `serve --rbac arm`.
 */
export interface SharedCache {
  readonly connection: SharedConnection;
  readonly decisions: SharedDecisions;
  readonly budget: SharedReadBudget;
  close(): Promise<void>;
}

export interface OpenSharedCacheOptions {
  readonly config: SharedCacheConfig;
  readonly rbac: RbacConfig & { readonly scope: string };
  readonly entra?: EntraConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
}

/** Opens the shared cache; never fails for Redis being down (the replica then goes on alone and joins later). */
export async function openSharedCache(opts: OpenSharedCacheOptions): Promise<SharedCache> {
  const { rbac, clock, log, metrics } = opts;
  const connection = await SharedConnection.open({ config: opts.config, clock, log, metrics });
  const decisions = new SharedDecisions({
    connection,
    version: settingsVersion(rbac, opts.entra),
    clock,
    metrics,
    leaseMs: rbac.timeoutMs,
    retainMs: Math.max(rbac.allowTtlMs, rbac.denyTtlMs) + rbac.staleIfErrorMs,
  });
  const budget = new SharedReadBudget({ connection, rate: rbac.armReadRate, clock, metrics });
  return {
    connection,
    decisions,
    budget,
    async close(): Promise<void> {
      budget.close();
      await connection.close();
    },
  };
}

/**
 * The version in every shared key: a hash of the settings that change what a lookup means (the
 * scope, the ARM endpoint, the required scope and app role). Replicas whose settings differ never
 * share an entry; a settings change starts with empty shared entries.
 */
export function settingsVersion(rbac: RbacConfig & { readonly scope: string }, entra: EntraConfig | undefined): string {
  const settings = [
    'v1',
    rbac.mode,
    rbac.scope.toLowerCase(),
    rbac.armEndpoint.toLowerCase(),
    entra?.requiredScope ?? '',
    entra?.requiredAppRole ?? '',
    rbac.roleAssignmentsFile ?? '',
  ];
  return createHash('sha256').update(settings.join('\n')).digest('base64url').slice(0, 16);
}
