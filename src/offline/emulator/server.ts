import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { adminRoute, type AdminContext } from './admin/router.js';
import { armPath, armRoute, handleArm } from './arm/router.js';
import type { Emulator } from './core.js';
import { serveJwks, serveOpenIdConfiguration } from './entra/discovery.js';
import { handleDeviceCodeRequest } from './entra/device-code.js';
import { serveInstanceDiscovery, serveUserRealm } from './entra/instance.js';
import { handleTokenRequest } from './entra/token.js';
import { BodyTooLarge, isLoopbackAddress, newRequestId, readBody, sendJson, type Exchange } from './exchange.js';
import type { Family, Fault } from './faults.js';
import { graphRoute, handleGraph } from './graph/router.js';
import { clusterByName, serveK8sDiscovery, serveK8sJwks } from './k8s.js';
import { handleMsiToken } from './msi.js';
import { acceptConnects } from './proxy.js';

/**
 * The listeners (HTTPS and plain HTTP, same handlers) and the dispatch: path -> endpoint family and
 * route pattern -> counters -> injected faults -> handler.
 */

interface Resolved {
  readonly family: Family | 'admin';
  readonly route: string;
  readonly run: () => void | Promise<void>;
}

const TENANT_PATHS: ReadonlyArray<readonly [RegExp, Family, string, (em: Emulator, ex: Exchange, tenant: string) => void]> = [
  [
    /^\/([^/]+)\/v2\.0\/\.well-known\/openid-configuration$/,
    'discovery',
    '/{tenant}/v2.0/.well-known/openid-configuration',
    (em, ex, t) => serveOpenIdConfiguration(em, ex, t, true),
  ],
  [
    /^\/([^/]+)\/\.well-known\/openid-configuration$/,
    'discovery',
    '/{tenant}/.well-known/openid-configuration',
    (em, ex, t) => serveOpenIdConfiguration(em, ex, t, false),
  ],
  [/^\/([^/]+)\/discovery\/v2\.0\/keys$/, 'jwks', '/{tenant}/discovery/v2.0/keys', (em, ex, t) => serveJwks(em, ex, t, true)],
  [/^\/([^/]+)\/discovery\/keys$/, 'jwks', '/{tenant}/discovery/keys', (em, ex, t) => serveJwks(em, ex, t, false)],
  [/^\/([^/]+)\/oauth2\/v2\.0\/token$/, 'token', '/{tenant}/oauth2/v2.0/token', (em, ex, t) => handleTokenRequest(em, ex, t, false)],
  [/^\/([^/]+)\/oauth2\/token$/, 'token', '/{tenant}/oauth2/token', (em, ex, t) => handleTokenRequest(em, ex, t, true)],
  [/^\/([^/]+)\/oauth2\/v2\.0\/devicecode$/, 'token', '/{tenant}/oauth2/v2.0/devicecode', (em, ex, t) => handleDeviceCodeRequest(em, ex, t)],
];

const MSI_DEFAULT = /^(?:\/msi)?\/metadata\/identity\/oauth2\/token\/?$/;
const MSI_CLUSTER = /^\/msi\/clusters\/([^/]+)\/metadata\/identity\/oauth2\/token\/?$/;
const USER_REALM = /^\/common\/userrealm\/([^/]+)$/;
const K8S = /^\/_emulator\/k8s\/([^/]+)\/(\.well-known\/openid-configuration|openid\/v1\/jwks)$/;

function notFound(ex: Exchange): void {
  sendJson(ex.res, 404, {
    error: { code: 'NotFound', message: `The emulator serves nothing at ${ex.method} ${ex.path}. See GET /_emulator/endpoints.` },
  });
}

