import { z } from 'zod';
import type { Emulator } from '../core.js';
import { jsonObject, sendJson, type Exchange } from '../exchange.js';
import { TOKEN_EXCHANGE_AUDIENCE } from '../first-party.js';
import type { FederatedCredential, ServicePrincipal, Tenant } from '../model.js';
import { newGuid } from '../state.js';

/**
 * What every `/_emulator` admin route shares (loopback only, no authentication): the context, the
 * refusal type, body parsing and lookups. Every body is JSON; errors are `{"error":{"code","message"}}`.
 * The routes live by resource next to this file, as the `arm/` and `graph/` siblings do.
 */

export interface AdminContext {
  readonly em: Emulator;
  /** The endpoints document (`GET /_emulator/endpoints`). */
  readonly endpoints: () => Record<string, unknown>;
}

export const guid = z.guid();

/** A refusal: the route dispatcher answers it as `{"error":{"code","message"}}` with `status`. */
export class AdminError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (message: string): AdminError => new AdminError(400, 'invalid_request', message);
export const notFound = (message: string): AdminError => new AdminError(404, 'not_found', message);
export const conflict = (message: string): AdminError => new AdminError(409, 'conflict', message);

export function fail(ex: Exchange, status: number, code: string, message: string): void {
  sendJson(ex.res, status, { error: { code, message } });
}

/** The request body checked against `schema` (an empty body counts as `{}`). */
export function body<T>(ex: Exchange, schema: z.ZodType<T>): T {
  const raw = ex.body.length === 0 ? {} : jsonObject(ex);
  if (raw === null) throw new AdminError(400, 'invalid_json', 'the request body must be a JSON object');
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(`${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}

/** The tenant named in a body, or the default tenant when none is. */
export function tenantOf(ctx: AdminContext, id: string | undefined): Tenant {
  const t = ctx.em.directory.tenant(id ?? ctx.em.state.defaultTenantId);
  if (t === undefined) throw new AdminError(404, 'tenant_not_found', `no tenant '${id ?? ''}'`);
  return t;
}

/** A service principal named by object ID or, failing that, by app ID. */
export function servicePrincipalOf(
  ctx: AdminContext,
  tenantId: string,
  id: string | undefined,
  appId: string | undefined,
): ServicePrincipal | undefined {
  const d = ctx.em.directory;
  return id !== undefined ? d.servicePrincipal(tenantId, id) : appId !== undefined ? d.servicePrincipalByAppId(tenantId, appId) : undefined;
}

export const FicInput = z.strictObject({
  name: z.string().min(1),
  issuer: z.string().min(1),
  subject: z.string().min(1),
  audiences: z.array(z.string()).optional(),
  description: z.string().optional(),
});
export const federatedCredentials = (inputs: ReadonlyArray<z.infer<typeof FicInput>> | undefined): FederatedCredential[] =>
  (inputs ?? []).map((f) => ({
    id: newGuid(),
    name: f.name,
    issuer: f.issuer,
    subject: f.subject,
    audiences: f.audiences ?? [TOKEN_EXCHANGE_AUDIENCE],
    description: f.description ?? null,
  }));

export type Handler = (ctx: AdminContext, ex: Exchange, params: string[]) => void | Promise<void>;

export interface AdminRoute {
  readonly method: string;
  readonly pattern: RegExp;
  readonly name: string;
  readonly handler: Handler;
}

export function uniqueUpn(ctx: AdminContext, tenantId: string, upn: string): boolean {
  return !ctx.em.state.users.some((u) => u.tenantId === tenantId && u.userPrincipalName.toLowerCase() === upn.toLowerCase());
}

export function idTaken(ctx: AdminContext, id: string): boolean {
  const s = ctx.em.state;
  return (
    s.users.some((u) => u.id === id) ||
    s.groups.some((g) => g.id === id) ||
    s.servicePrincipals.some((p) => p.id === id) ||
    s.applications.some((a) => a.id === id)
  );
}
