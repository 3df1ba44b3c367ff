import { randomUUID } from 'node:crypto';
import { getGlobalDispatcher, type Dispatcher } from 'undici';
import { systemClock, type Clock } from '../ops/clock.js';
import type { Logger } from '../ops/log.js';

/**
 * The one JSON-over-HTTP call every Azure client here makes (ARM, the token endpoint, the msi-adapter,
 * and later Graph): a deadline for the whole exchange, a cap on the response size, a fresh
 * `x-ms-correlation-request-id`, and every failure classified so callers can say what went wrong.
 * Request and response bodies and the Authorization header are never logged.
 */

/** Largest response body read; Azure list pages are far smaller, and an endless body must not exhaust memory. */
export const DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Longest back-off honoured from a `Retry-After` header. */
export const MAX_RETRY_AFTER_SECONDS = 3600;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_ERROR_MESSAGE_CHARS = 400;
const USER_AGENT = 'foundry-auth';

export type HttpFailure =
  | { readonly kind: 'unreachable'; readonly detail: string }
  | { readonly kind: 'timeout'; readonly afterMs: number }
  | {
      readonly kind: 'http';
      readonly status: number;
      /** Azure's error code: ARM `error.code`, Entra/IMDS `error` (e.g. `AuthorizationFailed`, `invalid_client`). */
      readonly code?: string;
      /** ARM `error.message` or Entra `error_description` (first line, clipped). */
      readonly message?: string;
      readonly retryAfterSeconds?: number;
    }
  | { readonly kind: 'bad_response'; readonly detail: string };

export class HttpCallError extends Error {
  constructor(
    readonly failure: HttpFailure,
    readonly operation: string,
    readonly correlationId: string,
  ) {
    super(`${operation}: ${describeFailure(failure)}`);
    this.name = 'HttpCallError';
  }
}

export interface JsonCall {
  /** Names the call in logs and errors, e.g. `arm.role_assignments`. */
  readonly operation: string;
  /** An absolute http(s) URL; a string is sent byte for byte (no WHATWG re-encoding of `'` and the like). */
  readonly url: URL | string;
  readonly method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Deadline for connecting, sending and reading the whole response. */
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher;
  readonly maxBytes?: number;
  /** For `Retry-After` given as an HTTP date. */
  readonly clock?: Clock;
  readonly log?: Logger;
  /** A 2xx with an empty body (Graph PATCH/DELETE 204, ARM DELETE) is success with body `null` instead of a bad response. */
  readonly allowEmpty?: boolean;
}

export interface JsonReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: unknown;
  readonly correlationId: string;
}

