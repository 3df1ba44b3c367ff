import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { Principal } from '../../src/contracts/principal.js';
import { clientResponseHeaders, normalizeHeaderName, RequestHeaderPolicy } from '../../src/proxy/headers.js';
import { RawClient, startUpstream, type RecordedRequest, type Upstream } from '../fixtures/upstream.js';
import { startHarness, type Harness } from './harness.js';

const ALICE: Principal = {
  type: 'user',
  oid: '11111111-2222-3333-4444-555555555555',
  tid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
  appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
  name: 'alice@contoso.example',
  claims: {
    oid: '11111111-2222-3333-4444-555555555555',
    tid: 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
    azp: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
    name: 'Alice',
    preferred_username: 'alice@contoso.example',
    scp: 'foundry_access',
    aud: 'not-copied',
  },
};

let up: Upstream;
let proxy: Harness;

async function start(opts: { forwardAuthorization?: boolean; principal?: Principal } = {}): Promise<void> {
  proxy = await startHarness({
    upstreamUrl: up.url,
    forwardAuthorization: opts.forwardAuthorization ?? false,
    principal: () => opts.principal ?? ALICE,
  });
}

beforeEach(async () => {
  up = await startUpstream();
});

afterEach(async () => {
  await proxy?.close();
  await up.close();
});

/** Sends the raw request head (CRLF-joined header lines) and returns what the upstream recorded. */
async function send(lines: string[], target = '/v1/chat/completions'): Promise<RecordedRequest> {
  const client = await RawClient.connect(proxy.port);
  client.write(`POST ${target} HTTP/1.1\r\nHost: gateway.example:8080\r\n${lines.map((l) => `${l}\r\n`).join('')}Content-Length: 2\r\n\r\n{}`);
  const res = await client.readResponse();
  expect(res.status).toBe(200);
  client.destroy();
  return up.requests.at(-1)!;
}

describe('request hop-by-hop headers', () => {
  beforeEach(() => start());

  it('removes the RFC 9110 hop-by-hop headers', async () => {
    const seen = await send([
      'Connection: keep-alive',
      'Keep-Alive: timeout=5, max=1000',
      'Proxy-Connection: keep-alive',
      'Proxy-Authorization: Basic dXNlcjpwYXNz',
      'Proxy-Authenticate: Basic',
      'TE: trailers',
      'Trailer: X-Checksum',
      'X-Kept: yes',
    ]);
    for (const name of ['keep-alive', 'proxy-connection', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'upgrade']) {
      expect(seen.header(name), name).toEqual([]);
    }
    // The only Connection header is undici's own, for the upstream connection.
    expect(seen.header('connection')).toEqual(['keep-alive']);
    expect(seen.header('x-kept')).toEqual(['yes']);
    expect(seen.body.toString()).toBe('{}');
  });

  it('removes headers named in Connection, but never the headers the sidecar adds afterwards', async () => {
    const seen = await send([
      'Connection: close, X-Internal, X-Forwarded-User, X-MS-CLIENT-PRINCIPAL-ID, x-ms-client-principal-name, X-Request-Id, X-Forwarded-Proto, X-Foundry-Auth-Principal-Type, Content-Length, Host',
      'X-Internal: secret',
      'X-Forwarded-User: mallory',
      'X-Kept: yes',
    ]);
    expect(seen.header('x-internal')).toEqual([]);
    expect(seen.header('x-forwarded-user')).toEqual([]);
    expect(seen.header('x-kept')).toEqual(['yes']);
    // The sidecar's own headers arrive, exactly once, with its values.
    expect(seen.header('x-ms-client-principal-id')).toEqual([ALICE.oid]);
    expect(seen.header('x-ms-client-principal-name')).toEqual(['alice@contoso.example']);
    expect(seen.header('x-foundry-auth-principal-type')).toEqual(['user']);
    expect(seen.header('x-request-id')).toEqual(['req-1']);
    expect(seen.header('x-forwarded-proto')).toEqual(['http']);
    // Framing survives a nominated Content-Length; Host is the upstream's.
    expect(seen.header('content-length')).toEqual(['2']);
    expect(seen.body.toString()).toBe('{}');
    expect(seen.header('host')).toEqual([`127.0.0.1:${up.port}`]);
  });

  it('reads every Connection header: an empty first one does not hide the rest (CVE-2021-33197)', async () => {
    const seen = await send(['Connection:', 'Connection: X-Secret', 'X-Secret: 1', 'connection: x-other', 'X-Other: 2']);
    expect(seen.header('connection')).toEqual(['keep-alive']);
    expect(seen.header('x-secret')).toEqual([]);
    expect(seen.header('x-other')).toEqual([]);
  });

  it('replaces Host with the upstream authority and carries the original in x-forwarded-host', async () => {
    const seen = await send(['X-Forwarded-Host: evil.example']);
    expect(seen.header('host')).toEqual([`127.0.0.1:${up.port}`]);
    expect(seen.header('x-forwarded-host')).toEqual(['gateway.example:8080']);
  });
});

