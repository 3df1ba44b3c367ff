import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { HostPort, IdentitySource, LogLevel, RbacMode, ServeConfig } from './config.js';
import { parseDuration } from './duration.js';
import { SERVE_OPTIONS, envName, fileKey, type OptionSpec, type ServeFlag } from './options.js';

/** Raw values as they arrive: flags and env are strings, a config file may hold numbers, booleans and arrays. */
export type RawValue = string | number | boolean | readonly (string | number)[];

export type LoadResult = { readonly ok: true; readonly config: ServeConfig } | { readonly ok: false; readonly errors: readonly string[] };

interface Sources {
  /** Flags given on the command line, keyed by flag name (`tenant-id`). */
  readonly flags: Readonly<Partial<Record<string, RawValue>>>;
  readonly env: Readonly<Record<string, string | undefined>>;
}

const guid = z.guid();
const BYTE_UNITS: Readonly<Record<string, number>> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Resolves `serve` settings with precedence flag > env > file > default and validates them all, collecting every problem. */
export function loadServeConfig(sources: Sources): LoadResult {
  const errors: string[] = [];
  const specs = new Map<string, OptionSpec>(SERVE_OPTIONS.map((o) => [o.flag, o]));
  const label = (flag: string): string => `--${flag} / ${envName(flag)}`;

  const configPath = pick('config');
  let file: Record<string, unknown> = {};
  if (typeof configPath === 'string' && configPath !== '') {
    const loaded = readConfigFile(configPath);
    if (typeof loaded === 'string') errors.push(`${label('config')}: ${loaded}`);
    else {
      file = loaded;
      const known = new Set(SERVE_OPTIONS.map((o) => fileKey(o.flag)));
      for (const key of Object.keys(file)) {
        if (!known.has(key)) errors.push(`${label('config')}: unknown key "${key}" in ${configPath}`);
      }
    }
  }

  function pick(flag: ServeFlag): RawValue | undefined {
    const fromFlag = sources.flags[flag];
    if (fromFlag !== undefined) return fromFlag;
    const fromEnv = sources.env[envName(flag)];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    const fromFile = flag === 'config' ? undefined : file[fileKey(flag)];
    if (fromFile !== undefined && fromFile !== null) return fromFile as RawValue;
    const spec = specs.get(flag);
    return spec?.default;
  }

  function fail(flag: string, problem: string): undefined {
    errors.push(`${label(flag)}: ${problem}`);
    return undefined;
  }

  function text(flag: ServeFlag): string | undefined {
    const value = pick(flag);
    if (value === undefined) return undefined;
    if (Array.isArray(value)) return value.join(',');
    return String(value);
  }

  function list(flag: ServeFlag): string[] | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    return value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  }

  function guidValue(flag: ServeFlag): string | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    if (!guid.safeParse(value).success) return fail(flag, `must be a GUID such as 00000000-0000-0000-0000-000000000000 (got "${clip(value)}")`);
    return value.toLowerCase();
  }

  function guidList(flag: ServeFlag): string[] | undefined {
    const values = list(flag);
    if (values === undefined) return undefined;
    const bad = values.filter((v) => !guid.safeParse(v).success);
    if (bad.length > 0) return fail(flag, `every entry must be a GUID (bad: ${bad.map((b) => `"${clip(b)}"`).join(', ')})`);
    return values.map((v) => v.toLowerCase());
  }

  function url(flag: ServeFlag, opts: { loopbackHttpOnly?: boolean } = {}): URL | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      return fail(flag, `must be an absolute http(s) URL (got "${clip(value)}")`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return fail(flag, `must use http:// or https:// (got "${parsed.protocol}")`);
    if (parsed.username !== '' || parsed.password !== '') return fail(flag, 'must not contain credentials');
    if (parsed.search !== '' || parsed.hash !== '') return fail(flag, 'must not contain a query or fragment');
    if (opts.loopbackHttpOnly && parsed.protocol === 'http:' && !LOOPBACK_HOSTS.has(parsed.hostname)) {
      return fail(flag, `http:// is allowed only for loopback hosts (127.0.0.1, ::1, localhost); use https:// for "${parsed.host}"`);
    }
    return parsed;
  }

  function duration(flag: ServeFlag): number | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    const ms = parseDuration(value);
    if (ms === undefined) return fail(flag, `must be a duration in seconds ("30") or with a unit ("250ms", "30s", "5m", "1h") (got "${clip(value)}")`);
    return ms;
  }

  function bytes(flag: ServeFlag): number | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    const match = /^\s*(\d{1,15})\s*(|B|KiB|MiB|GiB)\s*$/.exec(value);
    const size = match === null ? NaN : Number(match[1]) * BYTE_UNITS[match[2]!]!;
    if (!Number.isSafeInteger(size) || size < 1) return fail(flag, `must be a positive number of bytes, optionally with a unit ("1048576", "512KiB", "16MiB", "1GiB") (got "${clip(value)}")`);
    return size;
  }

  function bool(flag: ServeFlag): boolean | undefined {
    const value = pick(flag);
    if (value === undefined) return undefined;
    if (typeof value === 'boolean') return value;
    const s = String(value).trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    return fail(flag, `must be true or false (got "${clip(String(value))}")`);
  }

  function choice<T extends string>(flag: ServeFlag): T | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    const choices = specs.get(flag)?.choices ?? [];
    if (!choices.includes(value)) return fail(flag, `must be one of ${choices.join(', ')} (got "${clip(value)}")`);
    return value as T;
  }

  function hostPort(flag: ServeFlag): HostPort | undefined {
    const value = text(flag);
    if (value === undefined) return undefined;
    const parsed = parseHostPort(value);
    if (!parsed) return fail(flag, `must be HOST:PORT such as 0.0.0.0:8080 or [::1]:8080 (got "${clip(value)}")`);
    return parsed;
  }

  function path(flag: ServeFlag): string | undefined {
    const value = text(flag);
    return value === undefined || value === '' ? undefined : value;
  }

  const listen = hostPort('listen');
  const adminListen = hostPort('admin-listen');
  const upstream = url('upstream');
  if (text('upstream') === undefined) fail('upstream', 'is required: the data-plane base URL of the Foundry Local server, e.g. http://127.0.0.1:5000');
  const controlUpstream = url('control-upstream') ?? upstream;

  const tenantId = guidValue('tenant-id');
  const clientId = guidValue('client-id');
  const allowedTenants = guidList('allowed-tenants');
  const authority = url('authority', { loopbackHttpOnly: true });
  const audiences = list('audiences');
  const requiredScope = text('required-scope');
  const requiredAppRole = text('required-app-role');
  const clockSkew = duration('clock-skew');
  const apiKeysFile = path('api-keys-file');

  const rbacMode = choice<RbacMode>('rbac');
  const rbacScope = text('rbac-scope');
  const roleAssignmentsFile = path('role-assignments-file');
  const armEndpoint = url('arm-endpoint', { loopbackHttpOnly: true });
  const identity = choice<IdentitySource>('identity');
  const msiEndpoint = url('msi-endpoint');
  const allowTtl = duration('rbac-allow-ttl');
  const denyTtl = duration('rbac-deny-ttl');
  const staleIfError = duration('rbac-stale-if-error');
  const rbacTimeout = duration('rbac-timeout');
  const publicPaths = list('public-paths');
  const routesFile = path('routes-file');
  const policyFile = path('policy-file');
  const maxBodyBytes = bytes('max-body-bytes');
  const forwardAuthorization = bool('forward-authorization');
  const headersTimeout = duration('upstream-headers-timeout');
  const bodyTimeout = duration('upstream-body-timeout');
  const shutdownGrace = duration('shutdown-grace');
  const logLevel = choice<LogLevel>('log-level');
  const logFormat = choice<'json' | 'pretty'>('log-format');

  const tenantGiven = text('tenant-id') !== undefined;
  const clientGiven = text('client-id') !== undefined;
  if (tenantGiven !== clientGiven) {
    fail(tenantGiven ? 'client-id' : 'tenant-id', 'Entra ID needs both --tenant-id and --client-id');
  }
  if (!tenantGiven && !clientGiven && apiKeysFile === undefined) {
    errors.push(
      `--tenant-id / ${envName('tenant-id')} and --client-id / ${envName('client-id')}, or --api-keys-file / ${envName('api-keys-file')}: ` +
        'at least one of Entra ID (tenant + client ID) or API keys must be configured',
    );
  }
  if (rbacScope !== undefined && !isArmResourceId(rbacScope)) {
    fail('rbac-scope', `must be an ARM resource ID such as /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Kubernetes/connectedClusters/<name> (got "${clip(rbacScope)}")`);
  }
  if (rbacMode === 'arm' && tenantGiven && rbacScope === undefined) {
    fail('rbac-scope', 'is required with --rbac arm: the ARM resource ID of the Arc connected cluster (az connectedk8s show --query id -o tsv)');
  }
  if (rbacMode === 'static' && roleAssignmentsFile === undefined) {
    fail('role-assignments-file', 'is required with --rbac static');
  }
  for (const p of publicPaths ?? []) {
    if (!p.startsWith('/')) fail('public-paths', `each path must start with "/" (got "${clip(p)}")`);
  }
  if (publicPaths?.some((p) => p.includes('?') || p.includes('#') || p.includes('..') || p.includes('//'))) {
    fail('public-paths', 'paths must be canonical: no query, fragment, dot segments or empty segments');
  }

  if (errors.length > 0) return { ok: false, errors };

  const entra =
    tenantId !== undefined && clientId !== undefined
      ? {
          tenantId,
          clientId,
          allowedTenants: allowedTenants ?? [tenantId],
          authority: trimSlash(authority!.href),
          audiences: audiences ?? [clientId, `api://${clientId}`],
          requiredScope: requiredScope!,
          requiredAppRole: requiredAppRole!,
          clockSkewSeconds: Math.floor(clockSkew! / 1000),
        }
      : undefined;

  const config: ServeConfig = {
    listen: listen!,
    adminListen: adminListen!,
    upstream: upstream!,
    controlUpstream: controlUpstream!,
    ...(entra ? { entra } : {}),
    ...(apiKeysFile !== undefined ? { apiKeysFile } : {}),
    rbac: {
      mode: rbacMode!,
      ...(rbacScope !== undefined ? { scope: rbacScope } : {}),
      ...(roleAssignmentsFile !== undefined ? { roleAssignmentsFile } : {}),
      armEndpoint: trimSlash(armEndpoint!.href),
      identity: identity!,
      msiEndpoint: msiEndpoint!.href,
      allowTtlMs: allowTtl!,
      denyTtlMs: denyTtl!,
      staleIfErrorMs: staleIfError!,
      timeoutMs: rbacTimeout!,
    },
    publicPaths: publicPaths!,
    ...(routesFile !== undefined ? { routesFile } : {}),
    ...(policyFile !== undefined ? { policyFile } : {}),
    maxBodyBytes: maxBodyBytes!,
    forwardAuthorization: forwardAuthorization!,
    upstreamHeadersTimeoutMs: headersTimeout!,
    upstreamBodyTimeoutMs: bodyTimeout!,
    shutdownGraceMs: shutdownGrace!,
    logLevel: logLevel!,
    logFormat: logFormat!,
  };
  return { ok: true, config };
}

