// Scenario 4's measurement, run in its own process (pinned to one CPU by the caller): the
// authentication stage of dist/ as the gateway calls it, `authenticateRequest(rawHeaders, query)`,
// for a cached token (extraction, SHA-256, LRU hit, metrics) and for an uncached one (the same plus
// strict decoding, every claim check and the RS256 signature). Prints one JSON line.
import { createPrivateKey, createPublicKey, randomBytes, sign } from 'node:crypto';
import { MockAgent } from 'undici';
import { Authenticator } from '../../dist/authn/authenticate.js';
import { loadServeConfig } from '../../dist/config/load.js';
import { newRsaKeyPem } from '../../dist/offline/emulator/certificates.js';
import { systemClock } from '../../dist/ops/clock.js';
import { silentLogger } from '../../dist/ops/log.js';
import { Metrics } from '../../dist/ops/metrics.js';
import { BENCH_CLIENT_ID, principalOid, userClaims } from './idp.mjs';

const seconds = Number(process.argv[2] ?? '2');
const tenantId = 'c0ffee00-0000-4000-8000-000000000001';
const authority = 'https://login.bench.test';
const issuer = `${authority}/${tenantId}/v2.0`;
// From PEM (the emulator's key generation): exporting a generated KeyObject as JWK can deadlock Node 20.
const privateKey = createPrivateKey(await newRsaKeyPem());
const publicKey = createPublicKey(privateKey);
const kid = randomBytes(20).toString('base64url');

const agent = new MockAgent();
agent.disableNetConnect();
const idp = agent.get(authority);
idp
  .intercept({ path: `/${tenantId}/v2.0/.well-known/openid-configuration` })
  .reply(200, { issuer, jwks_uri: `${authority}/${tenantId}/discovery/v2.0/keys` })
  .persist();
idp
  .intercept({ path: `/${tenantId}/discovery/v2.0/keys` })
  .reply(200, { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, use: 'sig' }] })
  .persist();

// The Entra settings `serve` resolves from these flags and its defaults (upstream and scope are
// required but unused: only authentication runs here).
const loaded = loadServeConfig({
  flags: {
    upstream: 'http://127.0.0.1:1',
    'tenant-id': tenantId,
    'client-id': BENCH_CLIENT_ID,
    authority,
    'rbac-scope': `/subscriptions/${tenantId}/resourceGroups/rg/providers/Microsoft.Kubernetes/connectedClusters/bench`,
  },
  env: {},
});
if (!loaded.ok) throw new Error(loaded.errors.join('\n'));

const authn = new Authenticator({
  entra: loaded.config.entra,
  clock: systemClock,
  log: silentLogger(),
  metrics: new Metrics(),
  dispatcher: agent,
});
await authn.start();

const now = Math.floor(Date.now() / 1000);
const header = Buffer.from(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid, x5t: kid })).toString('base64url');
const tokens = Array.from({ length: 1_000 }, (_, i) => {
  const input = `${header}.${Buffer.from(JSON.stringify(userClaims({ issuer, tenantId, oid: principalOid(i), uti: `u${i}`, now, lifetimeSeconds: 3600 }))).toString('base64url')}`;
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
});
// What Node hands the gateway: req.rawHeaders of a typical SDK request.
const requests = tokens.map((token) => [
  'Host',
  '127.0.0.1:8080',
  'Authorization',
  `Bearer ${token}`,
  'Content-Type',
  'application/json',
  'Accept',
  'application/json',
  'User-Agent',
  'OpenAI/JS 6.0.0',
  'Content-Length',
  '120',
]);

function check(outcome) {
  if (outcome instanceof Promise || !outcome.ok)
    throw new Error(`unexpected outcome: ${outcome instanceof Promise ? 'asynchronous' : outcome.rejection.reason}`);
}

/**
 * Calls per second of `fn(i)`: five trials of `seconds / 5` each after a warm-up, the best one
 * reported (the trial least disturbed by anything else the machine ran).
 */
function rate(fn, batch) {
  for (let i = 0; i < batch; i++) fn(i); // warm-up
  let best = 0;
  for (let trial = 0; trial < 5; trial++) {
    let calls = 0;
    const started = process.hrtime.bigint();
    const until = started + BigInt(Math.round((seconds / 5) * 1e9));
    let now = started;
    while (now < until) {
      for (let i = 0; i < batch; i++) fn(calls + i);
      calls += batch;
      now = process.hrtime.bigint();
    }
    best = Math.max(best, (calls * 1e9) / Number(now - started));
  }
  return best;
}

const cached = rate((i) => check(authn.authenticateRequest(requests[i % requests.length], undefined)), 10_000);
const uncached = rate((i) => {
  // Every 1,000 calls the cache starts empty again, so each call below verifies a signature.
  if (i % requests.length === 0) authn.tokenCache.clear();
  check(authn.authenticateRequest(requests[i % requests.length], undefined));
}, 1_000);
process.stdout.write(`${JSON.stringify({ cachedPerSecond: cached, uncachedPerSecond: uncached, tokenChars: tokens[0].length })}\n`);
await authn.close();
await agent.close();
