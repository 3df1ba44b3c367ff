/**
 * Header hygiene at the trust boundary (SPEC section 7; threats.md I). Works on Node's
 * `rawHeaders` (ordered, duplicates kept) so that every copy of a header is judged, not only the
 * first one Node would show in `req.headers`.
 *
 * Request side, in this order (Go issue #50580: hop-by-hop removal must come before the sidecar
 * adds its own headers, so a client's `Connection:` can never remove them):
 *   1. drop hop-by-hop headers (RFC 9110 list) and every header named in ANY `Connection` header;
 *   2. drop `Host` (undici sends the upstream's; `x-forwarded-host` carries the original), `Expect`
 *      (the sidecar answers `100-continue` itself) and the framing headers (the forwarder re-adds
 *      one `Content-Length` when it forwards a body);
 *   3. drop credentials (`Authorization`, `api-key`) unless `forwardAuthorization`;
 *   4. drop every identity, path-override and client-address header the upstream might trust,
 *      comparing names case-insensitively and with `_` read as `-` (oauth2-proxy CVE-2025-64484);
 *   5. append the sidecar's own: `x-forwarded-for` (inbound chain + client address),
 *      `x-forwarded-proto`, `x-forwarded-host`, the identity headers and `x-request-id`.
 *
 * Response side: hop-by-hop headers and every header the upstream's `Connection` names are dropped.
 */

/** RFC 9110 section 7.6.1 plus the de-facto `Proxy-Connection`: meaningful for one connection only. */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Headers the sidecar itself sets for the upstream; an inbound copy is always a spoof. */
export const SIDECAR_HEADERS: ReadonlySet<string> = new Set([
  'x-ms-client-principal',
  'x-ms-client-principal-id',
  'x-ms-client-principal-name',
  'x-ms-client-principal-idp',
  'x-foundry-auth-principal-type',
  'x-foundry-auth-tenant-id',
  'x-request-id',
  'x-forwarded-proto',
  'x-forwarded-host',
]);

/**
 * Identity headers other gateways (App Service Easy Auth, oauth2-proxy, kube-rbac-proxy,
 * Envoy) set, path/method overrides some frameworks honour, and client-address headers the
 * sidecar does not vouch for. Names are in normalized form (lower case, `-`).
 */
const UNTRUSTED_EXACT: ReadonlySet<string> = new Set([
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-groups',
  'x-forwarded-preferred-username',
  'x-forwarded-access-token',
  'x-remote-user',
  'x-remote-group',
  'x-remote-groups',
  'x-original-url',
  'x-rewrite-url',
  'x-forwarded-uri',
  'x-original-uri',
  'x-envoy-original-path',
  'x-forwarded-prefix',
  'x-http-method-override',
  'x-method-override',
  'x-http-method',
  'forwarded',
  'x-real-ip',
  // Grafana's, Apache's and other proxies' user headers, and client-address headers of CDNs.
  'x-user',
  'remote-user',
  'x-webauth-user',
  'x-authenticated-user',
  'x-client-ip',
  'true-client-ip',
  // A credential in a name the sidecar never checks (only `api-key` is one): an upstream might accept it.
  'x-api-key',
]);

const UNTRUSTED_PREFIXES: readonly string[] = ['x-ms-client-principal', 'x-ms-token-aad-', 'x-auth-request-', 'x-remote-extra-', 'x-foundry-auth-'];

/** Lower case with `_` read as `-`: how WSGI, PHP and many frameworks see a header name. */
export function normalizeHeaderName(name: string): string {
  const lower = name.toLowerCase();
  return lower.includes('_') ? lower.replace(/_/g, '-') : lower;
}

/** What happens to one inbound request header, decided by its name alone. */
const enum Disposition {
  Keep = 0,
  Drop = 1,
  /** Exactly `x-forwarded-for`: its values start the chain the sidecar appends to. */
  ForwardedFor = 2,
  /** `Connection`: dropped, and the names it lists are dropped too. */
  Connection = 3,
}

function dispositionOf(name: string, forwardAuthorization: boolean): Disposition {
  const lower = name.toLowerCase();
  const normalized = normalizeHeaderName(lower);
  if (lower === 'connection') return Disposition.Connection;
  if (lower === 'x-forwarded-for') return Disposition.ForwardedFor;
  // `X_Forwarded_For` would merge with the real chain in a WSGI upstream: never pass it.
  if (normalized === 'x-forwarded-for') return Disposition.Drop;
  if (HOP_BY_HOP.has(normalized)) return Disposition.Drop;
  if (normalized === 'host' || normalized === 'expect' || normalized === 'content-length') return Disposition.Drop;
  if (normalized === 'authorization' || normalized === 'api-key') {
    // Only the exact names are credentials the sidecar checked; an `api_key` look-alike never passes.
    return forwardAuthorization && !lower.includes('_') ? Disposition.Keep : Disposition.Drop;
  }
  if (SIDECAR_HEADERS.has(normalized) || UNTRUSTED_EXACT.has(normalized)) return Disposition.Drop;
  for (const prefix of UNTRUSTED_PREFIXES) if (normalized.startsWith(prefix)) return Disposition.Drop;
  return Disposition.Keep;
}

