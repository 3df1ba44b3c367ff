import { GUID } from '../contracts/azure-ids.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Metrics } from './metrics.js';

/** A named readiness check: resolves to null when satisfied, otherwise what is missing and how to fix it. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<string | null> | string | null;
}

/** What `POST /cache/flush` reached: this replica's memory always; every replica unless the shared cache was unavailable. */
export interface FlushOutcome {
  /** `shared`: Redis and every replica; `local`: this replica only (no shared cache, or it was unavailable). */
  readonly reach: 'shared' | 'local';
  /** True when a shared cache is configured but could not be reached. */
  readonly sharedUnavailable: boolean;
}

/** Drops cached decisions of one principal (object ID) or, without one, of everyone. */
export type CacheFlush = (oid: string | undefined) => Promise<FlushOutcome>;

const MAX_FLUSH_BODY_BYTES = 4096;

/**
 * The admin listener of SPEC section 7: `/healthz` (process alive), `/readyz` (503 until every check
 * passes, and while draining; the JSON says which check fails), `/metrics` (Prometheus text), and
 * `POST /cache/flush` (loopback peers only) to drop cached decisions after a revocation.
 */
export class AdminServer {
  readonly server: Server;
  private draining = false;

  constructor(
    private readonly metrics: Metrics,
    private readonly checks: readonly ReadinessCheck[],
    private readonly flush?: CacheFlush,
  ) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/cache/flush') {
        this.cacheFlush(req, res);
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' }).end('{"status":"method not allowed"}');
        return;
      }
      if (path === '/healthz') {
        json(res, 200, { status: 'ok' });
      } else if (path === '/readyz') {
        void this.readiness().then(({ ready, checks }) => json(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks }));
      } else if (path === '/metrics') {
        void this.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text),
          () => json(res, 500, { status: 'metrics unavailable' }),
        );
      } else {
        json(res, 404, { status: 'not found', paths: ['/healthz', '/readyz', '/metrics'] });
      }
    });
  }

  /**
   * `POST /cache/flush` with `{"principal":"<object ID>"}` or no body (everyone). Only loopback
   * peers may flush: the admin listener may be bound wider for probes and metrics.
   */
  private cacheFlush(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'POST') {
      res.writeHead(405, { allow: 'POST', 'content-type': 'application/json' }).end('{"status":"method not allowed"}');
      req.resume();
      return;
    }
    if (!isLoopback(req.socket.remoteAddress)) {
      json(res, 403, {
        status: 'forbidden',
        message: 'POST /cache/flush answers loopback peers only: run it on the replica host (foundry-auth cache flush)',
      });
      req.resume();
      return;
    }
    const flush = this.flush;
    if (flush === undefined) {
      json(res, 404, { status: 'not found', message: 'no decision cache to flush in this mode' });
      req.resume();
      return;
    }
    void readBody(req, MAX_FLUSH_BODY_BYTES).then(async (body) => {
      if (body === undefined)
        return json(res, 413, { status: 'request too large', message: `the body must be at most ${MAX_FLUSH_BODY_BYTES} bytes` });
      const principal = parseFlushBody(body);
      if (principal.kind === 'invalid') return json(res, 400, { status: 'invalid request', message: principal.message });
      const oid = principal.kind === 'principal' ? principal.oid.toLowerCase() : undefined;
      try {
        const outcome = await flush(oid);
        const flushed = oid ?? 'all';
        if (outcome.sharedUnavailable) {
          return json(res, 503, {
            status: 'partial',
            flushed,
            reach: 'local',
            message: 'dropped in this replica only: the shared cache is unavailable, so other replicas keep their entries until their TTL',
          });
        }
        json(res, 200, { status: 'flushed', flushed, reach: outcome.reach });
      } catch (err) {
        json(res, 500, { status: 'error', message: `flush failed: ${(err as Error).message}` });
      }
    });
  }

  /** After SIGTERM: readiness reports 503 so load balancers stop sending traffic. */
  startDraining(): void {
    this.draining = true;
  }

  async readiness(): Promise<{ ready: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    let ready = !this.draining;
    if (this.draining) checks.shutdown = 'draining: the process received SIGTERM/SIGINT and is finishing in-flight requests';
    for (const c of this.checks) {
      let problem: string | null;
      try {
        problem = await c.check();
      } catch (err) {
        problem = `check failed: ${(err as Error).message}`;
      }
      checks[c.name] = problem ?? 'ok';
      if (problem !== null) ready = false;
    }
    return { ready, checks };
  }
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}

function readBody(req: IncomingMessage, max: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the bound the rest is read and discarded, so the answer still reaches the client.
      if (size <= max) chunks.push(chunk);
    });
    req.on('end', () => resolve(size > max ? undefined : Buffer.concat(chunks).toString('utf8')));
    req.on('error', () => resolve(undefined));
  });
}

type FlushBody =
  { readonly kind: 'all' } | { readonly kind: 'principal'; readonly oid: string } | { readonly kind: 'invalid'; readonly message: string };

function parseFlushBody(body: string): FlushBody {
  if (body.trim() === '') return { kind: 'all' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { kind: 'invalid', message: 'the body must be JSON: {"principal":"<object ID>"}, or empty to flush everyone' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    return { kind: 'invalid', message: 'the body must be a JSON object: {"principal":"<object ID>"}' };
  const keys = Object.keys(parsed);
  if (keys.length === 0) return { kind: 'all' };
  const principal = (parsed as Record<string, unknown>).principal;
  if (keys.some((k) => k !== 'principal') || typeof principal !== 'string' || !GUID.test(principal)) {
    return {
      kind: 'invalid',
      message:
        'principal must be the object ID (GUID) of a user, group member or service principal, e.g. {"principal":"00000000-0000-0000-0000-000000000000"}',
    };
  }
  return { kind: 'principal', oid: principal };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(text);
}
