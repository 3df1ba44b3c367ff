import type { IncomingMessage } from 'node:http';
import type { ForwardAuthConfig, ForwardAuthProfile } from '../config/config.js';
import { rejection, type Rejection } from '../contracts/errors.js';

/**
 * Where each forward-auth profile carries the original request (no auto-detection, no fallback
 * from one profile to another):
 *   envoy      the check's own method and target, after removing `--forward-auth-path-prefix`
 *   nginx      `X-Original-Method` and `X-Original-URI` (the check's own method and path are ignored)
 *   forwarded  `X-Forwarded-Method` and `X-Forwarded-Uri` (Traefik, Caddy)
 * A header the profile needs that is missing means the proxy is misconfigured: 500, naming the header.
 */
export interface OriginalRequest {
  readonly method: string;
  /** The original request target exactly as the proxy reported it (checked as origin-form later). */
  readonly target: string;
}

export type OriginalRead =
  { readonly kind: 'read'; readonly original: OriginalRequest } | { readonly kind: 'refused'; readonly rejection: Rejection };

export type OriginalRequestReader = (req: IncomingMessage) => OriginalRead;

/** RFC 9110 token: what an HTTP method may be made of. */
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

interface HeaderPair {
  readonly method: string;
  readonly target: string;
  /** How the operator makes the proxy send each header. */
  readonly methodHint: string;
  readonly targetHint: string;
}

const HEADERS: Readonly<Record<Exclude<ForwardAuthProfile, 'envoy'>, HeaderPair>> = {
  nginx: {
    method: 'X-Original-Method',
    target: 'X-Original-URI',
    methodHint: 'add "proxy_set_header X-Original-Method $request_method;" to the auth_request location',
    targetHint: 'add "proxy_set_header X-Original-URI $request_uri;" to the auth_request location',
  },
  forwarded: {
    method: 'X-Forwarded-Method',
    target: 'X-Forwarded-Uri',
    methodHint: 'Traefik ForwardAuth and Caddy forward_auth set it; another proxy must set it to the original method',
    targetHint: 'Traefik ForwardAuth and Caddy forward_auth set it; another proxy must set it to the original request URI',
  },
};

export function originalRequestReader(config: ForwardAuthConfig): OriginalRequestReader {
  if (config.profile === 'envoy') return envoyReader(config.pathPrefix);
  return headerReader(HEADERS[config.profile]);
}

function read(method: string, target: string): OriginalRead {
  if (!METHOD.test(method)) return refused(rejection('invalid_request', 'the original request method reported by the proxy is not an HTTP method'));
  return { kind: 'read', original: { method, target } };
}

function refused(error: Rejection): OriginalRead {
  return { kind: 'refused', rejection: error };
}

/** Envoy ext_authz (HTTP service), Istio envoyExtAuthzHttp, Envoy Gateway HTTP extAuth: the check is the original request line. */
function envoyReader(prefix: string): OriginalRequestReader {
  return (req) => {
    const target = req.url ?? '';
    if (prefix === '') return read(req.method ?? '', target);
    if (!target.startsWith(prefix) || target.charCodeAt(prefix.length) !== 0x2f /* / */) {
      return refused(
        rejection(
          'invalid_request',
          `the check's path does not start with the configured --forward-auth-path-prefix ${prefix}: set the same path_prefix in the proxy's ext_authz http_service, or change the flag`,
          { reason: 'path_prefix_missing' },
        ),
      );
    }
    return read(req.method ?? '', target.slice(prefix.length));
  };
}

function headerReader(names: HeaderPair): OriginalRequestReader {
  const methodName = names.method.toLowerCase();
  const targetName = names.target.toLowerCase();
  return (req) => {
    const method = single(req.rawHeaders, methodName);
    if (method.kind !== 'one') return refused(headerProblem(names.method, method.kind, names.methodHint));
    const target = single(req.rawHeaders, targetName);
    if (target.kind !== 'one') return refused(headerProblem(names.target, target.kind, names.targetHint));
    return read(method.value, target.value);
  };
}

type Absent = 'missing' | 'duplicate';
type HeaderValue = { readonly kind: 'one'; readonly value: string } | { readonly kind: Absent };

const MISSING: HeaderValue = { kind: 'missing' };
const DUPLICATE: HeaderValue = { kind: 'duplicate' };

/** The one value of a header in the raw list; a second copy is never guessed between. */
function single(raw: readonly string[], lowerName: string): HeaderValue {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== lowerName.length || name.toLowerCase() !== lowerName) continue;
    if (value !== undefined) return DUPLICATE;
    value = raw[i + 1]!;
  }
  return value === undefined || value === '' ? MISSING : { kind: 'one', value };
}

function headerProblem(header: string, problem: Absent, hint: string): Rejection {
  if (problem === 'duplicate') {
    return rejection(
      'forward_auth_misconfigured',
      `the check carries more than one ${header}: the proxy must set it exactly once, replacing any copy the client sent`,
      {
        reason: 'duplicate_original_header',
      },
    );
  }
  return rejection('forward_auth_misconfigured', `the proxy did not send ${header} with the check: ${hint}`, { reason: 'missing_original_header' });
}
