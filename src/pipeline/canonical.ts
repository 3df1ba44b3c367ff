/**
 * Request-target rules of SPEC sections 3 (step 1-2) and 5. The path that is checked here is the
 * exact byte string that is routed, authorized and forwarded: nothing is decoded or normalized, so
 * there is no second interpretation for the upstream to disagree with.
 */
export type TargetCheck =
  | { readonly ok: true; readonly path: string; readonly query: string | undefined }
  | { readonly ok: false; readonly code: 'invalid_request' | 'invalid_path'; readonly message: string };

/** One pass over the raw target; a lookup table keeps it branch-light on the hot path. */
const enum Char {
  Ok = 0,
  Slash = 1,
  Percent = 2,
  Dot = 3,
  Bad = 4,
}

const CLASS = new Uint8Array(128);
for (let c = 0; c < 0x20; c++) CLASS[c] = Char.Bad;
CLASS[0x7f] = Char.Bad;
CLASS['\\'.charCodeAt(0)] = Char.Bad;
CLASS['#'.charCodeAt(0)] = Char.Bad;
CLASS[' '.charCodeAt(0)] = Char.Bad;
CLASS['/'.charCodeAt(0)] = Char.Slash;
CLASS['%'.charCodeAt(0)] = Char.Percent;
CLASS['.'.charCodeAt(0)] = Char.Dot;

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}

/**
 * Validates a raw request target (`req.url`). Origin-form only (`/path?query`); the path must be
 * canonical: no encoded `/` or `\`, no `\`, no segments made only of dots (`.`, `..`, also as `%2e`), no empty segments,
 * no control characters (raw or encoded), no `#`, ASCII only, well-formed percent escapes.
 */
export function checkTarget(target: string): TargetCheck {
  if (target.length === 0 || target.charCodeAt(0) !== 47 /* / */) {
    return {
      ok: false,
      code: 'invalid_request',
      message: 'the request target must be a path starting with "/" (origin-form); absolute URLs, "*" and authority targets are not accepted',
    };
  }
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? undefined : target.slice(q + 1);
  const problem = pathProblem(path);
  if (problem !== undefined) return { ok: false, code: 'invalid_path', message: `the path is not canonical: ${problem}` };
  if (query !== undefined && queryProblem(query)) {
    return { ok: false, code: 'invalid_request', message: 'the query string contains a control character, "#", a space or a non-ASCII byte' };
  }
  return { ok: true, path, query };
}

function pathProblem(path: string): string | undefined {
  // segmentDots: count of "." (raw or %2e) in the current segment while it holds nothing else; -1 once it has other content.
  let segmentDots = 0;
  let segmentLength = 0;
  for (let i = 1; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (code > 0x7e) return 'non-ASCII characters must be percent-encoded';
    const kind = CLASS[code];
    if (kind === Char.Ok) {
      segmentDots = -1;
      segmentLength++;
      continue;
    }
    if (kind === Char.Slash) {
      if (segmentLength === 0) return 'empty path segment ("//")';
      if (segmentDots > 0) return 'dot segment ("." or "..")';
      segmentDots = 0;
      segmentLength = 0;
      continue;
    }
    if (kind === Char.Dot) {
      if (segmentDots >= 0) segmentDots++;
      segmentLength++;
      continue;
    }
    if (kind === Char.Percent) {
      const hi = hexValue(path.charCodeAt(i + 1));
      const lo = hexValue(path.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return 'malformed percent-encoding';
      const byte = hi * 16 + lo;
      if (byte === 0x2f || byte === 0x5c) return 'encoded "/" or "\\" (%2F, %5C)';
      if (byte < 0x20 || byte === 0x7f) return 'encoded control character';
      if (byte === 0x2e) {
        if (segmentDots >= 0) segmentDots++;
      } else {
        segmentDots = -1;
      }
      segmentLength++;
      i += 2;
      continue;
    }
    if (code === 0x5c) return 'backslash';
    if (code === 0x23) return '"#" (fragments are never sent to a server)';
    return 'control character or space';
  }
  if (path.length > 1) {
    if (segmentLength === 0) return 'empty path segment (trailing "/")';
    if (segmentDots > 0) return 'dot segment ("." or "..")';
  }
  return undefined;
}

function queryProblem(query: string): boolean {
  for (let i = 0; i < query.length; i++) {
    const code = query.charCodeAt(i);
    if (code <= 0x20 || code >= 0x7f || code === 0x23) return true;
  }
  return false;
}
