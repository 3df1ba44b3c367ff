import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { Principal } from '../../src/contracts/principal.js';
import type { RbacConfig } from '../../src/config/config.js';
import type { RouteMatch } from '../../src/contracts/route.js';
import type { AccessSnapshot, AccessSource } from '../../src/authz/source.js';

const ACCOUNTS = 'Microsoft.CognitiveServices/accounts';

/** The default routes of SPEC section 5 that the tests decide. */
export const ROUTES = {
  chat: { name: 'POST /v1/chat/completions', plane: 'data', action: `${ACCOUNTS}/OpenAI/deployments/chat/completions/action`, dataAction: true },
  embeddings: { name: 'POST /v1/embeddings', plane: 'data', action: `${ACCOUNTS}/OpenAI/deployments/embeddings/action`, dataAction: true },
  models: { name: 'GET /v1/models', plane: 'data', action: `${ACCOUNTS}/OpenAI/models/read`, dataAction: true },
  deploymentsRead: { name: 'GET /api/v1/**', plane: 'control', action: `${ACCOUNTS}/deployments/read`, dataAction: false },
  deploymentsWrite: { name: 'POST /api/v1/**', plane: 'control', action: `${ACCOUNTS}/deployments/write`, dataAction: false },
  deploymentsDelete: { name: 'DELETE /api/v1/**', plane: 'control', action: `${ACCOUNTS}/deployments/delete`, dataAction: false },
} as const satisfies Record<string, RouteMatch>;

export const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const OTHER_TENANT = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
export const SUB = '00000000-1111-2222-3333-444444444444';
export const OTHER_SUB = '99999999-1111-2222-3333-444444444444';
export const RG = `/subscriptions/${SUB}/resourceGroups/rg`;
export const CLUSTER = `${RG}/providers/Microsoft.Kubernetes/connectedClusters/c1`;

/** A distinct, valid object ID per number. */
export function oid(n: number): string {
  return `11111111-2222-3333-4444-${n.toString(16).padStart(12, '0')}`;
}

export function user(id: string, tid: string = TENANT): Principal {
  return { type: 'user', oid: id, tid };
}

export function rbacConfig(over: Partial<RbacConfig> = {}): RbacConfig {
  return {
    mode: 'static',
    armEndpoint: 'https://management.azure.com',
    identity: 'auto',
    msiEndpoint: 'http://127.0.0.1:8421/metadata/identity/oauth2/token',
    allowTtlMs: 300_000,
    denyTtlMs: 30_000,
    staleIfErrorMs: 0,
    timeoutMs: 10_000,
    armReadRate: 10,
    ...over,
  };
}

/** A logger that keeps its JSON lines for assertions. */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

/** A temporary directory removed by the returned cleanup. */
export function tempDir(): { dir: string; file: (name: string, text: string) => string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'foundry-auth-authz-'));
  return {
    dir,
    file: (name, text) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * An in-memory AccessSource that counts lookups. `answer` decides each lookup; lookups can be held
 * open with `hold()` and released with `release()` so tests control concurrency.
 */
export class CountingSource implements AccessSource {
  readonly kind = 'arm' as const;
  lookups = 0;
  readonly lookupsByKey = new Map<string, number>();
  private gate: Promise<void> | undefined;
  private open: (() => void) | undefined;

  constructor(public answer: (principal: Principal) => AccessSnapshot | Promise<AccessSnapshot>) {}

  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
    this.gate = undefined;
  }

  async lookup(principal: Principal): Promise<AccessSnapshot> {
    this.lookups++;
    const key = `${principal.tid}|${principal.oid}`;
    this.lookupsByKey.set(key, (this.lookupsByKey.get(key) ?? 0) + 1);
    if (this.gate !== undefined) await this.gate;
    return this.answer(principal);
  }

  async readiness(): Promise<string | null> {
    return null;
  }

  async close(): Promise<void> {}
}
