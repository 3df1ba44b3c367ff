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
