import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from './principal.js';
import type { Rejection } from './errors.js';
import type { Plane } from './route.js';

/**
 * The ports the request pipeline depends on. Each stage module (authn/, authz/, proxy/) implements
 * one; the decision chain is declared once, in `pipeline/decide.ts`, and the proxy front adds the forward.
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
  onResponseHead(
    status: number,
    contentType: string | undefined,
    requestBytes: number,
  ): { readonly headers: readonly (readonly [string, string])[]; readonly hold: boolean };
  onResponseChunk(chunk: Buffer): void;
  /** The exchange ended, whichever way. */
  onEnd(): void;
  /** A held body, whole: its replacement, or undefined when it cannot be rewritten (the client then gets a 502, never the original). */
  rewrite(body: Buffer, contentEncoding: string | undefined): Buffer | undefined;
}

export type ForwardOutcome = 'ok' | 'client_abort' | 'upstream_error_midstream' | 'rejected';

export interface ForwardResult {
  readonly outcome: ForwardOutcome;
  /** Set for `rejected` only: the HTTP layer writes it (no response byte was sent). */
  readonly rejection?: Rejection;
  /** Milliseconds from dispatch to the upstream's response headers; absent when none arrived. */
  readonly firstByteMs?: number;
}

/** Step 9: stream the request to the upstream and the response back. */
export interface ForwardingStage {
  forward(request: ForwardRequest): Promise<ForwardResult>;
}
