import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** What a poll found: the text when it changed since the last read, nothing when unchanged, or why it could not be read. */
export type FileRead =
  | { readonly kind: 'changed'; readonly text: string }
  | { readonly kind: 'unchanged' }
  | { readonly kind: 'unreadable'; readonly error: string };

/**
 * A configuration file re-read on an interval (Kubernetes mounts Secrets and ConfigMaps by swapping
 * a symlink, which inotify-based watching misses; a poll sees it). Each content is reported once:
 * an owner that refuses a text (invalid) hears of the file again only when it changes.
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
    if (digest === this.digest) return UNCHANGED;
    this.digest = digest;
    return { kind: 'changed', text };
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

const UNCHANGED: FileRead = { kind: 'unchanged' };
