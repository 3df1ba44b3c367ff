import { createServer, type Server } from 'node:http';
import type { Metrics } from './metrics.js';

/** A named readiness check: resolves to null when satisfied, otherwise what is missing and how to fix it. */
export interface ReadinessCheck {
  readonly name: string;
  check(): Promise<string | null> | string | null;
}

/**
 * The admin listener of SPEC section 7: `/healthz` (process alive), `/readyz` (503 until every check
 * passes, and while draining; the JSON says which check fails), `/metrics` (Prometheus text).
 */
export class AdminServer {
  readonly server: Server;
  private draining = false;

  constructor(
    private readonly metrics: Metrics,
    private readonly checks: readonly ReadinessCheck[],
  ) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
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

function json(res: import('node:http').ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(text);
}
