import { createHash, createPrivateKey, createPublicKey, generateKeyPair, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import { bitString, boolean, explicit, implicitPrimitive, integer, nullValue, octetString, oid, sequence, set, time, utf8String } from './der.js';

/**
 * X.509 certificates for the emulator: a local CA, the HTTPS server certificate it signs, and the
 * self-signed certificates Entra publishes in `x5c` for each token signing key.
 */

const generateRsa = promisify(generateKeyPair);

export interface KeyAndCert {
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  readonly certPem: string;
}

const SHA256_WITH_RSA = sequence(oid('1.2.840.113549.1.1.11'), nullValue());
const DAY_MS = 86_400_000;

export async function newRsaKeyPem(): Promise<string> {
  // PEM straight from the generation: exporting a generated KeyObject can deadlock Node 20 when a
  // garbage collection during the export finalizes the job that made the key (it takes the key's lock).
  const { privateKey } = await generateRsa('rsa', {
    modulusLength: 2048,
    publicExponent: 0x10001,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return privateKey;
}

function name(commonName: string): Buffer {
  return sequence(set(sequence(oid('2.5.4.10'), utf8String('foundry-auth emulator'))), set(sequence(oid('2.5.4.3'), utf8String(commonName))));
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function keyIdentifier(spki: Buffer): Buffer {
  return createHash('sha1').update(spki).digest();
}

function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  const [head = '', tail = ''] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === '' ? [] : tail.split(':');
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

interface CertificateRequest {
  readonly subject: string;
  readonly subjectKey: KeyObject;
  readonly issuer: string;
  readonly issuerKey: KeyObject;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: readonly Buffer[];
}

function certificate(req: CertificateRequest): Buffer {
  const tbs = sequence(
    explicit(0, integer(Buffer.from([2]))),
    integer(Buffer.concat([Buffer.from([0x01]), randomBytes(15)])),
    SHA256_WITH_RSA,
    name(req.issuer),
    sequence(time(req.notBefore), time(req.notAfter)),
    name(req.subject),
    spkiOf(req.subjectKey),
    explicit(3, sequence(...req.extensions)),
  );
  const signature = sign('sha256', tbs, req.issuerKey);
  return sequence(tbs, SHA256_WITH_RSA, bitString(signature));
}

export function derToPem(der: Buffer): string {
  const b64 = der
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

function spkiOf(key: KeyObject): Buffer {
  return createPublicKey(key).export({ type: 'spki', format: 'der' });
}

/** A CA valid for ten years, allowed to sign server certificates only (pathLen 0). */
export async function newCertificateAuthority(now: Date): Promise<KeyAndCert> {
  const keyPem = await newRsaKeyPem();
  const key = createPrivateKey(keyPem);
  const ski = keyIdentifier(spkiOf(key));
  const der = certificate({
    subject: 'foundry-auth emulator local CA',
    subjectKey: key,
    issuer: 'foundry-auth emulator local CA',
    issuerKey: key,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + 3650 * DAY_MS),
    extensions: [
      extension('2.5.29.19', true, sequence(boolean(true), integer(Buffer.from([0])))),
      extension('2.5.29.15', true, bitString(Buffer.from([0x06]), 1)),
      extension('2.5.29.14', false, octetString(ski)),
    ],
  });
  return { keyPem, certPem: derToPem(der) };
}

/** A server certificate for `hosts` (DNS names and IP addresses), signed by the CA, valid for 825 days. */
export async function newServerCertificate(ca: KeyAndCert, hosts: readonly string[], now: Date): Promise<KeyAndCert> {
  const keyPem = await newRsaKeyPem();
  const key = createPrivateKey(keyPem);
  const caKey = createPrivateKey(ca.keyPem);
  const sans = hosts.map((h) => (isIP(h) ? implicitPrimitive(7, ipBytes(h)) : implicitPrimitive(2, Buffer.from(h, 'ascii'))));
  const der = certificate({
    subject: hosts[0] ?? 'localhost',
    subjectKey: key,
    issuer: 'foundry-auth emulator local CA',
    issuerKey: caKey,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + 825 * DAY_MS),
    extensions: [
      extension('2.5.29.19', true, sequence()),
      extension('2.5.29.15', true, bitString(Buffer.from([0xa0]), 5)),
      extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'))),
      extension('2.5.29.17', false, sequence(...sans)),
      extension('2.5.29.14', false, octetString(keyIdentifier(spkiOf(key)))),
      extension('2.5.29.35', false, sequence(implicitPrimitive(0, keyIdentifier(spkiOf(caKey))))),
    ],
  });
  return { keyPem, certPem: derToPem(der) };
}

/** The self-signed certificate Entra publishes in a JWKS entry's `x5c` (CN=accounts.accesscontrol.windows.net). */
export function selfSignedSigningCertificate(key: KeyObject, now: Date): Buffer {
  return certificate({
    subject: 'accounts.accesscontrol.windows.net',
    subjectKey: key,
    issuer: 'accounts.accesscontrol.windows.net',
    issuerKey: key,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + 5 * 365 * DAY_MS),
    extensions: [extension('2.5.29.14', false, octetString(keyIdentifier(spkiOf(key))))],
  });
}
