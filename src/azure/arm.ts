import type { Dispatcher } from 'undici';
import { z } from 'zod';
import { systemClock, type Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { describeFailure, failureOutcome, headerValue, HttpCallError, requestJson, type HttpFailure } from './http.js';
import { armPath, GUID, ROLE_DEFINITION_ID, roleDefinitionGuid } from '../contracts/azure-ids.js';
import { IdentityError, type TokenProvider } from './token.js';

/**
 * A thin client for the Azure Resource Manager authorization reads foundry-auth needs: role
 * assignments, role definitions and deny assignments (api-version 2022-04-01). It owns two pieces
 * of state that must be process-wide: the role-definition cache, and the back-off after ARM
 * answers 429 (which then holds for every principal).
 */

export const ARM_API_VERSION = '2022-04-01';
export const DEFAULT_ROLE_DEFINITION_TTL_MS = 6 * 60 * 60_000;
/** Back-off when ARM answers 429 without a usable `Retry-After`. */
export const DEFAULT_THROTTLE_SECONDS = 10;
/** Any more pages than this is a broken or hostile `nextLink` chain. */
const MAX_PAGES = 100;
const MAX_CACHED_ROLE_DEFINITIONS = 2_000;

export type ArmOperation = 'role_assignments' | 'role_definition' | 'deny_assignments';

/** Why an ARM read failed, in terms the caller can act on. */
export type ArmFailureReason =
  | 'unreachable'
  | 'timeout'
  | 'server_error'
  | 'throttled'
  | 'bad_response'
  /** 401/403 for the sidecar's own identity. */
  | 'refused'
  /** Any other 4xx (400, 404, ...). */
  | 'client_error'
  /** The sidecar's own token could not be obtained. */
  | 'token_unavailable'
  /** The `--arm-read-rate` budget stayed spent for the whole call deadline: nothing was sent. */
  | 'budget_spent';

export class ArmError extends Error {
  constructor(
    readonly reason: ArmFailureReason,
    readonly operation: ArmOperation,
    message: string,
    readonly details: {
      readonly status?: number;
      readonly code?: string;
      readonly retryAfterSeconds?: number;
      readonly correlationId?: string;
      /** For `token_unavailable`: what to do about it. */
      readonly fix?: string;
    } = {},
  ) {
    super(message);
    this.name = 'ArmError';
  }
}

const permissionSchema = z.object({
  actions: stringList(),
  notActions: stringList(),
  dataActions: stringList(),
  notDataActions: stringList(),
});

/** One `permissions[]` entry as ARM returns it. */
export type ArmPermission = z.infer<typeof permissionSchema>;

/** One role assignment as ARM returns it. */
const roleAssignmentSchema = z.object({
  id: z.string(),
  name: z.string(),
  properties: z.object({
    roleDefinitionId: z.string().regex(ROLE_DEFINITION_ID),
    principalId: z.guid(),
    principalType: z.string().nullish(),
    scope: z.string().startsWith('/'),
    condition: z.string().nullish(),
    conditionVersion: z.string().nullish(),
  }),
});

const roleDefinitionSchema = z.object({
  id: z.string(),
  name: z.string(),
  properties: z.object({
    roleName: z.string(),
    type: z.string().nullish(),
    permissions: z.array(permissionSchema),
  }),
});

const denyPrincipalSchema = z.object({ id: z.guid(), type: z.string().nullish() });

const denyAssignmentSchema = z.object({
  id: z.string(),
  name: z.string(),
  properties: z.object({
    denyAssignmentName: z.string().nullish(),
    scope: z.string().startsWith('/'),
    doNotApplyToChildScopes: z.boolean().nullish(),
    permissions: z.array(permissionSchema),
    principals: z.array(denyPrincipalSchema).nullish(),
    excludePrincipals: z.array(denyPrincipalSchema).nullish(),
  }),
});

/** One page of an ARM list. Built once: constructing a zod schema costs ~100 times more than parsing with it. */
function pageOf<T extends z.ZodType>(item: T) {
  return z.object({ value: z.array(item), nextLink: z.string().nullish() });
}

/** A page of role assignments (shared with the management client of `setup`/`grant`). */
export const roleAssignmentPageSchema = pageOf(roleAssignmentSchema);
const denyAssignmentPageSchema = pageOf(denyAssignmentSchema);

function stringList() {
  return z
    .array(z.string())
    .nullish()
    .transform((v) => v ?? []);
}

export interface RoleAssignment {
  readonly id: string;
  readonly name: string;
  /** Full ID as ARM returns it, e.g. `/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}`. */
  readonly roleDefinitionId: string;
  /** Lower-case GUID of the role definition. */
  readonly roleDefinitionGuid: string;
  /** Lower case: the principal itself or one of its groups. */
  readonly principalId: string;
  readonly principalType?: string;
  readonly scope: string;
  readonly condition?: string;
}

/** A validated ARM role assignment item in the shape the rest of foundry-auth uses. */
export function toRoleAssignment(a: z.infer<typeof roleAssignmentSchema>): RoleAssignment {
  const p = a.properties;
  return {
    id: a.id,
    name: a.name,
    roleDefinitionId: p.roleDefinitionId,
    roleDefinitionGuid: roleDefinitionGuid(p.roleDefinitionId)!,
    principalId: p.principalId.toLowerCase(),
    ...(p.principalType ? { principalType: p.principalType } : {}),
    scope: p.scope,
    ...(p.condition ? { condition: p.condition } : {}),
  };
}

export interface RoleDefinition {
  readonly id: string;
  /** Lower-case GUID. */
  readonly guid: string;
  readonly roleName: string;
  /** `BuiltInRole` or `CustomRole`. */
  readonly roleType?: string;
  readonly permissions: readonly ArmPermission[];
}

export interface DenyPrincipal {
  /** Lower case. */
  readonly id: string;
  readonly type?: string;
}

export interface DenyAssignment {
  readonly id: string;
  readonly name: string;
  readonly scope: string;
  readonly doNotApplyToChildScopes: boolean;
  readonly permissions: readonly ArmPermission[];
  readonly principals: readonly DenyPrincipal[];
  readonly excludePrincipals: readonly DenyPrincipal[];
}

/** What the read budget answers for one role-assignment read. */
export type BudgetGrant =
  | { readonly kind: 'granted' }
  /** No token came within the deadline; one is expected in this many seconds. */
  | { readonly kind: 'spent'; readonly retryAfterSeconds: number }
  /** A 429 (seen by this or another replica) pauses every read for this many more seconds. */
  | { readonly kind: 'paused'; readonly retryAfterSeconds: number };

/**
 * The client-side ARM read budget (`--arm-read-rate`) and the 429 pause, per process or shared by
 * replicas. ARM throttles per identity, and every replica reads as the same cluster identity.
 */
export interface ReadBudget {
  /** Waits for a read token until `deadlineMs` (clock time). */
  take(deadlineMs: number): Promise<BudgetGrant>;
  /** ARM answered 429: no replica reads before `untilMs`. */
  pause(untilMs: number): void;
  /** Until when reads are paused, as far as this process knows (0 when not). */
  pausedUntil(): number;
}

export interface ArmClientOptions {
  /** e.g. `https://management.azure.com`, without a trailing slash. */
  readonly endpoint: string;
  readonly tokens: TokenProvider;
  /** Deadline of one ARM call. */
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher;
  readonly metrics?: Metrics;
  readonly log?: Logger;
  readonly clock?: Clock;
  readonly roleDefinitionTtlMs?: number;
  /** Taken before every role-assignment page; without one, reads are limited by ARM alone. */
  readonly budget?: ReadBudget;
}

export class ArmClient {
  private readonly origin: string;
  private readonly base: string;
  private readonly clock: Clock;
  private readonly roleDefinitionTtlMs: number;
  private readonly definitions = new Map<string, { value: RoleDefinition | null; expiresAtMs: number }>();
  private readonly definitionsInflight = new Map<string, Promise<RoleDefinition | null>>();
  private throttledUntilMs = 0;

  constructor(private readonly opts: ArmClientOptions) {
    const url = new URL(opts.endpoint);
    this.origin = url.origin;
    this.base = url.href.replace(/\/+$/, '');
    this.clock = opts.clock ?? systemClock;
    this.roleDefinitionTtlMs = opts.roleDefinitionTtlMs ?? DEFAULT_ROLE_DEFINITION_TTL_MS;
  }

  get endpoint(): string {
    return this.base;
  }

  /** Seconds left of the back-off ARM asked for with 429, or 0. */
  throttledForSeconds(): number {
    const until = Math.max(this.throttledUntilMs, this.opts.budget?.pausedUntil() ?? 0);
    const left = until - this.clock.now();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  /**
   * Role assignments at `scope` or above that apply to the principal, directly or through (nested)
   * groups: `$filter=atScope()+and+assignedTo('{oid}')`, every `nextLink` page.
   */
  async listRoleAssignments(scope: string, principalId: string): Promise<RoleAssignment[]> {
    const url = `${this.base}${scopePath(scope, 'role_assignments')}/providers/Microsoft.Authorization/roleAssignments?api-version=${ARM_API_VERSION}&$filter=atScope()+and+assignedTo('${guid(principalId)}')`;
    const items = await this.listPages('role_assignments', url, roleAssignmentPageSchema);
    return items.map(toRoleAssignment);
  }

  /**
   * The role definition an assignment names (custom roles included), read at `scope` (the
   * cluster): `GET {scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}`. Reading it by
   * its subscription-level ID would need `roleDefinitions/read` on the whole subscription, which
   * the documented minimal role at the cluster does not give. Cached for hours by GUID and fetched
   * once for any number of concurrent callers; null when ARM says it does not exist (a custom role
   * deleted after it was assigned).
   */
  async getRoleDefinition(roleDefinitionId: string, scope: string): Promise<RoleDefinition | null> {
    const key = roleDefinitionGuid(roleDefinitionId);
    if (key === undefined) throw new ArmError('bad_response', 'role_definition', `not a role definition ID: ${roleDefinitionId.slice(0, 200)}`);
    const cached = this.definitions.get(key);
    if (cached !== undefined && this.clock.now() < cached.expiresAtMs) return cached.value;
    const inflight = this.definitionsInflight.get(key);
    if (inflight !== undefined) return inflight;
    const fetching = this.fetchRoleDefinition(scope, key).finally(() => this.definitionsInflight.delete(key));
    this.definitionsInflight.set(key, fetching);
    return fetching;
  }

  /** Deny assignments at `scope` or above, for every principal: `$filter=atScope()`. */
  listDenyAssignmentsAtScope(scope: string): Promise<DenyAssignment[]> {
    return this.listDenyAssignments(scope, 'atScope()');
  }

  /** Deny assignments that name the principal, including through (nested) groups: `$filter=assignedTo('{oid}')`. */
  listDenyAssignmentsFor(scope: string, principalId: string): Promise<DenyAssignment[]> {
    return this.listDenyAssignments(scope, `assignedTo('${guid(principalId)}')`);
  }

  private async listDenyAssignments(scope: string, filter: string): Promise<DenyAssignment[]> {
    const url = `${this.base}${scopePath(scope, 'deny_assignments')}/providers/Microsoft.Authorization/denyAssignments?api-version=${ARM_API_VERSION}&$filter=${filter}`;
    const items = await this.listPages('deny_assignments', url, denyAssignmentPageSchema);
    return items.map((d) => ({
      id: d.id,
      name: d.name,
      scope: d.properties.scope,
      doNotApplyToChildScopes: d.properties.doNotApplyToChildScopes ?? false,
      permissions: d.properties.permissions,
      principals: (d.properties.principals ?? []).map(denyPrincipal),
      excludePrincipals: (d.properties.excludePrincipals ?? []).map(denyPrincipal),
    }));
  }

  private async fetchRoleDefinition(scope: string, key: string): Promise<RoleDefinition | null> {
    let body: unknown;
    try {
      body = await this.get(
        'role_definition',
        `${this.base}${scopePath(scope, 'role_definition')}/providers/Microsoft.Authorization/roleDefinitions/${key}?api-version=${ARM_API_VERSION}`,
      );
    } catch (err) {
      if (err instanceof ArmError && err.details.status === 404) {
        this.opts.log?.warn(
          { roleDefinition: key, scope },
          'ARM has no role definition with this ID at the cluster scope (deleted custom role?); assignments of it grant nothing',
        );
        return null;
      }
      throw err;
    }
    const parsed = roleDefinitionSchema.safeParse(body);
    if (!parsed.success)
      throw new ArmError(
        'bad_response',
        'role_definition',
        `ARM answered with a role definition of an unexpected shape (${issueSummary(parsed.error)})`,
      );
    const d = parsed.data;
    if (d.name.toLowerCase() !== key)
      throw new ArmError('bad_response', 'role_definition', `ARM answered with role definition ${d.name.slice(0, 60)} when asked for ${key}`);
    const value: RoleDefinition = {
      id: d.id,
      guid: key,
      roleName: d.properties.roleName,
      ...(d.properties.type ? { roleType: d.properties.type } : {}),
      permissions: d.properties.permissions,
    };
    if (this.definitions.size >= MAX_CACHED_ROLE_DEFINITIONS) this.definitions.delete(this.definitions.keys().next().value!);
    this.definitions.set(key, { value, expiresAtMs: this.clock.now() + this.roleDefinitionTtlMs });
    return value;
  }

  private async listPages<T>(
    operation: ArmOperation,
    firstUrl: string,
    pageSchema: z.ZodType<{ value: T[]; nextLink?: string | null | undefined }>,
  ): Promise<T[]> {
    const items: T[] = [];
    const seen = new Set<string>();
    let next: string | undefined = firstUrl;
    while (next !== undefined) {
      if (seen.size >= MAX_PAGES || seen.has(next))
        throw new ArmError('bad_response', operation, `ARM's nextLink chain did not end after ${seen.size} pages`);
      seen.add(next);
      const parsed = pageSchema.safeParse(await this.get(operation, next));
      if (!parsed.success)
        throw new ArmError(
          'bad_response',
          operation,
          `ARM answered with a ${operation.replace('_', ' ')} page of an unexpected shape (${issueSummary(parsed.error)})`,
        );
      items.push(...parsed.data.value);
      next = parsed.data.nextLink ?? undefined;
      if (next !== undefined) next = this.sameOrigin(operation, next);
    }
    return items;
  }

  /** Follows a `nextLink` only on the ARM endpoint's own origin: the bearer token must never leave it. */
  private sameOrigin(operation: ArmOperation, link: string): string {
    if (/[\s\\\x00-\x1f\x7f]/.test(link))
      throw new ArmError('bad_response', operation, 'ARM answered with a nextLink that contains characters a URL cannot');
    let url: URL;
    try {
      url = new URL(link, this.base);
    } catch {
      throw new ArmError('bad_response', operation, 'ARM answered with a nextLink that is not a URL');
    }
    if (url.origin !== this.origin)
      throw new ArmError('bad_response', operation, `ARM answered with a nextLink on another origin (${url.origin}); refused`);
    // Sent as ARM wrote it; a relative link is resolved against the endpoint.
    return /^https?:\/\//i.test(link) ? link : url.href;
  }

  /** One authenticated GET, subject to the global back-off; metrics and failures classified. */
  private async get(operation: ArmOperation, url: string): Promise<unknown> {
    const wait = this.throttledForSeconds();
    if (wait > 0)
      throw new ArmError('throttled', operation, `ARM asked the sidecar to back off (429); ${wait} s left`, { status: 429, retryAfterSeconds: wait });
    if (operation === 'role_assignments' && this.opts.budget !== undefined) await this.takeBudget(operation, this.opts.budget);
    let token: string;
    try {
      token = (await this.opts.tokens.getToken()).token;
    } catch (err) {
      const fix = err instanceof IdentityError ? err.fix : undefined;
      throw new ArmError('token_unavailable', operation, err instanceof Error ? err.message : String(err), fix !== undefined ? { fix } : {});
    }
    const started = performance.now();
    try {
      const reply = await requestJson({
        operation: `arm.${operation}`,
        url,
        headers: { authorization: `Bearer ${token}` },
        timeoutMs: this.opts.timeoutMs,
        dispatcher: this.opts.dispatcher,
        clock: this.clock,
        log: this.opts.log,
      });
      this.count(operation, 'ok', started);
      const remaining = headerValue(reply.headers, 'x-ms-ratelimit-remaining-subscription-reads');
      if (remaining !== undefined && Number.isFinite(Number(remaining))) this.opts.metrics?.armRemainingReads.set(Number(remaining));
      if (remaining !== undefined)
        this.opts.log?.debug({ operation, remainingSubscriptionReads: remaining, correlationId: reply.correlationId }, 'ARM read quota');
      return reply.body;
    } catch (err) {
      if (!(err instanceof HttpCallError)) throw err;
      this.count(operation, failureOutcome(err.failure), started);
      throw this.armError(operation, err.failure, err.correlationId);
    }
  }

  /** Waits for a read token of `--arm-read-rate` within the call deadline; throws when none came or a 429 pause began. */
  private async takeBudget(operation: ArmOperation, budget: ReadBudget): Promise<void> {
    const grant = await budget.take(this.clock.now() + this.opts.timeoutMs);
    if (grant.kind === 'granted') return;
    if (grant.kind === 'paused') {
      throw new ArmError('throttled', operation, `ARM asked the sidecar to back off (429); ${grant.retryAfterSeconds} s left`, {
        status: 429,
        retryAfterSeconds: grant.retryAfterSeconds,
      });
    }
    throw new ArmError('budget_spent', operation, `the ARM read budget (--arm-read-rate) stayed spent for ${this.opts.timeoutMs} ms`, {
      retryAfterSeconds: grant.retryAfterSeconds,
    });
  }

  private armError(operation: ArmOperation, f: HttpFailure, correlationId: string): ArmError {
    const at = `${operation.replace('_', ' ')} (correlation id ${correlationId})`;
    switch (f.kind) {
      case 'unreachable':
        return new ArmError('unreachable', operation, `ARM at ${this.origin} is unreachable: ${f.detail}; ${at}`, { correlationId });
      case 'timeout':
        return new ArmError('timeout', operation, `ARM at ${this.origin} did not answer within ${f.afterMs} ms; ${at}`, { correlationId });
      case 'bad_response':
        return new ArmError('bad_response', operation, `ARM answered with an ${describeFailure(f)}; ${at}`, { correlationId });
      case 'http': {
        const details = {
          status: f.status,
          correlationId,
          ...(f.code !== undefined ? { code: f.code } : {}),
          ...(f.retryAfterSeconds !== undefined ? { retryAfterSeconds: f.retryAfterSeconds } : {}),
        };
        const message = `ARM answered ${describeFailure(f)}; ${at}`;
        if (f.status === 429) {
          const seconds = f.retryAfterSeconds ?? DEFAULT_THROTTLE_SECONDS;
          this.throttledUntilMs = Math.max(this.throttledUntilMs, this.clock.now() + seconds * 1000);
          this.opts.budget?.pause(this.throttledUntilMs);
          return new ArmError('throttled', operation, message, { ...details, retryAfterSeconds: seconds });
        }
        if (f.status === 401) this.opts.tokens.invalidate();
        if (f.status === 401 || f.status === 403) return new ArmError('refused', operation, message, details);
        if (f.status >= 500) return new ArmError('server_error', operation, message, details);
        if (f.status >= 400) return new ArmError('client_error', operation, message, details);
        return new ArmError('bad_response', operation, message, details);
      }
    }
  }

  private count(operation: ArmOperation, outcome: string, started: number): void {
    this.opts.metrics?.armCalls.inc({ operation, outcome });
    this.opts.metrics?.armLatency.observe({ operation }, (performance.now() - started) / 1000);
  }
}

/** An ARM scope as a URL path (`armPath`), or a bad-response ArmError. */
function scopePath(scope: string, operation: ArmOperation): string {
  const path = armPath(scope);
  if (path === undefined) throw new ArmError('bad_response', operation, `not an ARM scope: ${scope.slice(0, 200)}`);
  return path;
}

function guid(id: string): string {
  if (!GUID.test(id)) throw new ArmError('bad_response', 'role_assignments', 'the principal ID is not an object ID (GUID)');
  return id.toLowerCase();
}

function denyPrincipal(p: { id: string; type?: string | null | undefined }): DenyPrincipal {
  return { id: p.id.toLowerCase(), ...(p.type ? { type: p.type } : {}) };
}

function issueSummary(error: z.ZodError): string {
  const first = error.issues[0];
  return first ? `${first.path.join('.') || 'body'}: ${first.message}` : 'invalid';
}
