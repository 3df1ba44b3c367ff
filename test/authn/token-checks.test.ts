import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_CHECKS, tokenPolicy } from '../../src/authn/token-checks.js';
import { EntraTokenValidator, type TokenValidation } from '../../src/authn/token-validator.js';
import { inspectToken } from '../../src/setup/token-inspection.js';
import {
  CONSUMERS_TENANT_ID,
  Canary,
  OTHER_TENANT_ID,
  REQUIRED_APP_ROLE,
  REQUIRED_SCOPE,
  TEST_CLIENT_ID,
  TEST_TENANT_ID,
  b64url,
  newRsaKeyPair,
  type IdpKey,
} from '../fixtures/idp.js';
import { entraConfig, expectInvalidToken, expectSafeMessage, harness, type Harness } from './harness.js';

let h: Harness;
let canary: Canary;
let ecKey: IdpKey;
let octKey: IdpKey;
let consumersPinned: IdpKey;
let templated: IdpKey;
let otherTenantKey: IdpKey;
let unpublished: IdpKey;

beforeAll(async () => {
  canary = await Canary.start();
  h = await harness({ tenants: [TEST_TENANT_ID, OTHER_TENANT_ID], start: false });
  ecKey = h.idp.addEcKey({ use: 'sig' });
  octKey = h.idp.addOctKey({});
  consumersPinned = h.idp.addRsaKey({ use: 'sig', issuer: `${h.idp.authority}/${CONSUMERS_TENANT_ID}/v2.0` });
  templated = h.idp.addRsaKey({ use: 'sig', issuer: `${h.idp.authority}/{tenantid}/v2.0` });
  unpublished = h.idp.addRsaKey({ publish: false });
  otherTenantKey = h.idp.signingKey(OTHER_TENANT_ID);
  await h.keys.start();
  h.idp.resetCounts();
});

afterAll(async () => {
  await h.close();
  await canary.close();
  expect(canary.hits).toBe(0);
  expect(Object.prototype).not.toHaveProperty('scp');
  expect(Object.prototype).not.toHaveProperty('roles');
  expect(Object.prototype).not.toHaveProperty('polluted');
});

const validate = (token: string): Promise<TokenValidation> => Promise.resolve(h.validator.validate(token));
const now = () => h.clock.now() / 1000;

/** A raw token with the default header and claims, each overridable; signed RS256 with the default key. */
function raw(opts: { header?: Record<string, unknown> | string; payload?: Record<string, unknown> | string; key?: IdpKey } = {}): string {
  const header = typeof opts.header === 'string' ? opts.header : h.idp.header(opts.key, opts.header);
  const payload = typeof opts.payload === 'string' ? opts.payload : { ...h.idp.claims(), ...opts.payload };
  return h.idp.mintRaw({ header, payload, signature: { alg: 'RS256', key: opts.key ?? h.idp.signingKey() } });
}

function withSignature(token: string, signature: Buffer | string): string {
  const [header, payload] = token.split('.');
  return `${header}.${payload}.${typeof signature === 'string' ? signature : b64url(signature)}`;
}

