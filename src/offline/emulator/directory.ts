import { ARM_APP_ID, FIRST_PARTY_APPS, GRAPH_APP_ID, firstPartyApp, type FirstPartyApp } from './first-party.js';
import type {
  AppRole,
  Application,
  DirectoryObject,
  FederatedCredential,
  Group,
  PermissionScope,
  PreAuthorizedApplication,
  ServicePrincipal,
  State,
  Tenant,
  User,
} from './model.js';

/**
 * Read-only questions about the emulated directory: who an ID names, which groups contain it
 * (transitively), and what an application looks like as a token resource or a client.
 */

/** An application seen as the resource a token is for. */
export interface ResourceApp {
  readonly appId: string;
  readonly displayName: string;
  /** 2 only when the manifest's `api.requestedAccessTokenVersion` is 2; first-party resources issue v1. */
  readonly tokenVersion: 1 | 2;
  readonly scopes: readonly PermissionScope[];
  readonly appRoles: readonly AppRole[];
  readonly preAuthorizedApplications: readonly PreAuthorizedApplication[];
  /** The resource's service principal in the tenant; tokens can only be issued when it exists. */
  readonly sp: ServicePrincipal | undefined;
  readonly firstParty: FirstPartyApp | undefined;
}

/** An application or managed identity seen as the client asking for a token. */
export interface ClientApp {
  readonly appId: string;
  readonly displayName: string;
  readonly sp: ServicePrincipal | undefined;
  readonly application: Application | undefined;
  readonly firstParty: FirstPartyApp | undefined;
  /** Public clients (no secret) may use the password grant without client authentication. */
  readonly publicClient: boolean;
  readonly federatedIdentityCredentials: readonly FederatedCredential[];
  /** For managed identities: the ARM resource ID (`xms_mirid`). */
  readonly managedIdentityResourceId: string | undefined;
}

const lower = (s: string): string => s.toLowerCase();

export class Directory {
  constructor(private readonly source: { readonly state: State }) {}

  private get s(): State {
    return this.source.state;
  }

  tenant(idOrDomain: string): Tenant | undefined {
    const key = lower(idOrDomain);
    return this.s.tenants.find((t) => t.id === key || lower(t.domain) === key);
  }

  user(tenantId: string, idOrUpn: string): User | undefined {
    const key = lower(idOrUpn);
    return this.s.users.find((u) => u.tenantId === tenantId && (u.id === key || lower(u.userPrincipalName) === key));
  }

  group(tenantId: string, id: string): Group | undefined {
    return this.s.groups.find((g) => g.tenantId === tenantId && g.id === lower(id));
  }

  servicePrincipal(tenantId: string, id: string): ServicePrincipal | undefined {
    return this.s.servicePrincipals.find((p) => p.tenantId === tenantId && p.id === lower(id));
  }

  servicePrincipalByAppId(tenantId: string, appId: string): ServicePrincipal | undefined {
    return this.s.servicePrincipals.find((p) => p.tenantId === tenantId && p.appId === lower(appId));
  }

  application(tenantId: string, id: string): Application | undefined {
    return this.s.applications.find((a) => a.tenantId === tenantId && a.id === lower(id));
  }

  applicationByAppId(tenantId: string, appId: string): Application | undefined {
    return this.s.applications.find((a) => a.tenantId === tenantId && a.appId === lower(appId));
  }

  object(tenantId: string, id: string): DirectoryObject | undefined {
    const user = this.user(tenantId, id);
    if (user && user.id === lower(id)) return { kind: 'user', user };
    const group = this.group(tenantId, id);
    if (group) return { kind: 'group', group };
    const sp = this.servicePrincipal(tenantId, id);
    if (sp) return { kind: 'servicePrincipal', sp };
    return undefined;
  }

  /** IDs of every group that contains `objectId`, directly or through nested groups. */
  transitiveGroups(tenantId: string, objectId: string): Set<string> {
    const found = new Set<string>();
    const queue = [lower(objectId)];
    while (queue.length > 0) {
      const member = queue.shift() ?? '';
      for (const g of this.s.groups) {
        if (g.tenantId === tenantId && !found.has(g.id) && g.members.includes(member)) {
          found.add(g.id);
          queue.push(g.id);
        }
      }
    }
    return found;
  }

  /** Every object (users, groups, service principals) inside a group, through nested groups. */
  transitiveMembers(tenantId: string, groupId: string): DirectoryObject[] {
    const seen = new Set<string>([lower(groupId)]);
    const out: DirectoryObject[] = [];
    const queue = [...(this.group(tenantId, groupId)?.members ?? [])];
    while (queue.length > 0) {
      const id = queue.shift() ?? '';
      if (seen.has(id)) continue;
      seen.add(id);
      const obj = this.object(tenantId, id);
      if (obj === undefined) continue;
      out.push(obj);
      if (obj.kind === 'group') queue.push(...obj.group.members);
    }
    return out;
  }

