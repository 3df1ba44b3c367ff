import { randomUUID } from 'node:crypto';
import { createClient } from 'redis';
import type { SharedCacheConfig } from '../config/config.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';

/**
 * The one connection to the shared cache (`--shared-cache`, Redis or Valkey) of a replica: a
 * command client and a subscriber for the replicas' notification channel. The shared cache is an
 * accelerator, never a dependency: every operation answers `undefined` instead of throwing when
 * Redis is down, refuses the password or takes longer than `--shared-cache-timeout` (50 ms), and the caller then goes on
 * alone. An outage is warned about once, counted in `foundry_auth_shared_cache_errors_total`, and
 * ends by itself when Redis answers again (node-redis reconnects; a slow server is probed).
 *
 * Other features use the same connection (token-limit windows): `incrementWithExpiry` and `key`.
 */

/** How often a slow (but connected) server is probed before it is used again. */
const PROBE_INTERVAL_MS = 250;
/** Longest wait for the first connection at start-up; past it the replica starts alone and joins later. */
const CONNECT_WAIT_MS = 2000;
const KEY_PREFIX = 'foundry-auth';
const SLOW = Symbol('slow');
const CHANNEL = `${KEY_PREFIX}:events`;

type Client = ReturnType<typeof createClient>;

/** A notification between replicas on the shared channel; `from` is the sending replica. */
export interface SharedMessage {
  readonly kind: string;
  readonly from: string;
  readonly [field: string]: unknown;
}

export interface SharedConnectionOptions {
  readonly config: SharedCacheConfig;
  readonly clock: Clock;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Longest wait for the first connection (default 2 s). */
  readonly connectWaitMs?: number;
}

