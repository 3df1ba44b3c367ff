/** A throw-away CA and a server certificate for 127.0.0.1/localhost, made with the emulator's pure-Node X.509 code. */
import { newCertificateAuthority, newServerCertificate } from '../../src/offline/emulator/certificates.js';

export interface TestPki {
  /** PEM of the CA certificate (what NODE_EXTRA_CA_CERTS or `ca` must contain). */
  readonly caCert: string;
  /** PEM of the server certificate and its private key. */
  readonly cert: string;
  readonly key: string;
}

export async function testPki(): Promise<TestPki> {
  const now = new Date();
  const ca = await newCertificateAuthority(now);
  const server = await newServerCertificate(ca, ['127.0.0.1', 'localhost'], now);
  return { caCert: ca.certPem, cert: server.certPem, key: server.keyPem };
}
