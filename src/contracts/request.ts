import type { CacheOutcome, Decision, DecisionSource } from './decision.js';
import type { Rejection } from './errors.js';
import type { Principal } from './principal.js';
import type { RouteMatch } from './route.js';

/**
 * One request to decide, as a front read it: the proxy front from its own request line, a
 * forward-auth front from the original method and target its proxy passed on (X-Original-URI,
 * X-Forwarded-Uri, Envoy's check request).
 */
export interface RequestToDecide {
  readonly method: string;
  /** The request target exactly as the client sent it: origin-form path plus query, never decoded. */
  readonly target: string;
  /** The client's header fields as received, name and value alternating (Node's `rawHeaders`): duplicates kept. */
  readonly rawHeaders: readonly string[];
  /** Whether the request carries a body: `Content-Length` above 0 or any `Transfer-Encoding`. */
  readonly hasBody: boolean;
  /**
   * The client's address as the front knows it (its socket peer, or the address its proxy passed on).
   * No rule depends on it yet; it is part of the input so that one can be added here for both fronts.
   */
  readonly peer?: string;
}

/** Timings and cache outcomes of the stages that ran, for the audit line and metrics. */
export interface DecisionTrace {
  /** Milliseconds spent authenticating (steps 5-7), when they ran. */
  readonly authMs?: number;
  /** Milliseconds spent authorizing (step 8), when it ran. */
  readonly rbacMs?: number;
  readonly tokenCache?: 'hit' | 'miss' | 'none';
  readonly rbacCache?: CacheOutcome;
  readonly decisionSource?: DecisionSource;
}

/** What the decision core answered for one request (steps 1-8). A front forwards, answers or refuses accordingly. */
export type RequestDecision =
  | {
      /** A public path: allowed without authentication, to the data plane. */
      readonly kind: 'public';
      /** The canonical path and the raw query (without `?`), from the target. */
      readonly path: string;
      readonly query: string | undefined;
    }
  | (DecisionTrace & {
      readonly kind: 'allow';
      readonly path: string;
      readonly query: string | undefined;
      readonly route: RouteMatch;
      readonly principal: Principal;
      readonly decision: Extract<Decision, { kind: 'allow' }>;
      /** The bearer token's `exp` in epoch ms; undefined for API keys. */
      readonly tokenExpiresAt: number | undefined;
    })
  | (DecisionTrace & {
      readonly kind: 'reject';
      readonly rejection: Rejection;
      /** As far as the request got before it was refused. */
      readonly path?: string;
      readonly route?: RouteMatch;
      readonly principal?: Principal;
      /** Set when authorization refused (deny or unavailable): its source, reason and, for a deny, its expiry. */
      readonly decision?: Exclude<Decision, { kind: 'allow' }>;
    });

/** Steps 1-8 for one request. A plain value when every answer was cached (the common case), a promise when a lookup was needed. */
export interface RequestDecider {
  decide(request: RequestToDecide): RequestDecision | Promise<RequestDecision>;
}
