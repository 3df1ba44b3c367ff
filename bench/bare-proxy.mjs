// The ceiling for any Node proxy of foundry-auth's design: node:http in front, an undici Pool
// `dispatch` behind, bodies streamed both ways, hop-by-hop headers dropped, nothing else (no
// authentication, no authorization, no audit line, no metrics).
//
//   node bench/bare-proxy.mjs --listen 127.0.0.1:0 --upstream http://127.0.0.1:8080
//
// Prints one JSON line `{"listening":"http://127.0.0.1:PORT"}` on stdout once it accepts.
import { createServer } from 'node:http';
import { Pool } from 'undici';
import { argument, listenAndAnnounce } from './lib/bench-server.mjs';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

const upstream = new URL(argument('upstream', 'http://127.0.0.1:8080'));
// Same pool settings as the sidecar's forwarder (src/proxy/forward.ts).
const pool = new Pool(upstream.origin, { connections: 256, pipelining: 1, keepAliveTimeout: 4_000 });

/** One exchange: undici's dispatch handler writing straight into the client response. */
class Exchange {
  constructor(res) {
    this.res = res;
    this.controller = null;
    this.started = false;
  }

  onRequestStart(controller) {
    this.controller = controller;
  }

  onResponseStart(controller, statusCode, headers) {
    if (statusCode < 200) return;
    const flat = [];
    for (const name in headers) {
      if (HOP_BY_HOP.has(name)) continue;
      const value = headers[name];
      if (typeof value === 'string') flat.push(name, value);
      else if (Array.isArray(value)) for (const one of value) flat.push(name, one);
    }
    this.res.writeHead(statusCode, flat);
    this.started = true;
    if (String(headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.res.socket?.setNoDelay(true);
      this.res.flushHeaders();
    }
  }

  onResponseData(controller, chunk) {
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd() {
    this.res.end();
  }

  onResponseError(_controller, err) {
    if (this.started) this.res.destroy(err);
    else {
      this.res.writeHead(502, { 'content-type': 'application/json' });
      this.res.end('{"error":"bad gateway"}');
    }
  }
}

const server = createServer((req, res) => {
  const raw = req.rawHeaders;
  const headers = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  }
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] ?? '0') !== '0';
  const exchange = new Exchange(res);
  res.on('close', () => {
    if (!res.writableFinished) exchange.controller?.abort(new Error('client closed'));
  });
  pool.dispatch({ path: req.url, method: req.method, headers, body: hasBody ? req : null }, exchange);
});
listenAndAnnounce(server);

const stop = () => server.close(() => pool.close().then(() => process.exit(0)));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