describe('accepted tokens and the principal', () => {
  it('a delegated user token (jose-minted) is accepted: principal type user', async () => {
    const result = await validate(await h.idp.mint());
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.principal).toMatchObject({
      type: 'user',
      oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e',
      tid: TEST_TENANT_ID,
      appId: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
      name: 'alice@contoso.example',
    });
    expect(result.principal.claims?.scp).toBe(REQUIRED_SCOPE);
    expect(result.tenantId).toBe(TEST_TENANT_ID);
    expect(result.kid).toBe(h.idp.signingKey().kid);
    expect(result.validUntilMs).toBe((now() + 3600 + 300) * 1000);
    expect(result.validFromMs).toBe((now() - 60 - 300) * 1000);
  });

  it('an app-only token is accepted: principal type app', async () => {
    const result = await validate(await h.idp.mint({ kind: 'app' }));
    expect(result.ok && result.principal).toMatchObject({
      type: 'app',
      oid: '3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b',
      appId: '9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a',
    });
  });

  it('app-only is also recognised without idtyp (no scp), and appid is the v1-style client claim', async () => {
    const result = await validate(
      await h.idp.mint({ kind: 'app', claims: { idtyp: undefined, azp: undefined, appid: 'aaaaaaaa-0000-4000-8000-000000000001' } }),
    );
    expect(result.ok && result.principal).toMatchObject({ type: 'app', appId: 'aaaaaaaa-0000-4000-8000-000000000001' });
  });

  it('the raw minter produces tokens the validator accepts (fixture sanity)', async () => {
    expect((await validate(raw())).ok).toBe(true);
  });

  it('upper-case oid and tid are compared and reported lower-case', async () => {
    const result = await validate(await h.idp.mint({ claims: { oid: '0B6C4D2E-8F1A-4B3C-9D5E-7F6A8B9C0D1E', tid: TEST_TENANT_ID.toUpperCase() } }));
    expect(result.ok && result.principal).toMatchObject({ oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e', tid: TEST_TENANT_ID });
  });

  it('extra header members Entra sends (typ, x5t) are fine; x5t is never used for key selection (15)', async () => {
    expect((await validate(await h.idp.mint({ header: { x5t: 'something-else' } }))).ok).toBe(true);
    // x5t naming the right key does not help a token signed with an unpublished key.
    expectInvalidToken(await validate(raw({ header: { x5t: h.idp.signingKey().kid }, key: unpublished })), 'unknown_kid');
  });

  it('a key with a {tenantid} issuer template signs for the substituted issuer (49)', async () => {
    expect((await validate(await h.idp.mint({ key: templated }))).ok).toBe(true);
  });
});

describe('A. algorithm, key selection and signature', () => {
  it.each(['none', 'None', 'NONE', 'nOnE'])('alg %s with an empty signature is rejected (1)', async (alg) => {
    const token = `${b64url(JSON.stringify({ alg, typ: 'JWT' }))}.${b64url(JSON.stringify(h.idp.claims()))}.`;
    expectInvalidToken(await validate(token), 'malformed');
  });

  it('alg none with the original RS256 signature kept, or as two parts (2)', async () => {
    const good = await h.idp.mint();
    const [, payload, signature] = good.split('.');
    expectInvalidToken(await validate(`${b64url('{"alg":"none","typ":"JWT"}')}.${payload}.${signature}`), 'unsupported_alg');
    expectInvalidToken(await validate(`${b64url('{"alg":"none"}')}.${payload}`), 'malformed');
  });

  it('RS256 with an empty signature (3)', async () => {
    expectInvalidToken(await validate(withSignature(await h.idp.mint(), '')), 'malformed');
  });

  it('broken signatures: truncated, one bit flipped, a byte added or removed (4)', async () => {
    const good = await h.idp.mint();
    const signature = Buffer.from(good.split('.')[2]!, 'base64url');
    const truncated = await validate(good.slice(0, -4));
    expect(truncated.ok === false && ['malformed', 'bad_signature'].includes(truncated.rejection.reason ?? '')).toBe(true);
    const flipped = Buffer.from(signature);
    flipped[100]! ^= 1;
    expectInvalidToken(await validate(withSignature(good, flipped)), 'bad_signature');
    expectInvalidToken(await validate(withSignature(good, Buffer.concat([signature, Buffer.from([0])]))), 'bad_signature');
    expectInvalidToken(await validate(withSignature(good, signature.subarray(1))), 'bad_signature');
  });

  it('signature transplanted from another valid token of the same key (5)', async () => {
    const a = await h.idp.mint();
    const b = await h.idp.mint({ kind: 'app' });
    expectInvalidToken(await validate(withSignature(a, b.split('.')[2]!)), 'bad_signature');
  });

  it('RS -> HS key confusion with every encoding of the public key (6)', async () => {
    const key = h.idp.signingKey();
    const publicKey = key.privateKey;
    const { createPublicKey } = await import('node:crypto');
    const pub = createPublicKey(publicKey);
    const spki = pub.export({ type: 'spki', format: 'pem' }) as string;
    const secrets: (string | Buffer)[] = [
      spki,
      spki.replace(/\n/g, '\r\n'),
      `\n ${spki}`,
      pub.export({ type: 'pkcs1', format: 'pem' }),
      pub.export({ type: 'spki', format: 'der' }),
      JSON.stringify(key.jwk),
      Buffer.from(key.jwk.n as string, 'base64url'),
    ];
    for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
      for (const secret of secrets) {
        const token = h.idp.mintRaw({ header: h.idp.header(key, { alg }), payload: h.idp.claims(), signature: { alg, secret } });
        expectInvalidToken(await validate(token), 'unsupported_alg');
      }
    }
    // The HMAC under an RS256 header: the signature is 32 bytes, never a valid RSA signature.
    const disguised = h.idp.mintRaw({ header: h.idp.header(key), payload: h.idp.claims(), signature: { alg: 'HS256', secret: spki } });
    expectInvalidToken(await validate(disguised), 'bad_signature');
  });

  it.each(['', 'secret', 'your-256-bit-secret', 'password'])('HMAC with a common secret %j (7)', async (secret) => {
    const token = h.idp.mintRaw({ header: h.idp.header(undefined, { alg: 'HS256' }), payload: h.idp.claims(), signature: { alg: 'HS256', secret } });
    expectInvalidToken(await validate(token), 'unsupported_alg');
  });

  it('HMAC with an oct key published in the JWKS, by alg HS256 or under RS256 (8)', async () => {
    const secret = Buffer.from(octKey.jwk.k as string, 'base64url');
    const hs = h.idp.mintRaw({ header: { alg: 'HS256', kid: octKey.kid }, payload: h.idp.claims(), signature: { alg: 'HS256', secret } });
    expectInvalidToken(await validate(hs), 'unsupported_alg');
    const rs = h.idp.mintRaw({ header: { alg: 'RS256', kid: octKey.kid }, payload: h.idp.claims(), signature: { alg: 'HS256', secret } });
    expectInvalidToken(await validate(rs), 'unusable_key');
    const empty = h.idp.mintRaw({
      header: { alg: 'HS256', kid: h.idp.signingKey().kid },
      payload: h.idp.claims(),
      signature: { alg: 'HS256', secret: '' },
    });
    expectInvalidToken(await validate(empty), 'unsupported_alg');
  });

  it.each(['PS256', 'RS384', 'RS512'] as const)('%s signed with the genuine key (9)', async (alg) => {
    const token = h.idp.mintRaw({ header: h.idp.header(undefined, { alg }), payload: h.idp.claims(), signature: { alg, key: h.idp.signingKey() } });
    expectInvalidToken(await validate(token), 'unsupported_alg');
    const disguised = h.idp.mintRaw({ header: h.idp.header(), payload: h.idp.claims(), signature: { alg, key: h.idp.signingKey() } });
    expectInvalidToken(await validate(disguised), 'bad_signature');
  });

  it('psychic ECDSA signatures (r = s = 0) against an EC key, an RSA key and an unknown kid (10)', async () => {
    for (const kid of [ecKey.kid, h.idp.signingKey().kid, 'unknown-kid']) {
      for (const sig of [Buffer.alloc(64), Buffer.from('MAYCAQACAQA', 'base64')]) {
        const token = h.idp.mintRaw({ header: { alg: 'ES256', kid }, payload: h.idp.claims(), signature: { raw: b64url(sig) } });
        expectInvalidToken(await validate(token), 'unsupported_alg');
      }
    }
    const realEs = h.idp.mintRaw({ header: { alg: 'ES256', kid: ecKey.kid }, payload: h.idp.claims(), signature: { alg: 'ES256', key: ecKey } });
    expectInvalidToken(await validate(realEs), 'unsupported_alg');
    const esUnderRs = h.idp.mintRaw({ header: { alg: 'RS256', kid: ecKey.kid }, payload: h.idp.claims(), signature: { alg: 'ES256', key: ecKey } });
    expectInvalidToken(await validate(esUnderRs), 'unusable_key');
  });

  it('RSA signature encoding edge cases: wrong length, s >= n, all ones (11)', async () => {
    const good = await h.idp.mint();
    const signature = Buffer.from(good.split('.')[2]!, 'base64url');
    const n = Buffer.from(h.idp.signingKey().jwk.n as string, 'base64url');
    for (const bad of [Buffer.concat([Buffer.from([0]), signature]), n, Buffer.alloc(256, 0xff), Buffer.alloc(256, 0), Buffer.from([1])]) {
      expectInvalidToken(await validate(withSignature(good, bad)), 'bad_signature');
    }
  });

  it.each([
    ['missing', undefined],
    ['number', 256],
    ['lower case', 'rs256'],
    ['trailing space', 'RS256 '],
    ['array', ['RS256']],
    ['null', null],
  ])('malformed alg: %s (12)', async (_name, alg) => {
    expectInvalidToken(await validate(raw({ header: { alg } })), 'unsupported_alg');
  });

  it('embedded jwk header with the attacker key, kid attacker or legitimate (13)', async () => {
    const attacker = newRsaKeyPair();
    const jwk = attacker.publicKey.export({ format: 'jwk' });
    for (const kid of ['attacker', h.idp.signingKey().kid]) {
      const token = h.idp.mintRaw({
        header: { alg: 'RS256', kid, jwk },
        payload: h.idp.claims(),
        signature: { alg: 'RS256', key: attacker.privateKey },
      });
      expectInvalidToken(await validate(token), 'forbidden_header');
    }
    // Without the jwk member the attacker key is simply not one of the tenant's keys.
    const plain = h.idp.mintRaw({ header: h.idp.header(), payload: h.idp.claims(), signature: { alg: 'RS256', key: attacker.privateKey } });
    expectInvalidToken(await validate(plain), 'bad_signature');
  });

  it('jku / x5u pointing at a canary are never fetched (14)', async () => {
    const before = canary.hits;
    for (const name of ['jku', 'x5u']) {
      for (const url of [`${canary.url}/jwks.json`, `https://login.microsoftonline.com@${canary.url.slice(7)}/`, `${canary.url}/../keys`]) {
        expectInvalidToken(await validate(raw({ header: { [name]: url } })), 'forbidden_header');
      }
    }
    expect(canary.hits).toBe(before);
  });

  it('x5c with an attacker certificate chain (15)', async () => {
    expectInvalidToken(await validate(raw({ header: { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] } })), 'forbidden_header');
  });

  it('kid injection set (16): rejected, no canary hit, no key fetch', async () => {
    h.idp.resetCounts();
    const weird = ['../../../../../../dev/null', '/dev/null', '/invalid_path', '|sleep', "x'UNION--", `${canary.url}/k`];
    for (const kid of weird) expectInvalidToken(await validate(raw({ header: { kid } })), 'unknown_kid');
    for (const kid of ['|sleep 10', "x' UNION SELECT '1';--", '', 'k'.repeat((64 * 1024) / 8), '\u0000', 'a b', 0, ['K1'], { $ne: null }, null]) {
      expectInvalidToken(await validate(raw({ header: { kid } })), 'invalid_kid');
    }
    for (const secret of ['', '1']) {
      const token = h.idp.mintRaw({ header: { alg: 'HS256', kid: '../../dev/null' }, payload: h.idp.claims(), signature: { alg: 'HS256', secret } });
      expectInvalidToken(await validate(token), 'unsupported_alg');
    }
    expect(h.idp.jwksFetches()).toBe(0);
  });

  it('a missing kid is rejected without trying every key (67)', async () => {
    expectInvalidToken(await validate(raw({ header: { kid: undefined, x5t: undefined } })), 'invalid_kid');
  });

  it.each([
    ['crit exp', { crit: ['exp'] }],
    ['crit custom', { crit: ['x-custom'], 'x-custom': 1 }],
    ['crit empty', { crit: [] }],
    ['crit null', { crit: [null] }],
    ['crit string', { crit: 'b64' }],
    ['b64 false with crit (18)', { b64: false, crit: ['b64'] }],
    ['b64 false without crit (18)', { b64: false }],
    ['zip (22)', { zip: 'DEF' }],
    ['enc', { enc: 'A256GCM' }],
    ['cty JWT: nested token (23)', { cty: 'JWT' }],
  ])('header %s is refused (17)', async (_name, extra) => {
    expectInvalidToken(await validate(raw({ header: extra })), 'forbidden_header');
  });

  it('JSON serialization and the compact/JSON polyglot (19, 20)', async () => {
    const [header, payload, signature] = (await h.idp.mint()).split('.');
    expectInvalidToken(await validate(JSON.stringify({ payload, signatures: [{ protected: header, signature }] })), 'malformed');
    expectInvalidToken(await validate(`{" ${payload}.":"","protected":"${header}","payload":"${payload}","signature":"${signature}"}`), 'malformed');
  });
});

