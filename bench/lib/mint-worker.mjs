// Signs the tokens of one share of principals (see idp.mjs): RS256 over header.payload, as Entra does.
import { createPrivateKey, sign } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { principalOid, userClaims } from './idp.mjs';

const { keyPem, kid, issuer, tenantId, principals, perPrincipal, lifetimeSeconds, now, salt } = workerData;
const key = createPrivateKey(keyPem);
const header = Buffer.from(JSON.stringify({ typ: 'JWT', alg: 'RS256', kid, x5t: kid })).toString('base64url');
const tokens = [];
for (const n of principals) {
  const oid = principalOid(n);
  for (let j = 0; j < perPrincipal; j++) {
    const claims = userClaims({ issuer, tenantId, oid, uti: `${salt}-${n}-${j}`, now, lifetimeSeconds });
    const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
    tokens.push(`${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`);
  }
}
parentPort.postMessage(tokens);
