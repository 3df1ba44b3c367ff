import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { callerCredential } from '../../src/azure/credential.js';
import { createTokenProvider, IdentityConfigError, IdentityError, type TokenProviderOptions } from '../../src/azure/token-provider.js';
import { ManualClock } from '../../src/ops/clock.js';
import { Metrics } from '../../src/ops/metrics.js';
import { ArmFixture } from '../fixtures/arm.js';
import { captureLog } from './helpers.js';

const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '6e0b1d2a-3c4f-4a5b-8c6d-7e8f9a0b1c2d';
const SECRET = 'fixture-secret-Q8~abc';

let clock: ManualClock;
let arm: ArmFixture;
let dir: string;
let metrics: Metrics;
let logs: ReturnType<typeof captureLog>;

beforeEach(async () => {
  clock = new ManualClock();
  arm = await ArmFixture.start({ clock });
  dir = mkdtempSync(join(tmpdir(), 'foundry-auth-identity-'));
  metrics = new Metrics({ defaultMetrics: false });
  logs = captureLog();
});

afterEach(async () => {
  await arm.close();
  rmSync(dir, { recursive: true, force: true });
});

function provider(identity: TokenProviderOptions['identity'], env: Record<string, string> = {}, over: Partial<TokenProviderOptions> = {}) {
  return createTokenProvider({
    identity,
    armEndpoint: arm.url,
    msiEndpoint: arm.msiEndpoint,
    timeoutMs: 5_000,
    env,
    clock,
    metrics,
    log: logs.log,
    ...over,
  });
}

function workloadEnv(file: string): Record<string, string> {
  return { AZURE_CLIENT_ID: CLIENT, AZURE_TENANT_ID: TENANT, AZURE_FEDERATED_TOKEN_FILE: file, AZURE_AUTHORITY_HOST: `${arm.url}/` };
}

describe('msi-adapter', () => {
  it('asks the msi-adapter in the IMDS shape and caches the token until shortly before expiry', async () => {
    const tokens = provider('msi-adapter');
    const first = await tokens.getToken();

    const [request] = arm.requestsTo('imds');
    expect(request?.method).toBe('GET');
    expect(request?.target).toBe(`/metadata/identity/oauth2/token?api-version=2018-02-01&resource=${encodeURIComponent(arm.url)}`);
    expect(request?.headers['metadata']).toBe('true');
    expect(first.token).toBe(arm.issuedTokens[0]);
    expect(first.expiresOnMs).toBe(clock.now() + 3_600_000);
    expect(tokens.description).toBe(`msi-adapter (${arm.msiEndpoint})`);

    clock.advance(55 * 60_000 - 1);
    expect((await tokens.getToken()).token).toBe(first.token);
    expect(arm.calls.imds).toBe(1);
    clock.advance(1);
    const second = await tokens.getToken();
    expect(second.token).not.toBe(first.token);
    expect(arm.calls.imds).toBe(2);
  });

  it('refreshes a short-lived token at 80% of its lifetime', async () => {
    arm.tokenLifetimeSeconds = 600;
    const tokens = provider('msi-adapter');
    await tokens.getToken();
    clock.advance(479_000);
    await tokens.getToken();
    expect(arm.calls.imds).toBe(1);
    clock.advance(1_000);
    await tokens.getToken();
    expect(arm.calls.imds).toBe(2);
  });

  it('100 concurrent callers cause one request, also when refreshing', async () => {
    const tokens = provider('msi-adapter');
    const first = await Promise.all(Array.from({ length: 100 }, () => tokens.getToken()));
    expect(new Set(first.map((t) => t.token)).size).toBe(1);
    expect(arm.calls.imds).toBe(1);
    clock.advance(56 * 60_000);
    await Promise.all(Array.from({ length: 100 }, () => tokens.getToken()));
    expect(arm.calls.imds).toBe(2);
    expect(await metrics.registry.metrics()).toContain('foundry_auth_arm_calls_total{operation="token",outcome="ok"} 2');
  });

  it('keeps using a still-valid token when a refresh fails, and retries after 30 s', async () => {
    const tokens = provider('msi-adapter');
    const first = await tokens.getToken();
    clock.advance(56 * 60_000);
    arm.fault('imds', { status: 500 });
    expect((await tokens.getToken()).token).toBe(first.token);
    expect((await tokens.getToken()).token).toBe(first.token);
    expect(arm.calls.imds).toBe(2);
    clock.advance(30_000);
    arm.fault('imds', undefined);
    expect((await tokens.getToken()).token).not.toBe(first.token);
    expect(arm.calls.imds).toBe(3);
  });

  it('fails with the endpoint and the fix when there is no token to fall back on', async () => {
    arm.fault('imds', { status: 500 });
    const err = await provider('msi-adapter')
      .getToken()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as IdentityError).message).toContain(arm.msiEndpoint);
    expect((err as IdentityError).message).toContain('HTTP 500');
    expect((err as IdentityError).fix).toContain('msi-adapter is running');
    expect(await metrics.registry.metrics()).toContain('foundry_auth_arm_calls_total{operation="token",outcome="http_5xx"} 1');
  });

  it('with no token to fall back on, repeats the failure for 5 s instead of asking again', async () => {
    arm.fault('imds', { drop: true });
    const tokens = provider('msi-adapter');
    for (let i = 0; i < 10; i++) await expect(tokens.getToken()).rejects.toBeInstanceOf(IdentityError);
    expect(arm.calls.imds).toBe(1);
    arm.fault('imds', undefined);
    clock.advance(4_999);
    await expect(tokens.getToken()).rejects.toBeInstanceOf(IdentityError);
    clock.advance(1);
    expect((await tokens.getToken()).token).toBe(arm.issuedTokens[0]);
    expect(arm.calls.imds).toBe(2);
  });

  it('invalidate() makes the next call fetch a new token', async () => {
    const tokens = provider('msi-adapter');
    const first = await tokens.getToken();
    tokens.invalidate();
    expect((await tokens.getToken()).token).not.toBe(first.token);
  });
});

