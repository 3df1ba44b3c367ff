import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, ADMIN_UPN, AZURE_CLI, call, claimsOf, startTestEmulator, TENANT, type TestEmulator } from './helpers.js';

/**
 * What MSAL and the Azure CLI ask of Entra ID and ARM beyond the token endpoint, with the shapes
 * they parse: instance discovery and user realm (also through the loopback HTTPS proxy, with a
 * certificate for login.microsoftonline.com from the emulator's CA), the device-code flow approved
 * through the admin API, ARM's /tenants and the unauthenticated /metadata/endpoints, and the admin
 * API's test tokens (v1, expired).
 */

let emu: TestEmulator;

beforeAll(async () => {
  emu = await startTestEmulator();
});

afterAll(async () => {
  await emu.close();
});

const port = (url: string): string => new URL(url).port;

describe('instance discovery and user realm', () => {
  it('a loopback authorize endpoint (port dropped, as MSAL sends it) discovers the emulator on its HTTPS port', async () => {
    const r = await call(
      `${emu.http}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent(`https://localhost/${TENANT}/oauth2/v2.0/authorize`)}`,
    );
    expect(r.status).toBe(200);
    expect(r.json['tenant_discovery_endpoint']).toBe(
      `https://localhost:${port(emu.running.endpoints.https)}/${TENANT}/v2.0/.well-known/openid-configuration`,
    );
    expect((r.json['metadata'] as { aliases: string[] }[])[0]?.aliases).toContain('login.microsoftonline.com');
  });

  it('an unknown host is invalid_instance, as Entra answers', async () => {
    const r = await call(
      `${emu.http}/common/discovery/instance?api-version=1.1&authorization_endpoint=${encodeURIComponent('https://login.example.com/common/oauth2/authorize')}`,
    );
    expect(r.status).toBe(400);
    expect(r.json['error']).toBe('invalid_instance');
  });

  it('user realm: a tenant user is Managed, an unknown domain Unknown', async () => {
    expect((await call(`${emu.http}/common/userrealm/alice@emulator.onmicrosoft.com?api-version=1.0`)).json).toMatchObject({
      account_type: 'Managed',
      domain_name: 'emulator.onmicrosoft.com',
    });
    expect((await call(`${emu.http}/common/userrealm/x@contoso.com?api-version=1.0`)).json).toMatchObject({ account_type: 'Unknown' });
  });
});

