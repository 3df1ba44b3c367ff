import type { BudgetGrant, ReadBudget } from '../azure/arm.js';
import type { Clock } from '../ops/clock.js';
import type { Metrics } from '../ops/metrics.js';

/**
 * `--arm-read-rate` in one process: a token bucket that refills `rate` tokens per second and holds
 * at most one second of them (so any one-second window sees at most twice the rate, and any
 * longer run at most the rate on average), plus the pause a 429 asks for. With `--shared-cache`
 * the shared bucket replaces it and this one is the fallback while the shared cache is down.
 */

export type BucketTake = { readonly granted: true; readonly remaining: number } | { readonly granted: false; readonly waitMs: number };

export class TokenBucket {
  private tokens: number;
  private refilledAt: number;

  constructor(
    private rate: number,
    private readonly clock: Clock,
  ) {
    this.tokens = this.capacity;
    this.refilledAt = clock.now();
  }

  /** One second of reads, at least one. */
  get capacity(): number {
    return Math.max(1, this.rate);
  }

  /** Changes the refill rate (the replica's share changes with the number of replicas); tokens already there stay, up to the new capacity. */
  setRate(rate: number): void {
    this.refill();
    this.rate = rate;
    this.tokens = Math.min(this.tokens, this.capacity);
  }

  /** Empties the bucket: a replica that starts reading alone adds no burst on top of what the shared bucket already gave. */
  drain(): void {
    this.refill();
    this.tokens = 0;
  }

  tryTake(): BucketTake {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { granted: true, remaining: Math.floor(this.tokens) };
    }
    return { granted: false, waitMs: Math.ceil(((1 - this.tokens) * 1000) / this.rate) };
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(this.capacity, this.tokens + (elapsed * this.rate) / 1000);
    this.refilledAt = now;
  }
}

export type Sleep = (ms: number) => Promise<void>;

export const realSleep: Sleep = (ms) =>
  new Promise((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/** Seconds until `untilMs`, at least 1. */
export function secondsUntil(untilMs: number, now: number): number {
  return Math.max(1, Math.ceil((untilMs - now) / 1000));
}

/**
 * Waits for a grant from `attempt` (which answers a grant or how long to wait) until the deadline.
 * Shared by the per-process and the shared budget.
 */
export async function waitForGrant(
  attempt: () => Promise<{ readonly kind: 'grant'; readonly grant: BudgetGrant } | { readonly kind: 'wait'; readonly waitMs: number }>,
  deadlineMs: number,
  clock: Clock,
  sleep: Sleep,
  metrics: Metrics | undefined,
): Promise<BudgetGrant> {
  let waited = false;
  // Bounded by the time slept too, so a clock that does not move (or moves slowly) cannot keep a caller waiting past the deadline.
  let sleptMs = 0;
  const budgetMs = Math.max(0, deadlineMs - clock.now());
  for (;;) {
    const answer = await attempt();
    if (answer.kind === 'grant') {
      if (waited) metrics?.armBudgetWaits.inc({ outcome: answer.grant.kind === 'granted' ? 'granted' : 'spent' });
      return answer.grant;
    }
    const now = clock.now();
    if (now + answer.waitMs > deadlineMs || sleptMs + answer.waitMs > budgetMs) {
      metrics?.armBudgetWaits.inc({ outcome: 'spent' });
      return { kind: 'spent', retryAfterSeconds: secondsUntil(now + answer.waitMs, now) };
    }
    waited = true;
    sleptMs += answer.waitMs;
    await sleep(answer.waitMs);
  }
}

export interface LocalReadBudgetOptions {
  /** Reads per second. */
  readonly rate: number;
  readonly clock: Clock;
  readonly metrics?: Metrics;
  readonly sleep?: Sleep;
}

/** The per-process budget: the bucket and the 429 pause of this process only. */
export class LocalReadBudget implements ReadBudget {
  readonly bucket: TokenBucket;
  private pausedUntilMs = 0;
  private readonly sleep: Sleep;

  constructor(private readonly opts: LocalReadBudgetOptions) {
    this.bucket = new TokenBucket(opts.rate, opts.clock);
    this.sleep = opts.sleep ?? realSleep;
  }

  take(deadlineMs: number): Promise<BudgetGrant> {
    const { clock, metrics } = this.opts;
    return waitForGrant(
      async () => {
        const now = clock.now();
        if (this.pausedUntilMs > now) return { kind: 'grant', grant: { kind: 'paused', retryAfterSeconds: secondsUntil(this.pausedUntilMs, now) } };
        const took = this.bucket.tryTake();
        if (!took.granted) return { kind: 'wait', waitMs: took.waitMs };
        metrics?.armBudgetRemaining.set(took.remaining);
        return { kind: 'grant', grant: { kind: 'granted' } };
      },
      deadlineMs,
      clock,
      this.sleep,
      metrics,
    );
  }

  pause(untilMs: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, untilMs);
  }

  pausedUntil(): number {
    return this.pausedUntilMs;
  }
}