describe('--credential managed-identity (setup, grant, doctor)', () => {
  it('asks the IMDS endpoint for the resource, and names the managed identity and its fix when that fails', async () => {
    const credential = callerCredential({
      kind: 'managed-identity',
      msiEndpoint: arm.msiEndpoint,
      env: { AZURE_CLIENT_ID: CLIENT },
      timeoutMs: 5_000,
      clock,
    });
    const tokens = credential.forResource(`${arm.url}/`);
    const description = `managed identity (client ${CLIENT}) via ${arm.msiEndpoint}`;
    expect(credential.description).toBe(description);
    expect(tokens.description).toBe(description);
    expect((await tokens.getToken()).token).toBe(arm.issuedTokens[0]);
    expect(arm.requestsTo('imds')[0]?.target).toBe(
      `/metadata/identity/oauth2/token?client_id=${CLIENT}&api-version=2018-02-01&resource=${encodeURIComponent(arm.url)}`,
    );

    arm.fault('imds', { status: 500 });
    const failing = callerCredential({ kind: 'managed-identity', msiEndpoint: arm.msiEndpoint, env: {}, timeoutMs: 5_000, clock }).forResource(
      arm.url,
    );
    const err = await failing.getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as IdentityError).message).toMatch(new RegExp(`^managed identity via ${arm.msiEndpoint.replace(/[.?]/g, '\\$&')}: HTTP 500`));
    expect((err as IdentityError).fix).toContain('run where a managed identity is available');
    expect((err as IdentityError).outcome).toBe('http_5xx');
  });
});

describe('--credential environment (setup, grant, doctor)', () => {
  it('refuses an AZURE_AUTHORITY_HOST that would send the client secret over plain HTTP off the machine, as the sidecar does', () => {
    const env = { AZURE_CLIENT_ID: CLIENT, AZURE_TENANT_ID: TENANT, AZURE_CLIENT_SECRET: SECRET };
    expect(() =>
      callerCredential({ kind: 'environment', env: { ...env, AZURE_AUTHORITY_HOST: 'http://login.example.com' }, timeoutMs: 5_000, clock }),
    ).toThrow(IdentityConfigError);
    expect(() =>
      callerCredential({ kind: 'environment', env: { ...env, AZURE_AUTHORITY_HOST: 'http://login.example.com' }, timeoutMs: 5_000, clock }),
    ).toThrow(/AZURE_AUTHORITY_HOST must be https/);
    expect(callerCredential({ kind: 'environment', env: { ...env, AZURE_AUTHORITY_HOST: `${arm.url}/` }, timeoutMs: 5_000, clock }).description).toBe(
      `the app ${CLIENT} from AZURE_* environment variables`,
    );
  });

  it('gets its token from the authority in AZURE_AUTHORITY_HOST', async () => {
    arm.clients.set(CLIENT, { secret: SECRET });
    const credential = callerCredential({
      kind: 'environment',
      env: { AZURE_CLIENT_ID: CLIENT, AZURE_TENANT_ID: TENANT, AZURE_CLIENT_SECRET: SECRET, AZURE_AUTHORITY_HOST: `${arm.url}/` },
      timeoutMs: 5_000,
      clock,
    });
    expect((await credential.forResource(arm.url).getToken()).token).toBe(arm.issuedTokens[0]);
    expect(arm.requestsTo('token')[0]?.target).toBe(`/${TENANT}/oauth2/v2.0/token`);
    expect(arm.requestsTo('token')[0]?.form).toEqual({
      grant_type: 'client_credentials',
      client_id: CLIENT,
      scope: `${arm.url}/.default`,
      client_secret: SECRET,
    });
  });
});

