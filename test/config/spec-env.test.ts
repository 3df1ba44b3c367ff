/**
 * SPEC section 2: "Every flag has an environment variable FOUNDRY_AUTH_<FLAG_IN_UPPER_SNAKE> and a
 * camelCase key in the optional --config FILE". The table below is copied from SPEC (not derived
 * from src/config/options.ts), so a renamed, missing or mis-spelled variable or key fails here.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProxyServeConfig } from '../../src/config/config.js';
import { loadServeConfig } from '../../src/config/load.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const OTHER = 'f8cdef31-a31e-4b4a-93e4-5f571e91255a';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const SCOPE = '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c1';
const BASE: Record<string, string> = { upstream: 'http://127.0.0.1:5000', 'tenant-id': TENANT, 'client-id': CLIENT, 'rbac-scope': SCOPE };

interface Row {
  /** The flag as SPEC names it. */
  readonly flag: string;
  readonly env: string;
  readonly key: string;
  /** A non-default value. */
  readonly value: string;
  readonly read: (c: ProxyServeConfig) => unknown;
  readonly expected: unknown;
}

// Every row of the SPEC section 2 table (the required identity flags are set through BASE and covered by their own rows).
const ROWS: readonly Row[] = [
  {
    flag: 'listen',
    env: 'FOUNDRY_AUTH_LISTEN',
    key: 'listen',
    value: '127.0.0.1:7001',
    read: (c) => c.listen,
    expected: { host: '127.0.0.1', port: 7001 },
  },
  {
    flag: 'admin-listen',
    env: 'FOUNDRY_AUTH_ADMIN_LISTEN',
    key: 'adminListen',
    value: '127.0.0.1:7002',
    read: (c) => c.adminListen,
    expected: { host: '127.0.0.1', port: 7002 },
  },
  {
    flag: 'upstream',
    env: 'FOUNDRY_AUTH_UPSTREAM',
    key: 'upstream',
    value: 'http://127.0.0.1:5999/',
    read: (c) => c.upstream.href,
    expected: 'http://127.0.0.1:5999/',
  },
  {
    flag: 'control-upstream',
    env: 'FOUNDRY_AUTH_CONTROL_UPSTREAM',
    key: 'controlUpstream',
    value: 'http://127.0.0.1:5273/',
    read: (c) => c.controlUpstream.href,
    expected: 'http://127.0.0.1:5273/',
  },
  { flag: 'tenant-id', env: 'FOUNDRY_AUTH_TENANT_ID', key: 'tenantId', value: OTHER, read: (c) => c.entra?.tenantId, expected: OTHER },
  {
    flag: 'client-id',
    env: 'FOUNDRY_AUTH_CLIENT_ID',
    key: 'clientId',
    value: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
    read: (c) => c.entra?.clientId,
    expected: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  },
  {
    flag: 'allowed-tenants',
    env: 'FOUNDRY_AUTH_ALLOWED_TENANTS',
    key: 'allowedTenants',
    value: `${TENANT},${OTHER}`,
    read: (c) => c.entra?.allowedTenants,
    expected: [TENANT, OTHER],
  },
  {
    flag: 'authority',
    env: 'FOUNDRY_AUTH_AUTHORITY',
    key: 'authority',
    value: 'https://login.microsoftonline.us',
    read: (c) => c.entra?.authority,
    expected: 'https://login.microsoftonline.us',
  },
  {
    flag: 'audiences',
    env: 'FOUNDRY_AUTH_AUDIENCES',
    key: 'audiences',
    value: 'api://edge',
    read: (c) => c.entra?.audiences,
    expected: ['api://edge'],
  },
  {
    flag: 'required-scope',
    env: 'FOUNDRY_AUTH_REQUIRED_SCOPE',
    key: 'requiredScope',
    value: 'edge_access',
    read: (c) => c.entra?.requiredScope,
    expected: 'edge_access',
  },
  {
    flag: 'required-app-role',
    env: 'FOUNDRY_AUTH_REQUIRED_APP_ROLE',
    key: 'requiredAppRole',
    value: 'Edge.Invoke',
    read: (c) => c.entra?.requiredAppRole,
    expected: 'Edge.Invoke',
  },
  { flag: 'clock-skew', env: 'FOUNDRY_AUTH_CLOCK_SKEW', key: 'clockSkew', value: '1m', read: (c) => c.entra?.clockSkewSeconds, expected: 60 },
  {
    flag: 'api-keys-file',
    env: 'FOUNDRY_AUTH_API_KEYS_FILE',
    key: 'apiKeysFile',
    value: '/etc/foundry-auth/keys',
    read: (c) => c.apiKeysFile,
    expected: '/etc/foundry-auth/keys',
  },
  { flag: 'rbac-scope', env: 'FOUNDRY_AUTH_RBAC_SCOPE', key: 'rbacScope', value: `${SCOPE}x`, read: (c) => c.rbac.scope, expected: `${SCOPE}x` },
  {
    flag: 'arm-endpoint',
    env: 'FOUNDRY_AUTH_ARM_ENDPOINT',
    key: 'armEndpoint',
    value: 'https://management.usgovcloudapi.net',
    read: (c) => c.rbac.armEndpoint,
    expected: 'https://management.usgovcloudapi.net',
  },
  {
    flag: 'identity',
    env: 'FOUNDRY_AUTH_IDENTITY',
    key: 'identity',
    value: 'workload-identity',
    read: (c) => c.rbac.identity,
    expected: 'workload-identity',
  },
  {
    flag: 'msi-endpoint',
    env: 'FOUNDRY_AUTH_MSI_ENDPOINT',
    key: 'msiEndpoint',
    value: 'http://127.0.0.1:9421/metadata/identity/oauth2/token',
    read: (c) => c.rbac.msiEndpoint,
    expected: 'http://127.0.0.1:9421/metadata/identity/oauth2/token',
  },
  { flag: 'rbac-allow-ttl', env: 'FOUNDRY_AUTH_RBAC_ALLOW_TTL', key: 'rbacAllowTtl', value: '2m', read: (c) => c.rbac.allowTtlMs, expected: 120_000 },
  { flag: 'rbac-deny-ttl', env: 'FOUNDRY_AUTH_RBAC_DENY_TTL', key: 'rbacDenyTtl', value: '5', read: (c) => c.rbac.denyTtlMs, expected: 5_000 },
  {
    flag: 'rbac-stale-if-error',
    env: 'FOUNDRY_AUTH_RBAC_STALE_IF_ERROR',
    key: 'rbacStaleIfError',
    value: '10m',
    read: (c) => c.rbac.staleIfErrorMs,
    expected: 600_000,
  },
  { flag: 'rbac-timeout', env: 'FOUNDRY_AUTH_RBAC_TIMEOUT', key: 'rbacTimeout', value: '3s', read: (c) => c.rbac.timeoutMs, expected: 3_000 },
  {
    flag: 'public-paths',
    env: 'FOUNDRY_AUTH_PUBLIC_PATHS',
    key: 'publicPaths',
    value: '/ping,/version',
    read: (c) => c.publicPaths,
    expected: ['/ping', '/version'],
  },
  {
    flag: 'routes-file',
    env: 'FOUNDRY_AUTH_ROUTES_FILE',
    key: 'routesFile',
    value: '/etc/foundry-auth/routes.yaml',
    read: (c) => c.routesFile,
    expected: '/etc/foundry-auth/routes.yaml',
  },
  {
    flag: 'policy-file',
    env: 'FOUNDRY_AUTH_POLICY_FILE',
    key: 'policyFile',
    value: '/etc/foundry-auth/policy.yaml',
    read: (c) => c.policyFile,
    expected: '/etc/foundry-auth/policy.yaml',
  },
  {
    flag: 'max-body-bytes',
    env: 'FOUNDRY_AUTH_MAX_BODY_BYTES',
    key: 'maxBodyBytes',
    value: '512KiB',
    read: (c) => c.maxBodyBytes,
    expected: 524_288,
  },
  {
    flag: 'forward-authorization',
    env: 'FOUNDRY_AUTH_FORWARD_AUTHORIZATION',
    key: 'forwardAuthorization',
    value: 'true',
    read: (c) => c.forwardAuthorization,
    expected: true,
  },
  {
    flag: 'upstream-headers-timeout',
    env: 'FOUNDRY_AUTH_UPSTREAM_HEADERS_TIMEOUT',
    key: 'upstreamHeadersTimeout',
    value: '90s',
    read: (c) => c.upstreamHeadersTimeoutMs,
    expected: 90_000,
  },
  {
    flag: 'upstream-body-timeout',
    env: 'FOUNDRY_AUTH_UPSTREAM_BODY_TIMEOUT',
    key: 'upstreamBodyTimeout',
    value: '45s',
    read: (c) => c.upstreamBodyTimeoutMs,
    expected: 45_000,
  },
  {
    flag: 'keep-alive-timeout',
    env: 'FOUNDRY_AUTH_KEEP_ALIVE_TIMEOUT',
    key: 'keepAliveTimeout',
    value: '2h',
    read: (c) => c.keepAliveTimeoutMs,
    expected: 7_200_000,
  },
  { flag: 'shutdown-grace', env: 'FOUNDRY_AUTH_SHUTDOWN_GRACE', key: 'shutdownGrace', value: '7s', read: (c) => c.shutdownGraceMs, expected: 7_000 },
  { flag: 'log-level', env: 'FOUNDRY_AUTH_LOG_LEVEL', key: 'logLevel', value: 'warn', read: (c) => c.logLevel, expected: 'warn' },
  { flag: 'log-format', env: 'FOUNDRY_AUTH_LOG_FORMAT', key: 'logFormat', value: 'pretty', read: (c) => c.logFormat, expected: 'pretty' },
];

