import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { Pool, type Dispatcher } from 'undici';
import type { ProxyServeConfig } from '../config/config.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { Plane } from '../contracts/route.js';
import type { ExchangeTap, ForwardingStage, ForwardOutcome, ForwardRequest, ForwardResult } from '../contracts/stages.js';
import type { Metrics } from '../ops/metrics.js';
import { clientResponseHeaders, RequestHeaderPolicy } from './headers.js';
import { identityHeaders } from './identity-headers.js';
import { connectorDroppingInterimContinue } from './interim-continue.js';

/**
 * The forwarding stage (SPEC section 7): streams an authorized request to the data or control
 * upstream and the response back, chunk by chunk, with backpressure both ways and no buffering.
 *
 * - Before any response byte reached the client, a failure is RETURNED as a rejection
 *   (`upstream_unavailable` 502, `upstream_timeout` 504) for the HTTP layer to write.
 * - After the response started, a failure destroys the client connection: no bytes are invented
 *   (no `[DONE]`, no error JSON after the headers).
 * - A client that goes away aborts the upstream request at once (its socket is destroyed, so the
 *   model stops generating and the connection is never reused).
 * - `Expect` is not forwarded: the HTTP layer answers `100 Continue` after authorization and the
 *   body goes upstream as a plain request body.
 * - Upstream trailers are dropped (`Trailer` is hop-by-hop and nothing in the OpenAI API uses them);
 *   1xx interim responses from the upstream are not relayed (a `100` is dropped before undici sees it: interim-continue.ts).
 */
export interface ForwarderOptions {
  /** Data-plane base URL; a path in it prefixes every forwarded target. */
  readonly upstream: URL;
  /** Control-plane base URL; default: `upstream`. */
  readonly controlUpstream?: URL;
  /** Longest wait for response headers (`--upstream-headers-timeout`); 0 disables it. */
  readonly headersTimeoutMs: number;
  /** Longest silence between two response body chunks (`--upstream-body-timeout`); 0 disables it. */
  readonly bodyTimeoutMs: number;
  /** Pass the caller's `Authorization` / `api-key` upstream (`--forward-authorization`). */
  readonly forwardAuthorization?: boolean;
  /** The key sent upstream as `api-key` (`--upstream-api-key-file`), read per request so rotation applies at once. */
  readonly upstreamApiKey?: { readonly value: string | undefined };
  readonly metrics?: Metrics;
  /** Upper bound on connections per upstream origin; default 256. */
  readonly connections?: number;
  /** How long an idle upstream connection is kept; default 4 s (below uvicorn's and Node's 5 s). */
  readonly keepAliveTimeoutMs?: number;
  /** TCP/TLS connect timeout; default 10 s. */
  readonly connectTimeoutMs?: number;
}

interface Upstream {
  readonly pool: Pool;
  /** Path of the base URL without a trailing slash (`''` for `/`). */
  readonly basePath: string;
  readonly plane: Plane;
  readonly firstByte: { observe(seconds: number): void } | undefined;
  readonly latency: { observe(seconds: number): void } | undefined;
}

const DEFAULT_CONNECTIONS = 256;
const DEFAULT_KEEPALIVE_MS = 4_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** A response the policy holds to rewrite (the model list) is at most this large; a larger one is refused, never passed unfiltered. */
const MAX_HELD_BYTES = 4 * 1024 * 1024;

export class Forwarder implements ForwardingStage {
  private readonly data: Upstream;
  private readonly control: Upstream;
  private readonly pools: Pool[] = [];
  private readonly headerPolicy: RequestHeaderPolicy;
  private readonly upstreamApiKey: { readonly value: string | undefined } | undefined;

