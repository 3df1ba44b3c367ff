/**
 * The pieces of the shared cache on their own: the token bucket and the per-process budget (on an
 * injected clock), and, against a real redis-server in this process, the lease a dead holder
 * leaves, the budget's 429 pause across connections, `incrementWithExpiry`, and a slow server.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from 'redis';
import { LocalReadBudget, TokenBucket } from '../../src/authz/read-budget.js';
import { AccessSourceError, type AccessSnapshot } from '../../src/authz/source.js';
import { ManualClock, systemClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { SharedReadBudget } from '../../src/shared-cache/budget.js';
import { SharedConnection } from '../../src/shared-cache/connection.js';
import { SharedDecisions } from '../../src/shared-cache/decisions.js';
import { startRedis, type RedisServer } from '../support/redis.js';
import { captureLog } from '../azure/helpers.js';

const EMPTY: AccessSnapshot = { assignments: [], denyAssignments: [] };
const TID = '72f988bf-86f1-41af-91ab-2d7cd011db47';

describe('TokenBucket (injected clock)', () => {
  it('holds one second of tokens, refills at the rate, and says how long to wait', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(5, clock);
    for (let i = 0; i < 5; i++) expect(bucket.tryTake().granted).toBe(true);
    expect(bucket.tryTake()).toEqual({ granted: false, waitMs: 200 });
    clock.advance(200);
    expect(bucket.tryTake()).toEqual({ granted: true, remaining: 0 });
    clock.advance(10_000);
    for (let i = 0; i < 5; i++) expect(bucket.tryTake().granted).toBe(true);
    expect(bucket.tryTake().granted).toBe(false);
  });

  it('a lower rate (a share of the budget) keeps at most the new capacity', () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(9, clock);
    bucket.setRate(3);
    for (let i = 0; i < 3; i++) expect(bucket.tryTake().granted).toBe(true);
    expect(bucket.tryTake()).toEqual({ granted: false, waitMs: 334 });
  });
});

describe('LocalReadBudget (injected clock and sleep)', () => {
  it('waits for a token within the deadline, then answers spent with Retry-After; a pause answers paused', async () => {
    const clock = new ManualClock();
    const slept: number[] = [];
    const metrics = new Metrics({ defaultMetrics: false });
    const budget = new LocalReadBudget({ rate: 2, clock, metrics, sleep: async (ms) => void (slept.push(ms), clock.advance(ms)) });
    expect(await budget.take(clock.now())).toEqual({ kind: 'granted' });
    expect(await budget.take(clock.now())).toEqual({ kind: 'granted' });
    expect(await budget.take(clock.now() + 1000)).toEqual({ kind: 'granted' });
    expect(slept).toEqual([500]);
    expect(await budget.take(clock.now() + 100)).toEqual({ kind: 'spent', retryAfterSeconds: 1 });
    budget.pause(clock.now() + 5000);
    expect(await budget.take(clock.now() + 10_000)).toEqual({ kind: 'paused', retryAfterSeconds: 5 });
    expect(
      (await metrics.registry.getSingleMetric('foundry_auth_arm_budget_waits_total')!.get()).values.map((v) => [v.labels.outcome, v.value]),
    ).toEqual([
      ['granted', 1],
      ['spent', 1],
    ]);
  });
});

describe('against a real redis-server', () => {
  let redis: RedisServer;
  const opened: SharedConnection[] = [];
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await Promise.all(opened.map((c) => c.close()));
    await redis?.stop();
  });

  async function connect(timeoutMs = 1000, log = captureLog('info').log): Promise<{ connection: SharedConnection; metrics: Metrics }> {
    const metrics = new Metrics({ defaultMetrics: false });
    const connection = await SharedConnection.open({ config: { url: new URL(redis.url), timeoutMs }, clock: systemClock, log, metrics });
    opened.push(connection);
    return { connection, metrics };
  }

  function decisions(connection: SharedConnection, metrics: Metrics, leaseMs = 2000): SharedDecisions {
    return new SharedDecisions({ connection, version: 'unit', clock: systemClock, metrics, leaseMs, retainMs: 60_000 });
  }

  it('a lease whose holder died expires, and the next replica reads', async () => {
    const { connection, metrics } = await connect();
    const shared = decisions(connection, metrics, 300);
    const oid = '11111111-0000-4000-8000-000000000001';
    // A holder that took the lease and died: the lease key with nobody behind it.
    await connection.run((c) =>
      c.set(connection.key('rbac-lease', shared.keyOf(TID, oid)), 'dead-holder', { expiration: { type: 'PX', value: 200 } }),
    );
    let reads = 0;
    const started = Date.now();
    const { entry, outcome } = await shared.load(
      TID,
      oid,
      () => true,
      async () => (reads++, EMPTY),
    );
    expect(reads).toBe(1);
    expect(outcome).toBe('miss');
    expect(entry.snapshot).toEqual(EMPTY);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(await metrics.registry.getSingleMetricAsString('foundry_auth_shared_cache_lease_waits_total')).toContain(
      'foundry_auth_shared_cache_lease_waits_total 1',
    );
  });

  it('waiters in other replicas get the holder result by notification, and its failure too', async () => {
    const a = await connect();
    const b = await connect();
    const sa = decisions(a.connection, a.metrics);
    const sb = decisions(b.connection, b.metrics);
    const oid = '11111111-0000-4000-8000-000000000002';
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const first = sa.load(
      TID,
      oid,
      () => true,
      async () => (await gate, EMPTY),
    );
    await new Promise((r) => setTimeout(r, 50));
    const second = sb.load(
      TID,
      oid,
      () => true,
      async () => {
        throw new Error('B must not read');
      },
    );
    await new Promise((r) => setTimeout(r, 50));
    release();
    expect((await first).outcome).toBe('miss');
    expect((await second).outcome).toBe('waited');

    const failing = '11111111-0000-4000-8000-000000000003';
    let fail!: () => void;
    const failGate = new Promise<void>((r) => (fail = r));
    const holder = sa.load(
      TID,
      failing,
      () => true,
      async () => {
        await failGate;
        throw new AccessSourceError('arm_timeout', 'ARM did not answer', undefined);
      },
    );
    await new Promise((r) => setTimeout(r, 50));
    const waiter = sb.load(
      TID,
      failing,
      () => true,
      async () => EMPTY,
    );
    await new Promise((r) => setTimeout(r, 50));
    fail();
    await expect(holder).rejects.toThrow('ARM did not answer');
    await expect(waiter).rejects.toMatchObject({ reason: 'arm_timeout' });
  });

  it('a 429 pause taken in one replica pauses the others; the bucket is shared', async () => {
    const a = await connect();
    const b = await connect();
    const ba = new SharedReadBudget({ connection: a.connection, rate: 3, clock: systemClock, metrics: a.metrics });
    const bb = new SharedReadBudget({ connection: b.connection, rate: 3, clock: systemClock, metrics: b.metrics });
    try {
      await a.connection.run((c) => c.del([a.connection.key('arm-read-budget'), a.connection.key('arm-pause')]));
      const grants = await Promise.all([ba.take(0), bb.take(0), ba.take(0), bb.take(0)]);
      expect(grants.filter((g) => g.kind === 'granted')).toHaveLength(3);
      ba.pause(Date.now() + 2000);
      await new Promise((r) => setTimeout(r, 100));
      expect(bb.pausedUntil()).toBeGreaterThan(Date.now() + 1500);
      expect(await bb.take(Date.now() + 5000)).toMatchObject({ kind: 'paused', retryAfterSeconds: 2 });
    } finally {
      ba.close();
      bb.close();
      await a.connection.run((c) => c.del(a.connection.key('arm-pause')));
    }
  });

  it('incrementWithExpiry counts across connections in one window that expires', async () => {
    const a = await connect();
    const b = await connect();
    const key = a.connection.key('unit-window', String(Date.now()));
    expect(await a.connection.incrementWithExpiry(key, 5, 60_000)).toMatchObject({ value: 5 });
    const second = await b.connection.incrementWithExpiry(key, 7, 1);
    expect(second?.value).toBe(12);
    expect(second!.ttlMs).toBeGreaterThan(59_000);
  });

  it('a slow server (over the timeout) is used no more, warned about once, and used again when it answers in time', async () => {
    const log = captureLog('info');
    const { connection, metrics } = await connect(50, log.log);
    const admin = createClient({ url: redis.url });
    await admin.connect();
    try {
      await admin.sendCommand(['CLIENT', 'PAUSE', '400', 'ALL']);
      expect(await connection.run((c) => c.get('x'))).toBeUndefined();
      expect(connection.available).toBe(false);
      expect(await connection.incrementWithExpiry(connection.key('slow'), 1, 1000)).toBeUndefined();
      const warnings = log.lines.filter((l) => String(l.msg).startsWith('shared cache unavailable'));
      expect(warnings).toHaveLength(1);
      const deadline = Date.now() + 5000;
      while (!connection.available && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(connection.available).toBe(true);
      expect(log.lines.some((l) => l.msg === 'shared cache in use')).toBe(true);
      expect(await metrics.registry.getSingleMetricAsString('foundry_auth_shared_cache_errors_total')).not.toContain(
        'foundry_auth_shared_cache_errors_total 0',
      );
    } finally {
      await admin.close();
    }
  });
});
