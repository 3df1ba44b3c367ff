import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Principal } from '../authn/principal.js';
import type { Authorizer, Decision } from '../authz/decision.js';
import type { ForwardAuthConfig } from '../config/config.js';
import { checkTarget } from '../http/canonical.js';
import { rejection, type Rejection } from '../http/errors.js';
import { sendOnSocket } from '../http/respond.js';
import type { RouteMatch } from '../http/route.js';
import type { RouteTable } from '../http/routes.js';
import type { AuthenticationStage, AuthnOutcome } from '../http/stages.js';
import { writeAudit, type RequestRecord } from '../ops/audit.js';
import type { Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import { Answers } from './answer.js';
import { originalRequestReader, type OriginalRequestReader } from './original-request.js';
import { TrustedProxies } from './trusted-proxies.js';

export interface ForwardAuthOptions {
  readonly forwardAuth: ForwardAuthConfig;
  readonly forwardAuthorization: boolean;
  readonly routes: RouteTable;
  /** Canonical paths allowed without authentication (GET and HEAD only). */
  readonly publicPaths: readonly string[];
  readonly authn: AuthenticationStage;
  readonly authz: Authorizer;
  readonly clock: Clock;
  /** `--rbac-deny-ttl`: the longest a proxy may reuse a 403. */
  readonly denyTtlMs: number;
  readonly log: Logger;
  readonly metrics: Metrics;
}

/** Methods refused whatever the path, as in proxy mode: they echo or tunnel. */
const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);
/** An API-key allow is not cached by the decision cache; the key file is re-read this often, so a removed key is gone within it. */
const API_KEY_ANSWER_SECONDS = 5;

/**
 * Forward-auth mode: answers a proxy's authorization check about an original request that the
 * proxy forwards itself. Top to bottom: trusted peer -> original method and target (per profile)
 * -> the decision of proxy mode (target, canonical path, public path, route, credentials,
 * authentication, authorization) -> answer. There is no forwarding step; the check's body is
 * never read.
 */
export class ForwardAuthServer {
  readonly server: Server;
  private draining = false;
  private readonly trusted: TrustedProxies;
  private readonly readOriginal: OriginalRequestReader;
  private readonly answers: Answers;
  private readonly publicPaths: ReadonlySet<string>;

  constructor(private readonly opts: ForwardAuthOptions) {
    this.trusted = new TrustedProxies(opts.forwardAuth.trustedProxies);
    this.readOriginal = originalRequestReader(opts.forwardAuth);
    this.answers = new Answers({ forwardAuthorization: opts.forwardAuthorization, accelExpires: opts.forwardAuth.profile === 'nginx' });
    this.publicPaths = new Set(opts.publicPaths);
    this.server = createServer({ requireHostHeader: true, joinDuplicateHeaders: false, connectionsCheckingInterval: 1000 }, this.onRequest);
    // A check never carries a body we read, so `Expect: 100-continue` gets the answer instead of a 100.
    this.server.on('checkContinue', this.onRequest);
    this.server.on('connect', this.onConnect);
    this.server.on('clientError', this.onClientError);
    this.server.headersTimeout = 30_000;
    this.server.requestTimeout = 60_000;
  }

  startDraining(): void {
    this.draining = true;
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const record: RequestRecord = { requestId: randomUUID(), method: req.method ?? '', startedAt: performance.now(), mode: 'forward-auth' };
    this.opts.metrics.inflight.inc();
    res.on('close', () => {
      if (!res.writableFinished) record.clientAborted = true;
      this.opts.metrics.inflight.dec();
      writeAudit(this.opts.log, this.opts.metrics, record, res.statusCode, performance.now());
    });
    this.check(req, res, record).catch((err: unknown) => {
      this.opts.log.error({ requestId: record.requestId, err: err instanceof Error ? { message: err.message, stack: err.stack } : String(err) }, 'forward-auth check failed');
      if (!res.headersSent) this.refuse(req, res, record, rejection('internal_error', 'internal error in foundry-auth; its log has the details under this x-request-id'));
      else res.destroy();
    });
  };

