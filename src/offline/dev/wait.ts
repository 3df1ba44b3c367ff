import type { StackChild } from './child.js';

/** Polling for a condition a child process brings about (a ready file, a log line, a 200), with a deadline. */

export class ChildDiedError extends Error {
  constructor(readonly child: StackChild) {
    super(`the ${child.name} stopped while starting`);
    this.name = 'ChildDiedError';
  }
}

/** Ctrl-C (or SIGTERM) arrived while the stack was starting. */
export class StartupAborted extends Error {
  constructor() {
    super('start-up interrupted');
    this.name = 'StartupAborted';
  }
}

export interface WaitOptions {
  /** Names what is awaited in the timeout message. */
  readonly what: string;
  /** Waiting ends early when this process exits. */
  readonly child: StackChild;
  readonly signal: AbortSignal;
  readonly timeoutMs: number;
  readonly intervalMs?: number;
}

/** Resolves with the first defined value of `probe`; rejects when the child dies, the signal fires or the deadline passes. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, opts: WaitOptions): Promise<T> {
  const deadline = performance.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 25;
  for (;;) {
    if (opts.signal.aborted) throw new StartupAborted();
    const value = await probe();
    if (value !== undefined) return value;
    if (!opts.child.running) throw new ChildDiedError(opts.child);
    if (performance.now() > deadline)
      throw new Error(`${opts.what} was not ready within ${Math.round(opts.timeoutMs / 1000)} s; see ${opts.child.logFile}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}
