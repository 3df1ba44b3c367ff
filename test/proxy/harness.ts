/**
 * A minimal gateway for forwarding tests: a node:http server that hands every request to
 * `Forwarder.forward` (as the HTTP layer does after authentication and authorization) and writes a
 * returned rejection with the HTTP layer's own `sendRejection`.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Principal } from '../../src/contracts/principal.js';
import { sendRejection } from '../../src/http/respond.js';
import type { Plane } from '../../src/contracts/route.js';
import type { ForwardResult } from '../../src/contracts/stages.js';
import { Forwarder, type ForwarderOptions } from '../../src/proxy/forward.js';

export interface Harness {
  readonly url: string;
  readonly port: number;
  readonly forwarder: Forwarder;
  /** Results in completion order. */
  readonly results: ForwardResult[];
  /** Resolves with the next completed forward. */
  nextResult(timeoutMs?: number): Promise<ForwardResult>;
  close(): Promise<void>;
}

export interface HarnessOptions extends Partial<ForwarderOptions> {
  readonly upstreamUrl: string;
  /** The principal to forward as, per request (default: none, like a public path). */
  readonly principal?: (req: IncomingMessage) => Principal | undefined;
  readonly plane?: (req: IncomingMessage) => Plane;
  /** Runs before each forward (stands in for authentication and authorization time). */
  readonly beforeForward?: (req: IncomingMessage) => Promise<void>;
}

export async function startHarness(opts: HarnessOptions): Promise<Harness> {
  const forwarder = new Forwarder({
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    ...opts,
    upstream: opts.upstream ?? new URL(opts.upstreamUrl),
  });
  const results: ForwardResult[] = [];
  const waiters: Array<(r: ForwardResult) => void> = [];
  let counter = 0;
  const server: Server = createServer({ joinDuplicateHeaders: false }, (req, res) => {
    const requestId = `req-${++counter}`;
    void (opts.beforeForward?.(req) ?? Promise.resolve())
      .then(() =>
        forwarder.forward({
          req,
          res,
          plane: opts.plane?.(req) ?? 'data',
          target: req.url ?? '/',
          principal: opts.principal?.(req),
          requestId,
        }),
      )
      .then((result) => {
        if (result.rejection !== undefined && !res.headersSent) sendRejection(res, result.rejection, requestId, true);
        results.push(result);
        waiters.shift()?.(result);
      });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  let taken = 0;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    forwarder,
    results,
    nextResult(timeoutMs = 5_000) {
      if (results.length > taken) return Promise.resolve(results[taken++]!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no forward result within ${timeoutMs} ms`)), timeoutMs);
        waiters.push((r) => {
          clearTimeout(timer);
          taken++;
          resolve(r);
        });
      });
    },
    // Idempotent: a test may close the harness itself before afterEach does.
    async close() {
      if (!server.listening) return;
      server.closeAllConnections();
      server.close();
      await forwarder.close();
    },
  };
}