describe('workload identity', () => {
  it('posts the client assertion from AZURE_FEDERATED_TOKEN_FILE, re-read at each refresh', async () => {
    const file = join(dir, 'azure-identity-token');
    writeFileSync(file, 'assertion-one\n');
    arm.clients.set(CLIENT, { federated: true });
    const tokens = provider('workload-identity', workloadEnv(file));

    const first = await tokens.getToken();
    const [request] = arm.requestsTo('token');
    expect(request?.target).toBe(`/${TENANT}/oauth2/v2.0/token`);
    expect(request?.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(request?.form).toEqual({
      grant_type: 'client_credentials',
      client_id: CLIENT,
      scope: `${arm.url}/.default`,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: 'assertion-one',
    });
    expect(first.expiresOnMs).toBe(clock.now() + 3_600_000);
    expect(tokens.description).toBe(`workload identity (client ${CLIENT}, tenant ${TENANT})`);

    writeFileSync(file, 'assertion-two\n');
    tokens.invalidate();
    await tokens.getToken();
    expect(arm.requestsTo('token')[1]?.form?.['client_assertion']).toBe('assertion-two');

    writeFileSync(file, 'assertion-three');
    clock.advance(56 * 60_000);
    await tokens.getToken();
    expect(arm.requestsTo('token')[2]?.form?.['client_assertion']).toBe('assertion-three');
    expect(logs.text()).not.toContain('assertion-');
    for (const token of arm.issuedTokens) expect(logs.text()).not.toContain(token);
  });

  it('surfaces the AADSTS code when Entra refuses the assertion', async () => {
    const file = join(dir, 'token');
    writeFileSync(file, 'stale-assertion');
    arm.clients.set(CLIENT, { federated: true, assertion: 'the-right-one' });
    const err = await provider('workload-identity', workloadEnv(file))
      .getToken()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as Error).message).toContain('AADSTS70021');
    expect((err as Error).message).not.toContain('stale-assertion');
    expect((err as IdentityError).fix).toContain('federated credential');
  });

  it('names a token file that cannot be read', async () => {
    arm.clients.set(CLIENT, { federated: true });
    const err = await provider('workload-identity', workloadEnv(join(dir, 'missing')))
      .getToken()
      .catch((e: unknown) => e);
    expect((err as Error).message).toContain('cannot read AZURE_FEDERATED_TOKEN_FILE');
    expect((err as Error).message).toContain('ENOENT');
    expect(arm.calls.token).toBe(0);
  });
});

describe('client secret', () => {
  it('posts the client secret and surfaces AADSTS errors without the secret', async () => {
    arm.clients.set(CLIENT, { secret: SECRET });
    const env = { AZURE_CLIENT_ID: CLIENT, AZURE_CLIENT_SECRET: SECRET, AZURE_TENANT_ID: TENANT, AZURE_AUTHORITY_HOST: arm.url };
    const tokens = provider('client-secret', env);
    await tokens.getToken();
    expect(arm.requestsTo('token')[0]?.form).toEqual({
      grant_type: 'client_credentials',
      client_id: CLIENT,
      scope: `${arm.url}/.default`,
      client_secret: SECRET,
    });
    expect(tokens.description).toBe(`client secret (client ${CLIENT}, tenant ${TENANT})`);

    clock.advance(56 * 60_000);
    await tokens.getToken();
    expect(arm.calls.token).toBe(2);

    const wrong = provider('client-secret', { ...env, AZURE_CLIENT_SECRET: 'wrong-secret-value' });
    const err = await wrong.getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as Error).message).toContain('HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided.');
    expect((err as Error).message).not.toContain('wrong-secret-value');
    expect(logs.text()).not.toContain(SECRET);
    expect(logs.text()).not.toContain('wrong-secret-value');
  });
});