describe('B. structure, encoding, size', () => {
  it('wrong part counts, a JWE, a dot flood (21, 22, 32)', async () => {
    const good = await h.idp.mint();
    for (const token of ['', good.split('.').slice(0, 2).join('.'), `${good}.x`, `${good}.x.y`, '.....', '.'.repeat(15_000)]) {
      expectInvalidToken(await validate(token), 'malformed');
    }
  });

  it('oversized token (31)', async () => {
    expectInvalidToken(await validate(raw({ payload: { pad: 'x'.repeat(16 * 1024) } })), 'oversized');
    // 8 KiB of claims is still decoded and checked normally.
    expect((await validate(raw({ payload: { pad: 'x'.repeat(8 * 1024) } }))).ok).toBe(true);
  });

  it('alphabet swap and padding on a genuinely signed token (24, 25)', async () => {
    const good = await h.idp.mint();
    const [header, payload, signature] = good.split('.') as [string, string, string];
    const swapped = Buffer.from(signature, 'base64url').toString('base64').replace(/=+$/, '');
    if (swapped !== signature) expectInvalidToken(await validate(`${header}.${payload}.${swapped}`), 'malformed');
    expectInvalidToken(await validate(`${header}=.${payload}.${signature}`), 'malformed');
    const padded = h.idp.mintRaw({ header: h.idp.header(), payload: h.idp.claims(), encode: (b) => b.toString('base64') });
    expectInvalidToken(await validate(padded), 'malformed');
  });

  it('non-canonical trailing bits on a genuinely signed token are rejected, not normalised (25, 135)', async () => {
    const good = await h.idp.mint();
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = good.at(-1)!;
    const variant = good.slice(0, -1) + alphabet[alphabet.indexOf(last) + 1];
    expectInvalidToken(await validate(variant), 'malformed');
  });

  it('invalid UTF-8, BOM and non-object payloads (27, 28)', async () => {
    const header = JSON.stringify(h.idp.header());
    for (const payload of ['[]', '"x"', '123', 'null', '{"exp":', '\ufeff{}']) {
      expectInvalidToken(await validate(h.idp.mintRaw({ header, payload })), 'malformed');
    }
    const bad = Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')]);
    const token = h.idp.mintRaw({ header, payload: '{}', encode: (b) => (b.toString() === '{}' ? b64url(bad) : b64url(b)) });
    expectInvalidToken(await validate(token), 'malformed');
  });

  it.each([
    ['header alg', '{"alg":"none","alg":"RS256","kid":"K"}', undefined],
    ['tid', undefined, '"tid":"A","tid":"B"'],
    ['aud', undefined, `"aud":"other","aud":"${TEST_CLIENT_ID}"`],
    ['roles', undefined, '"roles":[],"roles":["FoundryInferenceAccess"]'],
    ['scp', undefined, '"scp":"a","scp":"foundry_access"'],
  ])('duplicate %s members, signed with the genuine key (29)', async (_name, headerText, dup) => {
    const claims = h.idp.claims();
    const payload = dup === undefined ? JSON.stringify(claims) : `${JSON.stringify(claims).slice(0, -1)},${dup}}`;
    const header = headerText?.replace('"K"', JSON.stringify(h.idp.signingKey().kid)) ?? JSON.stringify(h.idp.header());
    expectInvalidToken(await validate(h.idp.mintRaw({ header, payload })), 'malformed');
  });

  it('prototype-pollution-shaped claims grant nothing and pollute nothing (30)', async () => {
    const base = h.idp.claims();
    delete base.scp;
    const text = `${JSON.stringify(base).slice(0, -1)},"__proto__":{"scp":"foundry_access","roles":["FoundryInferenceAccess"],"polluted":true},"constructor":{"prototype":{"polluted":true}}}`;
    expectInvalidToken(await validate(h.idp.mintRaw({ header: h.idp.header(), payload: text })), 'missing_app_role');
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });

  it('deep nesting inside the size limit (33)', async () => {
    const payload = `${JSON.stringify(h.idp.claims()).slice(0, -1)},"x":${'['.repeat(5_000)}${']'.repeat(5_000)}}`;
    expectInvalidToken(await validate(h.idp.mintRaw({ header: h.idp.header(), payload })), 'malformed');
  });
});

