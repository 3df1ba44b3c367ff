import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { RequestDecider } from '../contracts/request.js';
import type { ForwardingStage } from '../contracts/stages.js';
import type { Logger } from '../ops/log.js';
import type { Metrics } from '../ops/metrics.js';
import type { PolicyExchange, PolicyStage } from '../policy/enforce.js';
import { AuditLog, recordDecision, type RequestRecord } from './audit.js';
import { sendOnSocket, sendRejection } from './respond.js';

export interface GatewayOptions {
  /** Steps 1-8: what to do with a request (the same core the forward-auth front calls). */
  readonly decider: RequestDecider;
  readonly forwarder: ForwardingStage;
  /** `--policy-file`: model rules and limits, after authorization. */
  readonly policy?: PolicyStage;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Longest wait for a request's headers (slowloris); default 30 s, answered with 408. */
  readonly headersTimeoutMs?: number;
  /** Longest wait for a whole request, body included; default 300 s (Node's), answered with 408. */
  readonly requestTimeoutMs?: number;
  /** `--keep-alive-timeout`: how long an idle connection stays open. */
  readonly keepAliveTimeoutMs: number;
}

/** More header fields than any real client sends; above it the request is refused rather than half-read. */
const MAX_HEADER_FIELDS = 256;
const kResponse = Symbol('foundry-auth.response');
const kRecord = Symbol('foundry-auth.record');
/** The connection's latest request still in the pipeline; its response carries the request's record. */
type TaggedSocket = Socket & { [kResponse]?: ServerResponse };
type TaggedResponse = ServerResponse & { [kRecord]?: RequestRecord };

/**
 * The proxy front: this listener's own checks (upgrade, HTTP version, framing, header fields), then
 * the decision core (`pipeline/decide.ts`: target -> canonical path -> public path -> route ->
 * authentication -> authorization), then the forward. A request that fails a step never reaches a
 * later one. Every rejection is a value; `respond.ts` writes it; the audit line is written once.
 */
export class Gateway {
  readonly server: Server;
  private draining = false;
  private readonly audit: AuditLog;

  constructor(private readonly opts: GatewayOptions) {
    this.audit = new AuditLog(opts.log, opts.metrics);
    const headersTimeout = opts.headersTimeoutMs ?? 30_000;
    this.server = createServer(
      // Node checks the two timeouts on this interval (default 30 s); check often enough that they mean what they say.
      { requireHostHeader: true, joinDuplicateHeaders: false, connectionsCheckingInterval: Math.min(1000, Math.max(50, headersTimeout / 4)) },
      this.onRequest,
    );
    this.server.on('checkContinue', this.onRequest);
    // Any other `Expect`: answered by the pipeline (JSON 417, x-request-id, audit line), not with Node's bare 417.
    this.server.on('checkExpectation', this.onRequest);
    this.server.on('connect', this.onConnect);
    this.server.on('clientError', this.onClientError);
    // Longer than the ingress or load balancer in front keeps an idle connection, so it closes first
    // and never sends a request down a connection this listener is closing (Node's 5 s raced that).
    this.server.keepAliveTimeout = opts.keepAliveTimeoutMs;
    this.server.headersTimeout = headersTimeout;
    this.server.requestTimeout = opts.requestTimeoutMs ?? 300_000;
    this.server.maxHeadersCount = 0;
  }

