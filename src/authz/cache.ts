import { LRUCache } from 'lru-cache';
import type { Principal } from '../contracts/principal.js';
import type { RouteMatch } from '../contracts/route.js';
import type { Clock } from '../ops/clock.js';
import { evaluate, type Evaluation } from './evaluate.js';
import { AccessSourceError, type AccessSnapshot, type AccessSource } from './source.js';

/**
 * The decision cache of SPEC section 6. It caches each principal's AccessSnapshot (one lookup
 * serves every action) with the time the lookup started. An allow decided from a snapshot is
 * good for `allowTtlMs`, a deny only for `denyTtlMs`, so a new grant shows within the deny TTL
 * and a revocation within the allow TTL. Failures are never cached and never become a deny.
 */

export interface AccessCacheOptions {
  readonly source: AccessSource;
  /** The cluster scope every decision is made at. */
  readonly scope: string;
  readonly clock: Clock;
  readonly allowTtlMs: number;
  readonly denyTtlMs: number;
  /** How long past its TTL a snapshot may still decide while the source fails. */
  readonly staleIfErrorMs: number;
  /** Bound on cached principals (default 100,000). */
  readonly maxEntries?: number;
  /** The shared tier (`--shared-cache`), consulted on a miss here; its read time starts the TTL here too. */
  readonly shared?: SharedTier;
}

/** A lookup result shared by replicas: the snapshot and when ARM was read. */
export interface SharedLookup {
  readonly snapshot: AccessSnapshot;
  readonly readAt: number;
}

/** What the decision cache needs of a shared tier (src/shared-cache/decisions.ts). */
export interface SharedTier {
  /** The principal's key in the shared tier, which flushes announce. */
  keyOf(tid: string, oid: string): string;
  /** The shared result when `usable` accepts it, otherwise one read (`read`) across replicas. */
  load(
    tid: string,
    oid: string,
    usable: (entry: SharedLookup) => boolean,
    read: () => Promise<AccessSnapshot>,
  ): Promise<{ readonly entry: SharedLookup }>;
}

/** An evaluation of one action from one snapshot, and when it stops being fresh (clock ms: the lookup's start + its TTL). */
export interface JudgedAction {
  readonly evaluation: Evaluation;
  readonly expiresAt: number;
}

export type CachedEvaluation =
  | { readonly kind: 'evaluated'; readonly evaluation: Evaluation; readonly expiresAt: number; readonly cache: 'hit' | 'miss' | 'stale' }
  | { readonly kind: 'unavailable'; readonly error: AccessSourceError; readonly stale: boolean };

interface Entry {
  readonly snapshot: AccessSnapshot;
  readonly fetchedAt: number;
  /** The principal's key in the shared tier, to drop the entry when another replica flushes it. */
  readonly sharedKey?: string;
  /** Evaluations of this immutable snapshot by action, so the hot path matches patterns once per action. */
  readonly dataActions: Map<string, JudgedAction>;
  readonly controlActions: Map<string, JudgedAction>;
}

export const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * The cache key of a principal: tenant and object ID, lower case, length-prefixed so that no two
 * (tid, oid) pairs share a key whatever characters they contain (threats 132, 133).
 */
export function principalKey(tid: string, oid: string): string {
  const t = tid.toLowerCase();
  return `${t.length}:${t}:${oid.toLowerCase()}`;
}

const principalKeys = new WeakMap<Principal, string>();

/**
 * `principalKey` of a principal object, kept with it: the verified-token cache hands out the same
 * (immutable) Principal for every request with the same token, so the key, and the hash V8 keeps
 * in it, is built once per token rather than once per request.
 */
export function keyOfPrincipal(principal: Principal): string {
  let key = principalKeys.get(principal);
  if (key === undefined) {
    key = principalKey(principal.tid, principal.oid);
    principalKeys.set(principal, key);
  }
  return key;
}

function asSourceError(err: unknown): AccessSourceError {
  if (err instanceof AccessSourceError) return err;
  // An unexpected failure is still a failure to evaluate, never a deny; its text stays out of responses.
  const failure = new AccessSourceError('source_unavailable', 'the access source failed unexpectedly; see the sidecar log');
  (failure as Error).cause = err;
  return failure;
}

export class AccessCache {
  private readonly entries: LRUCache<string, Entry>;
  /** Lookups in flight, outside the LRU so that eviction can never start a second lookup for a key. */
  private readonly inflight = new Map<string, Promise<Entry>>();
  private generation = 0;

  constructor(private readonly opts: AccessCacheOptions) {
    this.entries = new LRUCache<string, Entry>({ max: opts.maxEntries ?? DEFAULT_MAX_ENTRIES });
  }

  /** Principals currently cached. */
  get size(): number {
    return this.entries.size;
  }

