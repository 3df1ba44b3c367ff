import { StackChild, type ChildExit, type ChildSpec } from './child.js';

/**
 * The stack's child processes as one unit: started in order, watched for an unexpected exit,
 * stopped sidecar first (so it drains while its upstream and identity provider are still there).
 */

/** How long a child gets between SIGTERM and SIGKILL. */
export const STOP_GRACE_MS = 10_000;

export interface Death {
  readonly child: StackChild;
  readonly exit: ChildExit;
}

export class Processes {
  private readonly children: StackChild[] = [];
  private stopping: Promise<void> | undefined;

  /** `onStart` hears of every new child (dev records the process IDs in `run/stack.json`). */
  constructor(private readonly onStart: (processes: Processes) => void = () => {}) {}

  start(spec: ChildSpec): StackChild {
    const child = new StackChild(spec);
    this.children.push(child);
    this.onStart(this);
    return child;
  }

  /** Process IDs by name, for `run/stack.json`. */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.children.map((c) => [c.name, c.pid]));
  }

  /** The first child to exit, whenever that happens. */
  firstDeath(): Promise<Death> {
    return Promise.race(this.children.map((child) => child.exited.then((exit) => ({ child, exit }))));
  }

  /** A child that has already exited, if any. */
  dead(): StackChild | undefined {
    return this.children.find((c) => !c.running);
  }

  stopAll(graceMs = STOP_GRACE_MS): Promise<void> {
    this.stopping ??= (async () => {
      const sidecarFirst = this.children.filter((c) => c.name === 'sidecar');
      await Promise.all(sidecarFirst.map((c) => c.stop(graceMs)));
      await Promise.all(this.children.filter((c) => c.name !== 'sidecar').map((c) => c.stop(graceMs)));
    })();
    return this.stopping;
  }

  /** SIGKILL to every child still running: a second Ctrl-C, or `dev` exiting without a clean stop. */
  killAll(): void {
    for (const c of this.children) c.kill();
  }
}

export function deathMessage({ child, exit }: Death): string {
  const how = exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code ?? 'unknown'}`;
  return `foundry-auth dev: the ${child.name} ${how}; stopping the stack. Last lines of ${child.logFile}:\n${indent(child.tail())}\n`;
}

/** A child that stopped while starting: its log says why; a port taken in the meantime gets the flag that moves it. */
export function startupDeathMessage(child: StackChild): string {
  const log = child.tail(20);
  let hint = '';
  if (/EADDRINUSE|already in use/.test(log))
    hint = `\n  a port it needs is already in use: choose another with ${portFlags(child.name)} <port>, or 0 for any free port`;
  else if (/state file/.test(log)) hint = '\n  its saved state cannot be used: start over with --fresh';
  return `foundry-auth dev: the ${child.name} stopped while starting${hint}\n  last lines of ${child.logFile}:\n${indent(child.tail())}\n`;
}

function portFlags(name: string): string {
  if (name === 'sidecar') return '--sidecar-port / --admin-port';
  if (name === 'sample backend') return '--backend-port';
  return '--emulator-https-port / --emulator-http-port';
}

function indent(text: string): string {
  return text === ''
    ? '    (empty)'
    : text
        .split('\n')
        .map((l) => `    ${l}`)
        .join('\n');
}