describe('request trailers', () => {
  beforeEach(() => start());

  it('never forwards trailers of a chunked request, identity-shaped or not', async () => {
    const client = await RawClient.connect(proxy.port);
    client.write(
      'POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-MS-CLIENT-PRINCIPAL-ID\r\n\r\n' +
        '2\r\n{}\r\n0\r\nX-MS-CLIENT-PRINCIPAL-ID: spoof\r\nAuthorization: Bearer eyJ.trailer\r\n\r\n',
    );
    expect((await client.readResponse()).status).toBe(200);
    const seen = up.requests[0]!;
    expect(seen.body.toString()).toBe('{}');
    expect(seen.header('x-ms-client-principal-id')).toEqual([ALICE.oid]);
    expect(seen.header('trailer')).toEqual([]);
    expect(seen.rawTrailers).toEqual([]);
    expect(seen.rawHeaders.join('\n')).not.toContain('spoof');
    client.destroy();
  });
});

describe('identity headers', () => {
  it('strips every spoofed identity header (case, underscores, duplicates) and sends only the sidecar values', async () => {
    await start();
    const spoofs = [
      'X-MS-CLIENT-PRINCIPAL: eyJhdXRoX3R5cCI6ImFhZCJ9',
      'x-ms-client-principal-id: 00000000-0000-0000-0000-000000000000',
      'X-Ms-Client-Principal-Id: 00000000-0000-0000-0000-000000000001',
      'X_MS_CLIENT_PRINCIPAL_ID: 00000000-0000-0000-0000-000000000002',
      'X-MS-CLIENT-PRINCIPAL-NAME: admin@contoso.example',
      'x_ms_client_principal_name: admin@contoso.example',
      'X-MS-CLIENT-PRINCIPAL-IDP: aad',
      'X-MS-CLIENT-PRINCIPAL-EXTRA: 1',
      'X-MS-TOKEN-AAD-ACCESS-TOKEN: eyJ.fake.token',
      'X-MS-TOKEN-AAD-ID-TOKEN: eyJ.fake.token',
      'x_ms_token_aad_refresh_token: r',
      'X-Forwarded-User: admin',
      'X-Forwarded_User: admin',
      'X-Forwarded-Email: admin@contoso.example',
      'X-Forwarded-Groups: admins',
      'X-Forwarded-Preferred-Username: admin',
      'X-Forwarded-Access-Token: eyJ.fake.token',
      'X-Auth-Request-User: admin',
      'X-Auth_Request_Email: admin@contoso.example',
      'X-Auth-Request-Groups: admins',
      'X-Auth-Request-Access-Token: eyJ.fake.token',
      'X-Remote-User: admin',
      'X-Remote-Group: system:masters',
      'X-Remote-Extra-Scopes: all',
      'X_Remote_User: admin',
      'X-Foundry-Auth-Principal-Type: app',
      'x-foundry-auth-principal-type: api-key',
      'X-Foundry-Auth-Tenant-Id: 99999999-9999-9999-9999-999999999999',
      'X_FOUNDRY_AUTH_TENANT_ID: 99999999-9999-9999-9999-999999999999',
      'X-Foundry-Auth-Anything: 1',
      'X-Request-Id: attacker-chosen',
      'x_request_id: attacker-chosen',
      'X-Forwarded-Proto: https',
      'X_Forwarded_Proto: https',
    ];
    const seen = await send(spoofs);
    const names = seen.headerNames().map(normalizeHeaderName);
    // Each identity header exactly once...
    for (const name of [
      'x-ms-client-principal',
      'x-ms-client-principal-id',
      'x-ms-client-principal-name',
      'x-ms-client-principal-idp',
      'x-foundry-auth-principal-type',
      'x-foundry-auth-tenant-id',
      'x-request-id',
      'x-forwarded-proto',
    ]) {
      expect(
        names.filter((n) => n === name),
        name,
      ).toHaveLength(1);
    }
    // ...with the sidecar's values, and no spoofed value anywhere.
    expect(seen.header('x-ms-client-principal-id')).toEqual([ALICE.oid]);
    expect(seen.header('x-ms-client-principal-name')).toEqual(['alice@contoso.example']);
    expect(seen.header('x-ms-client-principal-idp')).toEqual(['aad']);
    expect(seen.header('x-foundry-auth-principal-type')).toEqual(['user']);
    expect(seen.header('x-foundry-auth-tenant-id')).toEqual([ALICE.tid]);
    expect(seen.header('x-request-id')).toEqual(['req-1']);
    expect(seen.header('x-forwarded-proto')).toEqual(['http']);
    const values = seen.rawHeaders.filter((_, i) => i % 2 === 1).join('\n');
    for (const bad of ['admin', 'eyJ.fake', 'system:masters', '9999', 'attacker-chosen', 'https', '0000-000000000000', 'all']) {
      expect(values, bad).not.toContain(bad);
    }
    for (const prefix of [
      'x-forwarded-user',
      'x-forwarded-email',
      'x-forwarded-groups',
      'x-forwarded-preferred-username',
      'x-forwarded-access-token',
      'x-auth-request-',
      'x-remote-',
      'x-ms-token-aad-',
      'x-ms-client-principal-extra',
      'x-foundry-auth-anything',
    ]) {
      expect(
        names.filter((n) => n.startsWith(prefix)),
        prefix,
      ).toEqual([]);
    }
  });

  it('sends the App Service shaped x-ms-client-principal built from the verified claims', async () => {
    await start({ principal: { ...ALICE, claims: { ...ALICE.claims, roles: ['Reader', 'Writer'], idtyp: 'user' } } });
    const seen = await send([]);
    const decoded = JSON.parse(Buffer.from(seen.header('x-ms-client-principal')[0]!, 'base64').toString('utf8')) as unknown;
    expect(decoded).toEqual({
      auth_typ: 'aad',
      claims: [
        { typ: 'oid', val: ALICE.oid },
        { typ: 'tid', val: ALICE.tid },
        { typ: 'azp', val: ALICE.appId },
        { typ: 'name', val: 'Alice' },
        { typ: 'preferred_username', val: 'alice@contoso.example' },
        { typ: 'scp', val: 'foundry_access' },
        { typ: 'idtyp', val: 'user' },
        { typ: 'roles', val: 'Reader' },
        { typ: 'roles', val: 'Writer' },
      ],
      name_typ: 'name',
      role_typ: 'roles',
    });
  });

  it('identifies an app by its app ID and an API key by its key ID, without claims or tenant', async () => {
    const app: Principal = {
      type: 'app',
      oid: '66666666-7777-8888-9999-000000000000',
      tid: ALICE.tid,
      appId: 'abcdefab-1234-5678-9abc-def012345678',
      claims: { oid: '66666666-7777-8888-9999-000000000000', tid: ALICE.tid, roles: ['FoundryInferenceAccess'], idtyp: 'app' },
    };
    await start({ principal: app });
    const seenApp = await send([]);
    expect(seenApp.header('x-ms-client-principal-name')).toEqual([app.appId]);
    expect(seenApp.header('x-foundry-auth-principal-type')).toEqual(['app']);
    await proxy.close();

    await start({ principal: { type: 'api-key', oid: 'key-3f9a1c2e', tid: '' } });
    const seenKey = await send(['X-MS-CLIENT-PRINCIPAL: spoof']);
    expect(seenKey.header('x-ms-client-principal-id')).toEqual(['key-3f9a1c2e']);
    expect(seenKey.header('x-ms-client-principal-name')).toEqual(['key-3f9a1c2e']);
    expect(seenKey.header('x-ms-client-principal-idp')).toEqual(['api-key']);
    expect(seenKey.header('x-foundry-auth-principal-type')).toEqual(['api-key']);
    expect(seenKey.header('x-ms-client-principal')).toEqual([]);
    expect(seenKey.header('x-foundry-auth-tenant-id')).toEqual([]);
  });

  it('sends no identity for an unauthenticated (public path) request, and still strips spoofs', async () => {
    proxy = await startHarness({ upstreamUrl: up.url });
    const seen = await send(['X-MS-CLIENT-PRINCIPAL-ID: spoof', 'X-Foundry-Auth-Principal-Type: user'], '/healthz');
    expect(seen.header('x-ms-client-principal-id')).toEqual([]);
    expect(seen.header('x-foundry-auth-principal-type')).toEqual([]);
    expect(seen.header('x-request-id')).toEqual(['req-1']);
  });

  it('percent-encodes a non-ASCII principal name so it is a safe header value', async () => {
    await start({ principal: { ...ALICE, name: 'José Müller\r\nX-Injected: 1' } });
    const seen = await send([]);
    expect(seen.header('x-injected')).toEqual([]);
    const name = seen.header('x-ms-client-principal-name')[0]!;
    expect(name).toBe('Jos%C3%A9 M%C3%BCller%0D%0AX-Injected: 1');
    expect(decodeURIComponent(name)).toBe('José Müller\r\nX-Injected: 1');
  });
});

