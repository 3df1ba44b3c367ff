import type { Principal } from '../contracts/principal.js';

/** One `permissions[]` entry of a role definition or deny assignment, as ARM returns it. */
export interface PermissionBlock {
  readonly actions: readonly string[];
  readonly notActions: readonly string[];
  readonly dataActions: readonly string[];
  readonly notDataActions: readonly string[];
}

/** A role assignment that applies to the principal (directly or through a group), with its role definition resolved. */
export interface EffectiveAssignment {
  /** The role definition's GUID, lower case. */
  readonly roleDefinitionId: string;
  readonly roleName: string;
  /** Scope the assignment was made at (the cluster or one of its ancestors). */
  readonly scope: string;
  /** The principal the assignment names: the caller or one of its groups. */
  readonly principalId: string;
  /** ABAC condition; an assignment with a condition grants nothing (fail closed). */
  readonly condition?: string;
  readonly permissions: readonly PermissionBlock[];
}

/** A deny assignment that applies to the principal (after `principals`/`excludePrincipals` were evaluated). */
export interface EffectiveDenyAssignment {
  readonly id: string;
  readonly name: string;
  readonly scope: string;
  readonly doNotApplyToChildScopes: boolean;
  readonly permissions: readonly PermissionBlock[];
}

/** Everything needed to decide any action for one principal at one scope. */
export interface AccessSnapshot {
  readonly assignments: readonly EffectiveAssignment[];
  readonly denyAssignments: readonly EffectiveDenyAssignment[];
}

/** Why a lookup failed. Never cached, never turned into a deny. */
export type AccessFailureReason =
  | 'arm_unreachable'
  | 'arm_timeout'
  | 'arm_server_error'
  | 'arm_throttled'
  | 'arm_read_budget_spent'
  | 'arm_bad_response'
  | 'identity_refused'
  | 'identity_token_unavailable'
  | 'source_unavailable';

export class AccessSourceError extends Error {
  constructor(
    readonly reason: AccessFailureReason,
    message: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'AccessSourceError';
  }
}

/** Where role assignments come from: a file (`static`) or Azure Resource Manager (`arm`). */
export interface AccessSource {
  readonly kind: 'static' | 'arm';
  /** Assignments and deny assignments that apply to the principal at `scope`; throws AccessSourceError when it cannot tell. */
  lookup(principal: Principal, scope: string): Promise<AccessSnapshot>;
  /** null when ready; otherwise what is missing. */
  readiness(): Promise<string | null>;
  close(): Promise<void>;
}
