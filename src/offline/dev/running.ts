import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { EmulatorReadySchema, type EmulatorReady } from './emulator-client.js';
import { readJsonFile, writePrivate } from './files.js';
import { stateLayout, type StateLayout } from './layout.js';

/**
 * A running `dev` stack as seen from its state directory: the lock that lets one `dev` own the
 * directory, and `run/stack.json`, which says how to reach the stack (endpoints, CA, the
 * emulator's admin credential) so that `setup`, `grant`, `doctor` and `token inspect --dev` act on it.
 */

/** Another `dev` holds the state directory. */
export class StateDirLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(
      `another foundry-auth dev (PID ${pid}) is using the state directory ${dir}: stop it first (kill ${pid}), or give this one another --state-dir`,
    );
    this.name = 'StateDirLockedError';
  }
}

/** The lock file holds the owner's PID; a lock whose owner is gone is stale and taken over. */
export function lockStateDir(layout: StateLayout): () => void {
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(layout.lockFile, 'wx', 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = lockOwner(layout.lockFile);
      if (owner !== undefined && owner !== process.pid && isAlive(owner)) throw new StateDirLockedError(layout.dir, owner);
      rmSync(layout.lockFile, { force: true });
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return () => {
      if (lockOwner(layout.lockFile) === process.pid) rmSync(layout.lockFile, { force: true });
    };
  }
  throw new Error(`could not lock the state directory ${layout.dir}: ${layout.lockFile} keeps reappearing`);
}

function lockOwner(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The emulator's admin user (Global Administrator, subscription Owner): what `--dev` signs in as. */
const AdminCredentialSchema = z.object({ userPrincipalName: z.string(), password: z.string() });
export type AdminCredential = z.infer<typeof AdminCredentialSchema>;

const RunningSchema = z.object({
  pid: z.number(),
  children: z.record(z.string(), z.number().optional()),
  sidecar: z.string().optional(),
  sidecarAdmin: z.string().optional(),
  emulatorAdmin: z.string().optional(),
  caCert: z.string().optional(),
  emulator: EmulatorReadySchema.optional(),
  admin: AdminCredentialSchema.optional(),
});
export type RunningFile = z.infer<typeof RunningSchema>;

/** `run/stack.json`: written from the first child on (PIDs), complete once the stack is ready; owner-only (it holds the admin credential). */
export function writeRunningFile(layout: StateLayout, running: RunningFile): void {
  writePrivate(layout.stackJson, `${JSON.stringify(running, null, 2)}\n`);
}

const DevJsonSchema = z.object({ sidecar: z.string(), tenantId: z.string(), clientId: z.string(), clusterId: z.string() });

/** What `--dev` needs of a running stack. */
export interface DevStack {
  /** The state directory as the user gave it (printed fix commands repeat it). */
  readonly stateDir: string;
  readonly sidecar: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clusterId: string;
  readonly emulator: EmulatorReady;
  readonly caCertPem: string;
  readonly admin: AdminCredential;
}

/** `--dev` names a directory without a running, ready stack. */
export class NoDevStackError extends Error {
  constructor(stateDir: string, why: string) {
    super(`--dev ${stateDir}: ${why}: start the stack first (npm start, or foundry-auth dev --state-dir ${stateDir}) and wait for its banner`);
    this.name = 'NoDevStackError';
  }
}

/** Reads the running stack of `stateDir`; NoDevStackError when none is running and ready there. */
export function readDevStack(stateDir: string): DevStack {
  const layout = stateLayout(resolve(stateDir));
  const running = readJsonFile(layout.stackJson, RunningSchema);
  if (running === undefined) throw new NoDevStackError(stateDir, `no foundry-auth dev is running there (${layout.stackJson} is missing)`);
  if (!isAlive(running.pid)) throw new NoDevStackError(stateDir, `the foundry-auth dev that wrote ${layout.stackJson} (PID ${running.pid}) is gone`);
  const dev = readJsonFile(layout.devJson, DevJsonSchema);
  if (running.emulator === undefined || running.admin === undefined || dev === undefined)
    throw new NoDevStackError(stateDir, 'the stack there is still starting');
  let caCertPem: string;
  try {
    caCertPem = readFileSync(running.emulator.caCert, 'utf8');
  } catch {
    throw new NoDevStackError(stateDir, `the emulator's CA certificate ${running.emulator.caCert} cannot be read`);
  }
  return {
    stateDir,
    sidecar: dev.sidecar,
    tenantId: dev.tenantId,
    clientId: dev.clientId,
    clusterId: dev.clusterId,
    emulator: running.emulator,
    caCertPem,
    admin: running.admin,
  };
}
