import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** What a poll found: the text when it changed since the last good read, nothing when unchanged, or why it could not be read. */
export type FileRead =
  | { readonly kind: 'changed'; readonly text: string; readonly digest: string }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'unreadable'; readonly error: string };

/**
 * A configuration file re-read on an interval (Kubernetes mounts Secrets and ConfigMaps by swapping
 * a symlink, which inotify-based watching misses; a poll sees it). Only a change of content is
 * reported; the owner decides what a change means and calls `accept` once it took the text, so a
 * text it refused is offered again on the next poll (and logged again: the operator sees it until fixed).
 */
export class PolledFile {
  private digest: string | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly intervalMs: number,
  ) {}

  async read(): Promise<FileRead> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      return { kind: 'unreadable', error: typeof code === 'string' ? code : 'unreadable' };
    }
    const digest = createHash('sha256').update(text).digest('hex');
    return digest === this.digest ? { kind: 'unchanged' } : { kind: 'changed', text, digest };
  }

  /** Marks a read's text as taken: the same content is not reported again. */
  accept(read: { readonly digest: string }): void {
    this.digest = read.digest;
  }

  /** Calls `poll` every interval (unref'd: it never keeps the process alive). */
  every(poll: () => Promise<unknown>): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void poll(), this.intervalMs);
    this.timer.unref();
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
