import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ForwardAuthConfig } from '../config/config.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { RequestDecider, RequestDecision } from '../contracts/request.js';
import { AuditLog, recordDecision, type RequestRecord } from '../http/audit.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { Answers } from './answer.js';
import { originalRequestReader, type OriginalRequestReader } from './original-request.js';
import { TrustedProxies } from './trusted-proxies.js';

export interface ForwardAuthOptions {
  /** Steps 1-8: the same decision core the proxy front calls. */
  readonly decider: RequestDecider;
  readonly forwardAuth: ForwardAuthConfig;
  readonly forwardAuthorization: boolean;
  readonly clock: Clock;
  /** `--rbac-deny-ttl`: the longest a proxy may reuse a 403. */
  readonly denyTtlMs: number;
  /**
   * `--keep-alive-timeout`: how long a proxy's idle connection stays open. The default (65 minutes)
   * is longer than nginx (60 s), Traefik (90 s), Caddy (2 min) and Envoy (1 h) keep theirs, so the
   * proxy always closes first and never sends a check down a connection foundry-auth is closing
   * (Envoy answers such a check with its status_on_error).
   */
  readonly keepAliveTimeoutMs: number;
  readonly log: Logger;
  readonly metrics: Metrics;
}

/**
 * The check listener's node:http server: a Host header required, duplicate headers kept apart,
 * 30 s for the headers, 60 s for a whole check, the keep-alive of `--keep-alive-timeout`. The
 * bench's floor (bench/bare-check.mjs) is built with it too, so it measures the same server.
 */
export function createCheckServer(onRequest: RequestListener, keepAliveTimeoutMs: number): Server {
  const server = createServer({ requireHostHeader: true, joinDuplicateHeaders: false, connectionsCheckingInterval: 1000 }, onRequest);
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  server.maxHeadersCount = 0;
  return server;
}

/** An API-key allow is not held by the decision cache; the key file is re-read this often, so a removed key is gone within it. */
const API_KEY_ANSWER_SECONDS = 5;

/**
 * The forward-auth front: answers a proxy's authorization check about an original request that
 * the proxy forwards itself. Top to bottom: trusted peer -> this listener's own checks -> original
 * method and target (per profile) -> the decision core (steps 1-8, as in proxy mode) -> answer.
 * There is no step 9, and the check's body is never read.
 */
export class ForwardAuthServer {
  readonly server: Server;
  private draining = false;
  private readonly trusted: TrustedProxies;
  private readonly readOriginal: OriginalRequestReader;
  private readonly answers: Answers;
  private readonly audit: AuditLog;

  constructor(private readonly opts: ForwardAuthOptions) {
    this.trusted = new TrustedProxies(opts.forwardAuth.trustedProxies, opts.forwardAuth.socket !== undefined);
    this.readOriginal = originalRequestReader(opts.forwardAuth);
    this.audit = new AuditLog(opts.log, opts.metrics);
    this.answers = new Answers({ forwardAuthorization: opts.forwardAuthorization, accelExpires: opts.forwardAuth.profile === 'nginx' });
    this.server = createCheckServer(this.onRequest, opts.keepAliveTimeoutMs);
    // A check's body is never read, so `Expect: 100-continue` gets the answer instead of a 100.
    this.server.on('checkContinue', this.onRequest);
    this.server.on('connect', this.onConnect);
    this.server.on('clientError', this.onClientError);
  }