  /** SIGTERM: every response from now on closes its connection; the caller stops the listener. */
  startDraining(): void {
    this.draining = true;
  }

  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const record: RequestRecord = { requestId: randomUUID(), method: req.method ?? '', startedAt: performance.now() };
    const socket = req.socket as TaggedSocket;
    // A parser error later on this connection (a broken chunked body) belongs to this request: see onClientError.
    socket[kResponse] = res;
    (res as TaggedResponse)[kRecord] = record;
    this.opts.metrics.inflight.inc();
    // The audit line needs both the response's end and the pipeline's last word (e.g. the upstream outcome).
    let pending = 2;
    const finish = (): void => {
      if (--pending > 0) return;
      if (socket[kResponse] === res) socket[kResponse] = undefined;
      this.opts.metrics.inflight.dec();
      this.audit.write(record, res.statusCode, performance.now());
    };
    // 'close' fires once per response: `on` spares the wrapper `once` allocates.
    res.on('close', () => {
      if (!res.writableFinished) record.clientAborted = true;
      finish();
    });
    if (this.draining) res.shouldKeepAlive = false;
    // One `then` instead of `catch` + `finally`: two promises and two microtasks fewer per request.
    this.handle(req, res, record).then(finish, (err: unknown) => {
      try {
        // A bug, not a user error: log it (no request data beyond the ID) and fail closed.
        this.opts.log.error({ requestId: record.requestId, err: errorSummary(err) }, 'request pipeline failed');
        if (!res.headersSent)
          this.reject(
            req,
            res,
            record,
            rejection('internal_error', 'internal error in foundry-auth; its log has the details under this x-request-id'),
          );
        else res.destroy();
      } finally {
        finish();
      }
    });
  };

  private async handle(req: IncomingMessage, res: ServerResponse, record: RequestRecord): Promise<void> {
    // Step 1, as far as this listener's own connection is concerned: expectations, upgrades, HTTP version, framing, header fields.
    const expect = req.headers.expect;
    if (expect !== undefined && expect.toLowerCase() !== '100-continue') {
      return this.reject(req, res, record, rejection('expectation_failed', 'the only expectation foundry-auth meets is "Expect: 100-continue"'));
    }
    if (req.headers.upgrade !== undefined) {
      return this.reject(
        req,
        res,
        record,
        rejection('upgrade_not_supported', 'protocol upgrades (WebSocket, h2c) are not supported; send plain HTTP/1.1 requests'),
      );
    }
    if (req.httpVersionMajor !== 1) {
      return this.reject(req, res, record, rejection('invalid_request', `HTTP/${req.httpVersion} is not supported on this listener; send HTTP/1.1`));
    }
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) {
      // RFC 9112 section 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
      return this.reject(req, res, record, rejection('invalid_request', 'Transfer-Encoding is not allowed in an HTTP/1.0 request'));
    }
    const headerProblem = rawHeaderProblem(req.rawHeaders);
    if (headerProblem !== undefined) return this.reject(req, res, record, rejection('invalid_request', headerProblem));

    // Steps 1-8: the decision core, shared with the forward-auth front.
    const target = req.url ?? '';
    const deciding = this.opts.decider.decide({ method: record.method, target, rawHeaders: req.rawHeaders, hasBody: hasBody(req) });
    // Everything cached: a plain value, and awaiting it would still cost a microtask.
    const decision = deciding instanceof Promise ? await deciding : deciding;
    recordDecision(record, decision);
    if (decision.kind === 'reject') return this.reject(req, res, record, decision.rejection);

    // Step 8b: the policy file's limits and model rules (reading the body, when it must, only after 100 Continue).
    let tap: PolicyExchange | undefined;
    if (this.opts.policy !== undefined && decision.kind === 'allow') {
      const checking = this.opts.policy.check(req, decision.path, decision.route, decision.principal, record.startedAt, () => {
        if (expect !== undefined) res.writeContinue();
      });
      const verdict = checking instanceof Promise ? await checking : checking;
      if (verdict.kind === 'gone') return;
      if (verdict.kind === 'reject') return this.reject(req, res, record, verdict.rejection);
      tap = verdict.exchange;
      if (tap !== undefined) record.policy = tap.record;
    }

    // Step 9: only now may the client send its body (unless the policy already read it).
    if (decision.kind === 'allow' && tap?.body === undefined && expect !== undefined) res.writeContinue();
    // Awaited, not returned: returning a promise from an async function costs two more microtasks.
    await this.forward(req, res, record, target, tap);
  }

  private async forward(req: IncomingMessage, res: ServerResponse, record: RequestRecord, target: string, tap?: PolicyExchange): Promise<void> {
    const result = await this.opts.forwarder.forward({
      req,
      res,
      plane: record.plane ?? 'data',
      target,
      principal: record.principal,
      requestId: record.requestId,
      tap,
    });
    record.upstreamOutcome = result.outcome;
    record.upstreamFirstByteMs = result.firstByteMs;
    if (result.rejection !== undefined && !res.headersSent) {
      record.code = result.rejection.code;
      sendRejection(res, result.rejection, record.requestId, true);
    }
  }

  private reject(req: IncomingMessage, res: ServerResponse, record: RequestRecord, error: Rejection): void {
    // A parser error on the connection was already answered on this response (answerInFlight).
    if (res.headersSent) return;
    record.code = error.code;
    record.reason = error.reason;
    record.decision ??= 'rejected';
    // A refused request's body is never read as a next request (CL.0), nor waited for: its connection is closed.
    const closeConnection = this.draining || hasBody(req) || error.code === 'upgrade_not_supported' || req.httpVersionMajor !== 1;
    sendRejection(res, error, record.requestId, closeConnection);
  }

  private readonly onConnect = (req: IncomingMessage, socket: Socket): void => {
    const requestId = randomUUID();
    this.opts.metrics.countRequest('none', 405, 'method_not_allowed');
    this.opts.log.info({ requestId, method: 'CONNECT', status: 405, code: 'method_not_allowed' }, 'request');
    sendOnSocket(socket, rejection('method_not_allowed', 'CONNECT is not supported by foundry-auth', { allow: [] }), requestId);
  };

  private readonly onClientError = (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const inFlight = (socket as TaggedSocket)[kResponse];
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const error = rejection('invalid_request', clientErrorMessage(status, inFlight !== undefined), { reason: err.code ?? 'parse_error' });
    if (inFlight !== undefined) {
      this.answerInFlight(inFlight, socket, error, status);
      return;
    }
    const requestId = randomUUID();
    this.opts.metrics.countRequest('none', status, 'invalid_request');
    this.opts.log.info({ requestId, status, code: 'invalid_request', reason: error.reason }, 'request');
    sendOnSocket(socket, error, requestId, status);
  };

  /**
   * A parser error inside a request already handed to the pipeline (its body, or the bytes after
   * it): that request's response is the one answer the client gets, and its audit line says so.
   */
  private answerInFlight(res: ServerResponse, socket: Socket, error: Rejection, status: number): void {
    const record = (res as TaggedResponse)[kRecord]!;
    if (res.writableEnded) {
      // Already answered (and closing, or the parser would not have failed): what follows is not a request.
      socket.end();
      return;
    }
    if (res.headersSent) {
      // The upstream's response is under way: nothing honest can be added to it.
      record.reason = error.reason;
      socket.destroy();
      return;
    }
    record.code = error.code;
    record.reason = error.reason;
    record.decision ??= 'rejected';
    sendRejection(res, error, record.requestId, true, status);
  }
}

function clientErrorMessage(status: number, inBody: boolean): string {
  if (status === 431) return 'request headers are too large (limit 16 KiB in total)';
  if (status === 408) return inBody ? 'the request body did not arrive in time' : 'the request headers did not arrive in time';
  return inBody ? 'malformed request body framing (chunked encoding)' : 'malformed HTTP/1.1 request (framing, header syntax or line endings)';
}

/** Duplicate Host (Node silently keeps the first) or an unreasonable number of header fields. */
function rawHeaderProblem(raw: readonly string[]): string | undefined {
  if (raw.length > MAX_HEADER_FIELDS * 2) return `too many header fields (${raw.length / 2}; at most ${MAX_HEADER_FIELDS})`;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++hosts > 1) return 'more than one Host header';
  }
  return undefined;
}

/** Any Transfer-Encoding, or a Content-Length above 0 (llhttp admits digits only, so `00` is still no body). */
function hasBody(req: IncomingMessage): boolean {
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && !/^0+$/.test(length);
}

function errorSummary(err: unknown): { message: string; stack?: string } {
  if (err instanceof Error) return { message: err.message, ...(err.stack ? { stack: err.stack } : {}) };
  return { message: String(err) };
}
