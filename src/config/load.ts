import { isIP } from 'node:net';
import { isArmResourceId } from '../contracts/azure-ids.js';
import { readFileSync } from 'node:fs';
import type {
  EntraConfig,
  ForwardAuthProfile,
  ForwardAuthServeConfig,
  IdentitySource,
  LogLevel,
  ProxyServeConfig,
  RbacConfig,
  RbacMode,
  ServeConfig,
  ServeMode,
  SharedCacheConfig,
  TrustedProxy,
} from './config.js';
import { envName, type ServeFlag } from './options.js';
import { formatDuration } from './duration.js';
import { SettingReader, clip, type RawValue, type Sources } from './setting-reader.js';

export { parseHostPort, type RawValue } from './setting-reader.js';

export type LoadResult =
  | {
      readonly ok: true;
      readonly config: ServeConfig;
      /** The settings given (flag, env or config file) by flag name, without defaults and without `config`: what `manifests` renders. */
      readonly given: ReadonlyMap<ServeFlag, RawValue>;
    }
  | { readonly ok: false; readonly errors: readonly string[] };

/**
 * Resolves `serve` settings with precedence flag > env > file > default and validates them all, collecting every problem.
 * One builder per section reads and checks its settings; a builder returns `undefined` when one of them is bad.
 */
export function loadServeConfig(sources: Sources): LoadResult {
  const r = new SettingReader(sources);
  const listeners = listenersSection(r);
  const mode = modeSection(r);
  const forwarding = forwardingSection(r);
  const entra = entraSection(r);
  const apiKeys = apiKeysSection(r);
  const rbac = rbacSection(r);
  const routes = routesSection(r);
  const policy = policySection(r);
  const timeouts = timeoutsSection(r);
  const logging = loggingSection(r);
  const sharedCache = sharedCacheSection(r);
  const devStateDir = r.path('dev-state-dir');
  if (
    r.errors.length > 0 ||
    !listeners ||
    !mode ||
    !forwarding ||
    !entra ||
    !apiKeys ||
    !rbac ||
    !routes ||
    !policy ||
    !timeouts ||
    !logging ||
    !sharedCache
  ) {
    return { ok: false, errors: r.errors };
  }
  return {
    ok: true,
    config: {
      ...listeners,
      ...mode,
      ...forwarding,
      ...entra,
      ...apiKeys,
      rbac,
      ...sharedCache,
      ...routes,
      ...policy,
      ...timeouts,
      ...logging,
      ...(devStateDir !== undefined ? { devStateDir } : {}),
    },
    given: r.explicitSettings(),
  };
}

function listenersSection(r: SettingReader): Pick<ServeConfig, 'listen' | 'adminListen'> | undefined {
  return allRead({ listen: r.hostPort('listen'), adminListen: r.hostPort('admin-listen') });
}

type ModeSettings =
  | Pick<ProxyServeConfig, 'mode' | 'upstream' | 'controlUpstream' | 'upstreamHeadersTimeoutMs' | 'upstreamBodyTimeoutMs' | 'upstreamApiKeyFile'>
  | Pick<ForwardAuthServeConfig, 'mode' | 'forwardAuth'>;

const FORWARD_AUTH_FLAGS = ['forward-auth-profile', 'trusted-proxies', 'forward-auth-socket', 'forward-auth-path-prefix'] as const;

/** Proxy mode needs an upstream; forward-auth mode needs a profile and trusted proxies, and refuses an upstream. */
function modeSection(r: SettingReader): ModeSettings | undefined {
  const mode = r.choice<ServeMode>('mode');
  if (mode === 'forward-auth') return forwardAuthSection(r);
  for (const flag of FORWARD_AUTH_FLAGS) if (r.given(flag)) r.fail(flag, 'applies to --mode forward-auth only');
  const upstream = r.url('upstream');
  if (!r.given('upstream')) r.fail('upstream', 'is required: the data-plane base URL of the Foundry Local server, e.g. http://127.0.0.1:5000');
  const read = allRead({
    upstream,
    controlUpstream: r.url('control-upstream') ?? upstream,
    upstreamHeadersTimeoutMs: r.duration('upstream-headers-timeout'),
    upstreamBodyTimeoutMs: r.duration('upstream-body-timeout'),
  });
  const upstreamApiKeyFile = r.path('upstream-api-key-file');
  if (upstreamApiKeyFile !== undefined && r.bool('forward-authorization') === true) {
    r.fail('upstream-api-key-file', "cannot be combined with --forward-authorization: the upstream gets the sidecar's key, never the caller's");
  }
  if (mode === undefined || !read) return undefined;
  return { mode, ...read, ...(upstreamApiKeyFile !== undefined ? { upstreamApiKeyFile } : {}) };
}

