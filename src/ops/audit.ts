import type { Principal } from '../authn/principal.js';
import type { CacheOutcome, DecisionSource } from '../authz/decision.js';
import type { ErrorCode } from '../http/errors.js';
import type { Plane } from '../http/route.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

/** What the pipeline learned about one request; filled stage by stage, written once when the response ends. */
export interface RequestRecord {
  readonly requestId: string;
  readonly method: string;
  /** Milliseconds (performance.now()) when the request arrived. */
  readonly startedAt: number;
  path?: string;
  route?: string;
  plane?: Plane;
  action?: string;
  principal?: Principal;
  decision?: 'allow' | 'deny' | 'unavailable' | 'public' | 'rejected';
  decisionSource?: DecisionSource;
  code?: ErrorCode;
  reason?: string;
  authMs?: number;
  rbacMs?: number;
  upstreamFirstByteMs?: number;
  tokenCache?: 'hit' | 'miss' | 'none';
  rbacCache?: CacheOutcome;
  upstreamOutcome?: string;
  clientAborted?: boolean;
}

const round = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : Math.round(ms * 1000) / 1000);

/**
 * One JSON line per request (SPEC section 7). The path is logged without its query string; the
 * principal by type, object ID, tenant and app ID. Nothing here can hold a token, key or secret.
 */
export function writeAudit(log: Logger, metrics: Metrics, record: RequestRecord, status: number, endedAt: number): void {
  metrics.requests.inc({ plane: record.plane ?? 'none', status: String(status), code: record.code ?? '' });
  if (!log.isLevelEnabled('info')) return;
  const p = record.principal;
  log.info(
    {
      requestId: record.requestId,
      method: record.method,
      path: record.path,
      route: record.route,
      plane: record.plane,
      action: record.action,
      principal: p ? { type: p.type, oid: p.oid, tid: p.tid || undefined, appid: p.appId } : undefined,
      decision: record.decision,
      decisionSource: record.decisionSource,
      status,
      code: record.code,
      reason: record.reason,
      upstream: record.upstreamOutcome,
      clientAborted: record.clientAborted || undefined,
      timings: {
        authMs: round(record.authMs),
        rbacMs: round(record.rbacMs),
        upstreamFirstByteMs: round(record.upstreamFirstByteMs),
        totalMs: round(endedAt - record.startedAt),
      },
      cache: { token: record.tokenCache, rbac: record.rbacCache },
    },
    'request',
  );
}