/** Sends one request through the proxy with CONNECT, then TLS to `servername`; the HTTP response text. */
function throughProxy(target: string, servername: string, path: string): Promise<{ connect: string; response: string }> {
  return new Promise((resolve, reject) => {
    const raw = tcpConnect(Number(port(emu.http)), '127.0.0.1', () => raw.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
    raw.once('error', reject);
    raw.once('data', (chunk: Buffer) => {
      const connect = chunk.toString('latin1');
      if (!connect.startsWith('HTTP/1.1 200')) return resolve({ connect, response: '' });
      const tls = tlsConnect({ socket: raw, servername, ca: emu.running.caCertPem }, () =>
        tls.end(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`),
      );
      let response = '';
      tls.setEncoding('utf8').on('data', (c: string) => (response += c));
      tls.once('error', reject);
      tls.once('close', () => resolve({ connect, response }));
    });
  });
}

describe('the loopback HTTPS proxy', () => {
  it('answers CONNECT login.microsoftonline.com:443 itself, with a certificate from the emulator CA', async () => {
    const { connect, response } = await throughProxy(
      'login.microsoftonline.com:443',
      'login.microsoftonline.com',
      `/common/discovery/instance?api-version=1.1&authorization_endpoint=https://localhost/${TENANT}/oauth2/v2.0/authorize`,
    );
    expect(connect).toMatch(/^HTTP\/1\.1 200/);
    expect(response).toMatch(/^HTTP\/1\.1 200/);
    expect(response).toContain('tenant_discovery_endpoint');
  });

  it('answers localhost:443 (the user realm with the port dropped) itself too', async () => {
    const { response } = await throughProxy('localhost:443', 'localhost', '/common/userrealm/admin@emulator.onmicrosoft.com?api-version=1.0');
    expect(response).toContain('"account_type":"Managed"');
  });

  it('refuses a host that is neither loopback nor Entra', async () => {
    const { connect } = await throughProxy('example.com:443', 'example.com', '/');
    expect(connect).toMatch(/^HTTP\/1\.1 403/);
  });
});

describe('the device-code flow', () => {
  it('pending until approved through the admin API, then a token for the approved user; single use', async () => {
    const start = await call(`${emu.http}/${TENANT}/oauth2/v2.0/devicecode`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: AZURE_CLI,
        scope: 'https://management.core.windows.net//.default offline_access openid profile',
      }).toString(),
    });
    expect(start.status).toBe(200);
    expect(start.json).toMatchObject({ verification_uri: 'https://microsoft.com/devicelogin', expires_in: 900, interval: 5 });
    const userCode = String(start.json['user_code']);
    expect(String(start.json['message'])).toContain(`enter the code ${userCode} to authenticate`);
    const poll = { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: AZURE_CLI, device_code: String(start.json['device_code']) };
    const pending = await emu.token(poll);
    expect(pending.status).toBe(400);
    expect(pending.json['error']).toBe('authorization_pending');
    expect((await emu.admin('GET', '/device-codes')).json['value']).toEqual([expect.objectContaining({ userCode, clientId: AZURE_CLI })]);
    expect((await emu.admin('POST', '/device-codes', { userCode, user: ADMIN_UPN })).json).toEqual({ userCode, state: 'approved' });
    const issued = await emu.token(poll);
    expect(issued.status).toBe(200);
    expect(claimsOf(String(issued.json['access_token']))).toMatchObject({ upn: ADMIN_UPN, aud: 'https://management.core.windows.net/' });
    expect(issued.json['refresh_token']).toBeDefined();
    expect((await emu.token(poll)).json['error']).toBe('bad_verification_code');
  });

  it('a declined code ends the flow with authorization_declined', async () => {
    const start = await call(`${emu.http}/${TENANT}/oauth2/v2.0/devicecode`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `client_id=${AZURE_CLI}&scope=openid`,
    });
    await emu.admin('POST', '/device-codes', { userCode: String(start.json['user_code']), decline: true });
    const r = await emu.token({
      grant_type: 'urn:ietf:params:oauth:grant-type:device_code',
      client_id: AZURE_CLI,
      device_code: String(start.json['device_code']),
    });
    expect(r.json['error']).toBe('authorization_declined');
  });
});

describe('ARM for az login', () => {
  it('GET /tenants lists the caller’s tenant; /metadata/endpoints answers without a token', async () => {
    const token = await emu.armTokenFor(ADMIN_UPN, ADMIN_PASSWORD);
    const tenants = await emu.arm('GET', '/tenants?api-version=2019-11-01', token);
    expect(tenants.status).toBe(200);
    expect(tenants.json['value']).toEqual([
      expect.objectContaining({ id: `/tenants/${TENANT}`, tenantId: TENANT, defaultDomain: 'emulator.onmicrosoft.com', tenantCategory: 'Home' }),
    ]);
    expect((await emu.arm('GET', '/tenants?api-version=2019-11-01', undefined)).status).toBe(401);
    const meta = await emu.arm('GET', '/metadata/endpoints?api-version=2015-01-01', undefined);
    expect(meta.status).toBe(200);
    expect(meta.json['authentication']).toMatchObject({
      loginEndpoint: emu.running.endpoints.https,
      audiences: expect.arrayContaining(['https://management.core.windows.net/']),
    });
  });
});

describe('test tokens from the admin API', () => {
  it('tokenVersion 1: the v1 shape for the same resource; ageSeconds: an expired token', async () => {
    const v1 = await emu.admin('POST', '/tokens', { principal: ADMIN_UPN, scope: 'https://management.azure.com/.default', tokenVersion: 1 });
    expect(v1.json['version']).toBe(1);
    expect(claimsOf(String(v1.json['access_token']))).toMatchObject({ ver: '1.0', iss: `https://sts.windows.net/${TENANT}/` });
    const old = await emu.admin('POST', '/tokens', { principal: ADMIN_UPN, scope: 'https://management.azure.com/.default', ageSeconds: 7200 });
    const claims = claimsOf(String(old.json['access_token']));
    expect(Number(claims['exp'])).toBeLessThan(Date.now() / 1000);
  });
});
