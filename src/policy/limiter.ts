import type { Principal } from '../contracts/principal.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { Clock } from '../ops/clock.js';
import type { Limits } from './policy.js';
import type { WindowIncrement, WindowStore } from './windows.js';

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;

/** What a limited principal is told in OpenAI's `x-ratelimit-*` response headers. */
export interface RateLimitState {
  readonly requests?: { readonly limit: number; readonly remaining: number; readonly resetMs: number };
  readonly tokens?: { readonly limit: number; readonly remaining: number; readonly resetMs: number };
}

export type Admission =
  | { readonly kind: 'admitted'; readonly state: RateLimitState }
  | { readonly kind: 'refused'; readonly rejection: Rejection; readonly state: RateLimitState };

/**
 * Fixed windows per principal (tenant + object ID; an API key by its key ID): requests and tokens
 * per clock minute, tokens per UTC day. A request is admitted when no window is already spent
 * (its request is counted at once); its tokens are charged when it ends, to the windows current
 * then. So the last admitted request of a window may overshoot it by its own size, as APIM's
 * `llm-token-limit` does, and requests admitted concurrently each may.
 */
export class Limiter {
  constructor(
    private readonly store: WindowStore,
    private readonly clock: Clock,
  ) {}

  admit(principal: Principal, limits: Limits): Admission | Promise<Admission> {
    const now = this.clock.now();
    const windows = this.windows(principal, now);
    const increments: WindowIncrement[] = [];
    if (limits.requestsPerMinute !== undefined) increments.push({ key: windows.requests, amount: 1, ttlMs: windows.minuteLeft });
    if (limits.tokensPerMinute !== undefined) increments.push({ key: windows.minuteTokens, amount: 0, ttlMs: windows.minuteLeft });
    if (limits.tokensPerDay !== undefined) increments.push({ key: windows.dayTokens, amount: 0, ttlMs: windows.dayLeft });
    const totals = this.store.increment(increments);
    return totals instanceof Promise
      ? totals.then((t) => this.decide(principal, limits, windows, t))
      : this.decide(principal, limits, windows, totals);
  }

  /** Charges a finished request's tokens to the windows current now; resolves when counted. */
  async charge(principal: Principal, limits: Limits, tokens: number): Promise<void> {
    if (tokens <= 0 || (limits.tokensPerMinute === undefined && limits.tokensPerDay === undefined)) return;
    const windows = this.windows(principal, this.clock.now());
    const increments: WindowIncrement[] = [];
    if (limits.tokensPerMinute !== undefined) increments.push({ key: windows.minuteTokens, amount: tokens, ttlMs: windows.minuteLeft });
    if (limits.tokensPerDay !== undefined) increments.push({ key: windows.dayTokens, amount: tokens, ttlMs: windows.dayLeft });
    await this.store.increment(increments);
  }

  private windows(principal: Principal, now: number): Windows {
    const who = principal.tid === '' ? principal.oid : `${principal.tid}/${principal.oid}`;
    const minute = Math.floor(now / MINUTE_MS);
    const day = Math.floor(now / DAY_MS);
    return {
      requests: `limit:${who}:rpm:${minute}`,
      minuteTokens: `limit:${who}:tpm:${minute}`,
      dayTokens: `limit:${who}:tpd:${day}`,
      minuteLeft: (minute + 1) * MINUTE_MS - now,
      dayLeft: (day + 1) * DAY_MS - now,
    };
  }

  private decide(principal: Principal, limits: Limits, windows: Windows, totals: readonly number[]): Admission {
    let i = 0;
    const requests = limits.requestsPerMinute !== undefined ? totals[i++]! : undefined;
    const minuteTokens = limits.tokensPerMinute !== undefined ? totals[i++]! : undefined;
    const dayTokens = limits.tokensPerDay !== undefined ? totals[i]! : undefined;
    const state: { requests?: Mutable<Window>; tokens?: Mutable<Window> } = {};
    if (requests !== undefined)
      state.requests = {
        limit: limits.requestsPerMinute!,
        remaining: Math.max(0, limits.requestsPerMinute! - requests),
        resetMs: windows.minuteLeft,
      };
    // The token headers describe the window closest to being spent.
    if (minuteTokens !== undefined)
      state.tokens = { limit: limits.tokensPerMinute!, remaining: Math.max(0, limits.tokensPerMinute! - minuteTokens), resetMs: windows.minuteLeft };
    if (dayTokens !== undefined) {
      const day = { limit: limits.tokensPerDay!, remaining: Math.max(0, limits.tokensPerDay! - dayTokens), resetMs: windows.dayLeft };
      if (state.tokens === undefined || day.remaining < state.tokens.remaining) state.tokens = day;
    }
    const who = principalName(principal);
    if (dayTokens !== undefined && dayTokens >= limits.tokensPerDay!) {
      return refused(
        'token_limit_exceeded',
        `${who} has used its ${limits.tokensPerDay} tokens per day (${dayTokens} counted today, UTC)`,
        windows.dayLeft,
        state,
      );
    }
    if (minuteTokens !== undefined && minuteTokens >= limits.tokensPerMinute!) {
      return refused(
        'token_limit_exceeded',
        `${who} has used its ${limits.tokensPerMinute} tokens per minute (${minuteTokens} counted this minute)`,
        windows.minuteLeft,
        state,
      );
    }
    if (requests !== undefined && requests > limits.requestsPerMinute!) {
      return refused('request_limit_exceeded', `${who} has made its ${limits.requestsPerMinute} requests this minute`, windows.minuteLeft, state);
    }
    return { kind: 'admitted', state };
  }
}

interface Window {
  readonly limit: number;
  readonly remaining: number;
  readonly resetMs: number;
}
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface Windows {
  readonly requests: string;
  readonly minuteTokens: string;
  readonly dayTokens: string;
  readonly minuteLeft: number;
  readonly dayLeft: number;
}

function refused(code: 'token_limit_exceeded' | 'request_limit_exceeded', what: string, resetMs: number, state: RateLimitState): Admission {
  const seconds = Math.max(1, Math.ceil(resetMs / 1000));
  return {
    kind: 'refused',
    rejection: rejection(code, `${what}; try again in ${seconds} s`, {
      retryAfterSeconds: seconds,
      reason: code === 'token_limit_exceeded' ? 'tokens' : 'requests',
    }),
    state,
  };
}

/** The principal as the policy file names it: `<object ID>` (tenant too) or the API key ID. */
export function principalName(principal: Principal): string {
  return principal.type === 'api-key' ? `API key ${principal.oid}` : `${principal.type} ${principal.oid} (tenant ${principal.tid})`;
}

/** OpenAI's `x-ratelimit-*` headers as name/value pairs. */
export function rateLimitHeaders(state: RateLimitState): [string, string][] {
  const headers: [string, string][] = [];
  if (state.requests !== undefined) {
    headers.push(
      ['x-ratelimit-limit-requests', String(state.requests.limit)],
      ['x-ratelimit-remaining-requests', String(state.requests.remaining)],
      ['x-ratelimit-reset-requests', resetText(state.requests.resetMs)],
    );
  }
  if (state.tokens !== undefined) {
    headers.push(
      ['x-ratelimit-limit-tokens', String(state.tokens.limit)],
      ['x-ratelimit-remaining-tokens', String(state.tokens.remaining)],
      ['x-ratelimit-reset-tokens', resetText(state.tokens.resetMs)],
    );
  }
  return headers;
}

/** OpenAI's duration form: `1s`, `6m0s`, `2h3m0s` (whole seconds, rounded up). */
export function resetText(ms: number): string {
  const total = Math.max(1, Math.ceil(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
