import type { Principal } from '../contracts/principal.js';
import type { CacheOutcome, DecisionSource } from '../contracts/decision.js';
import type { ErrorCode } from '../contracts/errors.js';
import type { RequestDecision } from '../contracts/request.js';
import type { Plane } from '../contracts/route.js';
import type { PolicyRecord } from '../policy/enforce.js';
import { pino } from 'pino';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';

/** What the pipeline learned about one request; filled stage by stage, written once when the response ends. */
export interface RequestRecord {
  readonly requestId: string;
  /** Forward-auth: the check's method until the original request's method is read. */
  method: string;
  /** Milliseconds (performance.now()) when the request arrived. */
  readonly startedAt: number;
  /** Set in forward-auth mode (the request is a proxy's check); absent in proxy mode. */
  readonly mode?: 'forward-auth';
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
  /** Set when a policy file is in force: the model, its tokens and time to first token. */
  policy?: PolicyRecord;
}

/** What the decision core found, into the audit record (both fronts). */
export function recordDecision(record: RequestRecord, decision: RequestDecision): void {
  record.path = decision.path;
  if (decision.kind === 'public') {
    record.plane = 'data';
    record.route = 'public';
    record.decision = 'public';
    return;
  }
  const route = decision.route;
  if (route !== undefined) {
    record.route = route.name;
    record.plane = route.plane;
    record.action = route.action;
  }
  record.principal = decision.principal;
  record.authMs = decision.authMs;
  record.rbacMs = decision.rbacMs;
  record.tokenCache = decision.tokenCache;
  record.rbacCache = decision.rbacCache;
  record.decisionSource = decision.decisionSource;
  if (decision.kind === 'allow') record.decision = 'allow';
  else if (decision.decision !== undefined) record.decision = decision.decision.kind;
}

/** pino's own output stream: the audit line goes into the same buffered destination as every other log line. */
interface LineSink {
  write(line: string): unknown;
}

const q = JSON.stringify;

/**
 * Milliseconds to the microsecond as JSON text, from integer microseconds: integer-to-text costs a
 * fraction of a double's shortest-form conversion, three times per audit line.
 */
function ms(value: number): string {
  const micros = Math.round(value * 1000);
  if (!(micros >= 0 && micros <= Number.MAX_SAFE_INTEGER)) return String(micros / 1000);
  const whole = Math.floor(micros / 1000);
  const fraction = micros - whole * 1000;
  if (fraction === 0) return `${whole}`;
  return `${whole}.${fraction < 10 ? '00' : fraction < 100 ? '0' : ''}${fraction}`;
}

/**
 * One JSON line per request (SPEC section 7). The path is logged without its query string; the
 * principal by type, object ID, tenant and app ID. Nothing here can hold a token, key or secret.
 *
 * The line is serialized here, field by field, and written to the logger's destination: it is
 * the one log line on the hot path, and pino's generic serializer cost ~3x as much per request
 * (docs/PERFORMANCE.md). Same shape as pino's lines: `level`, `time`, `msg`, then the fields.
 * Each front holds one: the destination and the level are looked up once, not per request.
 */
export class AuditLog {
  /** Undefined when the log level is above info: the line is not built at all. */
  private readonly sink: LineSink | undefined;

  constructor(
    log: Logger,
    private readonly metrics: Metrics,
  ) {
    this.sink = log.isLevelEnabled('info') ? (log as unknown as Record<symbol, LineSink>)[pino.symbols.streamSym] : undefined;
  }

  /** The request's count in `foundry_auth_requests_total` and, at info, its audit line. */
  write(record: RequestRecord, status: number, endedAt: number): void {
    this.metrics.countRequest(record.plane ?? 'none', status, record.code ?? '');
    this.sink?.write(auditLine(record, status, endedAt, Date.now()));
  }
}

/** The audit line's JSON text, newline-terminated. Every value that came from a request is escaped by JSON.stringify. */
export function auditLine(r: RequestRecord, status: number, endedAt: number, nowMs: number): string {
  let line = `{"level":30,"time":${nowMs},"msg":"request","requestId":"${r.requestId}"`;
  if (r.mode !== undefined) line += `,"mode":"${r.mode}"`;
  line += `,"method":${q(r.method)}`;
  if (r.path !== undefined) line += `,"path":${q(r.path)}`;
  if (r.route !== undefined) line += `,"route":${q(r.route)}`;
  if (r.plane !== undefined) line += `,"plane":"${r.plane}"`;
  if (r.action !== undefined) line += `,"action":${q(r.action)}`;
  const p = r.principal;
  if (p !== undefined) {
    line += `,"principal":{"type":"${p.type}","oid":${q(p.oid)}`;
    if (p.tid !== '') line += `,"tid":${q(p.tid)}`;
    if (p.appId !== undefined) line += `,"appid":${q(p.appId)}`;
    line += '}';
  }
  if (r.decision !== undefined) line += `,"decision":"${r.decision}"`;
  if (r.decisionSource !== undefined) line += `,"decisionSource":"${r.decisionSource}"`;
  line += `,"status":${status}`;
  if (r.code !== undefined) line += `,"code":"${r.code}"`;
  if (r.reason !== undefined) line += `,"reason":${q(r.reason)}`;
  if (r.upstreamOutcome !== undefined) line += `,"upstream":${q(r.upstreamOutcome)}`;
  if (r.clientAborted === true) line += ',"clientAborted":true';
  const policy = r.policy;
  if (policy !== undefined) {
    if (policy.model !== undefined) line += `,"model":${q(policy.model)}`;
    const t = policy.tokens;
    if (t !== undefined) line += `,"tokens":{"input":${t.input},"output":${t.output},"estimated":${t.estimated}}`;
  }
  line += ',"timings":{';
  let sep = '';
  if (r.authMs !== undefined) {
    line += `"authMs":${ms(r.authMs)}`;
    sep = ',';
  }
  if (r.rbacMs !== undefined) {
    line += `${sep}"rbacMs":${ms(r.rbacMs)}`;
    sep = ',';
  }
  if (r.upstreamFirstByteMs !== undefined) {
    line += `${sep}"upstreamFirstByteMs":${ms(r.upstreamFirstByteMs)}`;
    sep = ',';
  }
  if (r.policy?.timeToFirstTokenMs !== undefined) {
    line += `${sep}"timeToFirstTokenMs":${ms(r.policy.timeToFirstTokenMs)}`;
    sep = ',';
  }
  line += `${sep}"totalMs":${ms(endedAt - r.startedAt)}},"cache":{`;
  sep = '';
  if (r.tokenCache !== undefined) {
    line += `"token":"${r.tokenCache}"`;
    sep = ',';
  }
  if (r.rbacCache !== undefined) line += `${sep}"rbac":"${r.rbacCache}"`;
  return `${line}}}\n`;
}