// --rbac and --role-assignments-file only make sense together (static needs the file).
const STATIC_ROWS = [
  { flag: 'rbac', env: 'FOUNDRY_AUTH_RBAC', key: 'rbac', value: 'static' },
  { flag: 'role-assignments-file', env: 'FOUNDRY_AUTH_ROLE_ASSIGNMENTS_FILE', key: 'roleAssignmentsFile', value: '/etc/foundry-auth/rbac.yaml' },
] as const;

function without(flag: string): Record<string, string> {
  const { [flag]: _, ...rest } = BASE;
  return rest;
}

function configOf(flags: Record<string, string>, env: Record<string, string>): ProxyServeConfig {
  const result = loadServeConfig({ flags, env });
  if (!result.ok) throw new Error(result.errors.join('\n'));
  if (result.config.mode !== 'proxy') throw new Error('expected a proxy-mode configuration');
  return result.config;
}

function configFile(entries: Record<string, string>): string {
  const file = join(mkdtempSync(join(tmpdir(), 'fa-spec-env-')), 'serve.json');
  writeFileSync(file, JSON.stringify(entries));
  return file;
}

describe('SPEC 2: every serve flag has its environment variable and config-file key', () => {
  it.each(ROWS.map((r) => [r.flag, r] as const))('--%s', (_flag, row) => {
    // The value given only through the environment, then only through the file, changes the setting.
    expect(row.read(configOf(without(row.flag), { [row.env]: row.value }))).toEqual(row.expected);
    expect(row.read(configOf({ ...without(row.flag), config: configFile({ [row.key]: row.value }) }, {}))).toEqual(row.expected);
  });

  it('--rbac and --role-assignments-file', () => {
    const viaEnv = configOf(without('rbac-scope'), Object.fromEntries(STATIC_ROWS.map((r) => [r.env, r.value])));
    expect([viaEnv.rbac.mode, viaEnv.rbac.roleAssignmentsFile]).toEqual(['static', '/etc/foundry-auth/rbac.yaml']);
    const viaFile = configOf({ ...without('rbac-scope'), config: configFile(Object.fromEntries(STATIC_ROWS.map((r) => [r.key, r.value]))) }, {});
    expect([viaFile.rbac.mode, viaFile.rbac.roleAssignmentsFile]).toEqual(['static', '/etc/foundry-auth/rbac.yaml']);
  });

  it('names the flag and its environment variable for each bad value that came from the config file', () => {
    const result = loadServeConfig({ flags: { ...BASE, config: configFile({ rbacDenyTtl: 'soon', logFormat: 'xml' }) }, env: {} });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.split(':')[0]).sort()).toEqual([
      '--log-format / FOUNDRY_AUTH_LOG_FORMAT',
      '--rbac-deny-ttl / FOUNDRY_AUTH_RBAC_DENY_TTL',
    ]);
  });
});