  constructor(opts: ForwarderOptions) {
    this.headerPolicy = new RequestHeaderPolicy(opts.forwardAuthorization ?? false);
    this.upstreamApiKey = opts.upstreamApiKey;
    const byOrigin = new Map<string, Pool>();
    const poolFor = (url: URL): Pool => {
      let pool = byOrigin.get(url.origin);
      if (pool === undefined) {
        pool = new Pool(url.origin, {
          connections: opts.connections ?? DEFAULT_CONNECTIONS,
          pipelining: 1,
          headersTimeout: opts.headersTimeoutMs,
          bodyTimeout: opts.bodyTimeoutMs,
          keepAliveTimeout: opts.keepAliveTimeoutMs ?? DEFAULT_KEEPALIVE_MS,
          connect: connectorDroppingInterimContinue({ timeout: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS }),
        });
        byOrigin.set(url.origin, pool);
        this.pools.push(pool);
      }
      return pool;
    };
    const upstream = (url: URL, plane: Plane): Upstream => ({
      pool: poolFor(url),
      basePath: url.pathname.replace(/\/+$/, ''),
      plane,
      firstByte: opts.metrics?.upstreamFirstByte.labels({ plane }),
      latency: opts.metrics?.upstreamLatency.labels({ plane }),
    });
    this.data = upstream(opts.upstream, 'data');
    this.control = upstream(opts.controlUpstream ?? opts.upstream, 'control');
  }

  static fromConfig(config: ProxyServeConfig, metrics: Metrics, upstreamApiKey?: { readonly value: string | undefined }): Forwarder {
    return new Forwarder({
      ...(upstreamApiKey !== undefined ? { upstreamApiKey } : {}),
      upstream: config.upstream,
      controlUpstream: config.controlUpstream,
      headersTimeoutMs: config.upstreamHeadersTimeoutMs,
      bodyTimeoutMs: config.upstreamBodyTimeoutMs,
      forwardAuthorization: config.forwardAuthorization,
      metrics,
    });
  }

  /** Streams one request upstream and the response back. Never rejects. */
  forward(request: ForwardRequest): Promise<ForwardResult> {
    const { req, res } = request;
    const upstream = request.plane === 'control' ? this.control : this.data;
    const exchange = new Exchange(req, res, upstream, request.requestId, request.tap);
    const promise = new Promise<ForwardResult>((resolve) => {
      exchange.resolve = resolve;
    });

    // The client may have left while it was authenticated and authorized: send nothing upstream.
    if (res.destroyed || req.socket.destroyed) {
      exchange.onClientClose();
      return promise;
    }

    // A body the policy already read goes upstream as those exact bytes, with their length.
    const readBody = request.tap?.body;
    const contentLength = readBody !== undefined ? String(readBody.length) : req.headers['content-length'];
    const chunked = readBody === undefined && req.headers['transfer-encoding'] !== undefined;
    const hasBody = chunked || (contentLength !== undefined && contentLength !== '0');
    let headers: string[];
    try {
      headers = this.headerPolicy.upstreamHeaders(req.rawHeaders, {
        clientAddress: req.socket.remoteAddress ?? '',
        proto: (req.socket as Partial<TLSSocket>).encrypted === true ? 'https' : 'http',
        host: req.headers.host,
        identity: request.principal !== undefined ? identityHeaders(request.principal) : EMPTY,
        requestId: request.requestId,
        contentLength: hasBody && !chunked ? contentLength : undefined,
      });
    } catch (err) {
      exchange.onResponseError(null, asError(err));
      return promise;
    }
    // The header policy dropped the client's api-key; this one is the sidecar's own credential.
    const upstreamKey = this.upstreamApiKey?.value;
    if (upstreamKey !== undefined) headers.push('api-key', upstreamKey);

    (res as TaggedResponse)[kExchange] = exchange;
    res.on('close', onClientClose);
    res.on('drain', onClientDrain);
    if (readBody === undefined && hasBody) exchange.body = new RequestBody(req);
    exchange.requestBytes = chunked ? 0 : Number(contentLength ?? 0);

    upstream.pool.dispatch(
      {
        path: upstream.basePath + request.target,
        method: req.method ?? 'GET',
        headers,
        body: readBody !== undefined && hasBody ? readBody : exchange.body,
      },
      exchange,
    );
    return promise;
  }

  /** Lets in-flight exchanges finish, then closes every upstream connection. */
  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.close()));
  }
}

