import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Clock } from '../ops/clock.js';
import type { Principal } from '../contracts/principal.js';

/** A token that passed every check, and what its acceptance depended on. */
export interface VerifiedToken {
  readonly principal: Principal;
  /** The tenant and key it was verified with: the entry goes when that key leaves the key set. */
  readonly tenantId: string;
  readonly kid: string;
  /** The time checks pass from `validFromMs` (inclusive) until `validUntilMs` (exclusive), epoch ms. */
  readonly validFromMs: number;
  readonly validUntilMs: number;
}

/** SHA-256 of the token, the only form in which a token is kept. */
export function tokenHash(token: string): string {
  return hash('sha256', token, 'base64');
}

/**
 * Verified tokens by the SHA-256 of the token (never the token itself), bounded in count. A hit
 * re-checks the time window against the clock and an entry disappears when its signing key is
 * removed or replaced, so the cache never changes an outcome; it only skips the RSA work.
 */
export class VerifiedTokenCache {
  private readonly entries: LRUCache<string, VerifiedToken>;

  constructor(
    private readonly clock: Clock,
    opts: { readonly max?: number } = {},
  ) {
    this.entries = new LRUCache<string, VerifiedToken>({ max: opts.max ?? 10_000 });
  }

  get size(): number {
    return this.entries.size;
  }

  /** The entry for a token hash, when its time window includes now; an expired entry is dropped. */
  get(key: string): VerifiedToken | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const now = this.clock.now();
    if (now >= entry.validUntilMs || now < entry.validFromMs) {
      if (now >= entry.validUntilMs) this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  set(key: string, entry: VerifiedToken): void {
    if (this.clock.now() >= entry.validUntilMs) return;
    this.entries.set(key, entry);
  }

  /** Drops every entry verified with one of these keys of a tenant (key removed or replaced). */
  invalidateKeys(tenantId: string, kids: ReadonlySet<string>): number {
    const doomed: string[] = [];
    this.entries.forEach((entry, key) => {
      if (entry.tenantId === tenantId && kids.has(entry.kid)) doomed.push(key);
    });
    for (const key of doomed) this.entries.delete(key);
    return doomed.length;
  }

  clear(): void {
    this.entries.clear();
  }
}