  /** The evaluation from the principal's cached snapshot while its TTL lasts, synchronously; undefined when a lookup is due. */
  fresh(principal: Principal, route: RouteMatch): JudgedAction | undefined {
    const cached = this.entries.get(keyOfPrincipal(principal));
    if (cached === undefined) return undefined;
    const judged = this.judge(cached, route);
    return this.opts.clock.now() < judged.expiresAt ? judged : undefined;
  }

  /** Evaluates the route's action for the principal, looking up its access only when the cached snapshot has expired. */
  async evaluate(principal: Principal, route: RouteMatch): Promise<CachedEvaluation> {
    const key = keyOfPrincipal(principal);
    const cached = this.entries.get(key);
    let previous: JudgedAction | undefined;
    if (cached !== undefined) {
      previous = this.judge(cached, route);
      if (this.opts.clock.now() < previous.expiresAt) {
        return { kind: 'evaluated', evaluation: previous.evaluation, expiresAt: previous.expiresAt, cache: 'hit' };
      }
    }
    try {
      const fresh = this.judge(await this.refresh(key, principal, route), route);
      return { kind: 'evaluated', evaluation: fresh.evaluation, expiresAt: fresh.expiresAt, cache: 'miss' };
    } catch (err) {
      const error = asSourceError(err);
      if (previous !== undefined) {
        const usableUntil = previous.expiresAt + this.opts.staleIfErrorMs;
        // A stale decision is already past its freshness: it is good for this request only.
        if (this.opts.clock.now() < usableUntil)
          return { kind: 'evaluated', evaluation: previous.evaluation, expiresAt: previous.expiresAt, cache: 'stale' };
      }
      return { kind: 'unavailable', error, stale: cached !== undefined };
    }
  }

  /** Drops every cached snapshot, e.g. after the static file changed; lookups already in flight are not stored. */
  clear(): void {
    this.generation++;
    this.entries.clear();
  }

  /** Drops one principal's snapshot, whatever its tenant (`POST /cache/flush`); lookups already in flight are not stored. */
  dropPrincipal(oid: string): void {
    this.generation++;
    const suffix = `:${oid.toLowerCase()}`;
    for (const key of [...this.entries.keys()]) if (key.endsWith(suffix)) this.entries.delete(key);
  }

  /** Drops the snapshots whose shared keys another replica flushed. */
  dropShared(sharedKeys: readonly string[]): void {
    this.generation++;
    const flushed = new Set(sharedKeys);
    for (const [key, entry] of [...this.entries.entries()])
      if (entry.sharedKey !== undefined && flushed.has(entry.sharedKey)) this.entries.delete(key);
  }

  private ttlOf(evaluation: Evaluation): number {
    return evaluation.allowed ? this.opts.allowTtlMs : this.opts.denyTtlMs;
  }

  private judge(entry: Entry, route: RouteMatch): JudgedAction {
    // Keyed by the route table's own action string, whose hash V8 keeps: no key is built per request.
    const byAction = route.dataAction ? entry.dataActions : entry.controlActions;
    let judged = byAction.get(route.action);
    if (judged === undefined) {
      const evaluation = evaluate(entry.snapshot, route, this.opts.scope);
      judged = { evaluation, expiresAt: entry.fetchedAt + this.ttlOf(evaluation) };
      byAction.set(route.action, judged);
    }
    return judged;
  }

  /**
   * One lookup per principal at a time: concurrent callers share it, also while a stale entry is
   * refreshed. With a shared tier the lookup goes there first; a shared result is usable while the
   * first caller's route would still count it fresh here.
   */
  private refresh(key: string, principal: Principal, route: RouteMatch): Promise<Entry> {
    const running = this.inflight.get(key);
    if (running !== undefined) return running;
    const generation = this.generation;
    const { shared, source, scope, clock } = this.opts;
    const read = (): Promise<AccessSnapshot> => source.lookup(principal, scope);
    const newEntry = (snapshot: AccessSnapshot, fetchedAt: number, sharedKey?: string): Entry => ({
      snapshot,
      fetchedAt,
      ...(sharedKey !== undefined ? { sharedKey } : {}),
      dataActions: new Map(),
      controlActions: new Map(),
    });
    const load = async (): Promise<Entry> => {
      if (shared === undefined) {
        const startedAt = clock.now();
        return newEntry(await read(), startedAt);
      }
      const usable = (candidate: SharedLookup): boolean => {
        return clock.now() < this.judge(newEntry(candidate.snapshot, candidate.readAt), route).expiresAt;
      };
      const { entry } = await shared.load(principal.tid, principal.oid, usable, read);
      return newEntry(entry.snapshot, entry.readAt, shared.keyOf(principal.tid, principal.oid));
    };
    // Started on a later tick so that a source that throws synchronously still rejects this promise.
    const lookup: Promise<Entry> = Promise.resolve()
      .then(load)
      .then((entry) => {
        if (generation === this.generation) this.entries.set(key, entry);
        return entry;
      })
      .finally(() => {
        if (this.inflight.get(key) === lookup) this.inflight.delete(key);
      });
    this.inflight.set(key, lookup);
    return lookup;
  }
}
