import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERRORS, type Rejection } from '../contracts/errors.js';

/**
 * The only place where an error value becomes an HTTP response (SPEC section 3): OpenAI-shaped JSON
 * body, `x-request-id`, RFC 6750 `WWW-Authenticate` on 401 (with `error=` when a credential was
 * presented), `Allow` on 405, `Retry-After` when known.
 */
export const REALM = 'foundry-local';

/**
 * `status` overrides the table for parser errors inside a request (408 for a body that stopped arriving);
 * `extraHeaders` are added last and win (forward-auth: `x-foundry-auth-error`, its own `cache-control`).
 */
export function sendRejection(
  res: ServerResponse,
  rejection: Rejection,
  requestId: string,
  closeConnection: boolean,
  status?: number,
  extraHeaders?: Readonly<Record<string, string | number>>,
): void {
  const spec = ERRORS[rejection.code];
  const body = JSON.stringify({ error: { code: rejection.code, message: rejection.message, type: spec.type } });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  };
  const challenge = wwwAuthenticate(spec.status, rejection);
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  if (rejection.allow !== undefined) headers.allow = rejection.allow.join(', ');
  if (rejection.retryAfterSeconds !== undefined) headers['retry-after'] = Math.max(1, Math.ceil(rejection.retryAfterSeconds));
  if (rejection.headers !== undefined) for (const [name, value] of rejection.headers) headers[name] = value;
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders);
  if (closeConnection) res.shouldKeepAlive = false;
  res.writeHead(status ?? spec.status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function wwwAuthenticate(status: number, rejection: Rejection): string | undefined {
  if (status !== 401 && rejection.bearerError === undefined) return undefined;
  if (rejection.bearerError === undefined) return `Bearer realm="${REALM}"`;
  return `Bearer realm="${REALM}", error="${rejection.bearerError}", error_description="${quotable(rejection.message)}"`;
}

/** RFC 7230 quoted-string content, ASCII only: the description is ours, but never trust that. */
function quotable(text: string): string {
  return text.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, '?');
}

/**
 * For requests Node hands over as a bare socket (parser errors, CONNECT): the same body shape and
 * `cache-control: no-store` as `sendRejection`, then the connection is closed. `status` overrides
 * the table for parser errors (408, 413, 431); `extra` fields are added last and win (forward-auth:
 * `x-foundry-auth-error`).
 */
export function sendOnSocket(
  socket: Socket,
  rejection: Rejection,
  requestId: string,
  status: number = ERRORS[rejection.code].status,
  extra: Readonly<Record<string, string>> = {},
): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: rejection.code, message: rejection.message, type: ERRORS[rejection.code].type } });
  const headers: Record<string, string> = { 'cache-control': 'no-store' };
  if (rejection.allow !== undefined) headers.allow = rejection.allow.join(', ');
  Object.assign(headers, extra);
  let fields = '';
  for (const [name, value] of Object.entries(headers)) fields += `${name}: ${value}\r\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n${fields}x-request-id: ${requestId}\r\n\r\n${body}`,
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  501: 'Not Implemented',
  431: 'Request Header Fields Too Large',
};
