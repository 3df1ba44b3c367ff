import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../authn/principal.js';
import type { Rejection } from './errors.js';
import type { Plane } from './route.js';

/**
 * The ports the gateway's request pipeline depends on. Each stage module (authn/, authz/, proxy/)
 * implements one; the chain itself is declared once, in `gateway.ts`.
 */
export type AuthnOutcome =
  | { readonly ok: true; readonly principal: Principal; readonly tokenCache: 'hit' | 'miss' | 'none' }
  | { readonly ok: false; readonly rejection: Rejection };

/** Steps 5-7: credentials from the raw headers/query, then API key or Entra ID token -> Principal. */
export interface AuthenticationStage {
  authenticateRequest(rawHeaders: readonly string[], rawQuery: string | undefined): AuthnOutcome | Promise<AuthnOutcome>;
}

export interface ForwardRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly plane: Plane;
  /** The raw request target exactly as received (canonical path + query), forwarded byte for byte. */
  readonly target: string;
  readonly principal: Principal | undefined;
  readonly requestId: string;
  /** Set when a policy file is in force: the policy's view of this exchange. */
  readonly tap?: ExchangeTap;
}

/**
 * The policy's hook into one forwarded exchange. It may hand over the request body it already read
 * (forwarded exactly, with its Content-Length), add response headers, see each response chunk
 * after it was written, and hold a small response whole to rewrite it (the model list).
 */
export interface ExchangeTap {
  readonly body: Buffer | undefined;
  /** The response head arrived: headers to add (replacing the upstream's of the same name) and whether to hold the body for `rewrite`. */
  onResponseHead(status: number, contentType: string | undefined, requestBytes: number): { readonly headers: readonly (readonly [string, string])[]; readonly hold: boolean };
  onResponseChunk(chunk: Buffer): void;
  /** The exchange ended, whichever way. */
  onEnd(): void;
  /** A held body, whole: its replacement, or undefined when it cannot be rewritten (the client then gets a 502, never the original). */
  rewrite(body: Buffer, contentEncoding: string | undefined): Buffer | undefined;
}

export interface ForwardResult {
  /** Set when the upstream failed before any response byte reached the client. */
  readonly rejection?: Rejection;
  readonly firstByteMs?: number;
  /** `ok`, `client_abort`, `upstream_error_midstream`, `rejected`. */
  readonly outcome: string;
}

/** Step 9: stream the request to the upstream and the response back. */
export interface ForwardingStage {
  forward(request: ForwardRequest): Promise<ForwardResult>;
}
