import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every Prometheus metric the sidecar exports (SPEC section 7), on a registry of its own so that
 * tests and several servers in one process never share counters. Label values are bounded sets:
 * codes, reasons, outcomes, never principals or paths.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Requests by plane, status and code; counted with `countRequest`. */
  private readonly requestTally = new Tally(['plane', 'status', 'code']);
  readonly requests: Counter<'plane' | 'status' | 'code'> = new Counter({
    name: 'foundry_auth_requests_total',
    help: 'Requests by plane, status and error code (code "" for forwarded requests).',
    labelNames: ['plane', 'status', 'code'] as const,
    registers: [this.registry],
    collect: (): void => this.requestTally.publishTo(this.requests),
  });
  readonly authFailures = new Counter({
    name: 'foundry_auth_authentication_failures_total',
    help: 'Authentication failures by error code and reason.',
    labelNames: ['code', 'reason'] as const,
    registers: [this.registry],
  });
  /** Token-cache lookups by outcome; counted with `countTokenCache`. */
  private readonly tokenCacheTally = new Tally(['outcome']);
  readonly tokenCache: Counter<'outcome'> = new Counter({
    name: 'foundry_auth_token_cache_total',
    help: 'Verified-token cache lookups by outcome (hit, miss).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
    collect: (): void => this.tokenCacheTally.publishTo(this.tokenCache),
  });
  readonly jwksRefreshes = new Counter({
    name: 'foundry_auth_jwks_refreshes_total',
    help: 'Signing-key (discovery + JWKS) fetches by trigger (startup, background, unknown_kid) and outcome (ok, error).',
    labelNames: ['trigger', 'outcome'] as const,
    registers: [this.registry],
  });
  /** Authorization decisions by source, cache outcome and decision; counted with `countRbacLookup`. */
  private readonly rbacTally = new Tally(['source', 'cache', 'decision']);
  readonly rbacLookups: Counter<'source' | 'cache' | 'decision'> = new Counter({
    name: 'foundry_auth_rbac_lookups_total',
    help: 'Authorization decisions by source (static, arm, api-key), cache outcome (hit, miss, stale, none) and decision (allow, deny, unavailable).',
    labelNames: ['source', 'cache', 'decision'] as const,
    registers: [this.registry],
    collect: (): void => this.rbacTally.publishTo(this.rbacLookups),
  });
  readonly armCalls = new Counter({
    name: 'foundry_auth_arm_calls_total',
    help: 'ARM calls by operation (role_assignments, role_definition, deny_assignments, token) and outcome (ok, http_4xx, http_5xx, throttled, timeout, unreachable).',
    labelNames: ['operation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly armDenyAssignmentsUnreadable = new Counter({
    name: 'foundry_auth_arm_deny_assignments_unreadable_total',
    help: 'ARM lookups decided without deny assignments because the sidecar identity may not read them (assign Reader to it at the cluster).',
    registers: [this.registry],
  });
  readonly armLatency = new Histogram({
    name: 'foundry_auth_arm_call_duration_seconds',
    help: 'ARM call latency by operation.',
    labelNames: ['operation'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly armRemainingReads = new Gauge({
    name: 'foundry_auth_arm_remaining_subscription_reads',
    help: 'The last x-ms-ratelimit-remaining-subscription-reads ARM reported (its read bucket for the cluster identity).',
    registers: [this.registry],
  });
  readonly armBudgetWaits = new Counter({
    name: 'foundry_auth_arm_budget_waits_total',
    help: 'Role-assignment reads that found the --arm-read-rate budget spent and waited, by outcome (granted, spent: gave up at --rbac-timeout).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly armBudgetRemaining = new Gauge({
    name: 'foundry_auth_arm_budget_remaining_tokens',
    help: 'Tokens left in the --arm-read-rate bucket after the last read (shared across replicas with --shared-cache).',
    registers: [this.registry],
  });
  readonly sharedCacheLookups = new Counter({
    name: 'foundry_auth_shared_cache_lookups_total',
    help: 'Decision-cache misses in this process answered through --shared-cache, by outcome (hit, miss: this replica read ARM, waited: another replica read it, local: shared cache unavailable).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly sharedCacheLeaseWaits = new Counter({
    name: 'foundry_auth_shared_cache_lease_waits_total',
    help: 'Lookups that waited for another replica holding the lease on the same principal.',
    registers: [this.registry],
  });
  readonly sharedCacheErrors = new Counter({
    name: 'foundry_auth_shared_cache_errors_total',
    help: 'Shared-cache operations that failed or took longer than 50 ms (the replica then goes on with its own cache).',
    registers: [this.registry],
  });
  readonly sharedCacheUp = new Gauge({
    name: 'foundry_auth_shared_cache_up',
    help: '1 while the shared cache is in use, 0 while this replica goes on alone.',
    registers: [this.registry],
  });
  readonly upstreamLatency = new Histogram({
    name: 'foundry_auth_upstream_duration_seconds',
    help: 'Time from forwarding to the end of the upstream response, by plane.',
    labelNames: ['plane'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly upstreamFirstByte = new Histogram({
    name: 'foundry_auth_upstream_first_byte_seconds',
    help: 'Time from forwarding to the upstream response headers, by plane.',
    labelNames: ['plane'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly policyReloads = new Counter({
    name: 'foundry_auth_policy_reloads_total',
    help: 'Policy file re-reads after a change by outcome (ok; invalid and unreadable keep the last good policy).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly genAiTokens = new Counter({
    name: 'foundry_auth_gen_ai_tokens_total',
    help: 'Tokens counted per model by type (input, output); estimated counts included (the audit line says which).',
    labelNames: ['model', 'type'] as const,
    registers: [this.registry],
  });
  readonly genAiTimeToFirstToken = new Histogram({
    name: 'foundry_auth_gen_ai_time_to_first_token_seconds',
    help: 'Time from the request arriving to the first response body byte of a model request, per model.',
    labelNames: ['model'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly limitWindowFallbacks = new Counter({
    name: 'foundry_auth_limit_window_fallbacks_total',
    help: 'Limit window operations answered by the per-process windows because the shared cache failed.',
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'foundry_auth_inflight_requests',
    help: 'Requests being processed or streamed.',
    registers: [this.registry],
  });

  /** `mode` labels every series (`forward-auth`), so one dashboard reads both modes' metrics apart. */
  constructor(opts: { defaultMetrics?: boolean; mode?: string } = {}) {
    if (opts.mode !== undefined) this.registry.setDefaultLabels({ mode: opts.mode });
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'foundry_auth_' });
  }

  /** One request into `foundry_auth_requests_total`. */
  countRequest(plane: string, status: number, code: string): void {
    this.requestTally.add(`${plane}\n${status}\n${code}`, plane, status, code);
  }

  /** One verified-token cache lookup into `foundry_auth_token_cache_total`. */
  countTokenCache(outcome: 'hit' | 'miss'): void {
    this.tokenCacheTally.add(outcome, outcome);
  }

  /** One authorization decision into `foundry_auth_rbac_lookups_total`. */
  countRbacLookup(source: string, cache: string, decision: string): void {
    this.rbacTally.add(`${source}\n${cache}\n${decision}`, source, cache, decision);
  }
}

/**
 * Counts of a counter that moves on every request, kept by label values and handed to its
 * prom-client counter when the registry is read. A count is one Map lookup by a key the caller
 * builds from the label values (one key per set of values: they are bounded enums, none holds
 * the separator); prom-client's own `inc` hashed and checked a label object on every call, about
 * a microsecond per counter per request. Each read adds only what was counted since the last one,
 * so the counter keeps its own semantics (a `reset()` of it or of the registry starts from zero).
 */
class Tally {
  private readonly counts = new Map<string, { readonly labels: Record<string, string>; count: number; published: number }>();

  constructor(private readonly labelNames: readonly string[]) {}

  /** `key` stands for the label values (in `labelNames` order); they are turned into labels the first time it is seen. */
  add(key: string, a: string, b: string | number = '', c = ''): void {
    const entry = this.counts.get(key);
    if (entry !== undefined) entry.count += 1;
    else this.counts.set(key, { labels: this.labelsOf([a, String(b), c]), count: 1, published: 0 });
  }

  publishTo(counter: Counter<string>): void {
    for (const entry of this.counts.values()) {
      if (entry.count === entry.published) continue;
      counter.inc(entry.labels, entry.count - entry.published);
      entry.published = entry.count;
    }
  }

  private labelsOf(values: readonly string[]): Record<string, string> {
    return Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!]));
  }
}
