import type { Emulator } from '../core.js';
import { bearerToken, header, newRequestId, sendEmpty, sendJson, type Exchange } from '../exchange.js';
import { stringClaim } from '../jwt.js';
import { isRead as read } from '../faults.js';
import { isPermitted, subscriptionOf } from './rbac.js';

/** One ARM request: the authenticated caller, response headers as ARM sends them, and ARM error bodies. */

export interface Caller {
  readonly oid: string;
  readonly tenantId: string;
  /** What ARM names in AuthorizationFailed: a user's UPN, otherwise the object ID. */
  readonly display: string;
}

/** Audiences ARM accepts (its resource URIs, with and without the trailing slash), plus the emulator's own ARM URLs. */
const ARM_AUDIENCES = [
  'https://management.core.windows.net/',
  'https://management.core.windows.net',
  'https://management.azure.com/',
  'https://management.azure.com',
  '797f4846-ba00-4fd7-ba43-dac1f8f63013',
];

const readsBySubscription = new WeakMap<Emulator, Map<string, number>>();

export class ArmCall {
  readonly correlationId: string;
  caller: Caller | undefined;

  constructor(
    readonly em: Emulator,
    readonly ex: Exchange,
    /** The ARM path (without the `/arm` prefix), percent-decoded. */
    readonly path: string,
  ) {
    this.correlationId = header(ex, 'x-ms-correlation-request-id') ?? newRequestId();
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = {
      'x-ms-correlation-request-id': this.correlationId,
      'x-ms-request-id': this.ex.requestId,
      'x-ms-routing-request-id': `LOCAL:${this.ex.requestId}`,
    };
    const sub = subscriptionOf(this.path) ?? 'tenant';
    let counts = readsBySubscription.get(this.em);
    if (counts === undefined) readsBySubscription.set(this.em, (counts = new Map<string, number>()));
    const n = (counts.get(`${sub}:${this.ex.method}`) ?? 0) + 1;
    counts.set(`${sub}:${this.ex.method}`, n);
    const remaining = String(11999 - ((n - 1) % 12000));
    const kind = sub === 'tenant' ? 'tenant' : 'subscription';
    if (read(this.ex.method)) h[`x-ms-ratelimit-remaining-${kind}-reads`] = remaining;
    else if (this.ex.method === 'DELETE') h[`x-ms-ratelimit-remaining-${kind}-deletes`] = String(Math.floor(Number(remaining) / 10));
    else h[`x-ms-ratelimit-remaining-${kind}-writes`] = String(Math.floor(Number(remaining) / 10));
    return h;
  }

  json(status: number, body: unknown): void {
    sendJson(this.ex.res, status, body, this.headers());
  }

  empty(status: number): void {
    sendEmpty(this.ex.res, status, this.headers());
  }

  error(status: number, code: string, message: string, extraHeaders: Record<string, string> = {}): void {
    sendJson(this.ex.res, status, { error: { code, message } }, { ...this.headers(), ...extraHeaders });
  }

  /** Validates the bearer token (signature, issuer, lifetime, audience) and, under a subscription, its tenant. False when an error was sent. */
  authenticate(): boolean {
    const token = bearerToken(this.ex);
    const challenge = (desc: string): Record<string, string> => ({
      'www-authenticate': `Bearer authorization_uri="${this.ex.base}/${this.em.state.defaultTenantId}", error="invalid_token", error_description="${desc}"`,
    });
    if (token === undefined) {
      this.error(
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
        challenge("The authentication failed because of missing 'Authorization' header."),
      );
      return false;
    }
    const check = this.em.checkToken(token);
    if (!check.ok) {
      if (check.reason === 'expired') {
        const exp = new Date((check.exp ?? 0) * 1000).toISOString();
        const now = new Date(this.em.now()).toISOString();
        this.error(
          401,
          'ExpiredAuthenticationToken',
          `The access token expiry UTC time '${exp}' is earlier than current UTC time '${now}'.`,
          challenge('The access token has expired.'),
        );
      } else {
        this.error(401, 'InvalidAuthenticationToken', 'The access token is invalid.', challenge('The access token is invalid.'));
      }
      return false;
    }
    const aud = stringClaim(check.claims, 'aud') ?? '';
    const audiences = [...ARM_AUDIENCES, ...this.em.ownUrls().arm.flatMap((u) => [u, `${u}/`])];
    if (!audiences.some((a) => a.toLowerCase() === aud.toLowerCase())) {
      this.error(
        401,
        'InvalidAuthenticationTokenAudience',
        `The access token has been obtained for wrong audience or resource '${aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.`,
        challenge('The access token has an invalid audience.'),
      );
      return false;
    }
    const oid = stringClaim(check.claims, 'oid');
    if (oid === undefined) {
      this.error(401, 'InvalidAuthenticationToken', 'The access token is invalid.', challenge('The access token has no object ID.'));
      return false;
    }
    const sub = subscriptionOf(this.path);
    if (sub !== undefined) {
      const subscription = this.em.state.subscriptions.find((s) => s.id === sub);
      if (subscription === undefined) {
        this.error(404, 'SubscriptionNotFound', `The subscription '${sub}' could not be found.`);
        return false;
      }
      if (subscription.tenantId !== check.tenant.id) {
        this.error(
          401,
          'InvalidAuthenticationTokenTenant',
          `The access token is from the wrong issuer '${stringClaim(check.claims, 'iss') ?? ''}'. It must match the tenant 'https://sts.windows.net/${subscription.tenantId}/' associated with this subscription. Please use the authority (URL) '${this.ex.base}/${subscription.tenantId}' to get the token. Note, if the subscription is transferred to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). If you just transferred your subscription and see this error message, please try back later.`,
          challenge('The access token is from the wrong issuer.'),
        );
        return false;
      }
    }
    const upn = stringClaim(check.claims, 'upn') ?? stringClaim(check.claims, 'preferred_username');
    this.caller = { oid: oid.toLowerCase(), tenantId: check.tenant.id, display: upn ?? oid.toLowerCase() };
    return true;
  }

  /** ARM's authorization check; sends 403 AuthorizationFailed and returns false when the caller lacks `action` at `scope`. */
  authorize(action: string, scope: string): boolean {
    const c = this.caller;
    if (c === undefined) return false;
    if (isPermitted(this.em, c.tenantId, c.oid, action, scope)) return true;
    this.error(
      403,
      'AuthorizationFailed',
      `The client '${c.display}' with object id '${c.oid}' does not have authorization to perform action '${action}' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
    );
    return false;
  }

  /** `nextLink` paging: the page at `$skipToken` and the link to the next one. */
  page<T>(items: readonly T[]): { value: T[]; nextLink?: string } {
    const size = this.em.state.settings.armPageSize;
    const skip = Number.parseInt(this.ex.query.get('$skipToken') ?? this.ex.query.get('$skiptoken') ?? '0', 10);
    const start = Number.isFinite(skip) && skip > 0 ? skip : 0;
    const value = items.slice(start, start + size);
    if (start + size >= items.length) return { value };
    const q = new URLSearchParams(this.ex.query);
    q.delete('$skiptoken');
    q.set('$skipToken', String(start + size));
    return { value, nextLink: `${this.ex.base}${this.ex.path}?${q.toString()}` };
  }
}
