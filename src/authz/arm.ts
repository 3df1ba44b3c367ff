import { Agent, type Dispatcher } from 'undici';
import type { Principal } from '../contracts/principal.js';
import { ArmClient, ArmError, type DenyAssignment, type ReadBudget, type RoleAssignment, type RoleDefinition } from '../azure/arm.js';
import { EVERYONE_PRINCIPAL_ID, GUID } from '../contracts/azure-ids.js';
import { createTokenProvider, IdentityError, type TokenProvider } from '../azure/token-provider.js';
import type { RbacConfig } from '../config/config.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { scopeCovers } from '../azure/scope.js';
import {
  AccessSourceError,
  type AccessFailureReason,
  type AccessSnapshot,
  type AccessSource,
  type EffectiveAssignment,
  type EffectiveDenyAssignment,
} from './source.js';

/**
 * `--rbac arm`: the caller's role assignments and deny assignments at the cluster scope, read from
 * Azure Resource Manager as the cluster's own identity. This source answers one principal at a
 * time and caches only what is shared by all principals (role definitions, in the client, and the
 * scope's deny assignments); the decision cache in front of it owns per-principal caching. Every
 * failure throws AccessSourceError, logged once per reason and minute with what to fix.
 */

export interface ArmSourceOptions {
  readonly rbac: RbacConfig;
  /** ARM resource ID of the connected cluster (`--rbac-scope`). */
  readonly scope: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly dispatcher?: Dispatcher;
  /** The sidecar's own ARM token; defaults to the provider `rbac.identity` names. */
  readonly tokens?: TokenProvider;
  /** Environment for `--identity` (defaults to `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly roleDefinitionTtlMs?: number;
  /** `--arm-read-rate` and the 429 pause (per process, or shared by replicas). */
  readonly budget?: ReadBudget;
}

export interface ArmAccessSource extends AccessSource {
  readonly kind: 'arm';
  readonly client: ArmClient;
  readonly tokens: TokenProvider;
  /** Starts the first token fetch in the background so `/readyz` turns ready without waiting for a request. */
  start(): void;
}

/** Principal types of deny assignments that can never contain another principal. */
const NOT_A_GROUP = new Set(['user', 'serviceprincipal', 'application', 'msi', 'everyone']);
const FAILURE_LOG_INTERVAL_MS = 60_000;
/** Concurrent connections to ARM (and the token endpoint): a burst of new principals queues instead of opening hundreds of sockets. */
const MAX_CONNECTIONS_PER_ORIGIN = 32;

/**
 * The ARM access source. Throws IdentityConfigError (from the token provider) when `--identity`
 * cannot work with this environment: a start-up error.
 */
