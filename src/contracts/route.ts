/** The result of matching method + canonical path against the route table (SPEC section 5). */
export type Plane = 'data' | 'control';

export interface RouteMatch {
  /** The route's pattern as written in the table, e.g. `POST /v1/chat/completions`; used in logs and metrics. */
  readonly name: string;
  readonly plane: Plane;
  /** Azure RBAC action, e.g. `Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action`. */
  readonly action: string;
  /** True for data actions (matched against `dataActions`), false for control-plane actions (`actions`). */
  readonly dataAction: boolean;
}
