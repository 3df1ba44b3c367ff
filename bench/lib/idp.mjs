// The benchmark's identity provider: Entra-shaped OIDC discovery and JWKS on loopback HTTP for one
// tenant, counting every JWKS fetch, and an RS256 token minter that signs in worker threads (one
// per CPU) because 200,000 distinct valid tokens cost 200,000 RSA-2048 signatures.
import { createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';

export const BENCH_CLIENT_ID = 'b3c4d5e6-0000-4000-8000-00000000b3c4';
export const AZURE_CLI_APP_ID = '04b07795-8ddb-461a-bbee-02f9e1bf7b46';

/** Deterministic object IDs: principal `n` of the run. */
export function principalOid(n) {
  return `b3e00000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export async function startIdp(tenantId) {
  // From PEM (the emulator's key generation): exporting a generated KeyObject as JWK can deadlock Node 20.
  // Imported here, not at the top: bench/run.mjs loads this module before it builds a missing dist/.
  const { newRsaKeyPem } = await import('../../dist/offline/emulator/certificates.js');
  const privateKey = createPrivateKey(await newRsaKeyPem());
  const publicKey = createPublicKey(privateKey);
  const kid = randomBytes(20).toString('base64url');
  const jwk = { kty: 'RSA', use: 'sig', kid, x5t: kid, n: publicKey.export({ format: 'jwk' }).n, e: 'AQAB' };
  const fetches = { discovery: [], jwks: [] };
  let authority = '';
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    let body;
    if (path === `/${tenantId}/v2.0/.well-known/openid-configuration`) {
      fetches.discovery.push(Date.now());
      body = {
        issuer: `${authority}/${tenantId}/v2.0`,
        jwks_uri: `${authority}/${tenantId}/discovery/v2.0/keys`,
        token_endpoint: `${authority}/${tenantId}/oauth2/v2.0/token`,
        id_token_signing_alg_values_supported: ['RS256'],
      };
    } else if (path === `/${tenantId}/discovery/v2.0/keys`) {
      fetches.jwks.push(Date.now());
      body = { keys: [jwk] };
    }
    if (body === undefined) {
      res.writeHead(404).end();
      return;
    }
    const text = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  authority = `http://127.0.0.1:${server.address().port}`;
  const keyPem = privateKey.export({ format: 'pem', type: 'pkcs8' });
  return {
    authority,
    tenantId,
    kid,
    /** The signing key's public half (SPKI PEM), for references that verify tokens themselves (HAProxy jwt_verify). */
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }),
    issuer: `${authority}/${tenantId}/v2.0`,
    /** Times (epoch ms) of every JWKS fetch so far. */
    jwksFetches: () => fetches.jwks.slice(),
    /**
     * Valid delegated tokens: `perPrincipal` tokens for each principal number in `principals`
     * (each token distinct by its `uti`), valid for `lifetimeSeconds`.
     */
    mint: (principals, perPrincipal = 1, lifetimeSeconds = 3 * 3600) =>
      mintInWorkers({ keyPem, kid, issuer: `${authority}/${tenantId}/v2.0`, tenantId, principals, perPrincipal, lifetimeSeconds }),
    /**
     * Tokens that pass every claim check but name a random unknown `kid` (the signature is junk:
     * the kid lookup comes first). What a flood aimed at the JWKS endpoint looks like.
     */
    unknownKidTokens: (count, principal = 0) => unknownKidTokens({ issuer: `${authority}/${tenantId}/v2.0`, tenantId, count, principal }),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The claims of an Entra ID v2 delegated (user) access token issued to the Azure CLI. */
export function userClaims({ issuer, tenantId, oid, uti, now, lifetimeSeconds }) {
  return {
    aud: BENCH_CLIENT_ID,
    iss: issuer,
    iat: now - 60,
    nbf: now - 60,
    exp: now + lifetimeSeconds,
    aio: 'AWQAm/8YAAAA',
    azp: AZURE_CLI_APP_ID,
    azpacr: '0',
    name: `Bench User ${oid.slice(-6)}`,
    oid,
    preferred_username: `bench-${oid.slice(-6)}@contoso.example`,
    rh: '1.AXoAv4j5cvGGr0GRqy180BHbR2ytXzhH_ZxEqg5f2G0mBJZ6AOw.',
    scp: 'foundry_access',
    sid: '00000000-0000-4000-8000-000000000000',
    sub: `sub-${oid}`,
    tid: tenantId,
    uti,
    ver: '2.0',
    xms_ftd: 'bench',
  };
}

const base64url = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');

function unknownKidTokens({ issuer, tenantId, count, principal }) {
  const now = Math.floor(Date.now() / 1000);
  const payload = base64url(userClaims({ issuer, tenantId, oid: principalOid(principal), uti: 'flood', now, lifetimeSeconds: 3600 }));
  const signature = randomBytes(256).toString('base64url');
  const out = [];
  for (let i = 0; i < count; i++) {
    const header = base64url({ typ: 'JWT', alg: 'RS256', kid: randomBytes(20).toString('base64url') });
    out.push(`${header}.${payload}.${signature}`);
  }
  return out;
}

async function mintInWorkers(job) {
  const list = [...job.principals];
  const total = list.length * job.perPrincipal;
  const workers = Math.max(1, Math.min(cpus().length, Math.ceil(total / 500)));
  const now = Math.floor(Date.now() / 1000);
  const salt = randomBytes(6).toString('base64url');
  const shares = Array.from({ length: workers }, (_, w) => list.filter((_, i) => i % workers === w));
  const results = await Promise.all(
    shares.map(
      (share, w) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(new URL('./mint-worker.mjs', import.meta.url), {
            workerData: { ...job, principals: share, now, salt: `${salt}${w}` },
          });
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.once('exit', (code) => code !== 0 && reject(new Error(`token minting worker exited with ${code}`)));
        }),
    ),
  );
  // Back in principal order: tokens[i * perPrincipal + j] is token j of principals[i].
  const byPrincipal = new Map();
  results.forEach((tokens, w) => shares[w].forEach((p, i) => byPrincipal.set(p, tokens.slice(i * job.perPrincipal, (i + 1) * job.perPrincipal))));
  return list.flatMap((p) => byPrincipal.get(p));
}
