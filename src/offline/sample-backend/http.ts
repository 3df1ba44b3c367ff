import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ZodError } from 'zod';

/** Small HTTP helpers for the sample backend: bounded JSON bodies and the two error shapes it speaks. */

/** Larger than any prompt the sample backend needs; a bigger body is refused with 413. */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export type BodyResult =
  { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly status: 400 | 413; readonly message: string };

/** Reads the whole request body (at most MAX_BODY_BYTES) and parses it as JSON. */
export async function readJson(req: IncomingMessage): Promise<BodyResult> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return { ok: false, status: 413, message: `request body larger than ${MAX_BODY_BYTES} bytes` };
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return { ok: false, status: 400, message: 'the request body is empty; send a JSON object' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, status: 400, message: 'the request body is not valid JSON' };
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

export type OpenAiErrorType = 'invalid_request_error' | 'not_found_error' | 'server_error';

/** The OpenAI error shape the chat server uses: `{"error":{"message","type","param","code"}}`. */
export function sendOpenAiError(
  res: ServerResponse,
  status: number,
  message: string,
  code: string,
  param: string | null = null,
  type: OpenAiErrorType = 'invalid_request_error',
): void {
  sendJson(res, status, { error: { message, type, param, code } });
}

export type ControlErrorKind = 'NotFound' | 'Conflict' | 'ValidationError' | 'MethodNotAllowed' | 'PayloadTooLarge';

/** The Foundry Local control-plane error shape: `{"error":"NotFound|Conflict|ValidationError","message","details"}`. */
export function sendControlError(
  res: ServerResponse,
  status: number,
  error: ControlErrorKind,
  message: string,
  details: Record<string, unknown> = {},
): void {
  sendJson(res, status, { error, message, details });
}

/** Zod issues as `{field, message}` pairs (the control plane's `details.errors`). */
export function fieldErrors(error: ZodError): Array<{ field: string; message: string }> {
  return error.issues.map((issue) => ({ field: issue.path.length > 0 ? issue.path.join('.') : '(body)', message: issue.message }));
}

/** The first problem, phrased for an OpenAI error message, and the parameter it concerns. */
export function firstProblem(error: ZodError): { message: string; param: string | null } {
  const issue = error.issues[0];
  if (issue === undefined) return { message: 'invalid request body', param: null };
  const param = issue.path.length > 0 ? issue.path.join('.') : null;
  return { message: param === null ? issue.message : `${param}: ${issue.message}`, param };
}

/** One request as the handlers see it; handlers add what the request log line should say. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  /** Path without the query, as received. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Tokens streamed (SSE responses). */
  tokens?: number;
}

/** Path segments, percent-decoded; undefined when a segment is not valid percent-encoding. */
export function pathSegments(path: string): string[] | undefined {
  try {
    return path
      .split('/')
      .slice(1)
      .map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}
