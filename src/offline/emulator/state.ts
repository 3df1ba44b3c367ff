import { createHash, randomBytes, randomUUID, scryptSync, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ROLE_IDS } from '../../authz/roles.js';
import { newCertificateAuthority, newRsaKeyPem, newServerCertificate, selfSignedSigningCertificate } from './certificates.js';
import { FIRST_PARTY_APPS, MICROSOFT_TENANT_ID, DIRECTORY_ROLES } from './first-party.js';
import { privateKeyOf } from './jwt.js';
import { StateSchema, type Cluster, type ServicePrincipal, type SigningKey, type State, type Tenant } from './model.js';

/**
 * Creating, seeding, loading and saving the emulator's state. The default seed uses fixed GUIDs so
 * `dev` and tests are reproducible.
 */

export const DEFAULT_SEED = {
  tenantId: 'c0ffee00-0000-4000-8000-000000000001',
  tenantDomain: 'emulator.onmicrosoft.com',
  subscriptionId: 'c0ffee00-0000-4000-8000-000000000002',
  adminUserId: 'c0ffee00-0000-4000-8000-00000000000a',
  adminUserName: 'admin',
  adminPassword: 'emulator-admin-password',
  adminOwnerAssignmentName: 'c0ffee00-0000-4000-8000-00000000000b',
  clusterName: 'arc-cluster',
  clusterResourceGroup: 'foundry-local-rg',
  clusterLocation: 'eastus',
  clusterPrincipalId: 'c0ffee00-0000-4000-8000-00000000000c',
  clusterClientId: 'c0ffee00-0000-4000-8000-00000000000d',
} as const;

export const DEFAULT_SETTINGS = { armPageSize: 100, graphPageSize: 100 } as const;