  /** SIGTERM: every answer from now on closes its connection; the caller stops the listener. */
  startDraining(): void {
    this.draining = true;
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const record: RequestRecord = { requestId: randomUUID(), method: req.method ?? '', startedAt: performance.now(), mode: 'forward-auth' };
    const answered = this.check(req, res, record);
    if (answered === undefined) {
      // Answered from the caches within this call: the answer is written, nothing is in flight to wait for.
      this.audit.write(record, res.statusCode, performance.now());
      return;
    }
    this.opts.metrics.inflight.inc();
    res.on('close', () => {
      if (!res.writableFinished) record.clientAborted = true;
      this.opts.metrics.inflight.dec();
      this.audit.write(record, res.statusCode, performance.now());
    });
    answered.catch((err: unknown) => {
      // A bug, not a user error: log it (no request data beyond the ID) and fail closed.
      this.opts.log.error(
        { requestId: record.requestId, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) },
        'forward-auth check failed',
      );
      if (!res.headersSent)
        this.refuse(req, res, record, rejection('internal_error', 'internal error in foundry-auth; its log has the details under this x-request-id'));
      else res.destroy();
    });
  };

  /** Synchronous when the decision core answers from its caches: no promise on the hot path. */
  private check(req: IncomingMessage, res: ServerResponse, record: RequestRecord): void | Promise<void> {
    // Only the proxies named in --trusted-proxies may ask; anyone else could forge the original request.
    // Its connection ends with the answer: only a trusted proxy holds one open for the long keep-alive.
    if (!this.trusted.trusts(req.socket)) {
      return this.refuse(
        req,
        res,
        record,
        rejection('untrusted_proxy', 'this address is not in --trusted-proxies: only the configured proxies may ask for authorization decisions', {
          reason: 'untrusted_peer',
        }),
        undefined,
        true,
      );
    }
    if (req.httpVersionMajor !== 1) {
      return this.refuse(req, res, record, rejection('invalid_request', `HTTP/${req.httpVersion} is not supported on this listener; send HTTP/1.1`));
    }
    if (req.headers.upgrade !== undefined) {
      return this.refuse(
        req,
        res,
        record,
        rejection('upgrade_not_supported', 'protocol upgrades (WebSocket, h2c) are not supported; send plain HTTP/1.1 requests'),
      );
    }
    const read = this.readOriginal(req);
    if (read.kind === 'refused') return this.refuse(req, res, record, read.rejection);
    record.method = read.original.method;
    // The original's body is the proxy's business (it is never sent here): the check decides on the request line and headers.
    const deciding = this.opts.decider.decide({
      method: read.original.method,
      target: read.original.target,
      rawHeaders: req.rawHeaders,
      hasBody: false,
    });
    if (deciding instanceof Promise) return deciding.then((decision) => this.answer(req, res, record, decision));
    return this.answer(req, res, record, deciding);
  }

  private answer(req: IncomingMessage, res: ServerResponse, record: RequestRecord, decision: RequestDecision): void {
    recordDecision(record, decision);
    const now = this.opts.clock.now();
    if (decision.kind === 'public') {
      // Nothing was decided that could expire: the proxy asks again next time.
      this.answers.allow(
        res,
        { principal: undefined, plane: 'data', action: '', requestId: record.requestId, maxAgeSeconds: 0 },
        this.closeAfter(req),
      );
      return;
    }
    if (decision.kind === 'allow') {
      // As long as the cached RBAC decision and the token live, whichever ends first.
      let until = decision.decision.expiresAt ?? now + API_KEY_ANSWER_SECONDS * 1000;
      if (decision.tokenExpiresAt !== undefined) until = Math.min(until, decision.tokenExpiresAt);
      const { principal, route } = decision;
      this.answers.allow(
        res,
        { principal, plane: route.plane, action: route.action, requestId: record.requestId, maxAgeSeconds: secondsLeft(until, now) },
        this.closeAfter(req),
      );
      return;
    }
    // A 403 decision may be reused while the cached deny lives, at most the deny TTL.
    const deny = decision.decision?.kind === 'deny' ? decision.decision : undefined;
    const maxAge = deny === undefined ? undefined : secondsLeft(Math.min(deny.expiresAt ?? Number.POSITIVE_INFINITY, now + this.opts.denyTtlMs), now);
    this.refuse(req, res, record, decision.rejection, maxAge);
  }

  private refuse(req: IncomingMessage, res: ServerResponse, record: RequestRecord, error: Rejection, maxAgeSeconds?: number, close = false): void {
    record.code = error.code;
    record.reason = error.reason;
    record.decision ??= 'rejected';
    this.answers.refuse(res, error, record.requestId, close || this.closeAfter(req), maxAgeSeconds);
  }

  /** The body of a check is never read: a check that announces one ends its connection, as does draining. */
  private closeAfter(req: IncomingMessage): boolean {
    if (this.draining) return true;
    if (req.complete) return false;
    const length = req.headers['content-length'];
    return req.headers['transfer-encoding'] !== undefined || (length !== undefined && !/^0+$/.test(length));
  }

  private readonly onConnect = (_req: IncomingMessage, socket: Socket): void => {
    this.opts.metrics.countRequest('none', 405, 'method_not_allowed');
    this.answers.refuseOnSocket(socket, rejection('method_not_allowed', 'CONNECT is not supported by foundry-auth', { allow: [] }), randomUUID());
  };

  private readonly onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.opts.metrics.countRequest('none', status, 'invalid_request');
    const message =
      status === 431
        ? 'the request headers are too large for foundry-auth (limit 16 KiB in total, the check request included)'
        : 'malformed, too large or too slow HTTP/1.1 check request';
    this.answers.refuseOnSocket(socket, rejection('invalid_request', message), randomUUID(), status);
  };
}

/** Whole seconds from now until `until`, never negative. */
function secondsLeft(until: number, now: number): number {
  return Math.max(0, Math.floor((until - now) / 1000));
}