describe('C. time claims with clock skew', () => {
  const S = 300;

  it('expired (34) and the exp boundary with skew (36)', async () => {
    const t = now();
    expect((await validate(await h.idp.mint({ claims: { exp: t - S + 1 } }))).ok).toBe(true);
    const expired = expectInvalidToken(await validate(await h.idp.mint({ claims: { exp: t - S - 1 } })), 'expired');
    expect(expired.message).toContain('get a new token');
    expectInvalidToken(await validate(await h.idp.mint({ claims: { exp: t - S } })), 'expired');
    expectInvalidToken(await validate(await h.idp.mint({ claims: { exp: t - 1 - 3600 } })), 'expired');
  });

  it('exp == now is expired with skew 0 (35); nbf = now + 1 is not yet valid (37)', async () => {
    const strict = new EntraTokenValidator(tokenPolicy(entraConfig(h.idp, { clockSkewSeconds: 0 })), h.keys, h.clock);
    const t = now();
    expectInvalidToken(await strict.validate(await h.idp.mint({ claims: { exp: t } })), 'expired');
    expect((await strict.validate(await h.idp.mint({ claims: { exp: t + 1 } }))).ok).toBe(true);
    expectInvalidToken(await strict.validate(await h.idp.mint({ claims: { nbf: t + 1 } })), 'not_yet_valid');
    expect((await strict.validate(await h.idp.mint({ claims: { nbf: t } }))).ok).toBe(true);
  });

  it('nbf boundary with skew (36)', async () => {
    const t = now();
    expect((await validate(await h.idp.mint({ claims: { nbf: t + S - 1, iat: t } }))).ok).toBe(true);
    expect((await validate(await h.idp.mint({ claims: { nbf: t + S, iat: t } }))).ok).toBe(true);
    expectInvalidToken(await validate(await h.idp.mint({ claims: { nbf: t + S + 1, iat: t } })), 'not_yet_valid');
  });

  it('iat in the future beyond the skew (38)', async () => {
    const t = now();
    expect((await validate(await h.idp.mint({ claims: { iat: t + S, nbf: t } }))).ok).toBe(true);
    expectInvalidToken(await validate(await h.idp.mint({ claims: { iat: t + S + 1, nbf: t } })), 'issued_in_future');
  });

  it('exp is required; nbf and iat are optional (39)', async () => {
    expectInvalidToken(await validate(await h.idp.mint({ claims: { exp: undefined } })), 'invalid_claim');
    expect((await validate(await h.idp.mint({ claims: { nbf: undefined, iat: undefined } }))).ok).toBe(true);
  });

  it.each(['exp', 'nbf', 'iat'])('%s of the wrong type is rejected, never coerced (40)', async (claim) => {
    for (const value of [String(now() + 100), null, true, [], {}, [now() + 100]]) {
      expectInvalidToken(await validate(raw({ payload: { [claim]: value } })), 'invalid_claim');
    }
  });

  it('non-finite and extreme NumericDates (41)', async () => {
    const claims = JSON.stringify(h.idp.claims());
    const header = JSON.stringify(h.idp.header());
    expectInvalidToken(await validate(h.idp.mintRaw({ header, payload: claims.replace(/"exp":\d+/, '"exp":1e999') })), 'malformed');
    for (const exp of ['1.7976931348623157e308', '9007199254740993', '-1', '253402300800']) {
      expectInvalidToken(await validate(h.idp.mintRaw({ header, payload: claims.replace(/"exp":\d+/, `"exp":${exp}`) })), 'invalid_claim');
    }
    expectInvalidToken(await validate(h.idp.mintRaw({ header, payload: claims.replace(/"exp":\d+/, '"exp":-0') })), 'expired');
    expectInvalidToken(await validate(h.idp.mintRaw({ header, payload: claims.replace(/"nbf":\d+/, '"nbf":1e999') })), 'malformed');
  });

  it('fractional NumericDates are accepted (42)', async () => {
    const result = await validate(await h.idp.mint({ claims: { exp: now() + 60.5, nbf: now() - 0.25 } }));
    expect(result.ok).toBe(true);
  });
});

