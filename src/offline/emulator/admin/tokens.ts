import { z } from 'zod';
import { APP_TOKEN_EXPIRES_IN, USER_TOKEN_EXPIRES_IN, assignedAppRoles, directGroups, grantableScopes, mintAccessToken } from '../entra/issue.js';
import { sendJson, type Exchange } from '../exchange.js';
import { AZURE_CLI_APP_ID, TOKEN_EXCHANGE_AUDIENCE } from '../first-party.js';
import { clusterByName, mintServiceAccountToken, serviceAccountIssuer } from '../k8s.js';
import { decideFlow, pendingFlows } from '../entra/device-code.js';
import { AdminError, body, guid, invalid, notFound, tenantOf, type AdminContext, type AdminRoute } from './route.js';

/** Test tokens without credentials: Entra ID access tokens for seeded principals and Kubernetes service-account tokens. */

const Listener = z.enum(['https', 'http']).optional();
const FederatedTokenBody = z.strictObject({
  listener: Listener,
  cluster: z.string().optional(),
  subject: z.string().min(1),
  audience: z.string().optional(),
  expiresInSeconds: z
    .number()
    .int()
    .min(1)
    .max(86_400 * 2)
    .optional(),
});
/** The sign-in nobody can do at microsoft.com/devicelogin offline: `user` approves the code, `decline` refuses it. */
const DeviceCodeBody = z.strictObject({
  userCode: z.string().min(1),
  tenantId: guid.optional(),
  user: z.string().min(1).optional(),
  decline: z.boolean().optional(),
});
const TokenBody = z.strictObject({
  listener: Listener,
  tenantId: guid.optional(),
  principal: z.string().min(1),
  client: z.string().optional(),
  scope: z.string().min(1),
  /** The token the resource would issue were its requestedAccessTokenVersion this (1: the "v1 token" mistake). */
  tokenVersion: z.union([z.literal(1), z.literal(2)]).optional(),
  /** Issued this long ago: with an age beyond its lifetime, an expired token. */
  ageSeconds: z
    .number()
    .int()
    .min(0)
    .max(86_400 * 365)
    .optional(),
});

export const tokenRoutes: AdminRoute[] = [
  {
    method: 'POST',
    pattern: /^\/federated-token$/,
    name: '/_emulator/federated-token',
    handler: (ctx, ex) => {
      const b = body(ex, FederatedTokenBody);
      const cluster = clusterByName(ctx.em, b.cluster);
      if (cluster === undefined) throw notFound(`no cluster '${b.cluster ?? '(default)'}'`);
      const base = issuerBase(ctx, ex, b.listener);
      const t = mintServiceAccountToken(ctx.em, {
        cluster,
        base,
        subject: b.subject,
        audience: b.audience ?? TOKEN_EXCHANGE_AUDIENCE,
        expiresInSeconds: b.expiresInSeconds ?? 3600,
      });
      sendJson(ex.res, 200, { token: t.token, issuer: serviceAccountIssuer(base, cluster), expiresOn: t.expiresOn });
    },
  },
  {
    method: 'GET',
    pattern: /^\/device-codes$/,
    name: '/_emulator/device-codes',
    handler: (ctx, ex) =>
      sendJson(ex.res, 200, {
        value: pendingFlows(ctx.em).map((f) => ({
          userCode: f.userCode,
          clientId: f.clientId,
          tenantId: f.tenantId ?? null,
          scope: f.scope,
          expiresOn: f.expiresAt,
        })),
      }),
  },
  {
    method: 'POST',
    pattern: /^\/device-codes$/,
    name: '/_emulator/device-codes',
    handler: (ctx, ex) => {
      const b = body(ex, DeviceCodeBody);
      if (b.decline !== true && b.user === undefined) throw invalid('give user (who signs in) or decline: true');
      const tenant = tenantOf(ctx, b.tenantId);
      const user = b.user === undefined ? undefined : ctx.em.directory.user(tenant.id, b.user);
      if (b.user !== undefined && user === undefined) throw notFound(`no user '${b.user}' in tenant ${tenant.id}`);
      const flow = decideFlow(ctx.em, b.userCode, user === undefined ? { kind: 'decline' } : { kind: 'approve', user });
      if (flow === undefined) throw notFound(`no pending device code '${b.userCode}'`);
      sendJson(ex.res, 200, { userCode: flow.userCode, state: flow.state.kind });
    },
  },
  {
    method: 'POST',
    pattern: /^\/tokens$/,
    name: '/_emulator/tokens',
    handler: (ctx, ex) => issueTestToken(ctx, ex),
  },
];

