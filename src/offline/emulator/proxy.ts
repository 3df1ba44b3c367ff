import type { Server as HttpServer, IncomingMessage } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Emulator } from './core.js';
import { isLoopbackAddress } from './exchange.js';

/**
 * The loopback HTTPS proxy on the emulator's HTTP listener (`HTTPS_PROXY=http://127.0.0.1:<http port>`):
 * MSAL (inside the Azure CLI) asks login.microsoftonline.com for instance discovery and the user
 * realm whatever authority it is given, and asks the authority's host on port 443 for the realm.
 * Those CONNECTs are answered by the emulator itself with its certificate (it names
 * login.microsoftonline.com, signed by the emulator's CA, which only a client told to trust it
 * trusts); any other loopback target is tunnelled as is; everything else is refused.
 */

/** Host names the emulator answers as itself on port 443. */
export const INTERCEPTED_HOSTS = ['login.microsoftonline.com', 'localhost', '127.0.0.1'] as const;

function isLoopbackTarget(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function refuse(socket: Duplex, status: string, why: string): void {
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(why)}\r\nconnection: close\r\n\r\n${why}`);
}

export function acceptConnects(em: Emulator, http: HttpServer, https: HttpsServer): void {
  http.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (!isLoopbackAddress(req.socket.remoteAddress)) return refuse(socket, '403 Forbidden', 'the emulator proxy answers loopback clients only\n');
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(req.url ?? '');
    const host = m?.[1]?.toLowerCase();
    const port = Number(m?.[2]);
    if (host === undefined || !(port > 0 && port < 65536)) return refuse(socket, '400 Bad Request', 'CONNECT needs host:port\n');
    const own = new URL(em.bases.https);
    const itself = (port === 443 && (INTERCEPTED_HOSTS as readonly string[]).includes(host)) || (isLoopbackTarget(host) && String(port) === own.port);
    if (itself) {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) socket.unshift(head);
      https.emit('connection', socket);
      return;
    }
    if (!isLoopbackTarget(host))
      return refuse(socket, '403 Forbidden', `the emulator proxy reaches loopback hosts and ${INTERCEPTED_HOSTS[0]} only, not ${host}\n`);
    const upstream: Socket = connect({ host: host === 'localhost' ? '127.0.0.1' : host, port }, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    upstream.on('error', () => refuse(socket, '502 Bad Gateway', `cannot reach ${host}:${port}\n`));
    socket.on('close', () => upstream.destroy());
  });
}
