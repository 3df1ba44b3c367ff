import type { Socket } from 'node:net';
import { buildConnector } from 'undici';

/**
 * undici refuses any `100 Continue` from the upstream ("bad response": it never sends
 * `Expect`), yet RFC 9110 section 15.2 lets a server send one unasked, and a client must read past
 * it. So on each upstream connection, the interim `100` responses that come before a response's
 * status line are dropped before undici's parser sees them. Only there: the check is armed when a
 * request head is written (undici writes it as one latin1 string; bodies are Buffers, chunk sizes
 * start with CRLF) and disarmed by the first byte of any other response, so bytes inside a
 * response body are never looked at. An interim response that is not well formed (no CRLF CRLF
 * within 16 KiB) is handed on unchanged and undici's parser refuses it.
 */
export function connectorDroppingInterimContinue(options: buildConnector.BuildOptions): buildConnector.connector {
  const connect = buildConnector(options);
  return (opts, callback) =>
    connect(opts, (err, socket) => {
      if (err !== null) {
        callback(err, null);
        return;
      }
      dropInterimContinue(socket);
      callback(null, socket);
    });
}

/** The start of a request line as undici writes it: method, SP, target, SP. */
const REQUEST_HEAD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ ]+ HTTP\/1\.1\r\n/;
const CONTINUE_11 = Buffer.from('HTTP/1.1 100 ', 'latin1');
const CONTINUE_10 = Buffer.from('HTTP/1.0 100 ', 'latin1');
const END_OF_HEAD = Buffer.from('\r\n\r\n', 'latin1');
const MAX_INTERIM_BYTES = 16 * 1024;

function dropInterimContinue(socket: Socket): void {
  // Between a request head written and the first byte of its response: the only place a 100 may come.
  let armed = false;
  let held: Buffer | null = null;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called as write.apply(this, args) on the same socket
  const write = socket.write as (...args: unknown[]) => boolean;
  socket.write = function (this: Socket, ...args: unknown[]): boolean {
    const data = args[0];
    if (typeof data === 'string' && REQUEST_HEAD.test(data)) armed = true;
    return write.apply(this, args);
  };
  const read = socket.read.bind(socket);
  socket.read = (size?: number): Buffer | null => {
    const chunk = read(size) as Buffer | null;
    if (!armed) return chunk;
    if (chunk === null) return null;
    let data = held === null ? chunk : Buffer.concat([held, chunk]);
    held = null;
    for (;;) {
      const prefix = Math.min(data.length, CONTINUE_11.length);
      // Compared in place: this runs on the first read of every response.
      const interim = data.compare(CONTINUE_11, 0, prefix, 0, prefix) === 0 || data.compare(CONTINUE_10, 0, prefix, 0, prefix) === 0;
      if (!interim) {
        armed = false;
        return data;
      }
      const end = prefix === CONTINUE_11.length ? data.indexOf(END_OF_HEAD) : -1;
      if (end < 0) {
        if (data.length > MAX_INTERIM_BYTES) {
          armed = false;
          return data;
        }
        // Not all of it yet: undici reads again on the next 'readable'.
        held = data;
        return null;
      }
      data = data.subarray(end + END_OF_HEAD.length);
      if (data.length === 0) return null;
    }
  };
}
