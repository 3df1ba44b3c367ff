import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import type { Principal } from '../../src/contracts/principal.js';
import type { RbacConfig } from '../../src/config/config.js';
import { CLUSTER_SCOPE, type ArmFixture } from '../fixtures/arm.js';

/** A logger whose JSON lines the test can read (and search for leaked tokens). */
export function captureLog(level: 'debug' | 'info' = 'debug'): { log: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const raw: string[] = [];
  const log = pino({ level }, { write: (line: string) => void raw.push(line) });
  return {
    log,
    get lines() {
      return raw.map((l) => JSON.parse(l) as Record<string, unknown>);
    },
    text: () => raw.join(''),
  };
}

/** `--rbac arm` settings pointing at an ARM stand-in (the fixture, or the emulator's `{ url: armHttp, msiEndpoint: msiHttp }`). */
export function rbacFor(arm: Pick<ArmFixture, 'url' | 'msiEndpoint'>, over: Partial<RbacConfig> = {}): RbacConfig {
  return {
    mode: 'arm',
    scope: CLUSTER_SCOPE,
    armEndpoint: arm.url,
    identity: 'msi-adapter',
    msiEndpoint: arm.msiEndpoint,
    allowTtlMs: 300_000,
    denyTtlMs: 30_000,
    staleIfErrorMs: 0,
    timeoutMs: 5_000,
    armReadRate: 10,
    ...over,
  };
}

/** A distinct, valid object ID per number. */
export function oid(n: number): string {
  return `a1b2c3d4-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export function user(id: string): Principal {
  return { type: 'user', oid: id, tid: '72f988bf-86f1-41af-91ab-2d7cd011db47' };
}

/** A loopback port nothing listens on. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
