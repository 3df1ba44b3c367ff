import { z } from 'zod';
import { sendEmpty, sendJson } from '../exchange.js';
import { FaultInputSchema } from '../faults.js';
import { userJson } from '../graph/shapes.js';
import { identityResourceId, keysOf, newSigningKey, seededState } from '../state.js';
import { body, guid, invalid, notFound, tenantOf, type AdminRoute } from './route.js';

/** The emulator itself: endpoints, the state dump, reset, clock, signing keys, faults, counters, settings. */

const RotateBody = z.strictObject({ tenantId: guid.optional(), retireOldest: z.boolean().optional() });
const ClockBody = z.strictObject({ advanceSeconds: z.number().finite().optional(), set: z.union([z.string(), z.number()]).optional() });
const SettingsBody = z.strictObject({ armPageSize: z.number().int().min(1).optional(), graphPageSize: z.number().int().min(1).optional() });

export const systemRoutes: AdminRoute[] = [
  { method: 'GET', pattern: /^\/endpoints$/, name: '/_emulator/endpoints', handler: (ctx, ex) => sendJson(ex.res, 200, ctx.endpoints()) },
  {
    method: 'GET',
    pattern: /^\/state$/,
    name: '/_emulator/state',
    handler: (ctx, ex) => {
      const s = ctx.em.state;
      sendJson(ex.res, 200, {
        defaultTenantId: s.defaultTenantId,
        now: new Date(ctx.em.now()).toISOString(),
        settings: s.settings,
        tenants: s.tenants.map((t) => ({
          id: t.id,
          displayName: t.displayName,
          domain: t.domain,
          signingKeys: t.signingKeys.map((k) => ({ kid: k.kid, active: k.active, createdAt: k.createdAt })),
        })),
        subscriptions: s.subscriptions,
        users: s.users.map((u) => ({ ...userJson(u), tenantId: u.tenantId, directoryRoles: u.directoryRoles })),
        groups: s.groups.map((g) => ({ id: g.id, tenantId: g.tenantId, displayName: g.displayName, members: g.members })),
        applications: s.applications.map((a) => ({
          id: a.id,
          appId: a.appId,
          tenantId: a.tenantId,
          displayName: a.displayName,
          identifierUris: a.identifierUris,
        })),
        servicePrincipals: s.servicePrincipals.map((p) => ({
          id: p.id,
          appId: p.appId,
          tenantId: p.tenantId,
          displayName: p.displayName,
          servicePrincipalType: p.servicePrincipalType,
        })),
        managedIdentities: s.managedIdentities.map((m) => ({ ...m, resourceId: identityResourceId(m) })),
        clusters: s.clusters.map((c) => ({
          name: c.name,
          subscriptionId: c.subscriptionId,
          resourceGroup: c.resourceGroup,
          tenantId: c.tenantId,
          principalId: c.principalId,
          clientId: c.clientId,
          isDefault: c.isDefault,
        })),
        roleAssignments: s.roleAssignments,
        customRoles: s.customRoles,
        denyAssignments: s.denyAssignments,
        appRoleAssignments: s.appRoleAssignments,
        oauth2PermissionGrants: s.oauth2PermissionGrants,
      });
    },
  },
  {
    method: 'POST',
    pattern: /^\/reset$/,
    name: '/_emulator/reset',
    handler: async (ctx, ex) => {
      const s = ctx.em.state;
      const next = await seededState(
        { ca: s.ca, server: s.server, refreshTokenKey: s.refreshTokenKey },
        s.defaultTenantId,
        ctx.em.now() - s.clockOffsetMs,
        keysOf(s),
      );
      ctx.em.state = next;
      ctx.em.faults.clear();
      ctx.em.counters.reset();
      ctx.em.changed();
      sendJson(ex.res, 200, { reset: true });
    },
  },
  {
    method: 'GET',
    pattern: /^\/clock$/,
    name: '/_emulator/clock',
    handler: (ctx, ex) =>
      sendJson(ex.res, 200, {
        now: new Date(ctx.em.now()).toISOString(),
        epochSeconds: ctx.em.nowSeconds(),
        offsetSeconds: ctx.em.state.clockOffsetMs / 1000,
      }),
  },
  {
    method: 'POST',
    pattern: /^\/clock$/,
    name: '/_emulator/clock',
    handler: (ctx, ex) => {
      const b = body(ex, ClockBody);
      if (b.set !== undefined) {
        const ms = typeof b.set === 'number' ? b.set * 1000 : Date.parse(b.set);
        if (!Number.isFinite(ms)) throw invalid('set: an ISO date-time or epoch seconds');
        ctx.em.setNow(ms);
      } else if (b.advanceSeconds !== undefined) {
        ctx.em.setNow(ctx.em.now() + b.advanceSeconds * 1000);
      } else {
        throw invalid('give advanceSeconds or set');
      }
      sendJson(ex.res, 200, {
        now: new Date(ctx.em.now()).toISOString(),
        epochSeconds: ctx.em.nowSeconds(),
        offsetSeconds: ctx.em.state.clockOffsetMs / 1000,
      });
    },
  },
  {
    method: 'POST',
    pattern: /^\/keys\/rotate$/,
    name: '/_emulator/keys/rotate',
    handler: async (ctx, ex) => {
      const b = body(ex, RotateBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const key = await newSigningKey(ctx.em.now(), true);
      for (const k of tenant.signingKeys) k.active = false;
      tenant.signingKeys.push(key);
      const retired = b.retireOldest === true && tenant.signingKeys.length > 1 ? tenant.signingKeys.shift() : undefined;
      ctx.em.changed();
      sendJson(ex.res, 200, {
        tenantId: tenant.id,
        activeKid: key.kid,
        retiredKid: retired?.kid ?? null,
        kids: tenant.signingKeys.map((k) => k.kid),
      });
    },
  },
  { method: 'GET', pattern: /^\/faults$/, name: '/_emulator/faults', handler: (ctx, ex) => sendJson(ex.res, 200, { value: ctx.em.faults.all() }) },
  {
    method: 'POST',
    pattern: /^\/faults$/,
    name: '/_emulator/faults',
    handler: (ctx, ex) => {
      const b = body(ex, FaultInputSchema);
      if (b.status === undefined && b.drop !== true && b.latencyMs === undefined) throw invalid('a fault needs status, drop or latencyMs');
      sendJson(ex.res, 201, ctx.em.faults.add(b));
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/faults$/,
    name: '/_emulator/faults',
    handler: (ctx, ex) => {
      ctx.em.faults.clear();
      sendEmpty(ex.res, 204);
    },
  },
  {
    method: 'DELETE',
    pattern: /^\/faults\/(\d+)$/,
    name: '/_emulator/faults/{id}',
    handler: (ctx, ex, [id]) => {
      if (!ctx.em.faults.remove(Number(id))) throw notFound(`no fault ${id ?? ''}`);
      sendEmpty(ex.res, 204);
    },
  },
  { method: 'GET', pattern: /^\/counters$/, name: '/_emulator/counters', handler: (ctx, ex) => sendJson(ex.res, 200, ctx.em.counters.snapshot()) },
  {
    method: 'DELETE',
    pattern: /^\/counters$/,
    name: '/_emulator/counters',
    handler: (ctx, ex) => {
      ctx.em.counters.reset();
      sendEmpty(ex.res, 204);
    },
  },
  {
    method: 'PUT',
    pattern: /^\/settings$/,
    name: '/_emulator/settings',
    handler: (ctx, ex) => {
      const b = body(ex, SettingsBody);
      Object.assign(ctx.em.state.settings, b);
      ctx.em.changed();
      sendJson(ex.res, 200, ctx.em.state.settings);
    },
  },
];
