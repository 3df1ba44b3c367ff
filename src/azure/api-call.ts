import type { Dispatcher } from 'undici';
import type { Logger } from '../ops/log.js';
import { describeFailure, HttpCallError, requestJson, type HttpFailure } from './http.js';
import { IdentityError, type TokenProvider } from './token.js';

/**
 * A failed Microsoft Graph or ARM management call made on behalf of the person running `setup`,
 * `grant` or `doctor`: which API, which operation, and Azure's own error code, so the command can
 * say what to do about it. Token failures carry the credential's fix instead.
 */

export type AzureApi = 'graph' | 'arm';

/** Any more pages than this is a broken or hostile next-page chain. */
const MAX_PAGES = 100;

export class AzureApiError extends Error {
  constructor(
    readonly api: AzureApi,
    /** e.g. `graph.applications.write`, `arm.role_assignments.write`. */
    readonly operation: string,
    readonly failure: HttpFailure | { readonly kind: 'token'; readonly detail: string; readonly fix: string },
    readonly correlationId?: string,
  ) {
    super(`${operation}: ${failure.kind === 'token' ? failure.detail : describeFailure(failure)}`);
    this.name = 'AzureApiError';
  }

  get status(): number | undefined {
    return this.failure.kind === 'http' ? this.failure.status : undefined;
  }

  /** Azure's error code (`Authorization_RequestDenied`, `AuthorizationFailed`, `RoleAssignmentExists`, ...). */
  get code(): string | undefined {
    return this.failure.kind === 'http' ? this.failure.code : undefined;
  }

  /** Azure's error message, first line (never contains the token). */
  get azureMessage(): string | undefined {
    return this.failure.kind === 'http' ? this.failure.message : undefined;
  }
}

/** Wraps what `requestJson` or a token provider threw into an AzureApiError; anything else is rethrown as is. */
export function asAzureApiError(api: AzureApi, operation: string, err: unknown): unknown {
  if (err instanceof AzureApiError) return err;
  if (err instanceof HttpCallError) return new AzureApiError(api, operation, err.failure, err.correlationId);
  if (err instanceof IdentityError) return new AzureApiError(api, operation, { kind: 'token', detail: err.message, fix: err.fix });
  return err;
}

/** What a Graph or ARM management client holds: its caller's token, and how to call. */
export interface AzureApiConnection {
  readonly api: AzureApi;
  readonly tokens: TokenProvider;
  readonly timeoutMs: number;
  readonly dispatcher?: Dispatcher | undefined;
  readonly log?: Logger | undefined;
}

export interface AzureApiCall {
  readonly operation: string;
  readonly method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  readonly url: string;
  /** Sent as JSON. */
  readonly body?: unknown;
  /** A 404 answers this value instead of failing (`{ value: null }`: "not there" is an answer). */
  readonly notFound?: { readonly value: null };
}

/**
 * One call with the caller's bearer token; the JSON body of the answer (undefined when empty).
 * Every failure becomes an AzureApiError; a 401 drops the cached token so the next call gets a new one.
 */
export async function callAzureApi(conn: AzureApiConnection, call: AzureApiCall): Promise<unknown> {
  let token: string;
  try {
    token = (await conn.tokens.getToken()).token;
  } catch (err) {
    throw asAzureApiError(conn.api, call.operation, err);
  }
  try {
    const reply = await requestJson({
      operation: call.operation,
      url: call.url,
      method: call.method,
      headers: { authorization: `Bearer ${token}`, ...(call.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(call.body !== undefined ? { body: JSON.stringify(call.body) } : {}),
      timeoutMs: conn.timeoutMs,
      dispatcher: conn.dispatcher,
      log: conn.log,
      allowEmpty: true,
    });
    return reply.body;
  } catch (err) {
    const wrapped = asAzureApiError(conn.api, call.operation, err);
    if (wrapped instanceof AzureApiError && wrapped.status === 404 && call.notFound !== undefined) return call.notFound.value;
    if (wrapped instanceof AzureApiError && wrapped.status === 401) conn.tokens.invalidate();
    throw wrapped;
  }
}

/** One page of a Graph or ARM list, as the client's own schema read it. */
export interface AzurePage<T> {
  readonly value: readonly T[];
  readonly nextLink: string | undefined;
}

/**
 * Every page of a list: next-page links (`linkName` in messages) are followed only on the first
 * URL's origin, so the caller's bearer token never leaves it; a relative link is resolved against
 * the page that named it.
 */
export async function listAzurePages<T>(
  conn: AzureApiConnection,
  operation: string,
  firstUrl: string,
  linkName: string,
  readPage: (body: unknown) => AzurePage<T>,
): Promise<T[]> {
  const origin = new URL(firstUrl).origin;
  const refuse = (detail: string): AzureApiError => new AzureApiError(conn.api, operation, { kind: 'bad_response', detail });
  const items: T[] = [];
  let next: string | undefined = firstUrl;
  for (let pages = 0; next !== undefined; pages++) {
    if (pages >= MAX_PAGES) throw refuse(`${linkName} did not end after ${MAX_PAGES} pages`);
    const page = readPage(await callAzureApi(conn, { operation, method: 'GET', url: next }));
    items.push(...page.value);
    if (page.nextLink === undefined) break;
    let link: URL;
    try {
      link = new URL(page.nextLink, next);
    } catch {
      throw refuse(`${linkName} is not a URL`);
    }
    if (link.origin !== origin) throw refuse(`${linkName} points to another origin (${link.origin}); refused`);
    next = link.href;
  }
  return items;
}
