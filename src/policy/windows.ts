import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';

/** One counter of a limit window: add `amount` (0 to read it); a counter the store does not hold yet expires `ttlMs` from now. */
export interface WindowIncrement {
  readonly key: string;
  readonly amount: number;
  readonly ttlMs: number;
}

/**
 * Where limit windows are counted. Every operation is an atomic increment-with-expiry returning the
 * new totals, so replicas sharing one store never lose each other's counts. The in-process store
 * answers synchronously; a shared one (Redis) answers with a promise.
 */
export interface WindowStore {
  increment(increments: readonly WindowIncrement[]): readonly number[] | Promise<readonly number[]>;
}

interface Counter {
  value: number;
  expiresAt: number;
}

/** How often (in clock time) expired counters are swept out of the in-process store. */
const SWEEP_MS = 60_000;

/** The windows of this process alone: a Map of counters, expired by the injected clock. */
export class InProcessWindows implements WindowStore {
  private readonly counters = new Map<string, Counter>();
  private nextSweep: number;

  constructor(private readonly clock: Clock) {
    this.nextSweep = clock.now() + SWEEP_MS;
  }

  increment(increments: readonly WindowIncrement[]): readonly number[] {
    const now = this.clock.now();
    if (now >= this.nextSweep) this.sweep(now);
    const totals: number[] = [];
    for (const { key, amount, ttlMs } of increments) {
      let counter = this.counters.get(key);
      if (counter === undefined || counter.expiresAt <= now) {
        counter = { value: 0, expiresAt: now + ttlMs };
        this.counters.set(key, counter);
      }
      counter.value += amount;
      totals.push(counter.value);
    }
    return totals;
  }

  /** Counters held (for tests of the sweep). */
  get size(): number {
    return this.counters.size;
  }

  private sweep(now: number): void {
    this.nextSweep = now + SWEEP_MS;
    for (const [key, counter] of this.counters) if (counter.expiresAt <= now) this.counters.delete(key);
  }
}

/** A shared store gets this long per operation before the per-process windows answer instead. */
export const SHARED_WINDOW_TIMEOUT_MS = 250;

/**
 * Windows shared across replicas, with the per-process windows as the fallback: when the shared
 * store fails or is slow, the same increment is counted here instead. A Redis outage therefore
 * means per-process limits (each replica enforces the full limit on its own), never "no limit"
 * and never a refusal of everyone. Every increment also goes to the local windows, so a fallback
 * starts from this replica's own recent counts rather than from zero.
 */
export class SharedWindows implements WindowStore {
  private lastWarning = 0;

  constructor(
    private readonly shared: WindowStore,
    private readonly local: InProcessWindows,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly timeoutMs: number = SHARED_WINDOW_TIMEOUT_MS,
  ) {}

  async increment(increments: readonly WindowIncrement[]): Promise<readonly number[]> {
    const local = this.local.increment(increments);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      });
      return await Promise.race([Promise.resolve(this.shared.increment(increments)), timeout]);
    } catch (err) {
      this.metrics.limitWindowFallbacks.inc();
      const now = this.clock.now();
      if (now - this.lastWarning >= 60_000) {
        this.lastWarning = now;
        this.log.warn({ err: (err as Error).message }, 'the shared cache failed for limit windows: counting in this process until it answers again');
      }
      return local;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The shared cache's atomic counter (`--shared-cache`): `undefined` when the shared cache cannot answer. */
export interface SharedCounter {
  incrementWithExpiry(key: string, by: number, ttlMs: number): Promise<{ readonly value: number } | undefined>;
  /** The key in the product's namespace. */
  key(...parts: readonly string[]): string;
}

/** Limit windows in the shared cache: one atomic increment-with-expiry per counter, every replica on the same keys. */
export class SharedCounterWindows implements WindowStore {
  constructor(private readonly counter: SharedCounter) {}

  increment(increments: readonly WindowIncrement[]): Promise<readonly number[]> {
    return Promise.all(
      increments.map(async ({ key, amount, ttlMs }) => {
        const counted = await this.counter.incrementWithExpiry(this.counter.key(key), amount, ttlMs);
        if (counted === undefined) throw new Error('the shared cache is unavailable');
        return counted.value;
      }),
    );
  }
}