const EMPTY: readonly string[] = [];
const kExchange = Symbol('foundry-auth.exchange');
const kBody = Symbol('foundry-auth.body');

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type TaggedResponse = ServerResponse & { [kExchange]?: Exchange };
type TaggedRequest = IncomingMessage & { [kBody]?: RequestBody };

/** The listeners are hoisted: `this` is the response, the exchange hangs off it. */
function onClientClose(this: ServerResponse): void {
  (this as TaggedResponse)[kExchange]?.onClientClose();
}

function onClientDrain(this: ServerResponse): void {
  (this as TaggedResponse)[kExchange]?.controller?.resume();
}

const enum Phase {
  /** Waiting for the upstream's response headers: a failure is still a rejection. */
  Waiting,
  /** Response headers sent to the client: a failure destroys the connection. */
  Streaming,
  /** The upstream finished; `res.end()` was called and the client is being flushed. */
  Ending,
  /** Resolved. Every later callback is ignored. */
  Done,
}

/** One request/response exchange: undici's dispatch handler for it, and the bookkeeping for its result. */
class Exchange implements Dispatcher.DispatchHandler {
  resolve!: (result: ForwardResult) => void;
  controller: Dispatcher.DispatchController | null = null;
  body: RequestBody | null = null;
  /** The request body's declared size (0 when chunked): the policy's input estimate. */
  requestBytes = 0;
  private phase = Phase.Waiting;
  private clientGone = false;
  private readonly startedAt = performance.now();
  private firstByteAt = 0;
  /** The response head and body held for the tap's rewrite (still Waiting: a failure is a rejection). */
  private held: {
    readonly status: number;
    readonly headers: Record<string, string | string[] | undefined>;
    readonly added: TapHeaders;
    chunks: Buffer[];
    bytes: number;
  } | null = null;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly upstream: Upstream,
    private readonly requestId: string,
    private readonly tap: ExchangeTap | undefined,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // The client left while the request waited for a free connection.
    if (this.clientGone) controller.abort(clientClosed());
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200 || this.phase !== Phase.Waiting) return;
    this.firstByteAt = performance.now();
    this.upstream.firstByte?.observe((this.firstByteAt - this.startedAt) / 1000);
    let added: TapHeaders = NO_TAP_HEADERS;
    if (this.tap !== undefined) {
      const head = this.tap.onResponseHead(statusCode, headerText(headers['content-type']), this.requestBytes);
      if (head.hold) {
        this.held = { status: statusCode, headers, added: head.headers, chunks: [], bytes: 0 };
        return;
      }
      added = head.headers;
    }
    if (this.writeHead(controller, statusCode, withHeaders(clientResponseHeaders(headers, this.requestId), added))) this.startStreaming(headers);
  }

  /** Writes the response head; false (and the exchange rejected) when Node refuses a header value. */
  private writeHead(controller: Dispatcher.DispatchController, statusCode: number, headers: string[]): boolean {
    try {
      this.res.writeHead(statusCode, headers);
    } catch (err) {
      // Node refuses a header value it cannot send (ERR_INVALID_CHAR): nothing was written yet.
      controller.abort(asError(err));
      this.reject(
        rejection('upstream_unavailable', 'the upstream sent a response header that cannot be forwarded', { reason: 'invalid_response_header' }),
      );
      return false;
    }
    this.phase = Phase.Streaming;
    return true;
  }

  private startStreaming(headers: Record<string, string | string[] | undefined>): void {
    const res = this.res;
    if (isEventStream(headers['content-type'])) {
      // Events must leave at once: no Nagle delay, and the headers go before the first event.
      res.socket?.setNoDelay(true);
      res.flushHeaders();
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const held = this.held;
    if (held !== null && this.phase === Phase.Waiting) {
      held.bytes += chunk.length;
      if (held.bytes > MAX_HELD_BYTES) {
        controller.abort(new Error('held response too large'));
        this.reject(
          rejection('upstream_unavailable', `the upstream's response is larger than ${MAX_HELD_BYTES} bytes and cannot be filtered by the policy`, {
            reason: 'unfilterable',
          }),
        );
        return;
      }
      held.chunks.push(Buffer.from(chunk));
      return;
    }
    if (this.phase !== Phase.Streaming) return;
    const more = this.res.write(chunk);
    this.tap?.onResponseChunk(chunk);
    if (!more) controller.pause();
  }

  onResponseEnd(controller: Dispatcher.DispatchController): void {
    if (this.held !== null && this.phase === Phase.Waiting) {
      this.endHeld(controller, this.held);
      return;
    }
    if (this.phase !== Phase.Streaming) return;
    this.phase = Phase.Ending;
    this.upstream.latency?.observe((performance.now() - this.startedAt) / 1000);
    // Resolution waits for the response's 'close': then we know whether the client got it all.
    this.res.end();
  }

  /** The held response, whole: the tap's rewrite goes out in one piece (or a 502 when it cannot be rewritten). */
  private endHeld(controller: Dispatcher.DispatchController, held: NonNullable<Exchange['held']>): void {
    const body = this.tap!.rewrite(Buffer.concat(held.chunks, held.bytes), headerText(held.headers['content-encoding']));
    if (body === undefined) {
      this.reject(rejection('upstream_unavailable', "the upstream's response could not be filtered by the policy", { reason: 'unfilterable' }));
      return;
    }
    const headers = withHeaders(clientResponseHeaders(held.headers, this.requestId), [...held.added, ['content-length', String(body.length)]]);
    if (!this.writeHead(controller, held.status, headers)) return;
    this.phase = Phase.Ending;
    this.upstream.latency?.observe((performance.now() - this.startedAt) / 1000);
    this.res.end(body);
  }

  onResponseError(_controller: Dispatcher.DispatchController | null, err: Error): void {
    const phase = this.phase;
    if (phase === Phase.Done) return;
    if (this.clientGone || this.req.socket.destroyed) {
      this.settle('client_abort', undefined);
      return;
    }
    if (phase === Phase.Waiting) {
      this.reject(upstreamRejection(err, this.upstream));
      return;
    }
    // Mid-stream: close the client connection; a truncated response is the only honest signal.
    this.upstream.latency?.observe((performance.now() - this.startedAt) / 1000);
    this.settle('upstream_error_midstream', undefined);
    this.res.destroy();
  }

  onClientClose(): void {
    const phase = this.phase;
    if (phase === Phase.Done) return;
    if (phase === Phase.Ending && this.res.writableFinished) {
      this.settle('ok', undefined);
      return;
    }
    this.clientGone = true;
    this.controller?.abort(clientClosed());
    this.settle('client_abort', undefined);
  }

  private reject(error: Rejection): void {
    // Leave the client connection usable for the HTTP layer's error response.
    this.body?.detach();
    this.settle('rejected', error);
  }

  private settle(outcome: ForwardOutcome, rejection: Rejection | undefined): void {
    this.phase = Phase.Done;
    this.tap?.onEnd();
    (this.res as TaggedResponse)[kExchange] = undefined;
    // Built by assignment, not conditional spreads: once per request, without throwaway objects.
    const result: Mutable<ForwardResult> = { outcome };
    if (rejection !== undefined) result.rejection = rejection;
    if (this.firstByteAt !== 0) result.firstByteMs = this.firstByteAt - this.startedAt;
    this.resolve(result);
  }
}

