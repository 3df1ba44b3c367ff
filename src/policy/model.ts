import { isJsonObject, JsonSyntaxError, parseStrictJson } from '../authn/strict-json.js';

/**
 * The model a request asks for, read from its body: the `model` member of a JSON body (with the
 * strict parser the token checks use, so a duplicate `model` can never mean one model here and
 * another upstream), or the `model` field of a `multipart/form-data` body (audio). Anything this
 * cannot read with certainty is refused: the bytes go upstream unchanged and must say what we checked.
 */
export type ModelRead = { readonly kind: 'model'; readonly model: string } | { readonly kind: 'invalid'; readonly message: string };

/** Request bodies nest deeper than tokens do (tool schemas); still bounded, the parser is recursive. */
const MAX_BODY_DEPTH = 64;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function modelOf(body: Buffer, contentType: string | undefined): ModelRead {
  const type = mediaType(contentType);
  if (type === 'application/json' || type.endsWith('+json')) return jsonModel(body);
  if (type === 'multipart/form-data') return multipartModel(body, contentType!);
  return invalid(
    `the request body must be application/json or multipart/form-data so that its model can be checked (got ${type === '' ? 'no Content-Type' : type})`,
  );
}

function jsonModel(body: Buffer): ModelRead {
  if (body.length >= 3 && body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf) {
    return invalid('the JSON body starts with a byte order mark; send it without one');
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return invalid('the JSON body is not valid UTF-8');
  }
  let value;
  try {
    value = parseStrictJson(text, MAX_BODY_DEPTH);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return invalid(`the request body is not valid JSON (${err.message})`);
    throw err;
  }
  if (!isJsonObject(value)) return invalid('the JSON body must be an object with a "model" member');
  if (!Object.hasOwn(value, 'model')) return invalid('the JSON body has no "model" member');
  const model = value.model;
  if (typeof model !== 'string' || model === '') return invalid('the "model" member must be a non-empty string');
  return { kind: 'model', model };
}

/**
 * RFC 7578: parts separated by `--boundary` lines; the `model` part's body is the model. Exactly
 * one `model` part, a well-formed closing delimiter, and headers that say `form-data` are required.
 */
function multipartModel(body: Buffer, contentType: string): ModelRead {
  const boundary = boundaryOf(contentType);
  if (boundary === undefined) return invalid('the multipart/form-data Content-Type has no valid boundary parameter');
  const delimiter = Buffer.from(`--${boundary}`, 'latin1');
  if (!body.subarray(0, delimiter.length).equals(delimiter)) return invalid('the multipart body does not start with its boundary');
  const separator = Buffer.from(`\r\n--${boundary}`, 'latin1');
  let model: string | undefined;
  let at = delimiter.length;
  for (;;) {
    // After a delimiter: "--" closes the body, CRLF starts a part.
    if (body[at] === 0x2d && body[at + 1] === 0x2d) break;
    if (body[at] !== 0x0d || body[at + 1] !== 0x0a) return invalid('malformed multipart body (expected CRLF after a boundary)');
    const headersEnd = body.indexOf('\r\n\r\n', at + 2, 'latin1');
    if (headersEnd < 0) return invalid('malformed multipart body (a part has no end of headers)');
    const next = body.indexOf(separator, headersEnd + 4);
    if (next < 0) return invalid('malformed multipart body (no closing boundary)');
    const name = partName(body.toString('latin1', at + 2, headersEnd));
    if (name === undefined) return invalid('malformed multipart body (a part without Content-Disposition: form-data; name=...)');
    if (name === 'model') {
      if (model !== undefined) return invalid('the multipart body has more than one "model" field');
      try {
        model = utf8.decode(body.subarray(headersEnd + 4, next));
      } catch {
        return invalid('the multipart "model" field is not valid UTF-8');
      }
    }
    at = next + separator.length;
  }
  if (model === undefined) return invalid('the multipart body has no "model" field');
  if (model === '') return invalid('the multipart "model" field is empty');
  return { kind: 'model', model };
}

function boundaryOf(contentType: string): string | undefined {
  const match = /;\s*boundary=(?:"([^"]{1,70})"|([0-9A-Za-z'()+_,./:=?-]{1,70}))\s*(?:;|$)/i.exec(contentType);
  return match?.[1] ?? match?.[2];
}

/** The `name` of a part whose headers hold `Content-Disposition: form-data; name="..."`. */
function partName(headers: string): string | undefined {
  let name: string | undefined;
  for (const line of headers.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trim().toLowerCase() !== 'content-disposition') continue;
    if (name !== undefined) return undefined;
    const value = line.slice(colon + 1).trim();
    if (!/^form-data\s*(;|$)/i.test(value)) return undefined;
    const match = /;\s*name="([^"]*)"/i.exec(value) ?? /;\s*name=([^;\s"]+)/i.exec(value);
    if (match === null) return undefined;
    name = match[1]!;
  }
  return name;
}

function mediaType(contentType: string | undefined): string {
  if (contentType === undefined) return '';
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

function invalid(message: string): ModelRead {
  return { kind: 'invalid', message };
}
