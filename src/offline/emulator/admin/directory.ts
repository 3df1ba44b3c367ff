import { z } from 'zod';
import { sendJson } from '../exchange.js';
import { directoryRoleId } from '../first-party.js';
import { groupJson, userJson } from '../graph/shapes.js';
import { firstPartyServicePrincipals, hashSecret, newGuid, newTenant, tenantDomainFor } from '../state.js';
import { body, conflict, guid, idTaken, invalid, notFound, tenantOf, uniqueUpn, type AdminRoute } from './route.js';

/** Seeding the directory: tenants, subscriptions, users, groups and their members. */

const TenantBody = z.strictObject({ id: guid.optional(), displayName: z.string().optional(), domain: z.string().optional() });
const SubscriptionBody = z.strictObject({ id: guid.optional(), tenantId: guid.optional(), displayName: z.string().optional() });
const UserBody = z.strictObject({
  tenantId: guid.optional(),
  id: guid.optional(),
  userPrincipalName: z.string().min(3),
  password: z.string().min(1),
  displayName: z.string().optional(),
  givenName: z.string().optional(),
  surname: z.string().optional(),
  mail: z.string().optional(),
  directoryRoles: z.array(z.string()).optional(),
  accountEnabled: z.boolean().optional(),
});
const GroupBody = z.strictObject({
  tenantId: guid.optional(),
  id: guid.optional(),
  displayName: z.string().min(1),
  description: z.string().optional(),
  members: z.array(guid).optional(),
});
const MemberBody = z.strictObject({ id: guid.optional(), ids: z.array(guid).optional() });

export const directoryRoutes: AdminRoute[] = [
  {
    method: 'POST',
    pattern: /^\/tenants$/,
    name: '/_emulator/tenants',
    handler: async (ctx, ex) => {
      const b = body(ex, TenantBody);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (ctx.em.directory.tenant(id)) throw conflict(`tenant ${id} exists`);
      const tenant = await newTenant(id, b.displayName ?? 'Emulator Tenant', b.domain ?? tenantDomainFor(id), ctx.em.now());
      ctx.em.state.tenants.push(tenant);
      ctx.em.state.servicePrincipals.push(...firstPartyServicePrincipals(id, ctx.em.now()));
      ctx.em.changed();
      sendJson(ex.res, 201, { id, displayName: tenant.displayName, domain: tenant.domain });
    },
  },
  {
    method: 'POST',
    pattern: /^\/subscriptions$/,
    name: '/_emulator/subscriptions',
    handler: (ctx, ex) => {
      const b = body(ex, SubscriptionBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (ctx.em.state.subscriptions.some((s) => s.id === id)) throw conflict(`subscription ${id} exists`);
      const sub = { id, tenantId: tenant.id, displayName: b.displayName ?? `Subscription ${id.slice(0, 8)}` };
      ctx.em.state.subscriptions.push(sub);
      ctx.em.changed();
      sendJson(ex.res, 201, sub);
    },
  },
  {
    method: 'POST',
    pattern: /^\/users$/,
    name: '/_emulator/users',
    handler: (ctx, ex) => {
      const b = body(ex, UserBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const upn = b.userPrincipalName.includes('@') ? b.userPrincipalName : `${b.userPrincipalName}@${tenant.domain}`;
      if (!uniqueUpn(ctx, tenant.id, upn)) throw conflict(`user ${upn} exists`);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (idTaken(ctx, id)) throw conflict(`object ${id} exists`);
      const roles: string[] = [];
      for (const r of b.directoryRoles ?? []) {
        const rid = directoryRoleId(r);
        if (rid === undefined) throw invalid(`unknown directory role '${r}'`);
        roles.push(rid);
      }
      const user = {
        id,
        tenantId: tenant.id,
        userPrincipalName: upn,
        displayName: b.displayName ?? upn.split('@')[0] ?? upn,
        givenName: b.givenName ?? null,
        surname: b.surname ?? null,
        mail: b.mail ?? null,
        passwordHash: hashSecret(b.password),
        directoryRoles: roles,
        accountEnabled: b.accountEnabled ?? true,
        createdDateTime: new Date(ctx.em.now()).toISOString(),
      };
      ctx.em.state.users.push(user);
      ctx.em.changed();
      sendJson(ex.res, 201, { ...userJson(user), tenantId: tenant.id, directoryRoles: roles });
    },
  },
  {
    method: 'POST',
    pattern: /^\/groups$/,
    name: '/_emulator/groups',
    handler: (ctx, ex) => {
      const b = body(ex, GroupBody);
      const tenant = tenantOf(ctx, b.tenantId);
      const id = b.id?.toLowerCase() ?? newGuid();
      if (idTaken(ctx, id)) throw conflict(`object ${id} exists`);
      const members = (b.members ?? []).map((m) => m.toLowerCase());
      const group = {
        id,
        tenantId: tenant.id,
        displayName: b.displayName,
        description: b.description ?? null,
        mailNickname: b.displayName.replace(/[^A-Za-z0-9]/g, '').slice(0, 64) || 'group',
        securityEnabled: true,
        members,
        createdDateTime: new Date(ctx.em.now()).toISOString(),
      };
      ctx.em.state.groups.push(group);
      ctx.em.changed();
      sendJson(ex.res, 201, { ...groupJson(group), members });
    },
  },
  {
    method: 'POST',
    pattern: /^\/groups\/([^/]+)\/members$/,
    name: '/_emulator/groups/{id}/members',
    handler: (ctx, ex, [groupId]) => {
      const b = body(ex, MemberBody);
      const group = ctx.em.state.groups.find((g) => g.id === (groupId ?? '').toLowerCase());
      if (group === undefined) throw notFound(`no group ${groupId ?? ''}`);
      for (const m of [...(b.ids ?? []), ...(b.id === undefined ? [] : [b.id])]) {
        const id = m.toLowerCase();
        if (!group.members.includes(id)) group.members.push(id);
      }
      ctx.em.changed();
      sendJson(ex.res, 200, { id: group.id, members: group.members });
    },
  },
];
