import { createHash, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { AccessSourceError, type AccessFailureReason, type AccessSnapshot } from '../authz/source.js';
import type { Clock } from '../ops/clock.js';
import type { Metrics } from '../ops/metrics.js';
import type { SharedConnection, SharedMessage } from './connection.js';

/**
 * The shared tier of the decision cache: a principal's RBAC lookup result (its AccessSnapshot and
 * the time ARM was read) kept in Redis for every replica, and one ARM read per cold principal
 * across replicas. A replica that misses takes a short lease (SET NX PX) and reads ARM; the
 * others wait for its result, announced on the replicas' channel, instead of reading ARM too. A
 * lease whose holder died expires and the next waiter takes it. Keys are hashes of the settings
 * version, tenant and object ID: no object ID in clear. Whenever the shared cache is unavailable
 * the lookup is this replica's own ARM read, exactly as without a shared cache.
 */

/** A lookup result as every replica sees it; `readAt` (ms) starts its TTL in every replica. */
export interface SharedEntry {
  readonly snapshot: AccessSnapshot;
  readonly readAt: number;
}

/** How a lookup was answered: `hit` (Redis had it), `miss` (this replica read ARM under the lease), `waited` (another replica read it), `local` (shared cache unavailable). */
export type SharedOutcome = 'hit' | 'miss' | 'waited' | 'local';

export interface SharedDecisionsOptions {
  readonly connection: SharedConnection;
  /** The settings version: replicas whose settings differ never share an entry. */
  readonly version: string;
  readonly clock: Clock;
  readonly metrics: Metrics;
  /** How long a lease lasts, and the longest a waiter waits for another replica's read (`--rbac-timeout`). */
  readonly leaseMs: number;
  /** How long an entry is kept in Redis after its read: the longest TTL plus stale-if-error. */
  readonly retainMs: number;
}

const permissionBlock = z.object({
  actions: z.array(z.string()),
  notActions: z.array(z.string()),
  dataActions: z.array(z.string()),
  notDataActions: z.array(z.string()),
});

const entrySchema = z.object({
  readAt: z.number().finite(),
  snapshot: z.object({
    assignments: z.array(
      z.object({
        roleDefinitionId: z.string(),
        roleName: z.string(),
        scope: z.string(),
        principalId: z.string(),
        condition: z.string().optional(),
        permissions: z.array(permissionBlock),
      }),
    ),
    denyAssignments: z.array(
      z.object({ id: z.string(), name: z.string(), scope: z.string(), doNotApplyToChildScopes: z.boolean(), permissions: z.array(permissionBlock) }),
    ),
  }),
});

const FAILURE_REASONS = new Set<AccessFailureReason>([
  'arm_unreachable',
  'arm_timeout',
  'arm_server_error',
  'arm_throttled',
  'arm_read_budget_spent',
  'arm_bad_response',
  'identity_refused',
  'identity_token_unavailable',
  'source_unavailable',
]);

/** Stores the value only while the lease is still the writer's (a flush deletes both): a result read before a flush never lands after it. */
const STORE_IF_LEASED = `
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0`;

const RELEASE_IF_LEASED = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

type WaitResult =
  | { readonly kind: 'stored'; readonly entry: SharedEntry }
  | { readonly kind: 'failed'; readonly error: AccessSourceError }
  | { readonly kind: 'timeout' }
  | { readonly kind: 'unavailable' };

interface Waiter {
  resolve(result: WaitResult): void;
}

/** What a flush dropped, for the in-process caches: these principals' keys, or everything. */
export type FlushScope = { readonly kind: 'all' } | { readonly kind: 'principal'; readonly keys: readonly string[] };

export class SharedDecisions {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly flushHandlers = new Set<(scope: FlushScope) => void>();

  constructor(private readonly opts: SharedDecisionsOptions) {
    opts.connection.onMessage((m) => this.received(m));
    // Waiters never outlive the shared cache: when it goes away they read ARM themselves.
    opts.connection.onAvailability((available) => {
      if (!available) for (const key of [...this.waiters.keys()]) this.wake(key, { kind: 'unavailable' });
    });
  }

  /** The hashed key of a principal under this replica's settings (also the in-process caches' link to flushes). */
  keyOf(tid: string, oid: string): string {
    return createHash('sha256').update(`${this.opts.version}\n${tid.toLowerCase()}\n${oid.toLowerCase()}`).digest('base64url');
  }

  /**
   * The principal's lookup result: Redis's when `usable` accepts it, otherwise one read across
   * replicas (this replica's `read` under the lease, or another replica's). Throws what `read`
   * throws, or the reading replica's failure.
   */
  async load(
    tid: string,
    oid: string,
    usable: (entry: SharedEntry) => boolean,
    read: () => Promise<AccessSnapshot>,
  ): Promise<{ entry: SharedEntry; outcome: SharedOutcome }> {
    const { connection, clock, metrics } = this.opts;
    const key = this.keyOf(tid, oid);
    const valueKey = connection.key('rbac', key);
    const leaseKey = connection.key('rbac-lease', key);
    const deadline = clock.now() + this.opts.leaseMs;
    const outcome = (o: SharedOutcome): SharedOutcome => {
      metrics.sharedCacheLookups.inc({ outcome: o });
      return o;
    };
    const alone = async (): Promise<{ entry: SharedEntry; outcome: SharedOutcome }> => {
      const readAt = clock.now();
      return { entry: { snapshot: await read(), readAt }, outcome: outcome('local') };
    };

    let waitedOnce = false;
    while (clock.now() < deadline) {
      // Registered before looking, so a result announced between the look and the wait is not missed.
      const waiting = this.waitFor(key);
      try {
        const stored = await connection.run((c) => c.get(valueKey));
        if (stored === undefined) return await alone();
        const entry = stored === null ? undefined : parseEntry(stored);
        if (entry !== undefined && usable(entry)) return { entry, outcome: outcome(waitedOnce ? 'waited' : 'hit') };
        const token = randomUUID();
        const leased = await connection.run((c) => c.set(leaseKey, token, { condition: 'NX', expiration: { type: 'PX', value: this.opts.leaseMs } }));
        if (leased === undefined) return await alone();
        if (leased === 'OK') {
          // The previous holder may have stored and released between the look and the lease: look again before reading ARM.
          const again = await connection.run((c) => c.get(valueKey));
          const latest = again === undefined || again === null ? undefined : parseEntry(again);
          if (latest !== undefined && usable(latest)) {
            await connection.run((c) => c.eval(RELEASE_IF_LEASED, { keys: [leaseKey], arguments: [token] }));
            return { entry: latest, outcome: outcome(waitedOnce ? 'waited' : 'hit') };
          }
          return { entry: await this.lead(key, valueKey, leaseKey, token, read), outcome: outcome('miss') };
        }
        if (!waitedOnce) metrics.sharedCacheLeaseWaits.inc();
        waitedOnce = true;
        const leftMs = await connection.run((c) => c.pTTL(leaseKey));
        if (leftMs === undefined) return await alone();
        // Wait for the holder's announcement, or until its lease expires (then one waiter takes it over).
        const result = await waiting.until(Math.max(1, Math.min(leftMs > 0 ? leftMs : 1, deadline - clock.now())));
        if (result.kind === 'stored') return { entry: result.entry, outcome: outcome('waited') };
        if (result.kind === 'failed') throw result.error;
        if (result.kind === 'unavailable') return await alone();
      } finally {
        waiting.cancel();
      }
    }
    // The holder took longer than --rbac-timeout: read once more here rather than fail the caller.
    return alone();
  }

  /**
   * Drops one principal's entry (every tenant in `tenants`) or every entry, in Redis and in every
   * replica's memory. False when the shared cache could not be reached (only this replica's memory
   * was dropped then).
   */
  async flush(target: { readonly oid: string; readonly tenants: readonly string[] } | undefined): Promise<boolean> {
    const { connection } = this.opts;
    let scope: FlushScope;
    let deleted: number | undefined;
    if (target === undefined) {
      scope = { kind: 'all' };
      deleted = await connection.run(async (c) => {
        let n = 0;
        for (const pattern of [connection.key('rbac', '*'), connection.key('rbac-lease', '*')]) {
          for await (const keys of c.scanIterator({ MATCH: pattern, COUNT: 1000 })) {
            if (keys.length > 0) n += await c.unlink(keys);
          }
        }
        return n;
      });
    } else {
      const keys = target.tenants.map((tid) => this.keyOf(tid, target.oid));
      scope = { kind: 'principal', keys };
      deleted = await connection.run((c) => c.unlink(keys.flatMap((k) => [connection.key('rbac', k), connection.key('rbac-lease', k)])));
    }
    // This replica drops its own entries at once; the others on the announcement.
    this.emitFlush(scope);
    if (deleted === undefined) return false;
    return connection.publish({ kind: 'flush', ...(scope.kind === 'principal' ? { keys: scope.keys } : {}) });
  }

  /** Calls `handler` when a flush (from any replica) drops entries. */
  onFlush(handler: (scope: FlushScope) => void): void {
    this.flushHandlers.add(handler);
  }

  private async lead(key: string, valueKey: string, leaseKey: string, token: string, read: () => Promise<AccessSnapshot>): Promise<SharedEntry> {
    const { connection, clock } = this.opts;
    const readAt = clock.now();
    let snapshot: AccessSnapshot;
    try {
      snapshot = await read();
    } catch (err) {
      await connection.run((c) => c.eval(RELEASE_IF_LEASED, { keys: [leaseKey], arguments: [token] }));
      if (err instanceof AccessSourceError) {
        await connection.publish({
          kind: 'failed',
          key,
          reason: err.reason,
          message: err.message,
          ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
        });
      }
      throw err;
    }
    const entry: SharedEntry = { snapshot, readAt };
    const text = JSON.stringify(entry);
    const retainMs = Math.max(1, Math.ceil(readAt + this.opts.retainMs - clock.now()));
    const stored = await connection.run((c) => c.eval(STORE_IF_LEASED, { keys: [valueKey, leaseKey], arguments: [token, text, String(retainMs)] }));
    // Announced only when stored: after a flush the waiters take the lease and read ARM anew.
    if (stored === 1) await connection.publish({ kind: 'stored', key, entry });
    return entry;
  }

  private waitFor(key: string): { until(ms: number): Promise<WaitResult>; cancel(): void } {
    let set = this.waiters.get(key);
    if (set === undefined) this.waiters.set(key, (set = new Set()));
    let settle: ((r: WaitResult) => void) | undefined;
    let early: WaitResult | undefined;
    const waiter: Waiter = {
      resolve: (r) => {
        if (settle !== undefined) settle(r);
        else early ??= r;
      },
    };
    set.add(waiter);
    let timer: NodeJS.Timeout | undefined;
    const cancel = (): void => {
      clearTimeout(timer);
      const current = this.waiters.get(key);
      current?.delete(waiter);
      if (current?.size === 0) this.waiters.delete(key);
    };
    return {
      until: (ms) =>
        early !== undefined
          ? Promise.resolve(early)
          : new Promise<WaitResult>((resolve) => {
              settle = resolve;
              timer = setTimeout(() => resolve({ kind: 'timeout' }), ms);
              timer.unref();
            }),
      cancel,
    };
  }

  private wake(key: string, result: WaitResult): void {
    const set = this.waiters.get(key);
    if (set === undefined) return;
    for (const w of set) w.resolve(result);
  }

  private received(message: SharedMessage): void {
    switch (message.kind) {
      case 'stored': {
        const entry = entrySchema.safeParse(message.entry);
        if (typeof message.key === 'string' && entry.success) this.wake(message.key, { kind: 'stored', entry: entry.data });
        return;
      }
      case 'failed': {
        const reason = message.reason as AccessFailureReason;
        if (typeof message.key !== 'string' || !FAILURE_REASONS.has(reason) || typeof message.message !== 'string') return;
        const retry = typeof message.retryAfterSeconds === 'number' ? message.retryAfterSeconds : undefined;
        this.wake(message.key, { kind: 'failed', error: new AccessSourceError(reason, `${message.message} (read by another replica)`, retry) });
        return;
      }
      case 'flush': {
        if (message.from === this.opts.connection.replicaId) return;
        const keys = Array.isArray(message.keys) ? message.keys.filter((k): k is string => typeof k === 'string') : undefined;
        this.emitFlush(keys === undefined ? { kind: 'all' } : { kind: 'principal', keys });
        return;
      }
    }
  }

  private emitFlush(scope: FlushScope): void {
    for (const handler of this.flushHandlers) handler(scope);
  }
}

function parseEntry(text: string): SharedEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = entrySchema.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}
