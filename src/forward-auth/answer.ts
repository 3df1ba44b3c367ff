import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Principal } from '../contracts/principal.js';
import type { ErrorCode, Rejection } from '../contracts/errors.js';
import { sendOnSocket, sendRejection } from '../http/respond.js';
import { IDENTITY_HEADER_NAMES, identityHeaders } from '../proxy/identity-headers.js';

/**
 * The answers of forward-auth mode. An allow is `200` with an empty body and every identity
 * header present (empty when one does not apply), so a proxy that copies them overwrites whatever
 * a client sent; a refusal is the error contract's response plus `x-foundry-auth-error: <code>`
 * (nginx discards the body; its configuration can copy the header). `Cache-Control` tells the
 * proxy how long it may reuse the answer: never longer than the decision or the token lives.
 */
export interface AnswerOptions {
  /** `--forward-authorization`: without it the allow asks Envoy to strip the credential before forwarding. */
  readonly forwardAuthorization: boolean;
  /**
   * nginx does not cache a `private` response; its shipped configuration ignores `Cache-Control`
   * and reads the same lifetime from `X-Accel-Expires`, which only the nginx profile sends.
   */
  readonly accelExpires: boolean;
}

/** What the allow says beyond the principal. */
export interface Allowed {
  /** Undefined for a public path: the principal type is then `anonymous` and every other identity header empty. */
  readonly principal: Principal | undefined;
  readonly plane: string;
  /** The route's RBAC action; empty for a public path. */
  readonly action: string;
  readonly requestId: string;
  /** How long the proxy may reuse this allow. */
  readonly maxAgeSeconds: number;
}

const ANONYMOUS: readonly string[] = IDENTITY_HEADER_NAMES.flatMap((name) => [name, name === 'x-foundry-auth-principal-type' ? 'anonymous' : '']);

export class Answers {
  /** Complete identity header lists per Principal object (the authentication stage reuses it for a cached token). */
  private readonly identity = new WeakMap<Principal, readonly string[]>();
  private readonly tail: readonly string[];

  constructor(private readonly opts: AnswerOptions) {
    this.tail = opts.forwardAuthorization
      ? ['content-length', '0']
      : ['x-envoy-auth-headers-to-remove', 'authorization, api-key', 'content-length', '0'];
  }

  allow(res: ServerResponse, allowed: Allowed, closeConnection: boolean): void {
    const headers = [...this.identityOf(allowed.principal)];
    headers.push('x-foundry-auth-plane', allowed.plane, 'x-foundry-auth-action', allowed.action, 'x-request-id', allowed.requestId);
    headers.push('cache-control', `private, max-age=${allowed.maxAgeSeconds}`);
    if (this.opts.accelExpires) headers.push('x-accel-expires', String(allowed.maxAgeSeconds));
    for (const value of this.tail) headers.push(value);
    if (closeConnection) res.shouldKeepAlive = false;
    res.writeHead(200, headers);
    res.end();
  }

  /** `maxAgeSeconds` only for a 403 decision (the proxy may reuse a deny); every other refusal is `no-store`. */
  refuse(res: ServerResponse, error: Rejection, requestId: string, closeConnection: boolean, maxAgeSeconds?: number): void {
    sendRejection(res, error, requestId, closeConnection, undefined, this.refusalFields(error.code, maxAgeSeconds));
  }

  /** A refusal Node hands over as a bare socket (parser errors, CONNECT): the same fields, `no-store`, the connection closed. */
  refuseOnSocket(socket: Socket, error: Rejection, requestId: string, status?: number): void {
    sendOnSocket(socket, error, requestId, status, this.refusalFields(error.code));
  }

  private refusalFields(code: ErrorCode, maxAgeSeconds?: number): Record<string, string> {
    const fields: Record<string, string> = { 'x-foundry-auth-error': code };
    if (maxAgeSeconds !== undefined) fields['cache-control'] = `private, max-age=${maxAgeSeconds}`;
    if (this.opts.accelExpires) fields['x-accel-expires'] = String(maxAgeSeconds ?? 0);
    return fields;
  }

  private identityOf(principal: Principal | undefined): readonly string[] {
    if (principal === undefined) return ANONYMOUS;
    let headers = this.identity.get(principal);
    if (headers === undefined) {
      headers = everyIdentityHeader(identityHeaders(principal));
      this.identity.set(principal, headers);
    }
    return headers;
  }
}

/** The principal's identity headers in the fixed order, with an empty value for each one that does not apply. */
function everyIdentityHeader(present: readonly string[]): readonly string[] {
  const out: string[] = [];
  for (const name of IDENTITY_HEADER_NAMES) {
    const at = present.indexOf(name);
    out.push(name, at >= 0 && at % 2 === 0 ? present[at + 1]! : '');
  }
  return out;
}
