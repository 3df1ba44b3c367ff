import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** What the owner of a watched file does with it: parse new contents, and say what a failed read means. */
export interface WatchedFileHandler {
  /** Called with the file's text whenever it differs from the last text handled. */
  changed(text: string, firstLoad: boolean): void;
  /** Called when a read fails (`ENOENT`, `EACCES`, ...); `loaded` says whether earlier contents stay in force. */
  unreadable(error: string, loaded: boolean): void;
}

/**
 * A file re-read every few seconds so its contents rotate without a restart (Kubernetes rewrites a
 * mounted Secret in place). A read that fails keeps the last good contents; unchanged text (same
 * SHA-256) is not handed on again.
 */
export class WatchedFile {
  private digest: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loadedOnce = false;
  private lastError: string | undefined;

  constructor(
    readonly path: string,
    private readonly handler: WatchedFileHandler,
    private readonly reloadIntervalMs: number = 5_000,
  ) {}

  /** Reads the file once and starts the periodic re-read. */
  async start(): Promise<void> {
    await this.reload();
    if (this.timer === undefined) {
      this.timer = setInterval(() => void this.reload(), this.reloadIntervalMs);
      this.timer.unref();
    }
  }

  /** Re-reads the file now. False when it could not be read (the previous contents stay in force). */
  async reload(): Promise<boolean> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      this.lastError = typeof code === 'string' ? code : 'unreadable';
      this.handler.unreadable(this.lastError, this.loadedOnce);
      return false;
    }
    const digest = createHash('sha256').update(text).digest('hex');
    if (digest === this.digest) return true;
    this.handler.changed(text, !this.loadedOnce);
    this.digest = digest;
    this.loadedOnce = true;
    return true;
  }

  get loaded(): boolean {
    return this.loadedOnce;
  }

  /** Null once the file was read; otherwise why not, naming it as `what` (for `/readyz`). */
  readiness(what: string): string | null {
    return this.loadedOnce ? null : `${what} ${this.path} could not be read${this.lastError ? ` (${this.lastError})` : ''}`;
  }

  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
