import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** One request/response pair, as every emulator handler sees it. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** The raw (still percent-encoded) path. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Base URL of the listener the request came in on (`https://127.0.0.1:8443` or `http://...`). */
  readonly base: string;
  /** The request body (empty for bodiless requests); read once before dispatch. */
  readonly body: Buffer;
  /** The ID this request is known by in logs and `x-ms-request-id`/`request-id` headers. */
  readonly requestId: string;
}

const BODY_LIMIT = 1024 * 1024;

export class BodyTooLarge extends Error {
  override name = 'BodyTooLarge';
}

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += b.length;
    if (size > BODY_LIMIT) throw new BodyTooLarge(`request body larger than ${BODY_LIMIT} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-length': '0', ...headers });
  res.end();
}

/** A JSON object body, or null when the body is not one (absent, malformed, an array, a scalar). */
export function jsonObject(ex: Exchange): Record<string, unknown> | null {
  if (ex.body.length === 0) return null;
  try {
    const v: unknown = JSON.parse(ex.body.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function formBody(ex: Exchange): URLSearchParams {
  return new URLSearchParams(ex.body.toString('utf8'));
}

export function header(ex: Exchange, name: string): string | undefined {
  const v = ex.req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function newRequestId(): string {
  return randomUUID();
}

/** The bearer token of an `Authorization` header, or undefined. */
export function bearerToken(ex: Exchange): string | undefined {
  const h = header(ex, 'authorization');
  if (h === undefined) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m?.[1];
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopbackAddress(addr: string | undefined): boolean {
  if (addr === undefined) return false;
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}