describe('D. issuer, audience, tenant', () => {
  it('a Microsoft Graph token: the message names the resource to ask for (43)', async () => {
    const r = expectInvalidToken(await validate(await h.idp.mint({ claims: { aud: '00000003-0000-0000-c000-000000000000' } })), 'wrong_audience');
    expect(r.message).toContain('00000003-0000-0000-c000-000000000000');
    expect(r.message).toContain(`api://${TEST_CLIENT_ID}`);
  });

  it.each([
    ['api://<client-id>/', `api://${TEST_CLIENT_ID}/`],
    ['upper-case GUID', TEST_CLIENT_ID.toUpperCase()],
    ['empty array', []],
    ['empty string', ''],
    ['numbers', [1, 2]],
    ['null', null],
    ['missing', undefined],
    ['object', { aud: TEST_CLIENT_ID }],
    ['other API', 'api://other-api'],
  ])('audience %s is rejected (44)', async (_name, aud) => {
    expectInvalidToken(await validate(raw({ payload: { aud } })), 'wrong_audience');
  });

  it('accepted audience forms: the GUID, api://<client-id>, an array containing one (44)', async () => {
    for (const aud of [TEST_CLIENT_ID, `api://${TEST_CLIENT_ID}`, ['other', TEST_CLIENT_ID]]) {
      expect((await validate(await h.idp.mint({ claims: { aud } }))).ok).toBe(true);
    }
    const guidOnly = new EntraTokenValidator(tokenPolicy(entraConfig(h.idp, { audiences: [TEST_CLIENT_ID] })), h.keys, h.clock);
    expectInvalidToken(await guidOnly.validate(await h.idp.mint({ claims: { aud: `api://${TEST_CLIENT_ID}` } })), 'wrong_audience');
  });

  it('issuer must match exactly (45)', async () => {
    const iss = h.idp.issuer();
    const variants = [
      `${iss}/`,
      iss.replace('/v2.0', ''),
      iss.replace('/v2.0', '/V2.0'),
      iss.replace('http://', 'https://'),
      iss.replace('127.0.0.1', 'localhost'),
      `https://login.microsoftonline.com/${TEST_TENANT_ID}/v2.0`,
      `https://login.microsoftonline.us/${TEST_TENANT_ID}/v2.0`,
      `https://login.windows.net/${TEST_TENANT_ID}/v2.0`,
      `${h.idp.authority}/{tenantid}/v2.0`,
      `${h.idp.authority}/${TEST_TENANT_ID.toUpperCase()}/v2.0`,
      `${canary.url}/${TEST_TENANT_ID}/v2.0`,
    ];
    for (const value of variants) expectInvalidToken(await validate(await h.idp.mint({ claims: { iss: value } })), 'wrong_issuer');
    expectInvalidToken(await validate(await h.idp.mint({ claims: { iss: 42 } })), 'wrong_issuer');
    expectInvalidToken(await validate(await h.idp.mint({ claims: { iss: undefined } })), 'wrong_issuer');
  });

  it('v1 tokens get a message that says to set accessTokenAcceptedVersion to 2 (46)', async () => {
    const v1 = { ver: '1.0', iss: `https://sts.windows.net/${TEST_TENANT_ID}/`, aud: `api://${TEST_CLIENT_ID}`, appid: 'x', azp: undefined };
    for (const claims of [v1, { ...v1, ver: '2.0' }, { ver: '1.0' }]) {
      const r = expectInvalidToken(await validate(await h.idp.mint({ claims })), 'v1_token');
      expect(r.message).toContain('accessTokenAcceptedVersion');
      expect(r.message).toContain('requestedAccessTokenVersion');
    }
    expectInvalidToken(await validate(await h.idp.mint({ claims: { ver: '3.0' } })), 'invalid_claim');
    expectInvalidToken(await validate(await h.idp.mint({ claims: { ver: 2 } })), 'invalid_claim');
  });

  it('a foreign tenant with a valid signature: rejected, and its keys are never fetched (47)', async () => {
    h.idp.resetCounts();
    const r = expectInvalidToken(await validate(await h.idp.mint({ tid: OTHER_TENANT_ID })), 'foreign_tenant');
    expect(r.message).toContain(OTHER_TENANT_ID);
    expect(r.message).toContain(TEST_TENANT_ID);
    expect(h.idp.jwksFetches(OTHER_TENANT_ID)).toBe(0);
    expect(h.idp.discoveryFetches(OTHER_TENANT_ID)).toBe(0);
  });

  it.each([
    ['iss tenant A, tid B (B not allowed)', { tid: OTHER_TENANT_ID }, 'foreign_tenant'],
    ['tid common', { tid: 'common' }, 'invalid_claim'],
    ['tid organizations', { tid: 'organizations' }, 'invalid_claim'],
    ['tid a domain', { tid: 'contoso.onmicrosoft.com' }, 'invalid_claim'],
    ['tid path traversal', { tid: '../x' }, 'invalid_claim'],
    ['tid missing', { tid: undefined }, 'invalid_claim'],
    ['tid a number', { tid: 1 }, 'invalid_claim'],
    ['tid consumers', { tid: CONSUMERS_TENANT_ID }, 'foreign_tenant'],
  ])('tenant checks: %s (48)', async (_name, claims, reason) => {
    expectInvalidToken(await validate(await h.idp.mint({ claims })), reason);
  });

  it('iss of tenant A with tid of another allowed tenant B is a wrong issuer (48)', async () => {
    const both = new EntraTokenValidator(tokenPolicy(entraConfig(h.idp, { allowedTenants: [TEST_TENANT_ID, OTHER_TENANT_ID] })), h.keys, h.clock);
    expectInvalidToken(await both.validate(await h.idp.mint({ claims: { tid: OTHER_TENANT_ID } })), 'wrong_issuer');
  });

  it('Storm-0558: a key pinned to the consumers issuer cannot sign for this tenant (49)', async () => {
    expectInvalidToken(await validate(await h.idp.mint({ key: consumersPinned })), 'key_issuer_mismatch');
  });

  it("a kid published only in another tenant's JWKS is unknown; nothing is fetched from token content (50)", async () => {
    h.idp.resetCounts();
    expectInvalidToken(await validate(await h.idp.mint({ key: otherTenantKey })), 'unknown_kid');
    expectInvalidToken(await validate(await h.idp.mint({ claims: { iss: `https://badissuer/${TEST_TENANT_ID}/v2.0` } })), 'wrong_issuer');
    expect(h.idp.fetches(h.idp.jwksPath(OTHER_TENANT_ID))).toBe(0);
  });

  it.each([
    ['oid missing', { oid: undefined }],
    ['oid not a GUID', { oid: 'alice' }],
    ['oid a number', { oid: 7 }],
    ['only email/upn identity', { oid: undefined, email: 'a@b.c', upn: 'a@b.c' }],
  ])('identity claims: %s (51)', async (_name, claims) => {
    expectInvalidToken(await validate(await h.idp.mint({ claims })), 'invalid_claim');
  });
});