/** Sends one request and returns the parsed 2xx JSON body; anything else throws HttpCallError. */
export async function requestJson(call: JsonCall): Promise<JsonReply> {
  const correlationId = randomUUID();
  const clock = call.clock ?? systemClock;
  const startedMs = performance.now();
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), call.timeoutMs);
  timer.unref();
  const fail = (failure: HttpFailure): HttpCallError => new HttpCallError(failure, call.operation, correlationId);
  let parts: ReturnType<typeof target>;
  try {
    parts = target(call.url);
  } catch (err) {
    clearTimeout(timer);
    throw fail({ kind: 'bad_response', detail: `not a usable URL (${err instanceof Error ? err.message : String(err)})` });
  }
  const { origin, path, host, pathname } = parts;
  try {
    let response: Dispatcher.ResponseData;
    try {
      response = await (call.dispatcher ?? getGlobalDispatcher()).request({
        origin,
        path,
        method: call.method ?? 'GET',
        headers: {
          accept: 'application/json',
          'user-agent': USER_AGENT,
          'x-ms-correlation-request-id': correlationId,
          ...call.headers,
        },
        body: call.body ?? null,
        signal: deadline.signal,
      });
    } catch (err) {
      throw fail(deadline.signal.aborted ? { kind: 'timeout', afterMs: call.timeoutMs } : transportFailure(err, call.timeoutMs));
    }
    const { statusCode, headers } = response;
    const success = statusCode >= 200 && statusCode < 300;
    let text: string;
    try {
      text = await readCapped(response.body, success ? (call.maxBytes ?? DEFAULT_MAX_RESPONSE_BYTES) : MAX_ERROR_BODY_BYTES, headers);
    } catch (err) {
      if (deadline.signal.aborted) throw fail({ kind: 'timeout', afterMs: call.timeoutMs });
      // A huge error page still has a status worth reporting.
      if (err instanceof ResponseTooLarge && !success) throw fail(httpFailure(statusCode, headers, '', clock.now()));
      if (err instanceof ResponseTooLarge) throw fail({ kind: 'bad_response', detail: err.message });
      throw fail(transportFailure(err, call.timeoutMs));
    }
    call.log?.debug(
      {
        operation: call.operation,
        method: call.method ?? 'GET',
        host,
        path: pathname,
        status: statusCode,
        ms: Math.round(performance.now() - startedMs),
        correlationId,
      },
      'azure call',
    );
    if (!success) throw fail(httpFailure(statusCode, headers, text, clock.now()));
    let body: unknown;
    if (call.allowEmpty === true && text.trim() === '') return { status: statusCode, headers, body: null, correlationId };
    try {
      body = JSON.parse(text);
    } catch {
      throw fail({ kind: 'bad_response', detail: `status ${statusCode} with a body that is not JSON (${text.length} bytes)` });
    }
    return { status: statusCode, headers, body, correlationId };
  } catch (err) {
    if (err instanceof HttpCallError) {
      call.log?.debug({ operation: call.operation, host, path: pathname, failure: err.failure.kind, correlationId }, 'azure call failed');
    }
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Origin and request target of an absolute URL; a string's path and query are kept exactly as written. */
function target(url: URL | string): { origin: string; path: string; host: string; pathname: string } {
  const parsed = typeof url === 'string' ? new URL(url) : url;
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new TypeError(`not an http(s) URL: ${parsed.protocol}`);
  let path = `${parsed.pathname}${parsed.search}`;
  if (typeof url === 'string') {
    const authority = /^https?:\/\/[^/?#]*/i.exec(url);
    const raw = authority ? url.slice(authority[0].length).split('#')[0]! : '';
    path = raw === '' ? '/' : raw.startsWith('?') ? `/${raw}` : raw;
  }
  return { origin: parsed.origin, path, host: parsed.host, pathname: parsed.pathname };
}

/** `Retry-After` as whole seconds from now: delta-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | readonly string[] | undefined, nowMs: number): number | undefined {
  const raw = (typeof value === 'string' ? value : value?.[0])?.trim();
  if (raw === undefined || raw === '') return undefined;
  if (/^\d+$/.test(raw)) return Math.min(Number(raw), MAX_RETRY_AFTER_SECONDS);
  // An HTTP date names its day or month; anything else (`-1`, `1.5`) is not a Retry-After value.
  const at = /[a-z]/i.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, Math.ceil((at - nowMs) / 1000)), MAX_RETRY_AFTER_SECONDS);
}

/** One header value as a string (first of repeated values). */
export function headerValue(headers: JsonReply['headers'], name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : v?.[0];
}

export function describeFailure(f: HttpFailure): string {
  switch (f.kind) {
    case 'unreachable':
      return `unreachable (${f.detail})`;
    case 'timeout':
      return `no answer within ${f.afterMs} ms`;
    case 'bad_response':
      return `unexpected response (${f.detail})`;
    case 'http':
      return `HTTP ${f.status}${f.code ? ` ${f.code}` : ''}${f.message ? `: ${f.message}` : ''}`;
  }
}

/** The `outcome` label of `foundry_auth_arm_calls_total` for a failure. */
export function failureOutcome(f: HttpFailure): 'unreachable' | 'timeout' | 'bad_response' | 'throttled' | 'http_4xx' | 'http_5xx' {
  if (f.kind !== 'http') return f.kind;
  if (f.status === 429) return 'throttled';
  if (f.status >= 500) return 'http_5xx';
  return f.status >= 400 ? 'http_4xx' : 'bad_response';
}

class ResponseTooLarge extends Error {}

async function readCapped(body: Dispatcher.ResponseData['body'], maxBytes: number, headers: JsonReply['headers']): Promise<string> {
  const declared = Number(headerValue(headers, 'content-length'));
  if (Number.isFinite(declared) && declared > maxBytes) {
    discard(body);
    throw new ResponseTooLarge(`body of ${declared} bytes exceeds the ${maxBytes}-byte limit`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      discard(body);
      throw new ResponseTooLarge(`body exceeds the ${maxBytes}-byte limit`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const CALLER_ERROR_CODES = new Set(['UND_ERR_INVALID_ARG', 'ERR_INVALID_URL']);
/** Closes a body we will not read; undici reports the abort as an 'error' event, which nobody else listens to. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => undefined);
  body.destroy();
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

function transportFailure(err: unknown, timeoutMs: number): HttpFailure {
  const code = errorCode(err) ?? errorCode(err instanceof Error ? err.cause : undefined);
  if (code !== undefined && TIMEOUT_CODES.has(code)) return { kind: 'timeout', afterMs: timeoutMs };
  if (code !== undefined && CALLER_ERROR_CODES.has(code))
    return { kind: 'bad_response', detail: `the request could not be sent: ${clip(err instanceof Error ? err.message : String(err))}` };
  const message = err instanceof Error ? err.message : String(err);
  return { kind: 'unreachable', detail: code !== undefined ? `${code}: ${clip(message)}` : clip(message) };
}

function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') return err.code;
  return undefined;
}

/** Reads the error shapes Azure uses: ARM `{error:{code,message}}`, Entra and IMDS `{error, error_description}`. */
function httpFailure(status: number, headers: JsonReply['headers'], text: string, nowMs: number): HttpFailure {
  const retryAfterSeconds = parseRetryAfter(headers['retry-after'], nowMs);
  let code: string | undefined;
  let message: string | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    if (isRecord(parsed)) {
      const error = parsed['error'];
      if (isRecord(error)) {
        code = stringOr(error['code']);
        message = stringOr(error['message']);
      } else {
        code = stringOr(error);
        message = stringOr(parsed['error_description']) ?? stringOr(parsed['message']);
      }
    }
  } catch {
    // Not JSON (a proxy's HTML page, an empty body): the status alone says enough.
  }
  return {
    kind: 'http',
    status,
    ...(code !== undefined ? { code: clip(code, 100) } : {}),
    ...(message !== undefined ? { message: clip(message.split(/\r?\n/)[0] ?? '') } : {}),
    ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringOr(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function clip(s: string, max = MAX_ERROR_MESSAGE_CHARS): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