  /** The app roles and scopes a service principal exposes: its application's (same tenant) or its first-party definition. */
  exposed(sp: ServicePrincipal): { appRoles: readonly AppRole[]; scopes: readonly PermissionScope[] } {
    const app = this.applicationByAppId(sp.tenantId, sp.appId);
    if (app) return { appRoles: app.appRoles, scopes: app.api.oauth2PermissionScopes };
    const fp = firstPartyApp(sp.appId);
    if (fp) return { appRoles: fp.appRoles, scopes: fp.scopes };
    return { appRoles: [], scopes: [] };
  }

  /**
   * The resource named by a scope's resource part: an appId GUID, or an identifier URI of an
   * application in the tenant or of a first-party app (`ownUrls` are the emulator's own Graph and
   * ARM base URLs, which name those first-party resources too).
   */
  resource(tenantId: string, identifier: string, ownUrls: { graph: readonly string[]; arm: readonly string[] }): ResourceApp | undefined {
    const key = lower(identifier);
    const own = (urls: readonly string[]): boolean => urls.some((u) => lower(u) === key || `${lower(u)}/` === key);
    const fpByUri =
      firstPartyApp(key) ??
      (own(ownUrls.graph) ? firstPartyApp(GRAPH_APP_ID) : undefined) ??
      (own(ownUrls.arm) ? firstPartyApp(ARM_APP_ID) : undefined) ??
      FIRST_PARTY_APPS.find((a) => a.identifierUris.some((u) => lower(u) === key));
    if (fpByUri) {
      return {
        appId: fpByUri.appId,
        displayName: fpByUri.displayName,
        tokenVersion: 1,
        scopes: fpByUri.scopes,
        appRoles: fpByUri.appRoles,
        preAuthorizedApplications: [],
        sp: this.servicePrincipalByAppId(tenantId, fpByUri.appId),
        firstParty: fpByUri,
      };
    }
    const app = this.s.applications.find((a) => a.tenantId === tenantId && (a.appId === key || a.identifierUris.some((u) => lower(u) === key)));
    if (app) {
      return {
        appId: app.appId,
        displayName: app.displayName,
        tokenVersion: app.api.requestedAccessTokenVersion === 2 ? 2 : 1,
        scopes: app.api.oauth2PermissionScopes,
        appRoles: app.appRoles,
        preAuthorizedApplications: app.api.preAuthorizedApplications,
        sp: this.servicePrincipalByAppId(tenantId, app.appId),
        firstParty: undefined,
      };
    }
    // A service principal of an app registered elsewhere (multi-tenant) or a managed identity: resource without an application object.
    const sp = this.s.servicePrincipals.find((p) => p.tenantId === tenantId && p.appId === key);
    if (sp) {
      const { appRoles, scopes } = this.exposed(sp);
      return {
        appId: sp.appId,
        displayName: sp.displayName,
        tokenVersion: 1,
        scopes,
        appRoles,
        preAuthorizedApplications: [],
        sp,
        firstParty: undefined,
      };
    }
    return undefined;
  }

  /** The client named by a `client_id`: an application, a first-party app, or a managed identity's client ID. */
  client(tenantId: string, clientId: string): ClientApp | undefined {
    const key = lower(clientId);
    const sp = this.servicePrincipalByAppId(tenantId, key);
    const fp = firstPartyApp(key);
    if (fp) {
      return {
        appId: fp.appId,
        displayName: fp.displayName,
        sp,
        application: undefined,
        firstParty: fp,
        publicClient: fp.publicClient,
        federatedIdentityCredentials: [],
        managedIdentityResourceId: undefined,
      };
    }
    const app = this.applicationByAppId(tenantId, key);
    if (app) {
      return {
        appId: app.appId,
        displayName: app.displayName,
        sp,
        application: app,
        firstParty: undefined,
        publicClient: app.isFallbackPublicClient === true,
        federatedIdentityCredentials: app.federatedIdentityCredentials,
        managedIdentityResourceId: undefined,
      };
    }
    const mi = this.s.managedIdentities.find((m) => m.tenantId === tenantId && m.clientId === key);
    if (mi && sp) return this.identityClient(sp, mi.name, mi.federatedIdentityCredentials);
    return undefined;
  }

  /** A managed identity (user-assigned, or a cluster's system-assigned one) as a client: no secret, its resource ID for `xms_mirid`. */
  identityClient(
    sp: ServicePrincipal,
    displayName: string = sp.displayName,
    federatedIdentityCredentials: readonly FederatedCredential[] = [],
  ): ClientApp {
    return {
      appId: sp.appId,
      displayName,
      sp,
      application: undefined,
      firstParty: undefined,
      publicClient: false,
      federatedIdentityCredentials,
      managedIdentityResourceId: sp.alternativeNames[1],
    };
  }
}
