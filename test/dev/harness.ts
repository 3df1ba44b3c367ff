/**
 * Starts `node dist/cli.js dev` (what `npm start` runs; `npm test` builds dist first) on free ports
 * with its state in a temp directory, as a user would from that directory, and waits for the banner.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export const FREE_PORTS = [
  '--sidecar-port',
  '0',
  '--admin-port',
  '0',
  '--backend-port',
  '0',
  '--emulator-https-port',
  '0',
  '--emulator-http-port',
  '0',
];

export interface DevJson {
  readonly sidecar: string;
  readonly backend: string;
  readonly emulator: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly clusterId: string;
  readonly tokens: Readonly<Record<'alice' | 'bob' | 'carol' | 'inference-client', string>>;
}

export interface DemoCommand {
  readonly id: string;
  readonly title: string;
  readonly command: string;
  readonly expect: string;
}

export interface StackJson {
  readonly pid: number;
  readonly children: Readonly<Record<string, number>>;
  readonly sidecarAdmin: string;
  readonly emulatorAdmin: string;
  readonly caCert: string;
}

export interface DevProcess {
  /** The working directory; the state is in `<cwd>/.foundry-auth`. */
  readonly cwd: string;
  readonly child: ChildProcess;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

export interface ReadyDev extends DevProcess {
  readonly devJson: DevJson;
  readonly commands: readonly DemoCommand[];
  readonly stack: StackJson;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function spawnDev(cwd: string, args: readonly string[] = FREE_PORTS): DevProcess {
  // A stray FOUNDRY_AUTH_* in the user's environment must not reach the stack's sidecar (its required scope would break every call).
  const env = { ...process.env, FOUNDRY_AUTH_REQUIRED_SCOPE: 'not-foundry_access', FOUNDRY_AUTH_LOG_FORMAT: 'pretty' };
  const child = spawn(process.execPath, [CLI, 'dev', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const proc: DevProcess = {
    cwd,
    child,
    stdout: '',
    stderr: '',
    exited: once(child, 'exit').then(([code]) => code as number | null),
  };
  child.stdout.setEncoding('utf8').on('data', (c: string) => (proc.stdout += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (proc.stderr += c));
  return proc;
}

/** Polls until `condition` holds; fails with `what` after the deadline or when the process exits. */
export async function until(proc: DevProcess, condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (proc.child.exitCode !== null)
      throw new Error(`dev exited (${proc.child.exitCode}) before ${what}\nstdout: ${proc.stdout}\nstderr: ${proc.stderr}`);
    if (Date.now() > deadline) throw new Error(`no ${what} within ${timeoutMs} ms\nstdout: ${proc.stdout}\nstderr: ${proc.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startDev(cwd: string, args: readonly string[] = FREE_PORTS): Promise<ReadyDev> {
  const proc = spawnDev(cwd, args);
  await until(proc, () => proc.stdout.includes('Ctrl-C stops everything'), 'banner');
  const state = join(cwd, '.foundry-auth');
  const read = <T>(file: string): T => JSON.parse(readFileSync(join(state, file), 'utf8')) as T;
  return Object.assign(proc, {
    devJson: read<DevJson>('dev.json'),
    commands: read<{ commands: DemoCommand[] }>('commands.json').commands,
    stack: read<StackJson>('run/stack.json'),
  });
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function stateFile(cwd: string, name: string): boolean {
  return existsSync(join(cwd, '.foundry-auth', name));
}

/**
 * Processes whose command line or environment mentions `dir` (every process of a dev stack does:
 * the emulator and backend name their files in it, the sidecar's NODE_EXTRA_CA_CERTS points into it).
 * Linux /proc; elsewhere an empty list.
 */
export function processesUsing(dir: string): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  const found: number[] = [];
  for (const e of entries) {
    const pid = Number(e);
    if (pid === process.pid) continue;
    for (const file of ['cmdline', 'environ']) {
      try {
        if (readFileSync(`/proc/${e}/${file}`).includes(dir)) {
          found.push(pid);
          break;
        }
      } catch {
        // gone, or not ours to read
      }
    }
  }
  return found;
}
