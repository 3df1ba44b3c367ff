import { performance } from 'node:perf_hooks';
import type { Authorizer, Decision } from '../contracts/decision.js';
import { rejection, type Rejection } from '../contracts/errors.js';
import type { Principal } from '../contracts/principal.js';
import type { RequestDecider, RequestDecision, RequestToDecide } from '../contracts/request.js';
import type { RouteMatch } from '../contracts/route.js';
import type { AuthenticationStage, AuthnOutcome } from '../contracts/stages.js';
import { checkTarget } from './canonical.js';
import type { RouteTable } from './routes.js';

export interface DecisionCoreOptions {
  readonly routes: RouteTable;
  /** Canonical paths allowed without authentication (GET and HEAD only). */
  readonly publicPaths: readonly string[];
  readonly authn: AuthenticationStage;
  readonly authz: Authorizer;
}

/** Methods refused whatever the path: they echo or tunnel, and nothing here needs them. */
const REFUSED_METHODS = new Set(['TRACE', 'TRACK', 'CONNECT']);
/**
 * Methods whose body has no meaning (RFC 9110 section 9.3): an upstream may ignore the body and
 * read it as the next request (CL.0 desync), so such a request with a body is refused, never forwarded.
 */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE']);
const PUBLIC_BODY = rejection('invalid_request', 'a request to a public path must not have a body', { reason: 'public_body' });

/**
 * "Decide this request": steps 1-8 of the pipeline, top to bottom — method -> request target and
 * canonical path -> public path -> route -> credentials + authentication -> authorization. A
 * request that fails a step never reaches a later one. Both fronts call it: the proxy front
 * (`http/gateway.ts`) then forwards, a forward-auth front answers its proxy.
 *
 * When the verified-token cache and the decision cache both answer, the decision is returned as
 * a plain value: no promise, no microtask on the hot path.
 */
export class DecisionCore implements RequestDecider {
  private readonly publicPaths: ReadonlySet<string>;

  constructor(private readonly opts: DecisionCoreOptions) {
    this.publicPaths = new Set(opts.publicPaths);
  }

  decide(request: RequestToDecide): RequestDecision | Promise<RequestDecision> {
    // Step 1: methods nothing here supports, and a request target that is not origin-form.
    const method = request.method;
    if (REFUSED_METHODS.has(method)) {
      return { kind: 'reject', rejection: rejection('method_not_allowed', `${method} is not supported by foundry-auth`, { allow: [] }) };
    }
    // Step 2: the canonical path, never decoded or normalized.
    const checked = checkTarget(request.target);
    if (!checked.ok) return { kind: 'reject', rejection: rejection(checked.code, checked.message) };
    const path = checked.path;
    const query = checked.query;

    // Step 3: public paths skip authentication, and only they do; what is not authenticated carries no body.
    if ((method === 'GET' || method === 'HEAD') && this.publicPaths.has(path)) {
      return request.hasBody ? { kind: 'reject', path, rejection: PUBLIC_BODY } : { kind: 'public', path, query };
    }
    if (request.hasBody && BODYLESS_METHODS.has(method)) {
      return {
        kind: 'reject',
        path,
        rejection: rejection('invalid_request', `a ${method} request must not have a body`, { reason: 'bodyless_method_body' }),
      };
    }

    // Step 4: route -> plane and action.
    const lookup = this.opts.routes.lookup(method, path);
    if (lookup.kind === 'not_found') {
      return {
        kind: 'reject',
        path,
        rejection: rejection('route_not_found', `no route for ${method} ${path}; foundry-auth forwards only the Foundry Local API routes it knows`),
      };
    }
    if (lookup.kind === 'method_not_allowed') {
      const message = `${method} is not allowed on ${path}; allowed: ${lookup.allow.join(', ')}`;
      return { kind: 'reject', path, rejection: rejection('method_not_allowed', message, { allow: lookup.allow }) };
    }
    const route = lookup.route;

    // Steps 5-7: credentials, then who the caller is. A cached token is answered synchronously.
    const authStarted = performance.now();
    const authn = this.opts.authn.authenticateRequest(request.rawHeaders, query);
    if (authn instanceof Promise) return authn.then((settled) => this.authenticated(path, query, route, settled, authStarted));
    return this.authenticated(path, query, route, authn, authStarted);
  }

  private authenticated(
    path: string,
    query: string | undefined,
    route: RouteMatch,
    authn: AuthnOutcome,
    authStarted: number,
  ): RequestDecision | Promise<RequestDecision> {
    const authMs = performance.now() - authStarted;
    if (!authn.ok) return { kind: 'reject', path, route, rejection: authn.rejection, authMs };
    // Step 8: may this principal perform the route's action at the cluster scope? A cached decision is a plain value.
    const authzStarted = performance.now();
    const deciding = this.opts.authz.authorize(authn.principal, route);
    if (deciding instanceof Promise) {
      return deciding.then((decision) => decided(path, query, route, authn.principal, authn.tokenCache, decision, authMs, authzStarted));
    }
    return decided(path, query, route, authn.principal, authn.tokenCache, deciding, authMs, authzStarted);
  }
}

function decided(
  path: string,
  query: string | undefined,
  route: RouteMatch,
  principal: Principal,
  tokenCache: 'hit' | 'miss' | 'none',
  decision: Decision,
  authMs: number,
  authzStarted: number,
): RequestDecision {
  const rbacMs = performance.now() - authzStarted;
  const decisionSource = decision.source;
  if (decision.kind === 'allow') {
    const exp = principal.claims?.exp;
    const tokenExpiresAt = typeof exp === 'number' ? exp * 1000 : undefined;
    return {
      kind: 'allow',
      path,
      query,
      route,
      principal,
      decision,
      tokenExpiresAt,
      authMs,
      rbacMs,
      tokenCache,
      rbacCache: decision.cache,
      decisionSource,
    };
  }
  const refused = decision.kind === 'deny' ? { rbacCache: decision.cache } : {};
  return {
    kind: 'reject',
    path,
    route,
    principal,
    decision,
    rejection: decisionRejection(decision),
    authMs,
    rbacMs,
    tokenCache,
    decisionSource,
    ...refused,
  };
}

function decisionRejection(decision: Exclude<Decision, { kind: 'allow' }>): Rejection {
  if (decision.kind === 'deny') return rejection('insufficient_permissions', decision.message, { reason: decision.reason });
  return rejection('rbac_check_unavailable', decision.message, {
    reason: decision.reason,
    ...(decision.retryAfterSeconds !== undefined ? { retryAfterSeconds: decision.retryAfterSeconds } : {}),
  });
}