/**
 * The request body as undici reads it: a Readable fed from `req` that, unlike `req` itself, undici
 * may destroy without destroying the client's socket. So when the upstream fails before
 * responding, the HTTP layer can still answer 502 on the same connection. A client that aborts
 * its upload destroys this stream, and undici then discards the upstream connection (it is never
 * reused with a half-sent body: threats.md 86).
 */
class RequestBody extends Readable {
  private attached = true;

  constructor(private readonly req: IncomingMessage) {
    super();
    (req as TaggedRequest)[kBody] = this;
    req.on('data', onRequestData);
    req.on('end', onRequestEnd);
    req.on('error', onRequestError);
    req.on('close', onRequestClose);
  }

  override _read(): void {
    if (this.attached) this.req.resume();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.detach();
    callback(err);
  }

  onData(chunk: Buffer): void {
    if (!this.push(chunk)) this.req.pause();
  }

  onEnd(): void {
    this.push(null);
  }

  onAbort(err: Error): void {
    if (!this.destroyed) this.destroy(err);
  }

  /** Stop reading from the client; what it still sends is discarded. */
  detach(): void {
    if (!this.attached) return;
    this.attached = false;
    const req = this.req;
    (req as TaggedRequest)[kBody] = undefined;
    req.off('data', onRequestData);
    req.off('end', onRequestEnd);
    req.off('error', onRequestError);
    req.off('close', onRequestClose);
    if (!req.complete && !req.destroyed) req.resume();
  }
}