/** The base URL a minted token's issuer names: the listener asked for, else the one the admin request came in on. */
function issuerBase(ctx: AdminContext, ex: Exchange, listener: 'https' | 'http' | undefined): string {
  return listener === undefined ? ex.base : ctx.em.bases[listener];
}

/**
 * `POST /_emulator/tokens`: a token for a seeded principal without its credentials, by the same
 * rules as the token endpoint (version, scp, roles). A user is named by UPN or object ID (client:
 * the Azure CLI unless given); an app or managed identity by its client ID or service principal ID.
 * `tokenVersion` and `ageSeconds` make the tokens of the common mistakes: v1, expired.
 */
function issueTestToken(ctx: AdminContext, ex: Exchange): void {
  const b = body(ex, TokenBody);
  const tenant = tenantOf(ctx, b.tenantId);
  const d = ctx.em.directory;
  const base = issuerBase(ctx, ex, b.listener);
  const scope = b.scope.trim();
  const resourceName = scope.endsWith('/.default') ? scope.slice(0, -'/.default'.length) : scope.slice(0, Math.max(0, scope.lastIndexOf('/')));
  const found = d.resource(tenant.id, resourceName, ctx.em.ownUrls());
  const resource = found === undefined || b.tokenVersion === undefined ? found : { ...found, tokenVersion: b.tokenVersion };
  if (resource === undefined || resource.sp === undefined)
    throw new AdminError(
      400,
      'invalid_resource',
      `AADSTS500011: The resource principal named ${resourceName} was not found in the tenant named ${tenant.id}.`,
    );
  const user = d.user(tenant.id, b.principal);
  if (user !== undefined) {
    const client = d.client(tenant.id, b.client ?? AZURE_CLI_APP_ID);
    if (client === undefined) throw notFound(`no client app '${b.client ?? ''}'`);
    const grantable = grantableScopes(ctx.em, tenant.id, client, resource, user);
    const roles = assignedAppRoles(ctx.em, tenant.id, [user.id, ...directGroups(ctx.em, tenant.id, user.id)], resource, 'User');
    if (grantable.length === 0 && roles.length === 0) {
      throw new AdminError(
        400,
        'consent_required',
        `AADSTS65001: The user or administrator has not consented to use the application with ID '${client.appId}' named '${client.displayName}'.`,
      );
    }
    const t = mintAccessToken(ctx.em, {
      tenant,
      base,
      resource,
      requestedResource: resourceName,
      client,
      clientAuth: client.publicClient ? 0 : 1,
      subject: { kind: 'user', user },
      scp: grantable.map((s) => s.value),
      roles,
      expiresIn: USER_TOKEN_EXPIRES_IN,
      ...(b.ageSeconds !== undefined ? { ageSeconds: b.ageSeconds } : {}),
    });
    return sendJson(ex.res, 200, {
      token_type: 'Bearer',
      expires_in: t.expiresIn,
      expires_on: t.expiresOn,
      access_token: t.accessToken,
      version: t.version,
    });
  }
  const sp = d.servicePrincipal(tenant.id, b.principal) ?? d.servicePrincipalByAppId(tenant.id, b.principal);
  const client =
    sp === undefined
      ? undefined
      : (d.client(tenant.id, sp.appId) ?? (sp.servicePrincipalType === 'ManagedIdentity' ? d.identityClient(sp) : undefined));
  if (sp === undefined || client === undefined) throw notFound(`no user, application or managed identity '${b.principal}' in tenant ${tenant.id}`);
  const roles = assignedAppRoles(ctx.em, tenant.id, [sp.id], resource, 'Application');
  const t = mintAccessToken(ctx.em, {
    tenant,
    base,
    resource,
    requestedResource: resourceName,
    client,
    clientAuth: sp.servicePrincipalType === 'ManagedIdentity' ? 2 : 1,
    subject: { kind: 'app', objectId: sp.id },
    roles,
    expiresIn: APP_TOKEN_EXPIRES_IN,
    ...(b.ageSeconds !== undefined ? { ageSeconds: b.ageSeconds } : {}),
  });
  sendJson(ex.res, 200, { token_type: 'Bearer', expires_in: t.expiresIn, expires_on: t.expiresOn, access_token: t.accessToken, version: t.version });
}