function resolve(em: Emulator, admin: AdminContext, ex: Exchange): Resolved | undefined {
  const p = ex.path;
  const m = ex.method;
  let k = K8S.exec(p);
  if (k) {
    const cluster = clusterByName(em, decodeURIComponent(k[1] ?? ''));
    const discovery = k[2]?.startsWith('.well-known') ?? false;
    return {
      family: 'k8s',
      route: discovery ? '/_emulator/k8s/{cluster}/.well-known/openid-configuration' : '/_emulator/k8s/{cluster}/openid/v1/jwks',
      run: () => (cluster === undefined || m !== 'GET' ? notFound(ex) : discovery ? serveK8sDiscovery(ex, cluster) : serveK8sJwks(ex, cluster)),
    };
  }
  if (p === '/_emulator' || p.startsWith('/_emulator/')) {
    const r = adminRoute(m, p.slice('/_emulator'.length));
    if (r === undefined) return { family: 'admin', route: '(unmatched)', run: () => notFound(ex) };
    return { family: 'admin', route: r.name, run: () => r.run(admin, ex) };
  }
  if (p === '/graph' || p.startsWith('/graph/')) {
    const r = graphRoute(m, p.slice('/graph'.length));
    return { family: 'graph', route: r?.pattern ?? '(unmatched)', run: () => handleGraph(em, ex, r) };
  }
  if (p === '/arm' || p.startsWith('/arm/')) {
    const path = armPath(p);
    const r = armRoute(m, path);
    return { family: 'arm', route: r?.pattern ?? '(unmatched)', run: () => handleArm(em, ex, r, path) };
  }
  if (p === '/common/discovery/instance')
    return { family: 'discovery', route: '/common/discovery/instance', run: () => (m === 'GET' ? serveInstanceDiscovery(em, ex) : notFound(ex)) };
  k = USER_REALM.exec(p);
  if (k) {
    const upn = decodeURIComponent(k[1] ?? '');
    return { family: 'discovery', route: '/common/userrealm/{upn}', run: () => (m === 'GET' ? serveUserRealm(em, ex, upn) : notFound(ex)) };
  }
  if (MSI_DEFAULT.test(p)) return { family: 'msi', route: '/msi/metadata/identity/oauth2/token', run: () => handleMsiToken(em, ex, undefined) };
  k = MSI_CLUSTER.exec(p);
  if (k) {
    const name = decodeURIComponent(k[1] ?? '');
    return { family: 'msi', route: '/msi/clusters/{name}/metadata/identity/oauth2/token', run: () => handleMsiToken(em, ex, name) };
  }
  for (const [re, family, route, handler] of TENANT_PATHS) {
    const t = re.exec(p);
    if (t === null) continue;
    const tenant = decodeURIComponent(t[1] ?? '');
    const isToken = family === 'token';
    return {
      family,
      route,
      run: () => {
        if (isToken ? m !== 'POST' : m !== 'GET' && m !== 'HEAD')
          return sendJson(ex.res, 405, { error: 'invalid_request', error_description: `${m} is not supported on ${route}.` });
        handler(em, ex, tenant);
      },
    };
  }
  return undefined;
}

/** The body a fault answers with when none was given: each family's own error shape. */
function faultBody(family: Family, status: number, correlationId: string): unknown {
  switch (family) {
    case 'arm':
      if (status === 429)
        return {
          error: {
            code: 'SubscriptionRequestsThrottled',
            message:
              "Number of 'read' requests for subscription actor exceeded. Please try again after some time. Refer to https://aka.ms/arm-throttling",
          },
        };
      return {
        error: {
          code: status >= 500 ? 'InternalServerError' : 'InjectedFault',
          message: `Encountered an injected fault. Diagnostic information: correlation id '${correlationId}'.`,
        },
      };
    case 'graph':
      return {
        error: {
          code: status === 429 ? 'TooManyRequests' : status >= 500 ? 'serviceNotAvailable' : 'Request_BadRequest',
          message: status === 429 ? 'Too many requests.' : 'An injected fault.',
          innerError: { date: new Date().toISOString().slice(0, 19), 'request-id': correlationId, 'client-request-id': correlationId },
        },
      };
    case 'msi':
      return { error: status === 429 ? 'too_many_requests' : 'unknown', error_description: 'An injected fault.' };
    default:
      return {
        error: status === 429 ? 'temporarily_unavailable' : 'server_error',
        error_description: `AADSTS90033: A transient error has occurred (injected fault). Please try again.\r\nTrace ID: ${correlationId}`,
        error_codes: [90033],
      };
  }
}

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