function readConfigFile(path: string): Record<string, unknown> | string {
  let body: string;
  try {
    body = readFileSync(path, 'utf8');
  } catch (err) {
    return `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(body) : parseYaml(body);
  } catch (err) {
    return `${path} is not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`;
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return `${path} must hold a mapping of camelCase keys`;
  return parsed as Record<string, unknown>;
}

export function parseHostPort(value: string): HostPort | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(value.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  if (port > 65535) return undefined;
  const rawHost = match[1]!;
  const host = rawHost.startsWith('[') ? rawHost.slice(1, -1) : rawHost;
  if (rawHost.startsWith('[') && isIP(host) !== 6) return undefined;
  return { host, port };
}

const ARM_ID = /^\/subscriptions\/[0-9a-fA-F-]{36}(\/[A-Za-z0-9._()-]+\/[A-Za-z0-9._()-]+)*$/;

/** An ARM resource ID: `/subscriptions/{guid}` followed by name/value segment pairs, nothing that could rewrite the URL it is spliced into. */
export function isArmResourceId(value: string): boolean {
  return ARM_ID.test(value) && !value.split('/').some((s) => s === '.' || s === '..');
}

function trimSlash(href: string): string {
  return href.replace(/\/+$/, '');
}

function clip(value: string): string {
  const oneLine = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  return oneLine.length > 80 ? `${oneLine.slice(0, 77)}...` : oneLine;
}
