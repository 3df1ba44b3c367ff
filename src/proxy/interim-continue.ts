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

/** What the filter keeps per upstream socket. */
interface InterimState {
  /** Between a request head written and the first byte of its response: the only place a 100 may come. */
  armed: boolean;
  held: Buffer | null;
  readonly write: Socket['write'];
  readonly read: Socket['read'];
}

const STATE = Symbol('foundry-auth.interimContinue');
type FilteredSocket = Socket & { [STATE]: InterimState };

// One write and one read function for every filtered socket, their state on the socket: undici's
// call sites then see one target each (a closure per socket made them megamorphic, which cost
// more than the filter's own work).
function dropInterimContinue(socket: Socket): void {
  const filtered = socket as FilteredSocket;
  // eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(this, ...) on the same socket
  filtered[STATE] = { armed: false, held: null, write: socket.write, read: socket.read };
  socket.write = filteredWrite;
  socket.read = filteredRead;
}

function filteredWrite(this: FilteredSocket, data: unknown, encoding?: unknown, callback?: unknown): boolean {
  const state = this[STATE];
  if (typeof data === 'string' && REQUEST_HEAD.test(data)) state.armed = true;
  return (state.write as (data: unknown, encoding?: unknown, callback?: unknown) => boolean).call(this, data, encoding, callback);
}

function filteredRead(this: FilteredSocket, size?: number): Buffer | null {
  const state = this[STATE];
  const chunk = state.read.call(this, size) as Buffer | null;
  if (!state.armed) return chunk;
  if (chunk === null) return null;
  let data = state.held === null ? chunk : Buffer.concat([state.held, chunk]);
  state.held = null;
  for (;;) {
    const prefix = Math.min(data.length, CONTINUE_11.length);
    // Compared in place: this runs on the first read of every response.
    const interim = data.compare(CONTINUE_11, 0, prefix, 0, prefix) === 0 || data.compare(CONTINUE_10, 0, prefix, 0, prefix) === 0;
    if (!interim) {
      state.armed = false;
      return data;
    }
    const end = prefix === CONTINUE_11.length ? data.indexOf(END_OF_HEAD) : -1;
    if (end < 0) {
      if (data.length > MAX_INTERIM_BYTES) {
        state.armed = false;
        return data;
      }
      // Not all of it yet: undici reads again on the next 'readable'.
      state.held = data;
      return null;
    }
    data = data.subarray(end + END_OF_HEAD.length);
    if (data.length === 0) return null;
  }
}
