/** Who is calling, after authentication. Identity is `tid` + `oid` (SPEC section 4). */
export type PrincipalType = 'user' | 'app' | 'api-key';

export interface Principal {
  readonly type: PrincipalType;
  /** Object ID (users, service principals, managed identities); for API keys a stable key ID such as `key-3f9a1c2e`. */
  readonly oid: string;
  /** Tenant ID; empty for API keys. */
  readonly tid: string;
  /** Calling application (`azp`/`appid`), when known. */
  readonly appId?: string;
  /** Display name or UPN (`preferred_username`, `name`), for logs and identity headers only: never used for decisions. */
  readonly name?: string;
  /** The verified claims, for `x-ms-client-principal`. Absent for API keys. */
  readonly claims?: Readonly<Record<string, unknown>>;
}
