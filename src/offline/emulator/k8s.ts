import type { Emulator } from './core.js';
import { sendJson, type Exchange } from './exchange.js';
import { decodeJwt, numberClaim, privateKeyOf, publicKeyOf, rsaPublicJwk, signJwt, signatureValid, stringClaim, type Claims } from './jwt.js';
import type { Cluster } from './model.js';

/**
 * Each cluster is also a Kubernetes service-account token issuer (OIDC discovery + JWKS under
 * `/_emulator/k8s/{cluster}`), so workload identity federation can be tested end to end.
 */

export function serviceAccountIssuer(base: string, cluster: Cluster): string {
  return `${base}/_emulator/k8s/${cluster.name}`;
}

export function clusterByName(em: Emulator, name: string | undefined): Cluster | undefined {
  if (name === undefined) return em.state.clusters.find((c) => c.isDefault) ?? em.state.clusters[0];
  return em.state.clusters.find((c) => c.name.toLowerCase() === name.toLowerCase());
}

export function serveK8sDiscovery(ex: Exchange, cluster: Cluster): void {
  const issuer = serviceAccountIssuer(ex.base, cluster);
  sendJson(ex.res, 200, {
    issuer,
    jwks_uri: `${issuer}/openid/v1/jwks`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: ['RS256'],
  });
}

export function serveK8sJwks(ex: Exchange, cluster: Cluster): void {
  const k = cluster.serviceAccountKey;
  sendJson(ex.res, 200, { keys: [{ use: 'sig', kty: 'RSA', kid: k.kid, alg: 'RS256', ...rsaPublicJwk(k.keyPem) }] });
}

export interface ServiceAccountTokenRequest {
  readonly cluster: Cluster;
  readonly base: string;
  readonly subject: string;
  readonly audience: string;
  readonly expiresInSeconds: number;
}

/** A projected service-account token as the kubelet writes it for workload identity. */
export function mintServiceAccountToken(em: Emulator, r: ServiceAccountTokenRequest): { token: string; expiresOn: number } {
  const now = em.nowSeconds();
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(r.subject);
  const claims: Claims = {
    aud: [r.audience],
    exp: now + r.expiresInSeconds,
    iat: now,
    iss: serviceAccountIssuer(r.base, r.cluster),
    nbf: now,
    sub: r.subject,
  };
  if (m) claims['kubernetes.io'] = { namespace: m[1], serviceaccount: { name: m[2], uid: '00000000-0000-4000-8000-000000000000' } };
  const key = r.cluster.serviceAccountKey;
  return { token: signJwt({ alg: 'RS256', kid: key.kid }, claims, privateKeyOf(key.keyPem)), expiresOn: now + r.expiresInSeconds };
}

export type AssertionCheck =
  | {
      readonly ok: true;
      readonly iss: string;
      readonly sub: string;
      readonly aud: readonly string[];
      readonly exp: number | undefined;
      readonly nbf: number | undefined;
    }
  | { readonly ok: false; readonly reason: 'malformed' };

/** Reads the claims a federated credential is matched on, without verifying anything yet. */
export function assertionClaims(token: string): AssertionCheck {
  const jwt = decodeJwt(token);
  if (jwt === null) return { ok: false, reason: 'malformed' };
  const iss = stringClaim(jwt.payload, 'iss');
  const sub = stringClaim(jwt.payload, 'sub');
  const audRaw = jwt.payload['aud'];
  const aud = typeof audRaw === 'string' ? [audRaw] : Array.isArray(audRaw) ? audRaw.filter((a): a is string => typeof a === 'string') : [];
  if (iss === undefined || sub === undefined || aud.length === 0) return { ok: false, reason: 'malformed' };
  return { ok: true, iss, sub, aud, exp: numberClaim(jwt.payload, 'exp'), nbf: numberClaim(jwt.payload, 'nbf') };
}

/** The cluster whose issuer (on either listener) is `iss`, and whether the token's signature is its key's. */
export function verifyServiceAccountSignature(em: Emulator, token: string, iss: string): 'valid' | 'invalid' | 'unknown_issuer' {
  const cluster = em.state.clusters.find((c) => em.allBases().some((b) => serviceAccountIssuer(b, c) === iss));
  if (cluster === undefined) return 'unknown_issuer';
  const jwt = decodeJwt(token);
  if (jwt === null || jwt.header['kid'] !== cluster.serviceAccountKey.kid) return 'invalid';
  return signatureValid(jwt, publicKeyOf(cluster.serviceAccountKey.keyPem)) ? 'valid' : 'invalid';
}