describe('client address and scheme', () => {
  beforeEach(() => start());

  it('appends the client address to every inbound x-forwarded-for value, in order', async () => {
    const seen = await send(['X-Forwarded-For: 203.0.113.7', 'x-forwarded-for: 10.0.0.1, 10.0.0.2', 'X_Forwarded_For: 6.6.6.6']);
    expect(seen.header('x-forwarded-for')).toEqual(['203.0.113.7, 10.0.0.1, 10.0.0.2, 127.0.0.1']);
    expect(seen.rawHeaders.join('\n')).not.toContain('6.6.6.6');
  });

  it('starts x-forwarded-for with the client address when there is none', async () => {
    const seen = await send([]);
    expect(seen.header('x-forwarded-for')).toEqual(['127.0.0.1']);
  });

  it('drops client-address and path/method override headers the sidecar does not vouch for', async () => {
    const overrides = [
      'X-Original-URL: /api/v1/models',
      'X-Rewrite-URL: /admin',
      'X-Forwarded-Uri: /api/v1/models',
      'X-Original-URI: /admin',
      'X-Envoy-Original-Path: /admin',
      'X-Forwarded-Prefix: /admin',
      'X-HTTP-Method-Override: DELETE',
      'X-Method-Override: DELETE',
      'X_HTTP_Method_Override: DELETE',
      'Forwarded: for=127.0.0.1;proto=https',
      'X-Real-IP: 127.0.0.1',
    ];
    const seen = await send(overrides);
    const names = seen.headerNames().map(normalizeHeaderName);
    for (const line of overrides) expect(names, line).not.toContain(normalizeHeaderName(line.slice(0, line.indexOf(':'))));
  });
});

