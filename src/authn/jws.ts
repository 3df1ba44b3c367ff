import { isUtf8 } from 'node:buffer';
import { JsonSyntaxError, isJsonObject, parseStrictJson, type JsonObject } from './strict-json.js';

/**
 * Strict decoding of a JWS in compact serialization, done by hand rather than with jose because
 * jose parses with `JSON.parse` (the last of duplicate members wins, so `{"tid":A,"tid":B}` would
 * pass) and verifies through WebCrypto, which hops to the thread pool (~70 µs per token awaited
 * serially, against ~20 µs for `node:crypto.verify` with a pre-imported KeyObject).
 * Nothing here trusts the token: decoding only shapes it for the checks in `entra-token.ts`.
 */
export interface CompactJws {
  readonly header: JsonObject;
  readonly payload: JsonObject;
  /** `base64url(header) + "." + base64url(payload)`: the bytes the signature covers. */
  readonly signingInput: string;
  readonly signature: Buffer;
}

export type JwsDecoding = { readonly ok: true; readonly jws: CompactJws } | { readonly ok: false; readonly detail: string };

// The base64url alphabet, without padding (RFC 7515 section 2).
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64URL_VALUE = new Int8Array(128).fill(-1);
for (const [i, c] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) BASE64URL_VALUE[c.charCodeAt(0)] = i;

/**
 * Splits and decodes a compact JWS: exactly three segments, each canonical base64url, header and
 * payload UTF-8 JSON objects without duplicate members. Algorithm and key rules are checked later.
 */
export function decodeCompactJws(token: string): JwsDecoding {
  const first = token.indexOf('.');
  const second = first < 0 ? -1 : token.indexOf('.', first + 1);
  if (second < 0 || token.indexOf('.', second + 1) >= 0) {
    return { ok: false, detail: 'a JWS in compact form has exactly three dot-separated parts (header.payload.signature)' };
  }
  const header = decodeJsonSegment(token.slice(0, first), 'header');
  if (typeof header === 'string') return { ok: false, detail: header };
  const payload = decodeJsonSegment(token.slice(first + 1, second), 'payload');
  if (typeof payload === 'string') return { ok: false, detail: payload };
  const signature = decodeBase64Url(token.slice(second + 1));
  if (signature === undefined) return { ok: false, detail: 'the signature is not canonical base64url' };
  if (signature.length === 0) return { ok: false, detail: 'the signature is empty' };
  return { ok: true, jws: { header, payload, signingInput: token.slice(0, second), signature } };
}

/**
 * Decodes canonical base64url: only `A-Z a-z 0-9 - _`, no padding, no impossible length, and the
 * unused low bits of the last character zero, so each byte string has exactly one encoding.
 */
export function decodeBase64Url(text: string): Buffer | undefined {
  if (!BASE64URL.test(text)) return undefined;
  const rest = text.length % 4;
  if (rest === 1) return undefined;
  if (rest !== 0) {
    const last = BASE64URL_VALUE[text.charCodeAt(text.length - 1)]!;
    if ((last & (rest === 2 ? 0x0f : 0x03)) !== 0) return undefined;
  }
  return Buffer.from(text, 'base64url');
}

function decodeJsonSegment(segment: string, what: 'header' | 'payload'): JsonObject | string {
  if (segment.length === 0) return `the ${what} is empty`;
  const bytes = decodeBase64Url(segment);
  if (bytes === undefined) return `the ${what} is not canonical base64url`;
  if (!isUtf8(bytes)) return `the ${what} is not valid UTF-8`;
  let value;
  try {
    // A byte-order mark stays in the string and is refused by the parser.
    value = parseStrictJson(bytes.toString('utf8'));
  } catch (error) {
    if (error instanceof JsonSyntaxError) return `the ${what} is not strict JSON (${error.message})`;
    throw error;
  }
  if (!isJsonObject(value)) return `the ${what} is not a JSON object`;
  return value;
}