function forwardAuthSection(r: SettingReader): ModeSettings | undefined {
  for (const flag of ['upstream', 'control-upstream', 'upstream-api-key-file'] as const) {
    if (r.given(flag))
      r.fail(flag, 'forward-auth mode does not forward: the proxy in front sends allowed requests to the upstream; remove this setting');
  }
  const profile = r.choice<ForwardAuthProfile>('forward-auth-profile');
  if (!r.given('forward-auth-profile')) {
    r.fail(
      'forward-auth-profile',
      'is required with --mode forward-auth: envoy (Envoy ext_authz, Istio, Envoy Gateway), nginx (auth_request, ingress-nginx) or forwarded (Traefik, Caddy)',
    );
  }
  const entries = r.list('trusted-proxies') ?? [];
  if (entries.length === 0) {
    r.fail(
      'trusted-proxies',
      'is required with --mode forward-auth: the addresses or CIDRs of the proxies allowed to ask, e.g. 10.0.0.0/8,fd00::/8 (no default: trusting every peer lets anyone forge the original request)',
    );
  }
  const trustedProxies: TrustedProxy[] = [];
  const bad: string[] = [];
  let unix = false;
  for (const entry of entries) {
    if (entry === UNIX_PEERS) {
      unix = true;
      continue;
    }
    const parsed = parseTrustedProxy(entry);
    if (parsed === undefined) bad.push(entry);
    else trustedProxies.push(parsed);
  }
  if (bad.length > 0)
    r.fail(
      'trusted-proxies',
      `every entry must be an IPv4 or IPv6 address or CIDR such as 10.0.0.0/8 or fd00::/8, or unix (bad: ${bad.map((b) => `"${clip(b)}"`).join(', ')})`,
    );
  const socket = r.text('forward-auth-socket') || undefined;
  const socketProblem: readonly [ServeFlag, string] | undefined =
    socket !== undefined && !unix
      ? [
          'forward-auth-socket',
          'the peers of the socket are not trusted yet: add unix to --trusted-proxies (whoever can open the socket file may then ask for decisions)',
        ]
      : unix && socket === undefined
        ? ['trusted-proxies', 'unix trusts the peers of --forward-auth-socket, which is not set']
        : socket !== undefined && trustedProxies.length > 0
          ? ['trusted-proxies', 'with --forward-auth-socket the checks come over the socket only: give unix alone, no addresses']
          : undefined;
  if (socketProblem !== undefined) r.fail(...socketProblem);
  const pathPrefix = r.text('forward-auth-path-prefix') ?? '';
  if (pathPrefix !== '' && profile !== undefined && profile !== 'envoy')
    r.fail('forward-auth-path-prefix', 'applies to --forward-auth-profile envoy only');
  if (pathPrefix !== '' && !isPathPrefix(pathPrefix)) {
    r.fail(
      'forward-auth-path-prefix',
      `must be a canonical path such as /authz: starting with "/", no trailing "/", query, fragment, dot or empty segments (got "${clip(pathPrefix)}")`,
    );
  }
  if (profile === undefined || entries.length === 0 || bad.length > 0 || socketProblem !== undefined) return undefined;
  return { mode: 'forward-auth', forwardAuth: { profile, trustedProxies, pathPrefix, ...(socket !== undefined ? { socket } : {}) } };
}

/** The `--trusted-proxies` entry that trusts the peers of `--forward-auth-socket`. */
const UNIX_PEERS = 'unix';

/**
 * One `--trusted-proxies` entry: an IPv4 or IPv6 address, or either with `/prefix`. Zone IDs
 * (`fe80::1%eth0`) are refused: a peer address never carries one.
 */
export function parseTrustedProxy(entry: string): TrustedProxy | undefined {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0 || address.includes('%')) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const bits = version === 4 ? 32 : 128;
  if (slash < 0) return { family, address, prefix: bits };
  const prefix = entry.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > bits) return undefined;
  return { family, address, prefix: Number(prefix) };
}