describe('credentials', () => {
  it('removes Authorization and api-key by default', async () => {
    await start();
    const seen = await send(['Authorization: Bearer eyJ.secret.token', 'api-key: fndry-sk-secret', 'API_KEY: fndry-sk-secret', 'X-Kept: 1']);
    expect(seen.header('authorization')).toEqual([]);
    expect(seen.header('api-key')).toEqual([]);
    expect(seen.header('api_key')).toEqual([]);
    expect(seen.rawHeaders.join('\n')).not.toContain('secret');
  });

  it('passes Authorization and api-key with forwardAuthorization, but never an underscore look-alike', async () => {
    await start({ forwardAuthorization: true });
    const seen = await send(['Authorization: Bearer eyJ.token', 'api-key: fndry-sk-1', 'api_key: fndry-sk-2']);
    expect(seen.header('authorization')).toEqual(['Bearer eyJ.token']);
    expect(seen.header('api-key')).toEqual(['fndry-sk-1']);
    expect(seen.header('api_key')).toEqual([]);
  });
});

describe('response headers', () => {
  beforeEach(() => start());

  it('removes hop-by-hop and Connection-nominated response headers', async () => {
    up.respond({
      kind: 'raw',
      bytes:
        'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive, X-Internal-Debug\r\nConnection: X-Second\r\nX-Internal-Debug: secret\r\nX-Second: 2\r\n' +
        'Keep-Alive: timeout=77\r\nProxy-Authenticate: Basic\r\nProxy-Connection: keep-alive\r\nTrailer: X-Checksum\r\nX-Kept: yes\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Request-Id: upstream-id\r\nContent-Length: 2\r\n\r\n{}',
    });
    const client = await RawClient.connect(proxy.port);
    client.write('GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
    const res = await client.readResponse();
    expect(res.status).toBe(200);
    for (const name of ['x-internal-debug', 'x-second', 'proxy-authenticate', 'proxy-connection', 'trailer'])
      expect(res.header(name), name).toEqual([]);
    // Node sets its own keep-alive headers for the client connection; none of the upstream's values survive.
    expect(res.header('keep-alive')).not.toContain('timeout=77');
    expect(res.header('connection').join()).not.toMatch(/x-internal-debug|x-second/i);
    expect(res.header('x-kept')).toEqual(['yes']);
    expect(res.header('set-cookie')).toEqual(['a=1', 'b=2']);
    expect(res.header('x-request-id')).toEqual(['req-1']);
    expect(res.body.toString()).toBe('{}');
    client.destroy();
  });

  it('re-frames a chunked upstream response for the client', async () => {
    up.respond({
      kind: 'raw',
      bytes: 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Trailer: t\r\n\r\n',
    });
    const res = await request(`${proxy.url}/v1/models`);
    expect(await res.body.text()).toBe('abcdef');
    expect(res.trailers['x-trailer']).toBeUndefined();
  });
});

describe('RequestHeaderPolicy (unit)', () => {
  it('builds the upstream list in one pass, inbound order kept, sidecar headers last', () => {
    const policy = new RequestHeaderPolicy(false);
    const out = policy.upstreamHeaders(['Host', 'h', 'Accept', 'a', 'X-B', '1', 'x-b', '2', 'Content-Length', '5'], {
      clientAddress: '192.0.2.1',
      proto: 'http',
      host: 'h',
      identity: ['x-ms-client-principal-id', 'oid'],
      requestId: 'r',
      contentLength: '5',
    });
    expect(out).toEqual([
      'Accept',
      'a',
      'X-B',
      '1',
      'x-b',
      '2',
      'content-length',
      '5',
      'x-forwarded-for',
      '192.0.2.1',
      'x-forwarded-proto',
      'http',
      'x-forwarded-host',
      'h',
      'x-ms-client-principal-id',
      'oid',
      'x-request-id',
      'r',
    ]);
  });

  it('response list: set-cookie arrays expanded, hop-by-hop dropped', () => {
    expect(
      clientResponseHeaders(
        { 'set-cookie': ['a=1', 'b=2'], 'transfer-encoding': 'chunked', connection: 'x-y', 'x-y': '1', 'content-type': 't' },
        'r',
      ),
    ).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-type', 't', 'x-request-id', 'r']);
  });
});