describe('E. scp and roles', () => {
  it('a user token without the required scope names the scope to request (52)', async () => {
    const r = expectInvalidToken(await validate(await h.idp.mint({ claims: { scp: 'User.Read' } })), 'missing_scope');
    expect(r.message).toContain(`az account get-access-token --scope api://${TEST_CLIENT_ID}/${REQUIRED_SCOPE}`);
  });

  it('neither scp nor roles: rejected as app-only without the app role (53)', async () => {
    expectInvalidToken(await validate(await h.idp.mint({ claims: { scp: undefined } })), 'missing_app_role');
  });

  it('app-only: the right role passes, a wrong or missing role names the assignment to make (54)', async () => {
    expect((await validate(await h.idp.mint({ kind: 'app', claims: { roles: ['Other', REQUIRED_APP_ROLE] } }))).ok).toBe(true);
    for (const roles of [['Other'], [], undefined, [REQUIRED_APP_ROLE.toLowerCase()]]) {
      const r = expectInvalidToken(await validate(await h.idp.mint({ kind: 'app', claims: { roles } })), 'missing_app_role');
      expect(r.message).toContain(`assign the app role ${REQUIRED_APP_ROLE}`);
      expect(r.message).toContain(TEST_CLIENT_ID);
    }
  });

  it.each([
    'foundry_accessAll',
    'Xfoundry_access',
    'Foundry_Access',
    'FOUNDRY_ACCESS',
    'foundry_access\tAdmin',
    'foundry_access,Admin',
    ' foundry_access_',
    '',
  ])('scp %j does not contain the scope (55)', async (scp) => {
    expectInvalidToken(await validate(await h.idp.mint({ claims: { scp } })), 'missing_scope');
  });

  it('scp is space-separated: the scope among others passes (55)', async () => {
    expect((await validate(await h.idp.mint({ claims: { scp: `User.Read ${REQUIRED_SCOPE} offline_access` } }))).ok).toBe(true);
  });

  it.each([
    ['scp array', { scp: [REQUIRED_SCOPE] }],
    ['scp null', { scp: null }],
    ['scp number', { scp: 1 }],
    ['roles string', { roles: REQUIRED_APP_ROLE }],
    ['roles numbers', { roles: [1] }],
    ['roles mixed', { roles: [REQUIRED_APP_ROLE, null] }],
    ['roles null', { roles: null }],
    ['idtyp number', { idtyp: 1 }],
    ['azp object', { azp: {} }],
  ])('claim type confusion: %s (56)', async (_name, claims) => {
    expectInvalidToken(await validate(await h.idp.mint({ kind: 'app', claims })), 'invalid_claim');
  });

  it('scp together with idtyp app is contradictory (57)', async () => {
    expectInvalidToken(await validate(await h.idp.mint({ kind: 'app', claims: { scp: REQUIRED_SCOPE } })), 'ambiguous_token_type');
  });

  it('idtyp user without scp is a user token missing its scope, even with the app role (57)', async () => {
    expectInvalidToken(await validate(await h.idp.mint({ claims: { scp: undefined, idtyp: 'user', roles: [REQUIRED_APP_ROLE] } })), 'missing_scope');
  });

  it('a user token with the app role but another scope: no union of delegated and app permissions (59)', async () => {
    expectInvalidToken(await validate(await h.idp.mint({ claims: { scp: 'User.Read', roles: [REQUIRED_APP_ROLE] } })), 'missing_scope');
  });
});

