import type { Principal } from './principal.js';
import type { RouteMatch } from './route.js';

/** Where a decision came from, for the audit line and metrics. */
export type DecisionSource = 'api-key' | 'static' | 'arm';
/** How the decision cache answered: `hit` (fresh), `miss` (looked up now), `stale` (past TTL, used under stale-if-error), `none` (no cache involved). */
export type CacheOutcome = 'hit' | 'miss' | 'stale' | 'none';

export type Decision =
  | {
      readonly kind: 'allow';
      readonly source: DecisionSource;
      readonly cache: CacheOutcome;
      readonly role?: string;
      /** When the cached decision stops being fresh (the clock's epoch ms); absent for API keys, which are not cached. */
      readonly expiresAt?: number;
    }
  | {
      readonly kind: 'deny';
      readonly source: DecisionSource;
      readonly cache: CacheOutcome;
      /** As for allow: when the cached deny stops being fresh. */
      readonly expiresAt?: number;
      /** Names the principal's object ID, the required action, the scope and the built-in roles that would grant it. */
      readonly message: string;
      /** `no_assignment`, `not_granted`, `deny_assignment`, `condition_only` (evaluate.ts), `api_key_control_plane`, `invalid_principal` (authorizer.ts). */
      readonly reason: string;
    }
  | {
      readonly kind: 'unavailable';
      readonly source: DecisionSource;
      /** What failed and how to fix it (`arm_unreachable`, `arm_timeout`, `arm_5xx`, `arm_throttled`, `identity_refused`, `identity_token`). */
      readonly reason: string;
      readonly message: string;
      readonly retryAfterSeconds?: number;
    };

/** Decides whether an authenticated principal may perform a route's action at the configured scope. */
export interface Authorizer {
  /** A plain Decision when the decision cache answers (the common case), a promise when a lookup is needed. */
  authorize(principal: Principal, route: RouteMatch): Decision | Promise<Decision>;
  /** Readiness: null when ready, otherwise what is missing (e.g. the sidecar's ARM token was never obtained). */
  readiness(): Promise<string | null>;
  close(): Promise<void>;
}
