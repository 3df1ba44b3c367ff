import type { BudgetGrant, ReadBudget } from '../azure/arm.js';
import { LocalReadBudget, realSleep, secondsUntil, waitForGrant, type Sleep } from '../authz/read-budget.js';
import type { Clock } from '../ops/clock.js';
import type { Metrics } from '../ops/metrics.js';
import type { SharedConnection, SharedMessage } from './connection.js';

/**
 * `--arm-read-rate` across replicas: one token bucket in Redis (a Lua script on the server's own
 * clock, so replicas' clocks do not matter), and the pause after an ARM 429 stored in Redis and
 * announced to every replica. While the shared cache is unavailable each replica takes from its own
 * bucket refilled at its share of the rate: the rate divided by the replicas last seen alive (every
 * replica renews its presence each second), so N replicas alone still stay within the budget.
 */

const HEARTBEAT_INTERVAL_MS = 1000;
/** A replica not heard from for this long no longer counts toward the share. */
const REPLICA_EXPIRY_MS = 5000;

/** KEYS: bucket, pause. ARGV: rate per second, capacity. Returns {granted 1|0|-1 (paused), wait or pause ms, tokens left}. */
const TAKE = `
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {-1, pause, 0} end
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then tokens = capacity; at = now end
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate / 1000)
local granted = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  granted = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity * 1000 / rate) + 1000)
return {granted, wait, math.floor(tokens)}`;

/** KEYS: replicas (sorted set). ARGV: replica id, expiry ms. Returns the number of live replicas. */
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return redis.call('ZCARD', KEYS[1])`;

export interface SharedReadBudgetOptions {
  readonly connection: SharedConnection;
  /** Reads per second for all replicas together. */
  readonly rate: number;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly sleep?: Sleep;
}

export class SharedReadBudget implements ReadBudget {
  /** This replica's own bucket, used while the shared cache is unavailable. */
  readonly alone: LocalReadBudget;
  private replicas = 1;
  private pausedUntilMs = 0;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly bucketKey: string;
  private readonly pauseKey: string;
  private readonly replicasKey: string;
  private readonly sleep: Sleep;

  constructor(private readonly opts: SharedReadBudgetOptions) {
    const { connection } = opts;
    this.sleep = opts.sleep ?? realSleep;
    this.alone = new LocalReadBudget({ rate: opts.rate, clock: opts.clock, metrics: opts.metrics, sleep: this.sleep });
    this.bucketKey = connection.key('arm-read-budget');
    this.pauseKey = connection.key('arm-pause');
    this.replicasKey = connection.key('replicas');
    connection.onMessage((m) => this.received(m));
    connection.onAvailability((available) => {
      if (available) void this.beat();
      else this.alone.bucket.drain();
    });
    this.heartbeat = setInterval(() => void this.beat(), HEARTBEAT_INTERVAL_MS);
    this.heartbeat.unref();
    void this.beat();
  }

  /** Replicas counted in the last heartbeat (this one included): the divisor of the share used alone. */
  get replicaCount(): number {
    return this.replicas;
  }

  take(deadlineMs: number): Promise<BudgetGrant> {
    const { connection, clock, metrics } = this.opts;
    return waitForGrant(
      async () => {
        const now = clock.now();
        const paused = this.pausedUntil();
        if (paused > now) return { kind: 'grant', grant: { kind: 'paused', retryAfterSeconds: secondsUntil(paused, now) } };
        const reply = await connection.run((c) =>
          c.eval(TAKE, { keys: [this.bucketKey, this.pauseKey], arguments: [String(this.opts.rate), String(Math.max(1, this.opts.rate))] }),
        );
        if (!Array.isArray(reply) || reply.length !== 3) {
          // Unavailable: this replica's own share; its answer is final for this attempt.
          return { kind: 'grant', grant: await this.alone.take(deadlineMs) };
        }
        const [granted, ms, left] = reply.map(Number) as [number, number, number];
        if (granted === -1) {
          this.pausedUntilMs = Math.max(this.pausedUntilMs, now + ms);
          return { kind: 'grant', grant: { kind: 'paused', retryAfterSeconds: secondsUntil(now + ms, now) } };
        }
        if (granted === 1) {
          metrics.armBudgetRemaining.set(left);
          return { kind: 'grant', grant: { kind: 'granted' } };
        }
        return { kind: 'wait', waitMs: Math.max(1, ms) };
      },
      deadlineMs,
      clock,
      this.sleep,
      metrics,
    );
  }

  /** A 429: pause here at once, and in every replica through Redis and the channel. */
  pause(untilMs: number): void {
    this.pausedUntilMs = Math.max(this.pausedUntilMs, untilMs);
    this.alone.pause(untilMs);
    const ms = Math.ceil(untilMs - this.opts.clock.now());
    if (ms <= 0) return;
    const { connection } = this.opts;
    void connection.run((c) => c.set(this.pauseKey, '1', { expiration: { type: 'PX', value: ms } }));
    void connection.publish({ kind: 'arm-pause', ms });
  }

  pausedUntil(): number {
    return Math.max(this.pausedUntilMs, this.alone.pausedUntil());
  }

  close(): void {
    clearInterval(this.heartbeat);
  }

  private async beat(): Promise<void> {
    const { connection } = this.opts;
    const count = await connection.run((c) =>
      c.eval(HEARTBEAT, { keys: [this.replicasKey], arguments: [connection.replicaId, String(REPLICA_EXPIRY_MS)] }),
    );
    if (typeof count !== 'number' || count < 1 || count === this.replicas) return;
    this.replicas = count;
    this.alone.bucket.setRate(this.opts.rate / count);
  }

  private received(message: SharedMessage): void {
    if (message.kind !== 'arm-pause' || typeof message.ms !== 'number' || !Number.isFinite(message.ms) || message.ms <= 0) return;
    // Relative to receipt: replicas' clocks need not agree. Bounded like any Retry-After.
    const until = this.opts.clock.now() + Math.min(message.ms, 3_600_000);
    this.pausedUntilMs = Math.max(this.pausedUntilMs, until);
    this.alone.pause(until);
  }
}
