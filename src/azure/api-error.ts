import { describeFailure, HttpCallError, type HttpFailure } from './http.js';
import { IdentityError } from './token.js';

/**
 * A failed Microsoft Graph or ARM management call made on behalf of the person running `setup`,
 * `grant` or `doctor`: which API, which operation, and Azure's own error code, so the command can
 * say what to do about it. Token failures carry the credential's fix instead.
 */

export type AzureApi = 'graph' | 'arm';

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
