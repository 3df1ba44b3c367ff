import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, basename, join } from 'node:path';
import { systemClock, type Clock } from '../../ops/clock.js';
import { silentLogger, type Logger } from '../../ops/log.js';
import { newServerCertificate } from './certificates.js';
import { Emulator } from './core.js';
import { closeListeners, startListeners } from './server.js';
import { DEFAULT_SEED, initialState, readStateFile } from './state.js';

/**
 * `startEmulator`: the local Entra ID + Microsoft Graph + ARM + managed-identity emulator, in
 * process. The `foundry-auth emulator` command is a thin wrapper around it.
 */

export { DEFAULT_SEED } from './state.js';
export type { Emulator } from './core.js';

export interface EmulatorOptions {
  /** Loopback address to bind (default 127.0.0.1). */
  readonly host?: string;
  /** 0 (the default here) picks a free port. */
  readonly httpsPort?: number;
  readonly httpPort?: number;
  /** Persist everything (CA, keys, directory, ARM) here; restarting with the same file restores it. */
  readonly stateFile?: string;
  /** The seeded default tenant (default DEFAULT_SEED.tenantId); ignored when a state file exists. */
  readonly tenantId?: string;
  /** Base clock; the admin API moves the emulator clock relative to it. */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Items per ARM / Graph page (small values exercise `nextLink` paging). */
  readonly armPageSize?: number;
  readonly graphPageSize?: number;
}

export interface EmulatorEndpoints {
  readonly https: string;
  readonly http: string;
  readonly authority: string;
  /** The same HTTPS listener named `localhost`: the Azure CLI's sign-in host, apart from Graph and ARM on 127.0.0.1 (az picks a token's resource by URL prefix). */
  readonly signIn: string;
  readonly authorityHttp: string;
  readonly graph: string;
  readonly graphHttp: string;
  readonly arm: string;
  readonly armHttp: string;
  readonly msi: string;
  readonly msiHttp: string;
  readonly admin: string;
  readonly caCert: string;
  readonly tenantId: string;
  readonly subscriptionId: string | null;
  readonly stateFile: string | null;
}

export interface RunningEmulator {
  readonly endpoints: EmulatorEndpoints;
  /** The local CA certificate (PEM) that signed the HTTPS server certificate. */
  readonly caCertPem: string;
  readonly emulator: Emulator;
  close(): Promise<void>;
}

/** The certificate also names login.microsoftonline.com: the proxy answers MSAL's instance discovery there (proxy.ts). */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1', 'login.microsoftonline.com'];

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Where the CA certificate is written: next to the state file (`emulator.json` -> `emulator.ca.pem`), else a private temp dir. */
function caPath(stateFile: string | undefined): { file: string; tempDir?: string } {
  if (stateFile === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'foundry-auth-emulator-'));
    return { file: join(dir, 'ca.pem'), tempDir: dir };
  }
  const name = basename(stateFile).replace(/\.json$/i, '');
  return { file: join(dirname(stateFile), `${name}.ca.pem`) };
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<RunningEmulator> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopbackHost(host))
    throw new Error(
      `--host must be a loopback address (127.0.0.0/8, ::1 or localhost), got "${host}": the emulator mints tokens for anyone who asks`,
    );
  const clock = opts.clock ?? systemClock;
  const log = opts.logger ?? silentLogger();
  const hosts = [...new Set([...LOOPBACK_NAMES, host])];
  let state = opts.stateFile === undefined ? undefined : readStateFile(opts.stateFile);
  if (state === undefined) state = await initialState({ tenantId: (opts.tenantId ?? DEFAULT_SEED.tenantId).toLowerCase(), hosts, now: clock.now() });
  if (opts.armPageSize !== undefined) state.settings.armPageSize = opts.armPageSize;
  if (opts.graphPageSize !== undefined) state.settings.graphPageSize = opts.graphPageSize;
  // A server certificate that no longer covers the host or is about to expire is re-issued by the same CA.
  const cert = new X509Certificate(state.server.certPem);
  if (!hosts.every((h) => state.server.hosts.includes(h)) || Date.parse(cert.validTo) < Date.now() + 7 * 86_400_000) {
    state.server = { ...(await newServerCertificate(state.ca, hosts, new Date())), hosts };
  }
  const em = new Emulator(state, opts.stateFile, clock, log);
  em.changed();
  const ca = caPath(opts.stateFile);
  writeFileSync(ca.file, state.ca.certPem, { mode: 0o644 });
  let endpoints: EmulatorEndpoints | undefined;
  const admin = { em, endpoints: () => ({ ...(endpoints ?? {}) }) };
  const listeners = await startListeners(em, admin, { host, httpsPort: opts.httpsPort ?? 0, httpPort: opts.httpPort ?? 0 });
  const { https, http } = em.bases;
  endpoints = {
    https,
    http,
    authority: https,
    signIn: `https://localhost:${new URL(https).port}`,
    authorityHttp: http,
    graph: `${https}/graph`,
    graphHttp: `${http}/graph`,
    arm: `${https}/arm`,
    armHttp: `${http}/arm`,
    msi: `${https}/msi/metadata/identity/oauth2/token`,
    msiHttp: `${http}/msi/metadata/identity/oauth2/token`,
    admin: `${http}/_emulator`,
    caCert: ca.file,
    tenantId: em.state.defaultTenantId,
    subscriptionId: em.state.subscriptions.find((s) => s.tenantId === em.state.defaultTenantId)?.id ?? null,
    stateFile: opts.stateFile ?? null,
  };
  const ready = endpoints;
  let closed = false;
  return {
    endpoints: ready,
    caCertPem: state.ca.certPem,
    emulator: em,
    async close() {
      if (closed) return;
      closed = true;
      await closeListeners(listeners);
      if (ca.tempDir !== undefined) rmSync(ca.tempDir, { recursive: true, force: true });
    },
  };
}