/** Applies a fault; true when the request was answered (or dropped) by it. */
async function applyFault(ex: Exchange, family: Family, fault: Fault): Promise<boolean> {
  if (fault.latencyMs !== undefined && fault.latencyMs > 0) await delay(fault.latencyMs);
  if (fault.drop === true) {
    ex.req.socket.destroy();
    return true;
  }
  if (fault.status === undefined) return false;
  const headers: Record<string, string> = { ...(fault.headers ?? {}) };
  const retryAfter = fault.retryAfterSeconds ?? (fault.status === 429 ? 1 : undefined);
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  if (family === 'arm') headers['x-ms-correlation-request-id'] = ex.requestId;
  sendJson(ex.res, fault.status, fault.body !== undefined ? fault.body : faultBody(family, fault.status, ex.requestId), headers);
  return true;
}

export function createHandler(em: Emulator, admin: AdminContext): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void handle(em, admin, req, res);
  };
}

async function handle(em: Emulator, admin: AdminContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const started = performance.now();
  const raw = req.url ?? '/';
  const secure = 'encrypted' in req.socket && req.socket.encrypted === true;
  const base = secure ? em.bases.https : em.bases.http;
  const requestId = newRequestId();
  if (!raw.startsWith('/')) {
    sendJson(res, 400, { error: { code: 'BadRequest', message: 'request target must be origin-form' } });
    return;
  }
  const q = raw.indexOf('?');
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/\/{2,}/g, '/');
  const query = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  let body: Buffer;
  try {
    body = await readBody(req);
  } catch (err) {
    if (err instanceof BodyTooLarge) sendJson(res, 413, { error: { code: 'RequestEntityTooLarge', message: err.message } });
    else req.socket.destroy();
    return;
  }
  const ex: Exchange = { req, res, method: (req.method ?? 'GET').toUpperCase(), path, query, base, body, requestId };
  const resolved = resolve(em, admin, ex);
  let family: string = 'none';
  let route = '(unmatched)';
  try {
    if (resolved === undefined) {
      notFound(ex);
      return;
    }
    family = resolved.family;
    route = resolved.route;
    if (resolved.family === 'admin') {
      if (!isLoopbackAddress(req.socket.remoteAddress)) {
        sendJson(res, 403, { error: { code: 'forbidden', message: 'the admin API answers loopback clients only' } });
        return;
      }
    } else {
      em.counters.record(resolved.family, ex.method, resolved.route);
      const fault = em.faults.take(resolved.family, ex.method, path);
      if (fault !== undefined && (await applyFault(ex, resolved.family, fault))) return;
    }
    await resolved.run();
  } catch (err) {
    em.log.error({ err: err instanceof Error ? err.message : String(err), method: ex.method, route }, 'emulator handler failed');
    sendJson(res, 500, { error: { code: 'InternalServerError', message: 'the emulator failed to handle this request; see its log' } });
  } finally {
    em.log.debug({ family, method: ex.method, route, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
  }
}

export interface Listeners {
  readonly https: Server;
  readonly http: Server;
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolveListen, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolveListen((server.address() as AddressInfo).port);
    });
  });
}

export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function startListeners(
  em: Emulator,
  admin: AdminContext,
  opts: { host: string; httpsPort: number; httpPort: number },
): Promise<Listeners> {
  const handler = createHandler(em, admin);
  const https = createHttpsServer({ key: em.state.server.keyPem, cert: em.state.server.certPem }, handler);
  const http = createHttpServer(handler);
  for (const s of [https, http]) {
    s.keepAliveTimeout = 5_000;
    s.headersTimeout = 30_000;
    s.requestTimeout = 60_000;
  }
  try {
    const httpsPort = await listen(https, opts.host, opts.httpsPort);
    const httpPort = await listen(http, opts.host, opts.httpPort);
    em.bases = { https: `https://${urlHost(opts.host)}:${httpsPort}`, http: `http://${urlHost(opts.host)}:${httpPort}` };
    acceptConnects(em, http, https);
  } catch (err) {
    https.close();
    http.close();
    throw err;
  }
  return { https, http };
}

export async function closeListeners(l: Listeners): Promise<void> {
  await Promise.all(
    [l.https, l.http].map(
      (s) =>
        new Promise<void>((r) => {
          s.close(() => r());
          s.closeAllConnections();
        }),
    ),
  );
}