const INCREMENT_WITH_EXPIRY = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {v, ttl}`;

export class SharedConnection {
  /** This replica's name on the channel (random per process). */
  readonly replicaId = randomUUID();
  private readonly client: Client;
  private readonly subscriber: Client;
  private readonly timeoutMs: number;
  private clientReady = false;
  private subscriberReady = false;
  private slow = false;
  private probe: NodeJS.Timeout | undefined;
  private outage: { readonly since: number; warned: boolean } | undefined = { since: 0, warned: false };
  private closed = false;
  private readonly messageHandlers = new Set<(message: SharedMessage) => void>();
  private readonly availabilityHandlers = new Set<(available: boolean) => void>();

  private constructor(private readonly opts: SharedConnectionOptions) {
    this.timeoutMs = opts.config.timeoutMs;
    const { url, password } = opts.config;
    this.client = createClient({
      url: url.href,
      ...(password !== undefined ? { password } : {}),
      name: 'foundry-auth',
      // Fail at once while disconnected instead of queueing: the caller goes on alone.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 1000,
        reconnectStrategy: reconnectDelay,
        ...(url.protocol === 'rediss:' ? { tls: true as const, servername: url.hostname } : {}),
      },
    });
    this.subscriber = this.client.duplicate();
    this.watch(this.client, (ready) => (this.clientReady = ready));
    this.watch(this.subscriber, (ready) => (this.subscriberReady = ready));
    opts.metrics.sharedCacheUp.set(0);
  }

  /**
   * Connects (waiting at most a couple of seconds: a replica never waits for Redis to start) and
   * subscribes to the replicas' channel. Never throws for Redis being down or refusing the password.
   */
  static async open(opts: SharedConnectionOptions): Promise<SharedConnection> {
    const connection = new SharedConnection(opts);
    await connection.connect(opts.connectWaitMs ?? CONNECT_WAIT_MS);
    return connection;
  }

  /** True while the shared cache is in use; false while this replica goes on alone. */
  get available(): boolean {
    return this.clientReady && this.subscriberReady && !this.slow && !this.closed;
  }

  /** A key in the product's namespace: `foundry-auth:<part>:<part>...`. */
  key(...parts: readonly string[]): string {
    return [KEY_PREFIX, ...parts].join(':');
  }

  /** Runs one operation; `undefined` when the shared cache is unavailable, failed or was slow (counted, warned once per outage). */
  async run<T>(operation: (client: Client) => Promise<T>): Promise<T | undefined> {
    if (!this.available) return undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const pending = operation(this.client);
      // A late answer is dropped; its failure must not surface as an unhandled rejection.
      pending.catch(() => {});
      const late = new Promise<typeof SLOW>((resolve) => {
        // Judged after the event loop's I/O phase: a reply already received while this process was
        // busy (event-loop lag) is not mistaken for a slow server.
        timer = setTimeout(() => setImmediate(() => resolve(SLOW)), this.timeoutMs);
      });
      const answer = await Promise.race([pending, late]);
      if (answer === SLOW) throw new Error(`no answer within ${this.timeoutMs} ms`);
      return answer;
    } catch (err) {
      this.failed(err);
      return undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Atomically adds `by` to the integer at `key` and, when the key had no expiry (it was new),
   * expires it after `ttlMs`: a fixed window counter shared by every replica. Answers the new value
   * and the milliseconds left of the window, or `undefined` when the shared cache is unavailable
   * (the caller then counts in its own process).
   */
  async incrementWithExpiry(key: string, by: number, ttlMs: number): Promise<{ readonly value: number; readonly ttlMs: number } | undefined> {
    const reply = await this.run((c) =>
      c.eval(INCREMENT_WITH_EXPIRY, { keys: [key], arguments: [String(Math.trunc(by)), String(Math.max(1, Math.ceil(ttlMs)))] }),
    );
    if (!Array.isArray(reply) || reply.length !== 2) return undefined;
    return { value: Number(reply[0]), ttlMs: Number(reply[1]) };
  }

  /** Sends a notification to every replica (this one included); false when it could not be sent. */
  async publish(message: { readonly kind: string; readonly [field: string]: unknown }): Promise<boolean> {
    const sent = await this.run((c) => c.publish(CHANNEL, JSON.stringify({ ...message, from: this.replicaId })));
    return sent !== undefined;
  }

  /** Calls `handler` with every notification from any replica; returns the unsubscribe function. */
  onMessage(handler: (message: SharedMessage) => void): () => void {
    this.messageHandlers.add(handler);
    return () => this.messageHandlers.delete(handler);
  }

  /** Calls `handler` whenever the shared cache becomes available or unavailable. */
  onAvailability(handler: (available: boolean) => void): () => void {
    this.availabilityHandlers.add(handler);
    return () => this.availabilityHandlers.delete(handler);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probe);
    this.probe = undefined;
    for (const c of [this.client, this.subscriber]) {
      try {
        if (c.isOpen) c.destroy();
      } catch {
        // already closed
      }
    }
  }

  private async connect(waitMs: number): Promise<void> {
    const subscribed = (async () => {
      await this.subscriber.connect();
      await this.subscriber.subscribe(CHANNEL, (text) => this.deliver(text));
    })();
    const connected = Promise.all([this.client.connect(), subscribed]);
    // node-redis keeps retrying in the background; a failure is already reported through 'error'.
    connected.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
      timer.unref();
    });
    await Promise.race([
      connected.then(
        () => undefined,
        () => undefined,
      ),
      waited,
    ]);
    clearTimeout(timer);
    if (!this.available) this.startOutage('the shared cache did not answer at start-up');
  }

  private watch(client: Client, setReady: (ready: boolean) => void): void {
    client.on('ready', () => {
      setReady(true);
      this.changed();
    });
    client.on('end', () => {
      setReady(false);
      this.changed();
    });
    client.on('error', (err: unknown) => {
      setReady(false);
      this.opts.metrics.sharedCacheErrors.inc();
      this.startOutage(describe(err));
      this.changed();
    });
  }

  private failed(err: unknown): void {
    this.opts.metrics.sharedCacheErrors.inc();
    if (this.closed) return;
    // A timeout on a live connection: the server is slow. Stop using it and probe until it answers in time again.
    this.slow = true;
    this.startOutage(describe(err));
    this.changed();
    this.probe ??= setInterval(() => void this.probeOnce(), PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  private async probeOnce(): Promise<void> {
    if (!this.clientReady || this.closed) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => setImmediate(() => reject(new Error('slow'))), this.timeoutMs);
      });
      await Promise.race([this.client.ping(), late]);
      clearInterval(this.probe);
      this.probe = undefined;
      this.slow = false;
      this.changed();
    } catch {
      this.opts.metrics.sharedCacheErrors.inc();
    } finally {
      clearTimeout(timer);
    }
  }

  private startOutage(reason: string): void {
    if (this.closed) return;
    this.outage ??= { since: this.opts.clock.now(), warned: false };
    if (this.outage.warned) return;
    this.outage.warned = true;
    this.opts.log.warn(
      { sharedCache: redactedUrl(this.opts.config.url), reason, fix: fixFor(reason) },
      'shared cache unavailable: this replica goes on with its own decision cache and its share of the ARM read budget until it answers again',
    );
  }

  private changed(): void {
    const available = this.available;
    this.opts.metrics.sharedCacheUp.set(available ? 1 : 0);
    if (available && this.outage !== undefined) {
      const since = this.outage.since;
      this.outage = undefined;
      this.opts.log.info(
        { sharedCache: redactedUrl(this.opts.config.url), ...(since > 0 ? { unavailableMs: this.opts.clock.now() - since } : {}) },
        'shared cache in use',
      );
    } else if (!available && !this.closed) {
      this.outage ??= { since: this.opts.clock.now(), warned: false };
    }
    for (const handler of this.availabilityHandlers) handler(available);
  }

  private deliver(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (
      typeof message !== 'object' ||
      message === null ||
      typeof (message as SharedMessage).kind !== 'string' ||
      typeof (message as SharedMessage).from !== 'string'
    )
      return;
    for (const handler of this.messageHandlers) handler(message as SharedMessage);
  }
}

/** Reconnect after 100 ms, doubling up to 2 s: a restarted Redis is used again within about 2 s. */
function reconnectDelay(retries: number): number {
  return Math.min(100 * 2 ** Math.min(retries, 5), 2000);
}

/** The URL without user and password, for logs. */
export function redactedUrl(url: URL): string {
  const shown = new URL(url.href);
  shown.username = '';
  shown.password = '';
  return shown.href;
}

function fixFor(reason: string): string {
  if (/WRONGPASS|NOAUTH|invalid password|AUTH/i.test(reason)) {
    return 'the shared cache refused the credentials: check the user and password in --shared-cache or the file --shared-cache-password-file names';
  }
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|timeout/i.test(reason))
    return 'check that Redis is running and reachable at the --shared-cache address';
  return 'check the Redis server named by --shared-cache';
}

function describe(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).slice(0, 300);
}
