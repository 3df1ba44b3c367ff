import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadServeConfig, parseHostPort } from '../../src/config/load.js';
import { parseDuration } from '../../src/config/duration.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const SCOPE = '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/c1';
const BASE = { upstream: 'http://127.0.0.1:5000', 'tenant-id': TENANT, 'client-id': CLIENT, 'rbac-scope': SCOPE };

function load(flags: Record<string, string | boolean>, env: Record<string, string> = {}) {
  return loadServeConfig({ flags, env });
}

function errorsOf(flags: Record<string, string | boolean>, env: Record<string, string> = {}): readonly string[] {
  const result = load(flags, env);
  if (result.ok) throw new Error('expected configuration errors');
  return result.errors;
}

describe('serve configuration', () => {
  it('applies the SPEC defaults', () => {
    const result = load(BASE);
    expect(result.ok).toBe(true);
    if (!result.ok || result.config.mode !== 'proxy') throw new Error('expected a proxy-mode configuration');
    const c = result.config;
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.adminListen).toEqual({ host: '127.0.0.1', port: 9090 });
    expect(c.controlUpstream.href).toBe(c.upstream.href);
    expect(c.entra).toMatchObject({
      allowedTenants: [TENANT],
      authority: 'https://login.microsoftonline.com',
      audiences: [CLIENT, `api://${CLIENT}`],
      requiredScope: 'foundry_access',
      requiredAppRole: 'FoundryInferenceAccess',
      clockSkewSeconds: 300,
    });
    expect(c.rbac).toMatchObject({
      mode: 'arm',
      armEndpoint: 'https://management.azure.com',
      identity: 'auto',
      msiEndpoint: 'http://127.0.0.1:8421/metadata/identity/oauth2/token',
      allowTtlMs: 300_000,
      denyTtlMs: 30_000,
      staleIfErrorMs: 0,
      timeoutMs: 10_000,
    });
    expect(c.publicPaths).toEqual(['/healthz', '/readyz']);
    expect(c.forwardAuthorization).toBe(false);
    expect(c.upstreamHeadersTimeoutMs).toBe(600_000);
    expect(c.upstreamBodyTimeoutMs).toBe(300_000);
    expect(c.shutdownGraceMs).toBe(30_000);
    expect(c.logLevel).toBe('info');
    expect(c.logFormat).toBe('json');
  });

  it('takes flag over env over file over default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fa-config-'));
    const file = join(dir, 'serve.yaml');
    writeFileSync(file, `listen: 127.0.0.1:7001\nadminListen: 127.0.0.1:7002\nrequiredScope: from_file\nrbacAllowTtl: 1m\n`);
    const result = load(
      { ...BASE, config: file, listen: '127.0.0.1:7000' },
      { FOUNDRY_AUTH_LISTEN: '127.0.0.1:7100', FOUNDRY_AUTH_ADMIN_LISTEN: '127.0.0.1:7200' },
    );
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.config.listen.port).toBe(7000);
    expect(result.config.adminListen.port).toBe(7200);
    expect(result.config.entra?.requiredScope).toBe('from_file');
    expect(result.config.rbac.allowTtlMs).toBe(60_000);
  });

  it('reads JSON config files and rejects unknown keys', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fa-config-'));
    const file = join(dir, 'serve.json');
    writeFileSync(file, JSON.stringify({ upstream: 'http://127.0.0.1:5000', tenantId: TENANT, clientId: CLIENT, rbacScope: SCOPE, tenant: 'x' }));
    const errors = errorsOf({ config: file });
    expect(errors).toEqual([`--config / FOUNDRY_AUTH_CONFIG: unknown key "tenant" in ${file}`]);
  });

  it('accepts durations in seconds or with units', () => {
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('5 minutes')).toBeUndefined();
    expect(parseDuration('-1s')).toBeUndefined();
    const errors = errorsOf({ ...BASE, 'clock-skew': 'soon' });
    expect(errors[0]).toMatch(/^--clock-skew \/ FOUNDRY_AUTH_CLOCK_SKEW: must be a duration/);
  });

  it('keeps an idle connection 65 minutes by default; --keep-alive-timeout takes 1s to 24h', () => {
    const keepAlive = (value?: string): number | undefined => {
      const result = load(value === undefined ? BASE : { ...BASE, 'keep-alive-timeout': value });
      return result.ok ? result.config.keepAliveTimeoutMs : undefined;
    };
    // Longer than Envoy's (1 h), the longest any proxy or load balancer in front keeps an idle upstream connection by default.
    expect(keepAlive()).toBe(65 * 60_000);
    expect(keepAlive('1s')).toBe(1_000);
    expect(keepAlive('24h')).toBe(24 * 3_600_000);
    // 0 would be "never close an idle connection" to Node, and past 2^31-1 ms its timer would fire at once.
    for (const [value, shown] of [
      ['0', '0s'],
      ['999ms', '999ms'],
      ['25h', '25h'],
      ['30d', ''],
    ] as const) {
      const errors = errorsOf({ ...BASE, 'keep-alive-timeout': value });
      expect(errors[0]).toMatch(/^--keep-alive-timeout \/ FOUNDRY_AUTH_KEEP_ALIVE_TIMEOUT: must be /);
      if (shown !== '')
        expect(errors[0]).toContain(
          `must be between 1s and 24h, and longer than the proxy or load balancer in front keeps its idle connections (got ${shown})`,
        );
    }
  });

  it('accepts body sizes in bytes or with a binary unit; 16 MiB by default', () => {
    const size = (value?: string): number | undefined => {
      const result = load(value === undefined ? BASE : { ...BASE, 'max-body-bytes': value });
      return result.ok ? result.config.maxBodyBytes : undefined;
    };
    expect(size()).toBe(16 * 1024 * 1024);
    expect(size('1024')).toBe(1024);
    expect(size('512KiB')).toBe(524_288);
    expect(size('1GiB')).toBe(1024 ** 3);
    for (const bad of ['0', '16MB', '-1', '1.5MiB', 'lots']) expect(size(bad), bad).toBeUndefined();
    expect(errorsOf({ ...BASE, 'max-body-bytes': '16MB' })[0]).toMatch(
      /^--max-body-bytes \/ FOUNDRY_AUTH_MAX_BODY_BYTES: must be a positive number of bytes/,
    );
  });

  it('refuses --policy-file in forward-auth mode (no body, no response to read)', () => {
    const { upstream: _, ...rest } = BASE;
    const errors = errorsOf({
      ...rest,
      mode: 'forward-auth',
      'forward-auth-profile': 'nginx',
      'trusted-proxies': '127.0.0.1',
      'policy-file': '/etc/p.yaml',
    });
    expect(errors).toEqual([expect.stringMatching(/^--policy-file \/ FOUNDRY_AUTH_POLICY_FILE: needs foundry-auth as the proxy/)]);
  });

  it('names the flag and env variable for a missing upstream', () => {
    const { upstream: _, ...rest } = BASE;
    const errors = errorsOf(rest);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^--upstream \/ FOUNDRY_AUTH_UPSTREAM: is required/);
  });

  it('rejects a tenant ID that is not a GUID', () => {
    const errors = errorsOf({ ...BASE, 'tenant-id': 'contoso.onmicrosoft.com' });
    expect(errors).toEqual([
      '--tenant-id / FOUNDRY_AUTH_TENANT_ID: must be a GUID such as 00000000-0000-0000-0000-000000000000 (got "contoso.onmicrosoft.com")',
    ]);
  });

  it('accepts GUIDs that are not RFC 9562 UUIDs and lower-cases them', () => {
    const result = load({ ...BASE, 'client-id': '11111111-1111-1111-1111-11111111111A' });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.config.entra?.clientId).toBe('11111111-1111-1111-1111-11111111111a');
  });

  it('allows http:// authorities only on loopback hosts', () => {
    const errors = errorsOf({ ...BASE, authority: 'http://login.example.com' });
    expect(errors[0]).toMatch(/^--authority \/ FOUNDRY_AUTH_AUTHORITY: http:\/\/ is allowed only for loopback hosts/);
    expect(load({ ...BASE, authority: 'http://127.0.0.1:8400/' }).ok).toBe(true);
    expect(load({ ...BASE, authority: 'http://localhost:8400' }).ok).toBe(true);
    expect(load({ ...BASE, authority: 'http://[::1]:8400' }).ok).toBe(true);
  });

  it('reports every problem at once, one line each', () => {
    const errors = errorsOf({ upstream: 'ftp://x', 'tenant-id': 'nope', 'client-id': CLIENT, rbac: 'ldap', 'rbac-timeout': 'x' });
    expect(errors.map((e) => e.split(':')[0])).toEqual(
      expect.arrayContaining([
        '--upstream / FOUNDRY_AUTH_UPSTREAM',
        '--tenant-id / FOUNDRY_AUTH_TENANT_ID',
        '--rbac / FOUNDRY_AUTH_RBAC',
        '--rbac-timeout / FOUNDRY_AUTH_RBAC_TIMEOUT',
      ]),
    );
  });

  it('requires Entra ID or API keys', () => {
    const errors = errorsOf({ upstream: 'http://127.0.0.1:5000' });
    expect(errors[0]).toMatch(/at least one of Entra ID \(tenant \+ client ID\) or API keys must be configured/);
    expect(load({ upstream: 'http://127.0.0.1:5000', 'api-keys-file': '/tmp/keys' }).ok).toBe(true);
  });

  it('requires both tenant and client ID for Entra ID', () => {
    const errors = errorsOf({ upstream: 'http://127.0.0.1:5000', 'tenant-id': TENANT });
    expect(errors[0]).toMatch(/^--client-id \/ FOUNDRY_AUTH_CLIENT_ID: Entra ID needs both/);
  });

  it('requires --rbac-scope for arm and --role-assignments-file for static', () => {
    const { 'rbac-scope': _, ...noScope } = BASE;
    expect(errorsOf(noScope)[0]).toMatch(/^--rbac-scope \/ FOUNDRY_AUTH_RBAC_SCOPE: is required with --rbac arm/);
    expect(errorsOf({ ...BASE, rbac: 'static' })[0]).toMatch(/^--role-assignments-file \/ FOUNDRY_AUTH_ROLE_ASSIGNMENTS_FILE: is required/);
    expect(errorsOf({ ...BASE, 'rbac-scope': '/subscriptions/x/../y' })[0]).toMatch(/^--rbac-scope .* must be an ARM resource ID/);
  });

  it('parses the allowed-tenants list and booleans from env', () => {
    const other = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
    const result = load(BASE, { FOUNDRY_AUTH_ALLOWED_TENANTS: `${TENANT}, ${other.toUpperCase()}`, FOUNDRY_AUTH_FORWARD_AUTHORIZATION: 'true' });
    if (!result.ok) throw new Error(result.errors.join('\n'));
    expect(result.config.entra?.allowedTenants).toEqual([TENANT, other]);
    expect(result.config.forwardAuthorization).toBe(true);
    expect(errorsOf(BASE, { FOUNDRY_AUTH_FORWARD_AUTHORIZATION: 'maybe' })[0]).toMatch(/must be true or false/);
  });

  it('parses host:port forms', () => {
    expect(parseHostPort('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(parseHostPort('[::1]:9090')).toEqual({ host: '::1', port: 9090 });
    expect(parseHostPort('localhost:1')).toEqual({ host: 'localhost', port: 1 });
    expect(parseHostPort('8080')).toBeUndefined();
    expect(parseHostPort('host:70000')).toBeUndefined();
    expect(parseHostPort('[nothex]:80')).toBeUndefined();
  });
});
