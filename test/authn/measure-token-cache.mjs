// Throughput of the authentication stage on one core, outside the test suite (no timing assertions
// in tests). Run after `npm run build`:   node test/authn/measure-token-cache.mjs
// Measures: a cached validation (hash + LRU hit + counter), a full validation (strict decode, all
// claim checks, RS256 verify with a pre-imported KeyObject), and jose's jwtVerify for comparison.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { MockAgent } from 'undici';
import { Authenticator } from '../../dist/authn/authenticate.js';
import { decodeToken } from '../../dist/authn/token-checks.js';
import { newRsaKeyPem } from '../../dist/offline/emulator/certificates.js';
import { silentLogger } from '../../dist/ops/log.js';
import { Metrics } from '../../dist/ops/metrics.js';

const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const client = '6e0b1d2a-3c4f-4a5b-8c6d-7e8f9a0b1c2d';
const authority = 'https://login.example.test';
// From PEM (the emulator's key generation): exporting a generated KeyObject as JWK can deadlock Node 20.
const privateKey = createPrivateKey(await newRsaKeyPem());
const publicKey = createPublicKey(privateKey);
const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'k1', use: 'sig' };

const agent = new MockAgent();
agent.disableNetConnect();
const pool = agent.get(authority);
pool
  .intercept({ path: `/${tenant}/v2.0/.well-known/openid-configuration` })
  .reply(200, { jwks_uri: `${authority}/${tenant}/keys` })
  .persist();
pool
  .intercept({ path: `/${tenant}/keys` })
  .reply(200, { keys: [jwk] })
  .persist();

const authn = new Authenticator({
  entra: {
    tenantId: tenant,
    clientId: client,
    allowedTenants: [tenant],
    authority,
    audiences: [client, `api://${client}`],
    requiredScope: 'foundry_access',
    requiredAppRole: 'FoundryInferenceAccess',
    clockSkewSeconds: 300,
  },
  clock: { now: () => Date.now() },
  log: silentLogger(),
  metrics: new Metrics({ defaultMetrics: false }),
  dispatcher: agent,
});
await authn.start();

const now = Math.floor(Date.now() / 1000);
const claims = (i) => ({
  aud: client,
  iss: `${authority}/${tenant}/v2.0`,
  iat: now - 60,
  nbf: now - 60,
  exp: now + 3600,
  tid: tenant,
  oid: '0b6c4d2e-8f1a-4b3c-9d5e-7f6a8b9c0d1e',
  sub: 'x',
  azp: '04b07795-8ddb-461a-bbee-02f9e1bf7b46',
  name: 'Alice',
  preferred_username: 'alice@contoso.example',
  scp: 'foundry_access',
  ver: '2.0',
  uti: `u${i}`,
  rh: '0.AXoAv4j5cvGGr0GRqy180BHbR2ytXzhH_ZxEqg5f2G0mBJZ6AOw.',
  xms_tcdt: 1289241547,
});
const tokens = await Promise.all(
  Array.from({ length: 1000 }, (_, i) =>
    new SignJWT(claims(i)).setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: 'k1', x5t: 'k1' }).sign(privateKey),
  ),
);
console.log(`token size: ${tokens[0].length} characters`);

function measure(name, n, fn) {
  for (let i = 0; i < Math.min(n, 20_000); i++) fn(i); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn(i);
  const ns = Number(process.hrtime.bigint() - start);
  console.log(
    `${name.padEnd(58)} ${Math.round((n * 1e9) / ns)
      .toLocaleString('en-US')
      .padStart(10)} /s  ${(ns / n / 1000).toFixed(2)} µs`,
  );
}

const requests = tokens.map((token) => ['Authorization', `Bearer ${token}`]);
for (const headers of requests) {
  const r = await authn.authenticateRequest(headers, undefined);
  if (!r.ok) throw new Error(`setup token rejected: ${r.rejection.reason}`);
}
measure('cached validation (Authenticator.authenticateRequest, hit)', 1_000_000, (i) => {
  const r = authn.authenticateRequest(requests[i % 1000], undefined);
  if (r instanceof Promise || !r.ok) throw new Error('expected a synchronous hit');
});

const validator = authn['validator'];
measure('full validation (strict decode + checks + RS256 verify)', 20_000, (i) => {
  const r = validator.validate(tokens[i % 1000]);
  if (r instanceof Promise || !r.ok) throw new Error('expected a synchronous success');
});

measure('strict decode only (3 segments, base64url, strict JSON)', 200_000, (i) => {
  if (!decodeToken(tokens[i % 1000]).ok) throw new Error('decode failed');
});
measure('JSON.parse of the same two segments (for comparison)', 200_000, (i) => {
  const [h, p] = tokens[i % 1000].split('.');
  JSON.parse(Buffer.from(h, 'base64url').toString());
  JSON.parse(Buffer.from(p, 'base64url').toString());
});

const key = publicKey;
let done = 0;
const start = process.hrtime.bigint();
for (let i = 0; i < 5_000; i++) {
  await jwtVerify(tokens[i % 1000], key, { algorithms: ['RS256'], audience: client, issuer: `${authority}/${tenant}/v2.0` });
  done++;
}
const ns = Number(process.hrtime.bigint() - start);
console.log(
  `${'jose jwtVerify, awaited serially (for comparison)'.padEnd(58)} ${Math.round((done * 1e9) / ns)
    .toLocaleString('en-US')
    .padStart(10)} /s  ${(ns / done / 1000).toFixed(2)} µs`,
);

await authn.close();
await agent.close();
