import { LRUCache } from 'lru-cache';
import type { Principal } from '../contracts/principal.js';
import { GUID } from '../contracts/azure-ids.js';
import type { RbacConfig } from '../config/config.js';
import type { RouteMatch } from '../contracts/route.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { AccessCache, DEFAULT_MAX_ENTRIES, principalKey, type SharedTier } from './cache.js';
import type { Authorizer, CacheOutcome, Decision, DecisionSource } from '../contracts/decision.js';
import type { Evaluation } from './evaluate.js';
import { denialMessage, rolesGranting } from './grants.js';
import type { AccessSource } from './source.js';
import { StaticAccessSource, StaticFileError } from './static.js';

/**
 * Step 8 of SPEC section 3: may this authenticated principal perform the route's action at the
 * cluster scope? API keys authorize the data plane only; everyone else goes through the decision
 * cache and Azure RBAC evaluation.
 */

export interface AuthorizerDeps {
  readonly rbac: RbacConfig;
  readonly source: AccessSource;
  /** The cluster scope (`--rbac-scope`, or the static file's `scope`). */
  readonly scope: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Bound on cached principals (default 100,000). */
  readonly cacheMaxEntries?: number;
  /** `--shared-cache`: the tier consulted on a miss in this process. */
  readonly shared?: SharedTier;
  /** Arguments the `foundry-auth grant` command in a 403 needs besides cluster and assignee (`--client-id`, `--dev DIR`). */
  readonly grantArgs?: readonly string[];
}

/** An Authorizer whose decision cache can be dropped (after a static file reload, or a flush from any replica). */
export interface CachingAuthorizer extends Authorizer {
  clearCache(): void;
  /** Drops one principal's cached decisions (any tenant). */
  dropPrincipal(oid: string): void;
  /** Drops the decisions whose shared keys another replica flushed. */
  dropShared(sharedKeys: readonly string[]): void;
}

/** At most one "condition ignored" warning per principal in this interval. */
const CONDITION_WARNING_INTERVAL_MS = 10 * 60_000;
const UNEXPECTED_FAILURE_LOG_INTERVAL_MS = 60_000;