export function createArmSource(opts: ArmSourceOptions): ArmAccessSource {
  const { rbac, clock, log, metrics } = opts;
  const ownAgent = opts.dispatcher === undefined ? new Agent({ connections: MAX_CONNECTIONS_PER_ORIGIN }) : undefined;
  const dispatcher: Dispatcher = opts.dispatcher ?? ownAgent!;
  let tokens: TokenProvider;
  try {
    tokens =
      opts.tokens ??
      createTokenProvider({
        identity: rbac.identity,
        armEndpoint: rbac.armEndpoint,
        msiEndpoint: rbac.msiEndpoint,
        timeoutMs: rbac.timeoutMs,
        ...(opts.env !== undefined ? { env: opts.env } : {}),
        dispatcher,
        clock,
        metrics,
        log,
      });
  } catch (err) {
    void ownAgent?.close();
    throw err;
  }
  let tokenObtained = false;
  const watchedTokens: TokenProvider = {
    get description() {
      return tokens.description;
    },
    invalidate: () => tokens.invalidate(),
    getToken: async () => {
      const token = await tokens.getToken();
      tokenObtained = true;
      return token;
    },
  };
  const client = new ArmClient({
    endpoint: rbac.armEndpoint,
    tokens: watchedTokens,
    timeoutMs: rbac.timeoutMs,
    metrics,
    log,
    clock,
    dispatcher,
    ...(opts.roleDefinitionTtlMs !== undefined ? { roleDefinitionTtlMs: opts.roleDefinitionTtlMs } : {}),
    ...(opts.budget !== undefined ? { budget: opts.budget } : {}),
  });
  const denies = new ScopeDenyAssignments(client, rbac.allowTtlMs, clock, log, tokens.description);
  const failures = new FailureLog(log, clock);

  async function snapshot(oid: string, scope: string): Promise<AccessSnapshot> {
    const [assignments, scopeDenies] = await Promise.all([client.listRoleAssignments(scope, oid), denies.at(scope)]);
    const kept = assignments.filter((a) => {
      if (scopeCovers(a.scope, scope)) return true;
      log.warn(
        { assignment: a.id, assignmentScope: a.scope, scope },
        'ARM returned a role assignment that is not at or above the cluster scope; ignored',
      );
      return false;
    });
    if (scopeDenies === 'unreadable') metrics.armDenyAssignmentsUnreadable.inc();
    const throughGroups = scopeDenies !== 'unreadable' && scopeDenies.some((d) => d.principals.some(mayContain));
    const [definitions, principalDenies] = await Promise.all([
      roleDefinitions(kept, scope),
      throughGroups ? denies.assignedTo(scope, oid) : Promise.resolve(undefined),
    ]);
    return {
      assignments: effectiveAssignments(kept, definitions),
      denyAssignments: scopeDenies === 'unreadable' ? [] : effectiveDenies(scopeDenies, principalDenies, oid, scope),
    };
  }

  async function roleDefinitions(assignments: readonly RoleAssignment[], scope: string): Promise<Map<string, RoleDefinition>> {
    const byGuid = new Map<string, string>();
    for (const a of assignments) byGuid.set(a.roleDefinitionGuid, a.roleDefinitionId);
    const found = await Promise.all([...byGuid.values()].map((id) => client.getRoleDefinition(id, scope)));
    return new Map(found.filter((d): d is RoleDefinition => d !== null).map((d) => [d.guid, d]));
  }

  async function readiness(): Promise<string | null> {
    if (tokenObtained) return null;
    try {
      await watchedTokens.getToken();
      return null;
    } catch (err) {
      return `the sidecar's ARM token was never obtained: ${describe(err)}${err instanceof IdentityError ? `. Fix: ${err.fix}` : ''}`;
    }
  }

  return {
    kind: 'arm',
    client,
    tokens,
    async lookup(principal: Principal, scope: string): Promise<AccessSnapshot> {
      if (principal.type === 'api-key' || !GUID.test(principal.oid)) {
        throw failures.record(
          new AccessSourceError(
            'source_unavailable',
            'Azure RBAC needs an Entra object ID; this principal has none (API keys are not looked up in ARM)',
          ),
        );
      }
      try {
        return await snapshot(principal.oid.toLowerCase(), scope);
      } catch (err) {
        throw failures.record(toSourceError(err, { scope, endpoint: client.endpoint, timeoutMs: rbac.timeoutMs, identity: tokens.description }));
      }
    },
    readiness,
    start(): void {
      void readiness();
    },
    async close(): Promise<void> {
      await ownAgent?.close();
    },
  };
}

/**
 * Deny assignments at the cluster scope are the same for every principal: read once per allow TTL
 * and shared. Minimal roles (Cognitive Services OpenAI User) cannot read them; then the source
 * warns once, counts, and decides without them until the next refresh.
 */
class ScopeDenyAssignments {
  private readonly cache = new Map<string, { value: DenyAssignment[] | 'unreadable'; expiresAtMs: number }>();
  private readonly inflight = new Map<string, Promise<DenyAssignment[] | 'unreadable'>>();
  private warned = false;

  constructor(
    private readonly client: ArmClient,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly identity: string,
  ) {}

  at(scope: string): Promise<DenyAssignment[] | 'unreadable'> {
    const key = scope.toLowerCase();
    const cached = this.cache.get(key);
    if (cached !== undefined && this.clock.now() < cached.expiresAtMs) return Promise.resolve(cached.value);
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      pending = this.read(scope).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return pending;
  }

  /** The principal's own deny assignments, groups resolved by ARM; undefined when not readable (the caller then fails closed). */
  async assignedTo(scope: string, oid: string): Promise<DenyAssignment[] | undefined> {
    try {
      return await this.client.listDenyAssignmentsFor(scope, oid);
    } catch (err) {
      if (isForbidden(err)) {
        this.warnUnreadable(scope);
        return undefined;
      }
      throw err;
    }
  }

