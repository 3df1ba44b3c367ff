import { isArmResourceId } from '../contracts/azure-ids.js';
import type { EntraConfig, IdentitySource, LogLevel, RbacConfig, RbacMode, ServeConfig } from './config.js';
import { envName } from './options.js';
import { SettingReader, clip, type Sources } from './setting-reader.js';

export { parseHostPort, type RawValue } from './setting-reader.js';

export type LoadResult = { readonly ok: true; readonly config: ServeConfig } | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Resolves `serve` settings with precedence flag > env > file > default and validates them all, collecting every problem.
 * One builder per section reads and checks its settings; a builder returns `undefined` when one of them is bad.
 */
export function loadServeConfig(sources: Sources): LoadResult {
  const r = new SettingReader(sources);
  const listeners = listenersSection(r);
  const upstream = upstreamSection(r);
  const entra = entraSection(r);
  const apiKeys = apiKeysSection(r);
  const rbac = rbacSection(r);
  const routes = routesSection(r);
  const policy = policySection(r);
  const timeouts = timeoutsSection(r);
  const logging = loggingSection(r);
  if (r.errors.length > 0 || !listeners || !upstream || !entra || !apiKeys || !rbac || !routes || !policy || !timeouts || !logging) {
    return { ok: false, errors: r.errors };
  }
  return { ok: true, config: { ...listeners, ...upstream, ...entra, ...apiKeys, rbac, ...routes, ...policy, ...timeouts, ...logging } };
}

function listenersSection(r: SettingReader): Pick<ServeConfig, 'listen' | 'adminListen'> | undefined {
  return allRead({ listen: r.hostPort('listen'), adminListen: r.hostPort('admin-listen') });
}

function upstreamSection(r: SettingReader): Pick<ServeConfig, 'upstream' | 'controlUpstream' | 'forwardAuthorization'> | undefined {
  const upstream = r.url('upstream');
  if (!r.given('upstream')) r.fail('upstream', 'is required: the data-plane base URL of the Foundry Local server, e.g. http://127.0.0.1:5000');
  return allRead({ upstream, controlUpstream: r.url('control-upstream') ?? upstream, forwardAuthorization: r.bool('forward-authorization') });
}

/** Entra ID is on when both tenant and client ID are given; `entra` is absent when neither is. */
function entraSection(r: SettingReader): { entra?: EntraConfig } | undefined {
  const tenantId = r.guid('tenant-id');
  const clientId = r.guid('client-id');
  const allowedTenants = r.guidList('allowed-tenants');
  const audiences = r.list('audiences');
  const rest = allRead({
    authority: r.url('authority', { loopbackHttpOnly: true }),
    requiredScope: r.text('required-scope'),
    requiredAppRole: r.text('required-app-role'),
    clockSkew: r.duration('clock-skew'),
  });
  const tenantGiven = r.given('tenant-id');
  const clientGiven = r.given('client-id');
  if (tenantGiven !== clientGiven) r.fail(tenantGiven ? 'client-id' : 'tenant-id', 'Entra ID needs both --tenant-id and --client-id');
  if (!tenantGiven && !clientGiven) return {};
  if (tenantId === undefined || clientId === undefined || !rest) return undefined;
  return {
    entra: {
      tenantId,
      clientId,
      allowedTenants: allowedTenants ?? [tenantId],
      authority: trimSlash(rest.authority.href),
      audiences: audiences ?? [clientId, `api://${clientId}`],
      requiredScope: rest.requiredScope,
      requiredAppRole: rest.requiredAppRole,
      clockSkewSeconds: Math.floor(rest.clockSkew / 1000),
    },
  };
}

function apiKeysSection(r: SettingReader): { apiKeysFile?: string } | undefined {
  const apiKeysFile = r.path('api-keys-file');
  if (apiKeysFile !== undefined) return { apiKeysFile };
  if (!r.given('tenant-id') && !r.given('client-id')) {
    r.errors.push(
      `--tenant-id / ${envName('tenant-id')} and --client-id / ${envName('client-id')}, or --api-keys-file / ${envName('api-keys-file')}: ` +
        'at least one of Entra ID (tenant + client ID) or API keys must be configured',
    );
    return undefined;
  }
  return {};
}

