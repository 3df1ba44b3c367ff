import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { silentLogger, type Logger } from '../../ops/log.js';
import { handleControlPlane } from './control-plane.js';
import { pathSegments, sendJson, sendOpenAiError, type RequestContext } from './http.js';
import { DataPlane } from './openai.js';
import { ControlPlaneStore } from './store.js';

/**
 * `foundry-auth sample-backend`: a stand-in Foundry Local server (SPEC section 9) for the dev
 * stack, demos and tests. Data plane `/v1/...` (OpenAI-compatible, SSE), `/healthz`, `/readyz`,
 * and an in-memory control plane under `/api/v1`. No authentication: it trusts the sidecar, and
 * logs the identity headers the sidecar sent (never `Authorization`).
 */
export interface SampleBackendOptions {
  /** Default 127.0.0.1. */
  readonly host?: string;
  /** Default 5000 (the Foundry Local chat server's port on Arc); 0 picks a free port. */
  readonly port?: number;
  /** Streamed tokens per second; 0 = as fast as the client reads. Default 50. */
  readonly tokenRate?: number;
  /** One line per request; default: silent. */
  readonly log?: Logger;
}

export interface SampleBackend {
  /** `http://host:port`, IPv6 hosts in brackets. */
  readonly url: string;
  readonly port: number;
  readonly server: Server;
  readonly store: ControlPlaneStore;
  close(): Promise<void>;
}

export const DEFAULT_SAMPLE_BACKEND_PORT = 5000;
export const DEFAULT_TOKEN_RATE = 50;

export async function startSampleBackend(opts: SampleBackendOptions = {}): Promise<SampleBackend> {
  const log = opts.log ?? silentLogger();
  const store = new ControlPlaneStore();
  const data = new DataPlane({ tokenRate: opts.tokenRate ?? DEFAULT_TOKEN_RATE, store, now: () => Math.floor(Date.now() / 1000) });

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const ctx: RequestContext = {
      req,
      res,
      method: req.method ?? 'GET',
      path: queryAt < 0 ? url : url.slice(0, queryAt),
      query: new URLSearchParams(queryAt < 0 ? '' : url.slice(queryAt + 1)),
    };
    const started = performance.now();
    res.once('close', () => logRequest(log, ctx, started));
    route(ctx, data, store).catch((err: unknown) => {
      log.error({ err: err instanceof Error ? err.message : String(err), path: ctx.path }, 'sample backend handler failed');
      if (!res.headersSent) sendOpenAiError(res, 500, 'internal error in the sample backend', 'internal_error', null, 'server_error');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;

  server.listen(opts.port ?? DEFAULT_SAMPLE_BACKEND_PORT, opts.host ?? '127.0.0.1');
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err as Error))]);
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    server,
    store,
    async close() {
      server.closeIdleConnections();
      const closed = once(server, 'close');
      server.close();
      // Streams in flight end when their clients do; do not wait for them on shutdown.
      server.closeAllConnections();
      await closed;
    },
  };
}

async function route(ctx: RequestContext, data: DataPlane, store: ControlPlaneStore): Promise<void> {
  const segments = pathSegments(ctx.path);
  const method = ctx.method;
  const read = method === 'GET' || method === 'HEAD';
  if (segments === undefined) return sendOpenAiError(ctx.res, 400, `malformed path ${ctx.path}`, 'invalid_path');
  const joined = segments.join('/');

  if (joined === 'healthz') return read ? sendJson(ctx.res, 200, { status: 'healthy' }) : methodNotAllowed(ctx, 'GET, HEAD');
  if (joined === 'readyz') return read ? sendJson(ctx.res, 200, { status: 'ready' }) : methodNotAllowed(ctx, 'GET, HEAD');
  if (segments[0] === 'api' && segments[1] === 'v1') return handleControlPlane(ctx, segments.slice(2), store);

  if (segments[0] === 'v1') {
    const [, resource, id, ...rest] = segments;
    if (resource === 'models' && id === undefined) return read ? data.listModels(ctx) : methodNotAllowed(ctx, 'GET, HEAD');
    if (resource === 'models' && id !== undefined && rest.length === 0) return read ? data.getModel(ctx, id) : methodNotAllowed(ctx, 'GET, HEAD');
    if (joined === 'v1/chat/completions') return method === 'POST' ? data.chatCompletions(ctx) : methodNotAllowed(ctx, 'POST');
    if (joined === 'v1/completions') return method === 'POST' ? data.completions(ctx) : methodNotAllowed(ctx, 'POST');
    if (joined === 'v1/embeddings') return method === 'POST' ? data.embeddings(ctx) : methodNotAllowed(ctx, 'POST');
  }
  sendOpenAiError(ctx.res, 404, `no route for ${method} ${ctx.path} in the sample backend`, 'not_found');
}

function methodNotAllowed(ctx: RequestContext, allow: string): void {
  ctx.res.setHeader('allow', allow);
  sendOpenAiError(ctx.res, 405, `${ctx.method} is not allowed on ${ctx.path}; allowed: ${allow}`, 'method_not_allowed');
}

/** One line per request: who the sidecar said the caller is, never a credential. */
function logRequest(log: Logger, ctx: RequestContext, started: number): void {
  const res: ServerResponse = ctx.res;
  const req: IncomingMessage = ctx.req;
  const clientAborted = !res.writableFinished;
  const level = clientAborted ? 'warn' : 'info';
  if (!log.isLevelEnabled(level)) return;
  const fields = {
    method: ctx.method,
    path: ctx.path,
    status: res.statusCode,
    principalName: headerValue(req, 'x-ms-client-principal-name'),
    principalType: headerValue(req, 'x-foundry-auth-principal-type'),
    requestId: headerValue(req, 'x-request-id'),
    durationMs: Math.round((performance.now() - started) * 10) / 10,
    ...(ctx.tokens !== undefined ? { tokens: ctx.tokens } : {}),
    ...(clientAborted ? { clientAborted: true } : {}),
  };
  if (clientAborted)
    log.warn(fields, ctx.tokens !== undefined ? `client aborted the stream after ${ctx.tokens} tokens` : 'client aborted the request');
  else log.info(fields, 'request');
}

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