  private async read(scope: string): Promise<DenyAssignment[] | 'unreadable'> {
    let value: DenyAssignment[] | 'unreadable';
    try {
      value = await this.client.listDenyAssignmentsAtScope(scope);
      this.warned = false;
    } catch (err) {
      if (!isForbidden(err)) throw err;
      this.warnUnreadable(scope);
      value = 'unreadable';
    }
    this.cache.set(scope.toLowerCase(), { value, expiresAtMs: this.clock.now() + this.ttlMs });
    return value;
  }

  private warnUnreadable(scope: string): void {
    if (this.warned) return;
    this.warned = true;
    this.log.warn(
      {
        identity: this.identity,
        scope,
        fix: `assign Reader to the cluster identity at the cluster so deny assignments are honoured: az role assignment create --assignee <cluster identity object ID> --role Reader --scope ${scope}`,
      },
      'the sidecar identity may not read deny assignments (403); deciding without them',
    );
  }
}

function isForbidden(err: unknown): boolean {
  return err instanceof ArmError && err.reason === 'refused' && err.details.status === 403;
}

/** Assignments with their role definitions; conditions are kept so evaluation can refuse them (and the authorizer warns). */
function effectiveAssignments(assignments: readonly RoleAssignment[], definitions: Map<string, RoleDefinition>): EffectiveAssignment[] {
  const result: EffectiveAssignment[] = [];
  for (const a of assignments) {
    const definition = definitions.get(a.roleDefinitionGuid);
    if (definition === undefined) continue;
    result.push({
      roleDefinitionId: definition.guid,
      roleName: definition.roleName,
      scope: a.scope,
      principalId: a.principalId,
      ...(a.condition !== undefined ? { condition: a.condition } : {}),
      permissions: definition.permissions,
    });
  }
  return result;
}

/**
 * Which deny assignments apply to `oid` (Azure: principal listed directly, as Everyone, or
 * through a group, and not excluded). Group membership is known only from ARM's
 * `assignedTo('{oid}')`; when that is unknown a group-naming deny applies (fail closed). An
 * exclusion through a group cannot be proven, so it does not exempt (fail closed).
 */
export function effectiveDenies(
  atScope: readonly DenyAssignment[],
  assignedToPrincipal: readonly DenyAssignment[] | undefined,
  oid: string,
  scope: string,
): EffectiveDenyAssignment[] {
  const viaGroups = assignedToPrincipal === undefined ? undefined : new Set(assignedToPrincipal.map((d) => d.id.toLowerCase()));
  const applying = new Map<string, DenyAssignment>();
  const consider = (d: DenyAssignment, listedForPrincipal: boolean): void => {
    if (!scopeCovers(d.scope, scope) || d.excludePrincipals.some((p) => p.id === oid)) return;
    const named =
      listedForPrincipal ||
      d.principals.some((p) => p.id === oid || isEveryone(p)) ||
      (d.principals.some(mayContain) && (viaGroups === undefined || viaGroups.has(d.id.toLowerCase())));
    if (named) applying.set(d.id.toLowerCase(), d);
  };
  for (const d of atScope) consider(d, false);
  for (const d of assignedToPrincipal ?? []) consider(d, true);
  return [...applying.values()].map((d) => ({
    id: d.id,
    name: d.name,
    scope: d.scope,
    doNotApplyToChildScopes: d.doNotApplyToChildScopes,
    permissions: d.permissions,
  }));
}

function isEveryone(p: { id: string; type?: string }): boolean {
  return p.id === EVERYONE_PRINCIPAL_ID || p.type?.toLowerCase() === 'everyone';
}

/** A deny-assignment principal that may have other principals as members (a group, or a type we do not know). */
function mayContain(p: { id: string; type?: string }): boolean {
  return !NOT_A_GROUP.has((p.type ?? 'unknown').toLowerCase()) && !isEveryone(p);
}

interface FailureContext {
  readonly scope: string;
  readonly endpoint: string;
  readonly timeoutMs: number;
  readonly identity: string;
}