/** A GUID derived from its inputs (same inputs, same GUID), shaped as a version-5 UUID. */
export function derivedGuid(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\u0000')).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

export function newGuid(): string {
  return randomUUID();
}

/** Graph's opaque IDs for app role assignments and permission grants (43 base64url characters). */
export function newOpaqueId(): string {
  return randomBytes(32).toString('base64url').slice(0, 43);
}

/** scrypt hash of a password or client secret: the state file never holds one in the clear. */
export function hashSecret(secret: string): string {
  const salt = randomBytes(16);
  const hash = scryptSync(secret, salt, 32, { N: 1024 });
  return `scrypt$${salt.toString('base64')}$${hash.toString('base64')}`;
}

export function secretMatches(secret: string, stored: string): boolean {
  const [kind, salt, hash] = stored.split('$');
  if (kind !== 'scrypt' || salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64');
  const actual = scryptSync(secret, Buffer.from(salt, 'base64'), expected.length, { N: 1024 });
  return timingSafeEqual(actual, expected);
}

/** A new RSA-2048 signing key with its self-signed certificate; `kid` is the certificate's SHA-1 thumbprint (base64url), as Entra's. */
export async function newSigningKey(now: number, active: boolean): Promise<SigningKey> {
  const keyPem = await newRsaKeyPem();
  const der = selfSignedSigningCertificate(privateKeyOf(keyPem), new Date(now));
  return {
    kid: createHash('sha1').update(der).digest('base64url'),
    keyPem,
    certDer: der.toString('base64'),
    createdAt: new Date(now).toISOString(),
    active,
  };
}

/** Keys that survive a reset, so clients that cached the JWKS or trust the CA keep working. */
export interface KeepKeys {
  readonly tenants: ReadonlyMap<string, readonly SigningKey[]>;
  readonly clusters: ReadonlyMap<string, SigningKey>;
}

const NO_KEYS: KeepKeys = { tenants: new Map(), clusters: new Map() };

export async function newTenant(id: string, displayName: string, domain: string, now: number, keep: KeepKeys = NO_KEYS): Promise<Tenant> {
  const kept = keep.tenants.get(id);
  const signingKeys =
    kept !== undefined && kept.length > 0 ? [...kept] : await Promise.all([newSigningKey(now - 1000, false), newSigningKey(now, true)]);
  return { id, displayName, domain, signingKeys };
}

export function tenantDomainFor(id: string): string {
  return `tenant${id.slice(0, 8)}.onmicrosoft.com`;
}

/** The service principals of Microsoft's first-party apps, present in every tenant. */
export function firstPartyServicePrincipals(tenantId: string, now: number): ServicePrincipal[] {
  return FIRST_PARTY_APPS.map((app) => ({
    id: derivedGuid('first-party-sp', tenantId, app.appId),
    tenantId,
    appId: app.appId,
    displayName: app.displayName,
    servicePrincipalType: 'Application' as const,
    accountEnabled: true,
    appRoleAssignmentRequired: false,
    alternativeNames: [],
    tags: [],
    appOwnerOrganizationId: MICROSOFT_TENANT_ID,
    createdDateTime: new Date(now).toISOString(),
  }));
}

export function clusterResourceId(c: { subscriptionId: string; resourceGroup: string; name: string }): string {
  return `/subscriptions/${c.subscriptionId}/resourceGroups/${c.resourceGroup}/providers/Microsoft.Kubernetes/connectedClusters/${c.name}`;
}

export function identityResourceId(m: { subscriptionId: string; resourceGroup: string; name: string }): string {
  return `/subscriptions/${m.subscriptionId}/resourceGroups/${m.resourceGroup}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/${m.name}`;
}

export interface ClusterInput {
  readonly name: string;
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly location: string;
  readonly tenantId: string;
  readonly principalId: string;
  readonly clientId: string;
  readonly isDefault: boolean;
}

/** A connected cluster and its system-assigned identity's service principal. */
export async function newCluster(input: ClusterInput, now: number, keep: KeepKeys = NO_KEYS): Promise<{ cluster: Cluster; sp: ServicePrincipal }> {
  const serviceAccountKey = keep.clusters.get(input.name.toLowerCase()) ?? (await newSigningKey(now, true));
  const cluster: Cluster = { ...input, serviceAccountKey, createdDateTime: new Date(now).toISOString() };
  const sp: ServicePrincipal = {
    id: input.principalId,
    tenantId: input.tenantId,
    appId: input.clientId,
    displayName: input.name,
    servicePrincipalType: 'ManagedIdentity',
    accountEnabled: true,
    appRoleAssignmentRequired: false,
    alternativeNames: ['isExplicit=False', clusterResourceId(input)],
    tags: [],
    appOwnerOrganizationId: null,
    createdDateTime: new Date(now).toISOString(),
  };
  return { cluster, sp };
}

export interface InitialStateOptions {
  readonly tenantId: string;
  readonly hosts: readonly string[];
  readonly now: number;
}

/** The default seed (documented): tenant, first-party service principals, subscription, admin user (Global Administrator, Owner), one Arc cluster. */
export async function seededState(
  base: Pick<State, 'ca' | 'server' | 'refreshTokenKey'>,
  tenantId: string,
  now: number,
  keep: KeepKeys = NO_KEYS,
): Promise<State> {
  const domain = tenantId === DEFAULT_SEED.tenantId ? DEFAULT_SEED.tenantDomain : tenantDomainFor(tenantId);
  const tenant = await newTenant(tenantId, 'Emulator Tenant', domain, now, keep);
  const at = new Date(now).toISOString();
  const { cluster, sp } = await newCluster(
    {
      name: DEFAULT_SEED.clusterName,
      subscriptionId: DEFAULT_SEED.subscriptionId,
      resourceGroup: DEFAULT_SEED.clusterResourceGroup,
      location: DEFAULT_SEED.clusterLocation,
      tenantId,
      principalId: DEFAULT_SEED.clusterPrincipalId,
      clientId: DEFAULT_SEED.clusterClientId,
      isDefault: true,
    },
    now,
    keep,
  );
  return {
    version: 1,
    ...base,
    defaultTenantId: tenantId,
    clockOffsetMs: 0,
    settings: { ...DEFAULT_SETTINGS },
    tenants: [tenant],
    users: [
      {
        id: DEFAULT_SEED.adminUserId,
        tenantId,
        userPrincipalName: `${DEFAULT_SEED.adminUserName}@${domain}`,
        displayName: 'Emulator Admin',
        givenName: 'Emulator',
        surname: 'Admin',
        mail: null,
        passwordHash: hashSecret(DEFAULT_SEED.adminPassword),
        directoryRoles: [DIRECTORY_ROLES['Global Administrator'] ?? ''],
        accountEnabled: true,
        createdDateTime: at,
      },
    ],
    groups: [],
    applications: [],
    servicePrincipals: [...firstPartyServicePrincipals(tenantId, now), sp],
    appRoleAssignments: [],
    oauth2PermissionGrants: [],
    managedIdentities: [],
    clusters: [cluster],
    subscriptions: [{ id: DEFAULT_SEED.subscriptionId, tenantId, displayName: 'Emulator Subscription' }],
    roleAssignments: [
      {
        name: DEFAULT_SEED.adminOwnerAssignmentName,
        scope: `/subscriptions/${DEFAULT_SEED.subscriptionId}`,
        roleDefinitionGuid: ROLE_IDS.owner,
        principalId: DEFAULT_SEED.adminUserId,
        principalType: 'User',
        condition: null,
        conditionVersion: null,
        description: 'Emulator seed: the admin user owns the subscription',
        createdOn: at,
        updatedOn: at,
        createdBy: null,
        updatedBy: null,
      },
    ],
    customRoles: [],
    denyAssignments: [],
  };
}

export async function initialState(opts: InitialStateOptions): Promise<State> {
  const ca = await newCertificateAuthority(new Date(opts.now));
  const server = await newServerCertificate(ca, opts.hosts, new Date(opts.now));
  return seededState(
    { ca, server: { ...server, hosts: [...opts.hosts] }, refreshTokenKey: randomBytes(32).toString('hex') },
    opts.tenantId,
    opts.now,
  );
}

export function keysOf(state: State): KeepKeys {
  return {
    tenants: new Map(state.tenants.map((t) => [t.id, t.signingKeys])),
    clusters: new Map(state.clusters.map((c) => [c.name.toLowerCase(), c.serviceAccountKey])),
  };
}

export class StateFileError extends Error {
  override name = 'StateFileError';
}

/** Reads a state file; undefined when it does not exist yet. */
export function readStateFile(file: string): State | undefined {
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new StateFileError(`state file ${file} is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = StateSchema.safeParse(raw);
  if (!parsed.success) throw new StateFileError(`state file ${file} is not an emulator state file: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

/** Writes atomically (temp file + rename), readable by the owner only: it holds private keys. */
export function writeStateFile(file: string, state: State): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}