function rbacSection(r: SettingReader): RbacConfig | undefined {
  const mode = r.choice<RbacMode>('rbac');
  const scope = r.text('rbac-scope');
  const roleAssignmentsFile = r.path('role-assignments-file');
  const read = allRead({
    armEndpoint: r.url('arm-endpoint', { loopbackHttpOnly: true }),
    identity: r.choice<IdentitySource>('identity'),
    msiEndpoint: r.url('msi-endpoint'),
    allowTtlMs: r.duration('rbac-allow-ttl'),
    denyTtlMs: r.duration('rbac-deny-ttl'),
    staleIfErrorMs: r.duration('rbac-stale-if-error'),
    timeoutMs: r.duration('rbac-timeout'),
  });
  if (scope !== undefined && !isArmResourceId(scope)) {
    r.fail('rbac-scope', `must be an ARM resource ID such as /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Kubernetes/connectedClusters/<name> (got "${clip(scope)}")`);
  }
  if (mode === 'arm' && r.given('tenant-id') && scope === undefined) {
    r.fail('rbac-scope', 'is required with --rbac arm: the ARM resource ID of the Arc connected cluster (az connectedk8s show --query id -o tsv)');
  }
  if (mode === 'static' && roleAssignmentsFile === undefined) r.fail('role-assignments-file', 'is required with --rbac static');
  if (mode === undefined || !read) return undefined;
  return {
    mode,
    ...(scope !== undefined ? { scope } : {}),
    ...(roleAssignmentsFile !== undefined ? { roleAssignmentsFile } : {}),
    ...read,
    armEndpoint: trimSlash(read.armEndpoint.href),
    msiEndpoint: read.msiEndpoint.href,
  };
}

function routesSection(r: SettingReader): Pick<ServeConfig, 'publicPaths' | 'routesFile'> | undefined {
  const publicPaths = r.list('public-paths');
  const routesFile = r.path('routes-file');
  for (const p of publicPaths ?? []) {
    if (!p.startsWith('/')) r.fail('public-paths', `each path must start with "/" (got "${clip(p)}")`);
  }
  if (publicPaths?.some((p) => p.includes('?') || p.includes('#') || p.includes('..') || p.includes('//'))) {
    r.fail('public-paths', 'paths must be canonical: no query, fragment, dot segments or empty segments');
  }
  if (publicPaths === undefined) return undefined;
  return { publicPaths, ...(routesFile !== undefined ? { routesFile } : {}) };
}

function policySection(r: SettingReader): Pick<ServeConfig, 'policyFile' | 'maxBodyBytes'> | undefined {
  const policyFile = r.path('policy-file');
  const maxBodyBytes = r.bytes('max-body-bytes');
  if (maxBodyBytes === undefined) return undefined;
  return { ...(policyFile !== undefined ? { policyFile } : {}), maxBodyBytes };
}

function timeoutsSection(r: SettingReader): Pick<ServeConfig, 'upstreamHeadersTimeoutMs' | 'upstreamBodyTimeoutMs' | 'shutdownGraceMs'> | undefined {
  return allRead({
    upstreamHeadersTimeoutMs: r.duration('upstream-headers-timeout'),
    upstreamBodyTimeoutMs: r.duration('upstream-body-timeout'),
    shutdownGraceMs: r.duration('shutdown-grace'),
  });
}

function loggingSection(r: SettingReader): Pick<ServeConfig, 'logLevel' | 'logFormat'> | undefined {
  return allRead({ logLevel: r.choice<LogLevel>('log-level'), logFormat: r.choice<'json' | 'pretty'>('log-format') });
}

/** The values when every one was read (a setting with a default is `undefined` only when it was bad), else `undefined`. */
function allRead<T extends Record<string, unknown>>(values: T): { [K in keyof T]: Exclude<T[K], undefined> } | undefined {
  for (const key in values) if (values[key] === undefined) return undefined;
  return values as { [K in keyof T]: Exclude<T[K], undefined> };
}

function trimSlash(href: string): string {
  return href.replace(/\/+$/, '');
}
