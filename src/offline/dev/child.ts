import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * One process of the local stack: `node dist/cli.js <command> ...` with stdout and stderr appended
 * to a log file, stopped with SIGTERM and then SIGKILL after a grace.
 */

/** The CLI this file was compiled next to (`dist/cli.js`), so children run the same build as `dev`. */
export const CLI_PATH = fileURLToPath(new URL('../../cli.js', import.meta.url));

export interface ChildSpec {
  /** Names the process in messages: `emulator`, `sample backend`, `sidecar`. */
  readonly name: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly env?: Readonly<Record<string, string>>;
}

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The user's environment without `FOUNDRY_AUTH_*`: the stack's settings are dev's flags alone, so it starts the same everywhere. */
export function stackEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.toUpperCase().startsWith('FOUNDRY_AUTH_')));
}

export class StackChild {
  readonly name: string;
  readonly logFile: string;
  readonly exited: Promise<ChildExit>;
  private readonly process: ChildProcess;
  private exit: ChildExit | undefined;

  constructor(spec: ChildSpec) {
    this.name = spec.name;
    this.logFile = spec.logFile;
    const log = openSync(spec.logFile, 'w', 0o600);
    try {
      // Own process group: a terminal's Ctrl-C reaches `dev` alone, which then stops the children in order.
      this.process = spawn(process.execPath, [CLI_PATH, ...spec.args], {
        stdio: ['ignore', log, log],
        env: { ...stackEnvironment(process.env), ...spec.env },
        detached: true,
      });
    } finally {
      closeSync(log);
    }
    this.exited = new Promise((resolve) => {
      this.process.once('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      });
      this.process.once('error', () => {
        this.exit = { code: 127, signal: null };
        resolve(this.exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** SIGTERM, then SIGKILL when the process is still there after `graceMs`. */
  async stop(graceMs: number): Promise<ChildExit> {
    if (this.exit !== undefined) return this.exit;
    this.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.process.kill('SIGKILL');
        resolve();
      }, graceMs);
    });
    await Promise.race([this.exited, killed]);
    clearTimeout(timer);
    return this.exited;
  }

  /** Last resort when `dev` itself is exiting abruptly: synchronous, no waiting. */
  kill(): void {
    if (this.exit === undefined) this.process.kill('SIGKILL');
  }

  /** The log file's last lines, for a message about why the process stopped. */
  tail(lines = 8): string {
    let text: string;
    try {
      text = readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}