/** Maps a client failure to the source's reasons, each with what happened and how to fix it. */
export function toSourceError(err: unknown, ctx: FailureContext): AccessSourceError {
  if (err instanceof AccessSourceError) return err;
  if (!(err instanceof ArmError)) {
    return new AccessSourceError('source_unavailable', `the ARM lookup failed unexpectedly: ${describe(err)}`);
  }
  const make = (reason: AccessFailureReason, fix: string, retryAfterSeconds?: number): AccessSourceError =>
    new AccessSourceError(reason, `${err.message}. Fix: ${fix}`, retryAfterSeconds);
  const retryAfter = err.details.retryAfterSeconds;
  switch (err.reason) {
    case 'unreachable':
      return make('arm_unreachable', `check that the cluster can reach ${ctx.endpoint} (DNS, proxy, firewall) and that --arm-endpoint is right`);
    case 'timeout':
      return make('arm_timeout', `check the network path to ${ctx.endpoint}, or raise --rbac-timeout (now ${ctx.timeoutMs} ms)`);
    case 'server_error':
      return make(
        'arm_server_error',
        'this is an Azure-side error; the next request retries (quote the correlation id to Azure support if it persists)',
        retryAfter,
      );
    case 'throttled':
      return make(
        'arm_throttled',
        `ARM throttles reads per identity; ARM calls resume in ${retryAfter ?? 0} s. To make fewer calls raise --rbac-allow-ttl and --rbac-deny-ttl`,
        retryAfter,
      );
    case 'bad_response':
    case 'client_error':
      return make(
        'arm_bad_response',
        `check that --arm-endpoint (${ctx.endpoint}) is Azure Resource Manager and --rbac-scope (${ctx.scope}) is the connected cluster's resource ID`,
      );
    case 'refused':
      return err.details.status === 401
        ? new AccessSourceError(
            'identity_refused',
            `ARM rejected the token of the sidecar's identity, ${ctx.identity}: ${err.message}. Fix: make --identity yield a token for ${ctx.endpoint} in the cluster's tenant (check --arm-endpoint and the identity's tenant)`,
          )
        : new AccessSourceError(
            'identity_refused',
            `ARM refused the sidecar's identity, ${ctx.identity}, the permission ${missingPermission(err)} at ${ctx.scope}: ${err.message}. Fix: assign Cognitive Services OpenAI User or Reader to the cluster's identity at the cluster, e.g. \`foundry-auth setup --app-name <app name> --cluster-id ${ctx.scope}\``,
          );
    case 'budget_spent':
      return make(
        'arm_read_budget_spent',
        `more principals are cold than --arm-read-rate lets the cluster identity read; raise --arm-read-rate (ARM allows about 25 reads/s per identity) or --rbac-allow-ttl and --rbac-deny-ttl`,
        retryAfter,
      );
    case 'token_unavailable':
      return new AccessSourceError(
        'identity_token_unavailable',
        `could not get the sidecar's ARM token: ${err.message}. Fix: ${err.details.fix ?? `check --identity (${ctx.identity})`}`,
      );
  }
}

function missingPermission(err: ArmError): string {
  switch (err.operation) {
    case 'role_assignments':
      return 'Microsoft.Authorization/roleAssignments/read';
    case 'role_definition':
      return 'Microsoft.Authorization/roleDefinitions/read';
    case 'deny_assignments':
      return 'Microsoft.Authorization/denyAssignments/read';
  }
}

/** One warning per failure reason per minute, with how many were suppressed in between. */
class FailureLog {
  private readonly last = new Map<AccessFailureReason, { atMs: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly clock: Clock,
  ) {}

  record(err: AccessSourceError): AccessSourceError {
    const now = this.clock.now();
    const seen = this.last.get(err.reason);
    if (seen !== undefined && now - seen.atMs < FAILURE_LOG_INTERVAL_MS) {
      seen.suppressed += 1;
      return err;
    }
    this.last.set(err.reason, { atMs: now, suppressed: 0 });
    this.log.warn(
      {
        reason: err.reason,
        ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
        suppressedSinceLast: seen?.suppressed ?? 0,
        error: err.message,
      },
      'RBAC check unavailable',
    );
    return err;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