function onRequestData(this: IncomingMessage, chunk: Buffer): void {
  (this as TaggedRequest)[kBody]?.onData(chunk);
}

function onRequestEnd(this: IncomingMessage): void {
  (this as TaggedRequest)[kBody]?.onEnd();
}

function onRequestError(this: IncomingMessage, err: Error): void {
  (this as TaggedRequest)[kBody]?.onAbort(err);
}

function onRequestClose(this: IncomingMessage): void {
  if (!this.complete) (this as TaggedRequest)[kBody]?.onAbort(clientClosed());
}

type TapHeaders = readonly (readonly [string, string])[];
const NO_TAP_HEADERS: TapHeaders = [];

/** Response headers with the tap's added: a name the tap sets replaces the upstream's values of it. */
function withHeaders(headers: string[], added: TapHeaders): string[] {
  if (added.length === 0) return headers;
  const names = new Set(added.map(([name]) => name));
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (!names.has(headers[i]!)) out.push(headers[i]!, headers[i + 1]!);
  for (const [name, value] of added) out.push(name, value);
  return out;
}

function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

function isEventStream(contentType: string | readonly string[] | undefined): boolean {
  return typeof contentType === 'string' && contentType.toLowerCase().startsWith('text/event-stream');
}

class ClientClosedError extends Error {
  readonly code = 'client_closed';
}

function clientClosed(): Error {
  return new ClientClosedError('the client closed the connection');
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The error's code (`ECONNREFUSED`, `UND_ERR_...`), else its class name (`HTTPParserError` carries no code). */
function codeOf(err: unknown): string | undefined {
  const { code, name } = (err ?? {}) as { code?: unknown; name?: unknown };
  if (typeof code === 'string') return code;
  return typeof name === 'string' && name !== 'Error' ? name : undefined;
}

/** The upstream answered, but not with HTTP/1.1 the sidecar can relay. */
const INVALID_RESPONSE = new Set(['HTTPParserError', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'UND_ERR_RES_EXCEEDED_MAX_SIZE']);

const CONNECT_REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_SOCKET: 'connection closed before a response',
};

/** A failure before any response byte: 504 for timeouts, 502 for everything else. */
function upstreamRejection(err: Error, upstream: Upstream): Rejection {
  const code = codeOf(err) ?? 'unknown';
  const which = upstream.plane === 'control' ? 'control-plane' : 'data-plane';
  if (code === 'UND_ERR_HEADERS_TIMEOUT') {
    return rejection('upstream_timeout', `the ${which} upstream did not send response headers in time (--upstream-headers-timeout)`, {
      reason: 'headers_timeout',
    });
  }
  if (code === 'UND_ERR_CONNECT_TIMEOUT') {
    return rejection('upstream_timeout', `the ${which} upstream did not accept the connection in time`, { reason: 'connect_timeout' });
  }
  if (code.startsWith('HPE_') || INVALID_RESPONSE.has(code)) {
    return rejection('upstream_unavailable', `the ${which} upstream sent an invalid HTTP response`, { reason: 'invalid_response' });
  }
  const reason = CONNECT_REASONS[code] ?? 'request failed';
  return rejection('upstream_unavailable', `the ${which} upstream is unavailable (${reason}); try again later`, { reason: code.toLowerCase() });
}