export function createAuthorizer(deps: AuthorizerDeps): CachingAuthorizer {
  const { source, scope, clock, log, metrics } = deps;
  const kind: DecisionSource = source.kind;
  const cache = new AccessCache({
    source,
    scope,
    clock,
    allowTtlMs: deps.rbac.allowTtlMs,
    denyTtlMs: deps.rbac.denyTtlMs,
    staleIfErrorMs: deps.rbac.staleIfErrorMs,
    maxEntries: deps.cacheMaxEntries ?? DEFAULT_MAX_ENTRIES,
    ...(deps.shared !== undefined ? { shared: deps.shared } : {}),
  });
  const conditionWarned = new LRUCache<string, number>({ max: 10_000 });
  let unexpectedFailureLoggedAt = Number.NEGATIVE_INFINITY;

  function count(decision: Decision, cacheOutcome: CacheOutcome): Decision {
    metrics.countRbacLookup(decision.source, cacheOutcome, decision.kind);
    return decision;
  }

  function warnIgnoredConditions(principal: Principal, route: RouteMatch, evaluation: Evaluation): void {
    if (evaluation.ignoredConditional.length === 0) return;
    const key = principalKey(principal.tid, principal.oid);
    const now = clock.now();
    const last = conditionWarned.get(key);
    if (last !== undefined && now - last < CONDITION_WARNING_INTERVAL_MS) return;
    conditionWarned.set(key, now);
    log.warn(
      {
        oid: principal.oid,
        tid: principal.tid,
        action: route.action,
        assignments: evaluation.ignoredConditional.map((a) => ({ role: a.roleName, scope: a.scope, principalId: a.principalId })),
      },
      'role assignment with a condition ignored: conditions are not supported and grant nothing',
    );
  }

  function authorizeApiKey(principal: Principal, route: RouteMatch): Decision {
    if (route.plane === 'data') return count({ kind: 'allow', source: 'api-key', cache: 'none' }, 'none');
    const roles = rolesGranting(route).join(', ');
    const message = `API key ${principal.oid}: API keys authorize the data plane only; ${route.action} at ${scope} is a control-plane action: call it with an Entra ID access token of a principal that has one of: ${roles}`;
    return count({ kind: 'deny', source: 'api-key', cache: 'none', reason: 'api_key_control_plane', message }, 'none');
  }

  function decided(principal: Principal, route: RouteMatch, evaluation: Evaluation, expiresAt: number, outcome: 'hit' | 'miss' | 'stale'): Decision {
    warnIgnoredConditions(principal, route, evaluation);
    if (evaluation.allowed) return count({ kind: 'allow', source: kind, cache: outcome, role: evaluation.role, expiresAt }, outcome);
    const message = denialMessage(
      principal,
      route,
      scope,
      evaluation,
      kind === 'static' ? { kind: 'static' } : { kind: 'arm', grantArgs: deps.grantArgs ?? [] },
    );
    return count({ kind: 'deny', source: kind, cache: outcome, reason: evaluation.reason, message, expiresAt }, outcome);
  }

  async function lookedUp(principal: Principal, route: RouteMatch): Promise<Decision> {
    const result = await cache.evaluate(principal, route);
    if (result.kind === 'evaluated') return decided(principal, route, result.evaluation, result.expiresAt, result.cache);
    const { error } = result;
    if (error.cause !== undefined && clock.now() - unexpectedFailureLoggedAt >= UNEXPECTED_FAILURE_LOG_INTERVAL_MS) {
      unexpectedFailureLoggedAt = clock.now();
      log.error({ err: error.cause, source: kind }, 'access source failed unexpectedly');
    }
    const decision: Decision = {
      kind: 'unavailable',
      source: kind,
      reason: error.reason,
      message: `authorization could not be evaluated for principal ${principal.oid}: ${error.message}`,
      ...(error.retryAfterSeconds !== undefined ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
    };
    return count(decision, 'miss');
  }

  return {
    authorize(principal: Principal, route: RouteMatch): Decision | Promise<Decision> {
      if (principal.type === 'api-key') return authorizeApiKey(principal, route);
      // A fresh cached decision is answered synchronously: no promise, no lookup.
      const hit = cache.fresh(principal, route);
      if (hit !== undefined) return decided(principal, route, hit.evaluation, hit.expiresAt, 'hit');
      // Authentication guarantees GUIDs; anything else must never reach a lookup (an ARM filter). A hit
      // needs no check: only principals that passed it were ever looked up, and principalKey is injective.
      if (!GUID.test(principal.oid) || !GUID.test(principal.tid)) {
        const message = `principal object ID and tenant ID must be GUIDs; ${route.action} at ${scope} is not granted`;
        return count({ kind: 'deny', source: kind, cache: 'none', reason: 'invalid_principal', message }, 'none');
      }
      return lookedUp(principal, route);
    },

    readiness(): Promise<string | null> {
      return source.readiness();
    },

    async close(): Promise<void> {
      cache.clear();
      await source.close();
    },

    clearCache(): void {
      cache.clear();
    },

    dropPrincipal(oid: string): void {
      cache.dropPrincipal(oid);
    },

    dropShared(sharedKeys: readonly string[]): void {
      cache.dropShared(sharedKeys);
    },
  };
}

export interface StaticAuthorizerDeps {
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly cacheMaxEntries?: number;
  /** How often the file is checked for changes (default 2 s; 0 turns polling off). */
  readonly pollIntervalMs?: number;
}

/**
 * `--rbac static` in one call: loads `--role-assignments-file` (throws StaticFileError, one line
 * per problem, when it is missing or invalid), and drops cached decisions whenever the file is
 * reloaded so that edits apply at once.
 */
export async function createStaticAuthorizer(rbac: RbacConfig, deps: StaticAuthorizerDeps): Promise<CachingAuthorizer> {
  if (rbac.roleAssignmentsFile === undefined) throw new StaticFileError(['--role-assignments-file is required with --rbac static']);
  const source = await StaticAccessSource.load({
    file: rbac.roleAssignmentsFile,
    log: deps.log,
    ...(rbac.scope !== undefined ? { scope: rbac.scope } : {}),
    ...(deps.pollIntervalMs !== undefined ? { pollIntervalMs: deps.pollIntervalMs } : {}),
  });
  const authorizer = createAuthorizer({
    rbac,
    source,
    scope: source.scope,
    clock: deps.clock,
    log: deps.log,
    metrics: deps.metrics,
    ...(deps.cacheMaxEntries !== undefined ? { cacheMaxEntries: deps.cacheMaxEntries } : {}),
  });
  source.onChange(() => authorizer.clearCache());
  return authorizer;
}