describe('azure-cli', () => {
  function fakeAz(body: string): string {
    const path = join(dir, 'az');
    writeFileSync(
      path,
      `#!/usr/bin/env node
const fs = require('node:fs');
const dir = ${JSON.stringify(dir)};
const countFile = dir + '/count';
const n = fs.existsSync(countFile) ? Number(fs.readFileSync(countFile, 'utf8')) + 1 : 1;
fs.writeFileSync(countFile, String(n));
fs.writeFileSync(dir + '/argv-' + n, JSON.stringify(process.argv.slice(2)));
${body}
`,
    );
    chmodSync(path, 0o755);
    return path;
  }

  it('runs az account get-access-token for the ARM endpoint and parses expires_on', async () => {
    const expiresOn = Math.floor(clock.now() / 1000) + 3600;
    const az = fakeAz(
      `process.stdout.write(JSON.stringify({ accessToken: 'cli-token-' + n, expiresOn: '2026-01-01 01:00:00.000000', expires_on: ${expiresOn}, subscription: 'x', tenant: '${TENANT}', tokenType: 'Bearer' }));`,
    );
    const tokens = provider('azure-cli', { PATH: process.env['PATH'] ?? '' }, { azPath: az });

    const first = await tokens.getToken();
    expect(first).toEqual({ token: 'cli-token-1', expiresOnMs: expiresOn * 1000 });
    expect(JSON.parse(readFileSync(join(dir, 'argv-1'), 'utf8'))).toEqual(['account', 'get-access-token', '--resource', arm.url, '-o', 'json']);
    expect(tokens.description).toBe('Azure CLI (az account get-access-token)');

    await Promise.all(Array.from({ length: 20 }, () => tokens.getToken()));
    expect(readFileSync(join(dir, 'count'), 'utf8')).toBe('1');
    clock.advance(56 * 60_000);
    expect((await tokens.getToken()).token).toBe('cli-token-2');
  });

  it('takes the binary from FOUNDRY_AUTH_AZ_PATH and understands the older expiresOn (local time)', async () => {
    const az = fakeAz(`process.stdout.write(JSON.stringify({ accessToken: 'cli-token', expiresOn: '2026-01-01 02:00:00.000000' }));`);
    const tokens = provider('azure-cli', { PATH: process.env['PATH'] ?? '', FOUNDRY_AUTH_AZ_PATH: az });
    expect(await tokens.getToken()).toEqual({ token: 'cli-token', expiresOnMs: new Date(2026, 0, 1, 2, 0, 0).getTime() });
  });

  it('reports what az said when it fails, and a missing binary', async () => {
    const az = fakeAz(`process.stderr.write("ERROR: Please run 'az login' to setup account.\\n"); process.exit(1);`);
    const err = await provider('azure-cli', { PATH: process.env['PATH'] ?? '' }, { azPath: az })
      .getToken()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityError);
    expect((err as Error).message).toContain("Please run 'az login'");
    expect((err as IdentityError).fix).toContain('az login');

    const missing = await provider('azure-cli', {}, { azPath: join(dir, 'no-such-az') })
      .getToken()
      .catch((e: unknown) => e);
    expect((missing as Error).message).toContain('was not found');
  });
});

describe('choosing the source', () => {
  it('auto picks workload identity when its token file is configured, else the msi-adapter', () => {
    expect(provider('auto', workloadEnv(join(dir, 'token'))).description).toContain('workload identity');
    expect(provider('auto', {}).description).toBe(`msi-adapter (${arm.msiEndpoint})`);
  });

  it('missing environment is a start-up error naming the variables', () => {
    expect(() => provider('workload-identity', { AZURE_CLIENT_ID: CLIENT })).toThrow(IdentityConfigError);
    expect(() => provider('workload-identity', { AZURE_CLIENT_ID: CLIENT })).toThrow(/AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE/);
    expect(() => provider('client-secret', {})).toThrow(/AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID/);
    expect(() => provider('auto', { AZURE_FEDERATED_TOKEN_FILE: '/var/run/token' })).toThrow(/AZURE_CLIENT_ID, AZURE_TENANT_ID/);
  });

  it('refuses an authority host that would send credentials over plain HTTP off the machine', () => {
    expect(() =>
      provider('client-secret', {
        AZURE_CLIENT_ID: CLIENT,
        AZURE_CLIENT_SECRET: SECRET,
        AZURE_TENANT_ID: TENANT,
        AZURE_AUTHORITY_HOST: 'http://login.example.com',
      }),
    ).toThrow(/AZURE_AUTHORITY_HOST must be https/);
  });
});