/** Above this many distinct spellings the cache stops growing: random header names cannot exhaust memory. */
const MAX_CACHED_NAMES = 4096;

/** What the sidecar appends after the inbound headers were cleaned. */
export interface AddedHeaders {
  /** The immediate client's address (the TCP peer), appended to `x-forwarded-for`. */
  readonly clientAddress: string;
  /** `http` or `https`: how the client reached the sidecar. */
  readonly proto: string;
  /** The inbound `Host`, or undefined when the request had none. */
  readonly host: string | undefined;
  /** Flat name/value pairs from `identityHeaders`, or an empty array for unauthenticated requests. */
  readonly identity: readonly string[];
  readonly requestId: string;
  /** The `Content-Length` to send, or undefined (no body, or a body of unknown length sent chunked). */
  readonly contentLength: string | undefined;
}

/**
 * The request-header rules of one sidecar, fixed at start-up. `upstreamHeaders` is the per-request
 * method: one pass to find `Connection`, one to filter, then the sidecar's headers appended.
 */
export class RequestHeaderPolicy {
  private readonly cache = new Map<string, Disposition>();

  constructor(private readonly forwardAuthorization: boolean) {}

  /** Flat name/value list for undici (`[name, value, name, value, ...]`). */
  upstreamHeaders(raw: readonly string[], added: AddedHeaders): string[] {
    const nominated = this.connectionNominated(raw);
    const out: string[] = [];
    let forwardedFor: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const disposition = this.dispositionOf(name);
      if (disposition === Disposition.Keep) {
        if (nominated !== undefined && nominated.has(name.toLowerCase())) continue;
        out.push(name, raw[i + 1]!);
      } else if (disposition === Disposition.ForwardedFor) {
        if (nominated !== undefined && nominated.has('x-forwarded-for')) continue;
        const value = raw[i + 1]!.trim();
        if (value !== '') forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      }
    }
    if (added.contentLength !== undefined) out.push('content-length', added.contentLength);
    out.push('x-forwarded-for', forwardedFor === undefined ? added.clientAddress : `${forwardedFor}, ${added.clientAddress}`);
    out.push('x-forwarded-proto', added.proto);
    if (added.host !== undefined) out.push('x-forwarded-host', added.host);
    for (let i = 0; i < added.identity.length; i++) out.push(added.identity[i]!);
    out.push('x-request-id', added.requestId);
    return out;
  }

  private dispositionOf(name: string): Disposition {
    let disposition = this.cache.get(name);
    if (disposition === undefined) {
      disposition = dispositionOf(name, this.forwardAuthorization);
      if (this.cache.size < MAX_CACHED_NAMES) this.cache.set(name, disposition);
    }
    return disposition;
  }

  /** Names listed in every `Connection` header (CVE-2021-33197: an empty first one must not hide the rest). */
  private connectionNominated(raw: readonly string[]): Set<string> | undefined {
    let nominated: Set<string> | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length !== 10 || this.dispositionOf(name) !== Disposition.Connection) continue;
      nominated = addTokens(nominated, raw[i + 1]!);
    }
    if (nominated !== undefined) {
      // Framing is the sidecar's business, never the client's: a nominated Content-Length stays.
      nominated.delete('content-length');
    }
    return nominated;
  }
}

/** `keep-alive` and `close` are connection options, not header names worth a lookup. */
function addTokens(into: Set<string> | undefined, value: string): Set<string> | undefined {
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token === '' || token === 'keep-alive' || token === 'close') continue;
    (into ??= new Set()).add(token);
  }
  return into;
}

/** Response headers as undici parsed them: lower-case names, repeated headers as arrays. */
export type ParsedHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * Response headers for the client, as a flat list for `res.writeHead`: hop-by-hop headers and the
 * ones the upstream's `Connection` names are dropped; `x-request-id` becomes the sidecar's (the
 * upstream received the same value), so the client can quote it against the audit line.
 */
export function clientResponseHeaders(headers: ParsedHeaders, requestId: string): string[] {
  const connection = headers.connection;
  let nominated: Set<string> | undefined;
  if (connection !== undefined) {
    if (typeof connection === 'string') nominated = addTokens(nominated, connection);
    else for (const value of connection) nominated = addTokens(nominated, value);
  }
  const out: string[] = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
    if (nominated !== undefined && nominated.has(name)) continue;
    if (typeof value === 'string') out.push(name, value);
    else for (const one of value) out.push(name, one);
  }
  out.push('x-request-id', requestId);
  return out;
}