/** Envoy's `path_prefix` as the operator configured it: a canonical absolute path without a trailing slash. */
function isPathPrefix(value: string): boolean {
  return /^(\/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$/.test(value) && !value.split('/').some((s) => s === '.' || s === '..');
}

function forwardingSection(r: SettingReader): Pick<ServeConfig, 'forwardAuthorization'> | undefined {
  return allRead({ forwardAuthorization: r.bool('forward-authorization') });
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
    armReadRate: positiveNumber(r, 'arm-read-rate'),
  });
  if (scope !== undefined && !isArmResourceId(scope)) {
    r.fail(
      'rbac-scope',
      `must be an ARM resource ID such as /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Kubernetes/connectedClusters/<name> (got "${clip(scope)}")`,
    );
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

/** `--shared-cache` and its password file; `{}` when no shared cache is configured. */
function sharedCacheSection(r: SettingReader): { sharedCache?: SharedCacheConfig } | undefined {
  const url = redisUrl(r, 'shared-cache');
  const password = secretFile(r, 'shared-cache-password-file');
  const timeoutMs = r.duration('shared-cache-timeout');
  if (password !== undefined && !r.given('shared-cache')) r.fail('shared-cache-password-file', 'is only used with --shared-cache');
  if (!r.given('shared-cache')) return {};
  if (url === undefined || timeoutMs === undefined || (r.given('shared-cache-password-file') && password === undefined)) return undefined;
  return { sharedCache: { url, timeoutMs: Math.max(1, timeoutMs), ...(password !== undefined ? { password } : {}) } };
}

function positiveNumber(r: SettingReader, flag: ServeFlag): number | undefined {
  const value = r.text(flag);
  if (value === undefined) return undefined;
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) return r.fail(flag, `must be a number greater than 0, e.g. 10 (got "${clip(value)}")`);
  return n;
}

/** `redis://` or `rediss://` with a host; the value is never echoed back, since it may hold a password. */
function redisUrl(r: SettingReader, flag: ServeFlag): URL | undefined {
  const value = r.text(flag);
  if (value === undefined || value === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    return r.fail(flag, 'must be a redis://HOST:PORT or rediss://HOST:PORT URL (the value is not a URL)');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    return r.fail(flag, `must use redis:// or rediss:// (got "${clip(parsed.protocol)}")`);
  if (parsed.hostname === '') return r.fail(flag, 'must name a host, e.g. redis://redis.foundry-auth.svc:6379');
  if (parsed.search !== '' || parsed.hash !== '') return r.fail(flag, 'must not contain a query or fragment');
  if (!/^\/?(\d{1,2})?$/.test(parsed.pathname)) return r.fail(flag, 'the path may only be a database number, e.g. redis://host:6379/0');
  return parsed;
}

/** A one-line secret read from the file a flag names. */
function secretFile(r: SettingReader, flag: ServeFlag): string | undefined {
  const file = r.path(flag);
  if (file === undefined) return undefined;
  let body: string;
  try {
    body = readFileSync(file, 'utf8');
  } catch (err) {
    return r.fail(flag, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const secret = body.replace(/\r?\n$/, '');
  if (secret === '' || /[\r\n]/.test(secret)) return r.fail(flag, `${file} must hold the password on one line`);
  return secret;
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
  if (policyFile !== undefined && r.text('mode') === 'forward-auth') {
    r.fail(
      'policy-file',
      'needs foundry-auth as the proxy (--mode proxy): in forward-auth mode it sees neither the request body (the model) nor the response (the tokens)',
    );
  }
  if (maxBodyBytes === undefined) return undefined;
  return { ...(policyFile !== undefined ? { policyFile } : {}), maxBodyBytes };
}

/** Node's timers hold at most 2^31-1 ms (24.8 days); 0 would mean an idle connection is never closed. */
const KEEP_ALIVE_RANGE_MS = { min: 1_000, max: 24 * 3_600_000 };

function timeoutsSection(r: SettingReader): Pick<ServeConfig, 'shutdownGraceMs' | 'keepAliveTimeoutMs'> | undefined {
  let keepAliveTimeoutMs = r.duration('keep-alive-timeout');
  if (keepAliveTimeoutMs !== undefined && (keepAliveTimeoutMs < KEEP_ALIVE_RANGE_MS.min || keepAliveTimeoutMs > KEEP_ALIVE_RANGE_MS.max)) {
    keepAliveTimeoutMs = r.fail(
      'keep-alive-timeout',
      `must be between 1s and 24h, and longer than the proxy or load balancer in front keeps its idle connections (got ${formatDuration(keepAliveTimeoutMs)})`,
    );
  }
  return allRead({ shutdownGraceMs: r.duration('shutdown-grace'), keepAliveTimeoutMs });
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
