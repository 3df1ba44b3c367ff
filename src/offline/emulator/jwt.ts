import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

/** Compact JWS (RS256) encode/decode for tokens the emulator issues and checks. */

export type Claims = Record<string, unknown>;

export interface DecodedJwt {
  readonly header: Claims;
  readonly payload: Claims;
  readonly signingInput: string;
  readonly signature: Buffer;
}

export function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export function signJwt(header: Claims, payload: Claims, key: KeyObject): string {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

function parseObject(segment: string): Claims | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Claims) : null;
  } catch {
    return null;
  }
}

/** Splits and parses a compact JWS without checking anything; null when it is not one. */
export function decodeJwt(token: string): DecodedJwt | null {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  const [h = '', p = '', s = ''] = parts;
  if (!/^[A-Za-z0-9_-]+$/.test(h + p + s)) return null;
  const header = parseObject(h);
  const payload = parseObject(p);
  if (header === null || payload === null) return null;
  return { header, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
}

export function signatureValid(jwt: DecodedJwt, key: KeyObject): boolean {
  return jwt.header['alg'] === 'RS256' && verify('sha256', Buffer.from(jwt.signingInput), key, jwt.signature);
}

const privateKeys = new Map<string, KeyObject>();

/** The private KeyObject for a PKCS#8 PEM (parsed once). */
export function privateKeyOf(pem: string): KeyObject {
  let key = privateKeys.get(pem);
  if (key === undefined) {
    key = createPrivateKey(pem);
    if (privateKeys.size > 1000) privateKeys.clear();
    privateKeys.set(pem, key);
  }
  return key;
}

export function publicKeyOf(pem: string): KeyObject {
  return createPublicKey(privateKeyOf(pem));
}

/** RSA public key members for a JWK. */
export function rsaPublicJwk(pem: string): { n: string; e: string } {
  const jwk = publicKeyOf(pem).export({ format: 'jwk' });
  return { n: String(jwk.n), e: String(jwk.e) };
}

export function stringClaim(c: Claims, name: string): string | undefined {
  const v = c[name];
  return typeof v === 'string' ? v : undefined;
}

export function numberClaim(c: Claims, name: string): number | undefined {
  const v = c[name];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