describe('messages and token inspect', () => {
  it('messages never contain the token', async () => {
    const tokens = [await h.idp.mint({ claims: { aud: 'x' } }), raw({ header: { alg: 'HS256' } }), (await h.idp.mint()).slice(0, -3)];
    for (const token of tokens) {
      const result = await validate(token);
      expect(result.ok).toBe(false);
      if (result.ok) continue;
      for (const part of token.split('.')) if (part.length > 8) expect(result.rejection.message).not.toContain(part.slice(0, 16));
    }
  });

  it('TOKEN_CHECKS is the ordered list inspect reports', () => {
    expect(TOKEN_CHECKS.map((c) => c.name)).toEqual([
      'header',
      'tenant',
      'audience',
      'version',
      'issuer',
      'expiry',
      'not_before',
      'issued_at',
      'subject',
      'claim_types',
      'permission',
    ]);
  });

  it('inspect reports every check and gives the same verdict as the validator', async () => {
    const t = now();
    const tokens = [
      await h.idp.mint(),
      await h.idp.mint({ kind: 'app' }),
      await h.idp.mint({ claims: { exp: t - 1000 } }),
      await h.idp.mint({ claims: { aud: 'x', exp: t - 1000 } }),
      await h.idp.mint({ claims: { scp: 'User.Read' } }),
      await h.idp.mint({ tid: OTHER_TENANT_ID }),
      await h.idp.mint({ claims: { ver: '1.0' } }),
      await h.idp.mint({ key: consumersPinned }),
      await h.idp.mint({ key: unpublished }),
      await h.idp.mint({ claims: { roles: 'x' } }),
      raw({ header: { alg: 'none' } }),
      raw({ header: { jku: canary.url } }),
      withSignature(await h.idp.mint(), Buffer.alloc(256, 1)),
      'not-a-token',
      '',
    ];
    for (const token of tokens) {
      const inspection = await inspectToken(token, h.policy, { nowMs: h.clock.now(), keys: h.keys });
      const result = await validate(token);
      expect(inspection.checks.map((c) => c.check)).toEqual(['format', ...TOKEN_CHECKS.map((c) => c.name), 'signing_key', 'signature']);
      for (const c of inspection.checks) {
        expect(c.rule.length).toBeGreaterThan(0);
        expectSafeMessage(c.detail);
      }
      if (result.ok) {
        expect(inspection.verdict).toMatchObject({ status: 200, code: null, signatureVerified: true });
        expect(inspection.verdict.principal).toEqual(result.principal);
        expect(inspection.checks.every((c) => c.ok)).toBe(true);
      } else {
        expect(inspection.verdict).toMatchObject({
          status: 401,
          code: result.rejection.code,
          reason: result.rejection.reason,
          message: result.rejection.message,
        });
      }
    }
  });

  it('inspect keeps going after a failure: an expired token for another audience shows both', async () => {
    const inspection = await inspectToken(await h.idp.mint({ claims: { aud: 'x', exp: now() - 1000 } }), h.policy, {
      nowMs: h.clock.now(),
      keys: h.keys,
    });
    const failed = inspection.checks.filter((c) => !c.ok && !c.skipped).map((c) => c.reason);
    expect(failed).toEqual(['wrong_audience', 'expired']);
    expect(inspection.checks.find((c) => c.check === 'signature')).toMatchObject({ ok: true });
    expect(inspection.payload?.aud).toBe('x');
  });

  it('inspect without keys skips the signature and says so', async () => {
    const inspection = await inspectToken(await h.idp.mint(), h.policy, { nowMs: h.clock.now() });
    expect(inspection.checks.filter((c) => c.skipped).map((c) => c.check)).toEqual(['signing_key', 'signature']);
    expect(inspection.verdict).toMatchObject({ status: 200, signatureVerified: false });
    expect(inspection.verdict.principal).toBeUndefined();
  });

  it('inspect never looks up keys for a foreign tenant', async () => {
    h.idp.resetCounts();
    const inspection = await inspectToken(await h.idp.mint({ tid: OTHER_TENANT_ID }), h.policy, { nowMs: h.clock.now(), keys: h.keys });
    expect(inspection.checks.find((c) => c.check === 'signing_key')).toMatchObject({ skipped: true });
    expect(h.idp.allFetches().size).toBe(0);
  });
});
