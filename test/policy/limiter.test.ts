import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/contracts/principal.js';
import { ManualClock } from '../../src/ops/clock.js';
import { silentLogger } from '../../src/ops/log.js';
import { Metrics } from '../../src/ops/metrics.js';
import { Limiter, rateLimitHeaders, resetText, type Admission } from '../../src/policy/limiter.js';
import { InProcessWindows, SharedWindows, type WindowIncrement, type WindowStore } from '../../src/policy/windows.js';

const ALICE: Principal = { type: 'user', oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e', tid: '72f988bf-86f1-41af-91ab-2d7cd011db47' };
const BOB: Principal = { type: 'user', oid: '1c7d5e3f-9a2b-4c4d-8e6f-8a7b9c0d1e2f', tid: '72f988bf-86f1-41af-91ab-2d7cd011db47' };
const START = Date.UTC(2026, 0, 1, 12, 0, 0);

function setup(): { clock: ManualClock; limiter: Limiter } {
  const clock = new ManualClock(START);
  return { clock, limiter: new Limiter(new InProcessWindows(clock), clock) };
}

function sync(a: Admission | Promise<Admission>): Admission {
  if (a instanceof Promise) throw new Error('the in-process store answers synchronously');
  return a;
}

describe('limit windows', () => {
  it('tokens per minute from charged usage; refused once spent, with Retry-After to the end of the minute', async () => {
    const { clock, limiter } = setup();
    const limits = { tokensPerMinute: 100 };
    expect(sync(limiter.admit(ALICE, limits))).toMatchObject({
      kind: 'admitted',
      state: { tokens: { limit: 100, remaining: 100, resetMs: 60_000 } },
    });
    await limiter.charge(ALICE, limits, 60);
    clock.advance(15_000);
    expect(sync(limiter.admit(ALICE, limits))).toMatchObject({ kind: 'admitted', state: { tokens: { remaining: 40, resetMs: 45_000 } } });
    // The last request of the window overshoots by its own size, and only once.
    await limiter.charge(ALICE, limits, 250);
    const refused = sync(limiter.admit(ALICE, limits));
    expect(refused).toMatchObject({
      kind: 'refused',
      rejection: { code: 'token_limit_exceeded', retryAfterSeconds: 45 },
      state: { tokens: { remaining: 0 } },
    });
    expect(refused.kind === 'refused' && refused.rejection.message).toMatch(/310 counted this minute/);
    // Other principals have their own windows.
    expect(sync(limiter.admit(BOB, limits)).kind).toBe('admitted');
    // Rollover: the next minute starts empty.
    clock.advance(45_000);
    expect(sync(limiter.admit(ALICE, limits))).toMatchObject({ kind: 'admitted', state: { tokens: { remaining: 100 } } });
  });

  it('requests per minute count at admission; the first refused one is the limit + 1st', () => {
    const { clock, limiter } = setup();
    const limits = { requestsPerMinute: 3 };
    for (let i = 0; i < 3; i++) expect(sync(limiter.admit(ALICE, limits)).kind).toBe('admitted');
    const refused = sync(limiter.admit(ALICE, limits));
    expect(refused).toMatchObject({
      kind: 'refused',
      rejection: { code: 'request_limit_exceeded', retryAfterSeconds: 60 },
      state: { requests: { limit: 3, remaining: 0 } },
    });
    clock.advance(60_000);
    expect(sync(limiter.admit(ALICE, limits))).toMatchObject({ kind: 'admitted', state: { requests: { remaining: 2 } } });
  });

  it('tokens per day: a UTC-day quota across minute windows; the headers show the window closest to spent', async () => {
    const { clock, limiter } = setup();
    const limits = { tokensPerMinute: 1000, tokensPerDay: 1500 };
    await limiter.charge(ALICE, limits, 900);
    clock.advance(60_000);
    expect(sync(limiter.admit(ALICE, limits))).toMatchObject({ kind: 'admitted', state: { tokens: { limit: 1500, remaining: 600 } } });
    await limiter.charge(ALICE, limits, 700);
    clock.advance(60_000);
    const refused = sync(limiter.admit(ALICE, limits));
    // 12:02 UTC: the day ends in 11 h 58 min.
    expect(refused).toMatchObject({ kind: 'refused', rejection: { code: 'token_limit_exceeded', retryAfterSeconds: 43_080 } });
    clock.set(Date.UTC(2026, 0, 2, 0, 0, 0));
    expect(sync(limiter.admit(ALICE, limits)).kind).toBe('admitted');
  });

  it("API keys are counted per key; nothing is charged for a principal's unlimited dimensions", async () => {
    const { limiter } = setup();
    const key: Principal = { type: 'api-key', oid: 'key-3f9a1c2e', tid: '' };
    await limiter.charge(key, { requestsPerMinute: 5 }, 1_000_000);
    expect(sync(limiter.admit(key, { requestsPerMinute: 5, tokensPerMinute: 10 }))).toMatchObject({
      kind: 'admitted',
      state: { tokens: { remaining: 10 } },
    });
  });

  it("OpenAI's x-ratelimit-* headers", () => {
    expect(
      rateLimitHeaders({ requests: { limit: 60, remaining: 59, resetMs: 1_200 }, tokens: { limit: 20000, remaining: 19000, resetMs: 360_000 } }),
    ).toEqual([
      ['x-ratelimit-limit-requests', '60'],
      ['x-ratelimit-remaining-requests', '59'],
      ['x-ratelimit-reset-requests', '2s'],
      ['x-ratelimit-limit-tokens', '20000'],
      ['x-ratelimit-remaining-tokens', '19000'],
      ['x-ratelimit-reset-tokens', '6m0s'],
    ]);
    expect(resetText(7_384_000)).toBe('2h3m4s');
  });

  it('expired counters are swept from the in-process store', () => {
    const clock = new ManualClock(START);
    const store = new InProcessWindows(clock);
    store.increment([{ key: 'a', amount: 1, ttlMs: 1_000 }]);
    clock.advance(61_000);
    store.increment([{ key: 'b', amount: 1, ttlMs: 1_000 }]);
    expect(store.size).toBe(1);
  });
});

describe('shared windows', () => {
  class FakeShared implements WindowStore {
    counters = new Map<string, number>();
    failing = false;
    hanging = false;
    increment(increments: readonly WindowIncrement[]): Promise<readonly number[]> {
      if (this.hanging) return new Promise(() => undefined);
      if (this.failing) return Promise.reject(new Error('ECONNREFUSED'));
      return Promise.resolve(
        increments.map(({ key, amount }) => {
          const v = (this.counters.get(key) ?? 0) + amount;
          this.counters.set(key, v);
          return v;
        }),
      );
    }
  }

  it('replicas share the counts; an outage or a hang falls back to the per-process windows (never no limit, never refuse all)', async () => {
    const clock = new ManualClock(START);
    const shared = new FakeShared();
    const metrics = new Metrics({ defaultMetrics: false });
    const replica = (): Limiter => new Limiter(new SharedWindows(shared, new InProcessWindows(clock), clock, silentLogger(), metrics, 50), clock);
    const a = replica();
    const b = replica();
    const limits = { requestsPerMinute: 2 };
    expect((await a.admit(ALICE, limits)).kind).toBe('admitted');
    expect((await b.admit(ALICE, limits)).kind).toBe('admitted');
    expect((await a.admit(ALICE, limits)).kind).toBe('refused');

    // Outage: replica b counts alone (it saw one request of Alice's this minute), and still limits.
    shared.failing = true;
    expect((await b.admit(ALICE, limits)).kind).toBe('admitted');
    expect((await b.admit(ALICE, limits)).kind).toBe('refused');
    expect((await b.admit(BOB, limits)).kind).toBe('admitted');
    shared.failing = false;
    shared.hanging = true;
    expect((await a.admit(BOB, limits)).kind).toBe('admitted');
    expect(await metrics.registry.getSingleMetricAsString('foundry_auth_limit_window_fallbacks_total')).toContain('total 4');
  });
});