  private async check(req: IncomingMessage, res: ServerResponse, record: RequestRecord): Promise<void> {
    // Only the proxies named in --trusted-proxies may ask; anyone else could forge the original request.
    if (!this.trusted.trusts(req.socket)) {
      return this.refuse(req, res, record, rejection('untrusted_proxy', 'this address is not in --trusted-proxies: only the configured proxies may ask for authorization decisions', { reason: 'untrusted_peer' }));
    }
    if (req.httpVersionMajor !== 1) {
      return this.refuse(req, res, record, rejection('invalid_request', `HTTP/${req.httpVersion} is not supported on this listener; send HTTP/1.1`));
    }
    const read = this.readOriginal(req);
    if (read.kind === 'refused') return this.refuse(req, res, record, read.rejection);
    const { method, target } = read.original;
    (record as { method: string }).method = method;

    // Step 1 on the original request.
    if (REFUSED_METHODS.has(method)) {
      return this.refuse(req, res, record, rejection('method_not_allowed', `${method} is not supported by foundry-auth`, { allow: [] }));
    }
    if (req.headers.upgrade !== undefined) {
      return this.refuse(req, res, record, rejection('upgrade_not_supported', 'protocol upgrades (WebSocket, h2c) are not supported; send plain HTTP/1.1 requests'));
    }
    const checked = checkTarget(target);
    if (!checked.ok) return this.refuse(req, res, record, rejection(checked.code, checked.message));
    record.path = checked.path;

    // Step 3: public paths need no credential.
    if ((method === 'GET' || method === 'HEAD') && this.publicPaths.has(checked.path)) {
      record.plane = 'data';
      record.route = 'public';
      record.decision = 'public';
      return this.allow(req, res, record, undefined, undefined, 0);
    }

    // Step 4: route -> plane and action.
    const lookup = this.opts.routes.lookup(method, checked.path);
    if (lookup.kind === 'not_found') {
      return this.refuse(req, res, record, rejection('route_not_found', `no route for ${method} ${checked.path}; foundry-auth authorizes only the Foundry Local API routes it knows`));
    }
    if (lookup.kind === 'method_not_allowed') {
      return this.refuse(req, res, record, rejection('method_not_allowed', `${method} is not allowed on ${checked.path}; allowed: ${lookup.allow.join(', ')}`, { allow: lookup.allow }));
    }
    const route = lookup.route;
    record.route = route.name;
    record.plane = route.plane;
    record.action = route.action;

    // Steps 5-7: the credential the proxy passed on with the check.
    const authStarted = performance.now();
    const pending = this.opts.authn.authenticateRequest(req.rawHeaders, checked.query);
    const authn: AuthnOutcome = pending instanceof Promise ? await pending : pending;
    record.authMs = performance.now() - authStarted;
    if (!authn.ok) return this.refuse(req, res, record, authn.rejection);
    record.principal = authn.principal;
    record.tokenCache = authn.tokenCache;

    // Step 8.
    const authzStarted = performance.now();
    const deciding = this.opts.authz.authorize(authn.principal, route);
    const decision: Decision = deciding instanceof Promise ? await deciding : deciding;
    record.rbacMs = performance.now() - authzStarted;
    record.decisionSource = decision.source;
    if (decision.kind !== 'unavailable') record.rbacCache = decision.cache;
    if (decision.kind === 'deny') {
      record.decision = 'deny';
      const error = rejection('insufficient_permissions', decision.message, { reason: decision.reason });
      return this.refuse(req, res, record, error, this.denyMaxAge(authn.principal, route));
    }
    if (decision.kind === 'unavailable') {
      record.decision = 'unavailable';
      const error = rejection('rbac_check_unavailable', decision.message, {
        reason: decision.reason,
        ...(decision.retryAfterSeconds !== undefined ? { retryAfterSeconds: decision.retryAfterSeconds } : {}),
      });
      return this.refuse(req, res, record, error);
    }
    record.decision = 'allow';
    return this.allow(req, res, record, authn.principal, route, this.allowMaxAge(authn.principal, route));
  }

  private allow(req: IncomingMessage, res: ServerResponse, record: RequestRecord, principal: Principal | undefined, route: RouteMatch | undefined, maxAgeSeconds: number): void {
    this.answers.allow(
      res,
      { principal, plane: route?.plane ?? 'data', action: route?.action ?? '', requestId: record.requestId, maxAgeSeconds },
      this.closeAfter(req),
    );
  }

  private refuse(req: IncomingMessage, res: ServerResponse, record: RequestRecord, error: Rejection, maxAgeSeconds?: number): void {
    record.code = error.code;
    record.reason = error.reason;
    record.decision ??= 'rejected';
    this.answers.refuse(res, error, record.requestId, this.closeAfter(req), maxAgeSeconds);
  }

  /** An allow lives as long as the cached RBAC decision and the token, whichever ends first. */
  private allowMaxAge(principal: Principal, route: RouteMatch): number {
    const now = this.opts.clock.now();
    let until = this.opts.authz.decidedUntil(principal, route) ?? now + API_KEY_ANSWER_SECONDS * 1000;
    const exp = principal.claims?.exp;
    if (typeof exp === 'number') until = Math.min(until, exp * 1000);
    return secondsLeft(until, now);
  }

  /** A deny lives as long as the cached decision, at most the deny TTL. */
  private denyMaxAge(principal: Principal, route: RouteMatch): number {
    const now = this.opts.clock.now();
    const until = this.opts.authz.decidedUntil(principal, route) ?? now + this.opts.denyTtlMs;
    return secondsLeft(Math.min(until, now + this.opts.denyTtlMs), now);
  }

  /** The body of a check is never read: a check that has one ends its connection, as does draining. */
  private closeAfter(req: IncomingMessage): boolean {
    if (this.draining) return true;
    if (req.complete) return false;
    const length = req.headers['content-length'];
    return req.headers['transfer-encoding'] !== undefined || (length !== undefined && !/^0+$/.test(length));
  }

  private readonly onConnect = (_req: IncomingMessage, socket: Socket): void => {
    const requestId = randomUUID();
    this.opts.metrics.requests.inc({ plane: 'none', status: '405', code: 'method_not_allowed' });
    sendOnSocket(socket, rejection('method_not_allowed', 'CONNECT is not supported by foundry-auth', { allow: [] }), requestId);
  };

  private readonly onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    this.opts.metrics.requests.inc({ plane: 'none', status: String(status), code: 'invalid_request' });
    sendOnSocket(socket, rejection('invalid_request', 'malformed, too large or too slow HTTP/1.1 check request'), randomUUID(), status);
  };
}

/** Whole seconds from now until `until`, never negative. */
function secondsLeft(until: number, now: number): number {
  return Math.max(0, Math.floor((until - now) / 1000));
}
