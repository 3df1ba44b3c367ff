import { describe, expect, it } from 'vitest';
import { loadServeConfig, parseTrustedProxy } from '../../src/config/load.js';
import { TrustedProxies } from '../../src/forward-auth/trusted-proxies.js';
import { runCli } from '../e2e/harness.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '11111111-2222-3333-4444-555555555555';
const BASE = {
  mode: 'forward-auth',
  'forward-auth-profile': 'nginx',
  'trusted-proxies': '10.0.0.0/8',
  'tenant-id': TENANT,
  'client-id': CLIENT,
  rbac: 'static',
  'role-assignments-file': '/dev/null',
};

function errorsOf(flags: Record<string, string>, env: Record<string, string> = {}): string {
  const result = loadServeConfig({ flags, env });
  if (result.ok) throw new Error('expected configuration errors');
  return result.errors.join('\n');
}

describe('forward-auth configuration', () => {
  it('reads the mode, profile, trusted proxies and prefix from flags or FOUNDRY_AUTH_* variables', () => {
    const result = loadServeConfig({
      flags: {},
      env: {
        FOUNDRY_AUTH_MODE: 'forward-auth',
        FOUNDRY_AUTH_FORWARD_AUTH_PROFILE: 'envoy',
        FOUNDRY_AUTH_TRUSTED_PROXIES: '10.1.2.3, 10.0.0.0/8,fd00::/8 ,::1',
        FOUNDRY_AUTH_FORWARD_AUTH_PATH_PREFIX: '/authz',
        FOUNDRY_AUTH_TENANT_ID: TENANT,
        FOUNDRY_AUTH_CLIENT_ID: CLIENT,
        FOUNDRY_AUTH_RBAC: 'static',
        FOUNDRY_AUTH_ROLE_ASSIGNMENTS_FILE: '/dev/null',
      },
    });
    expect(result.ok).toBe(true);
    if (!result.ok || result.config.mode !== 'forward-auth') throw new Error('expected forward-auth');
    expect(result.config.forwardAuth).toEqual({
      profile: 'envoy',
      pathPrefix: '/authz',
      trustedProxies: [
        { family: 'ipv4', address: '10.1.2.3', prefix: 32 },
        { family: 'ipv4', address: '10.0.0.0', prefix: 8 },
        { family: 'ipv6', address: 'fd00::', prefix: 8 },
        { family: 'ipv6', address: '::1', prefix: 128 },
      ],
    });
  });

  it('is proxy mode by default', () => {
    const result = loadServeConfig({
      flags: { upstream: 'http://127.0.0.1:5000', 'tenant-id': TENANT, 'client-id': CLIENT, rbac: 'static', 'role-assignments-file': '/dev/null' },
      env: {},
    });
    expect(result.ok && result.config.mode).toBe('proxy');
  });

  it.each([
    [
      '--trusted-proxies missing',
      { 'trusted-proxies': '' },
      /--trusted-proxies \/ FOUNDRY_AUTH_TRUSTED_PROXIES: is required with --mode forward-auth/,
    ],
    ['--forward-auth-profile missing', { 'forward-auth-profile': '' }, /--forward-auth-profile \/ FOUNDRY_AUTH_FORWARD_AUTH_PROFILE: is required/],
    ['an unknown profile', { 'forward-auth-profile': 'haproxy' }, /--forward-auth-profile .*must be one of envoy, nginx, forwarded/],
    ['--upstream', { upstream: 'http://127.0.0.1:5000' }, /--upstream \/ FOUNDRY_AUTH_UPSTREAM: forward-auth mode does not forward/],
    ['--control-upstream', { 'control-upstream': 'http://127.0.0.1:5000' }, /--control-upstream .*forward-auth mode does not forward/],
    ['a prefix outside the envoy profile', { 'forward-auth-path-prefix': '/authz' }, /--forward-auth-path-prefix .*envoy only/],
    [
      'a prefix with a trailing slash',
      { 'forward-auth-profile': 'envoy', 'forward-auth-path-prefix': '/authz/' },
      /--forward-auth-path-prefix .*canonical path/,
    ],
    ['a bad address', { 'trusted-proxies': '10.0.0.0/8,proxy.example' }, /--trusted-proxies .*bad: "proxy.example"/],
  ])('refuses %s', (_what, override, message) => {
    // An empty value stands for "not given".
    const flags = Object.fromEntries(Object.entries({ ...BASE, ...override }).filter(([, v]) => v !== ''));
    expect(errorsOf(flags)).toMatch(message);
  });

  it.each([
    ['trusted-proxies', '10.0.0.1'],
    ['forward-auth-socket', '/run/fa.sock'],
  ])('refuses --%s (a forward-auth setting) in proxy mode', (flag, value) => {
    expect(
      errorsOf({
        upstream: 'http://127.0.0.1:5000',
        'tenant-id': TENANT,
        'client-id': CLIENT,
        rbac: 'static',
        'role-assignments-file': '/dev/null',
        [flag]: value,
      }),
    ).toMatch(new RegExp(`--${flag} .*applies to --mode forward-auth only`));
  });

  it('--forward-auth-socket with unix alone in --trusted-proxies: the checks come over the socket; no TCP peer is trusted', () => {
    const result = loadServeConfig({
      flags: {},
      env: {
        FOUNDRY_AUTH_MODE: 'forward-auth',
        FOUNDRY_AUTH_FORWARD_AUTH_PROFILE: 'nginx',
        FOUNDRY_AUTH_TRUSTED_PROXIES: 'unix',
        FOUNDRY_AUTH_FORWARD_AUTH_SOCKET: '/run/foundry-auth/check.sock',
        FOUNDRY_AUTH_TENANT_ID: TENANT,
        FOUNDRY_AUTH_CLIENT_ID: CLIENT,
        FOUNDRY_AUTH_RBAC: 'static',
        FOUNDRY_AUTH_ROLE_ASSIGNMENTS_FILE: '/dev/null',
      },
    });
    if (!result.ok || result.config.mode !== 'forward-auth') throw new Error('expected forward-auth');
    expect(result.config.forwardAuth).toEqual({ profile: 'nginx', trustedProxies: [], pathPrefix: '', socket: '/run/foundry-auth/check.sock' });
  });

  it.each([
    [{ 'forward-auth-socket': '/run/fa.sock' }, /--forward-auth-socket .*add unix to --trusted-proxies/],
    [{ 'trusted-proxies': 'unix' }, /--trusted-proxies .*unix trusts the peers of --forward-auth-socket, which is not set/],
    [{ 'trusted-proxies': 'unix,10.0.0.1', 'forward-auth-socket': '/run/fa.sock' }, /--trusted-proxies .*give unix alone, no addresses/],
    [{ 'trusted-proxies': 'UNIX', 'forward-auth-socket': '/run/fa.sock' }, /--trusted-proxies .*bad: "UNIX"/],
  ])('refuses %j', (flags, message) => {
    expect(errorsOf({ ...BASE, ...flags })).toMatch(message);
  });

  it.each([
    ['10.0.0.1', { family: 'ipv4', address: '10.0.0.1', prefix: 32 }],
    ['10.0.0.0/8', { family: 'ipv4', address: '10.0.0.0', prefix: 8 }],
    ['0.0.0.0/0', { family: 'ipv4', address: '0.0.0.0', prefix: 0 }],
    ['::1', { family: 'ipv6', address: '::1', prefix: 128 }],
    ['fd00::/8', { family: 'ipv6', address: 'fd00::', prefix: 8 }],
    ['2001:db8::1/128', { family: 'ipv6', address: '2001:db8::1', prefix: 128 }],
  ])('parses %s', (entry, expected) => {
    expect(parseTrustedProxy(entry)).toEqual(expected);
  });

  it.each([
    '10.0.0.0/33',
    '::1/129',
    '10.0.0.0/',
    '10.0.0.0/8/8',
    '10.0.0.0/-1',
    '10.0.0',
    '256.0.0.1',
    'fe80::1%eth0',
    'localhost',
    '10.0.0.1 ',
    '/8',
  ])('refuses %j', (entry) => {
    expect(parseTrustedProxy(entry)).toBeUndefined();
  });

  it('matches peers by address and CIDR, IPv4-mapped IPv6 peers by their IPv4 rule', () => {
    const trusted = new TrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8'].map((e) => parseTrustedProxy(e)!));
    expect(trusted.trustsAddress('10.200.3.4')).toBe(true);
    expect(trusted.trustsAddress('::ffff:10.200.3.4')).toBe(true);
    expect(trusted.trustsAddress('192.168.1.7')).toBe(true);
    expect(trusted.trustsAddress('192.168.1.8')).toBe(false);
    expect(trusted.trustsAddress('fd12:3456::1')).toBe(true);
    expect(trusted.trustsAddress('fe80::1')).toBe(false);
    expect(trusted.trustsAddress('11.0.0.1')).toBe(false);
    expect(trusted.trustsAddress(undefined)).toBe(false);
  });

  it('serve exits 2 naming the flag for a bad or missing --trusted-proxies, and for --upstream', async () => {
    const base = [
      'serve',
      '--mode',
      'forward-auth',
      '--forward-auth-profile',
      'nginx',
      '--tenant-id',
      TENANT,
      '--client-id',
      CLIENT,
      '--rbac',
      'static',
      '--role-assignments-file',
      '/dev/null',
    ];
    const bad = await runCli([...base, '--trusted-proxies', '10.0.0.0/40']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--trusted-proxies \/ FOUNDRY_AUTH_TRUSTED_PROXIES: .*"10.0.0.0\/40"/);
    const missing = await runCli(base);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--trusted-proxies \/ FOUNDRY_AUTH_TRUSTED_PROXIES: is required/);
    const upstream = await runCli([...base, '--trusted-proxies', '127.0.0.1', '--upstream', 'http://127.0.0.1:5000']);
    expect(upstream.code).toBe(2);
    expect(upstream.stderr).toContain('forward-auth mode does not forward');
  });
});
