import { writeSync } from 'node:fs';

/** What pino needs of a destination, plus the synchronous flush used at exit. */
export interface LineDestination {
  write(line: string): boolean;
  flush(done?: (err?: Error) => void): void;
  flushSync(): void;
}

export interface LineWriterOptions {
  /** File descriptor to append to (1 = stdout). */
  readonly fd: number;
  /** Write as soon as this many characters are pending. */
  readonly batchChars?: number;
  /** Write what is pending at the latest after this long. */
  readonly intervalMs?: number;
  /** Above this many pending characters (a consumer that stopped reading) lines are dropped and counted, not held. */
  readonly maxPendingChars?: number;
  /** The system call; `fs.writeSync` unless a test stands in for a pipe that is full or closed. */
  readonly writeSync?: (fd: number, buffer: Buffer) => number;
}

const writers = new Set<BatchedLineWriter>();
let exitHookInstalled = false;

function flushAllAtExit(): void {
  for (const writer of writers) writer.flushSync();
}

/**
 * Log lines collected in memory and appended to a file descriptor in batches, like nginx's
 * buffered `access_log`: one `write(2)` per 64 KiB or per 100 ms, made from the event loop's own
 * thread, and whatever is pending written before the process exits.
 *
 * Why not pino's own destination (sonic-boom): in its asynchronous mode every write is a hand-off
 * to libuv's thread pool, which on a pinned or busy CPU costs a context switch per batch; and in
 * its string mode each appended line measures the byte length of the whole pending batch again,
 * so a batch costs quadratically in its size (6 µs per 400-character line at 4 KiB batches, 13 µs
 * at 32 KiB, against 1 µs here). docs/PERFORMANCE.md has the measurements.
 *
 * A reader that is behind (a non-blocking pipe answering EAGAIN) keeps the lines pending and the
 * write is retried shortly; past `maxPendingChars` lines are dropped, counted, and a warning line
 * says how many. A reader that is gone (EPIPE) ends the writing.
 */
export class BatchedLineWriter implements LineDestination {
  readonly #fd: number;
  readonly #batchChars: number;
  readonly #intervalMs: number;
  readonly #maxPendingChars: number;
  readonly #writeSync: (fd: number, buffer: Buffer) => number;
  #pending: string[] = [];
  #pendingChars = 0;
  /** Bytes a short write or EAGAIN left unwritten; they go out before anything pending. */
  #remainder: Buffer | undefined;
  #timer: NodeJS.Timeout | undefined;
  #dropped = 0;
  #broken = false;

  constructor(opts: LineWriterOptions) {
    this.#fd = opts.fd;
    this.#batchChars = opts.batchChars ?? 64 * 1024;
    this.#intervalMs = opts.intervalMs ?? 100;
    this.#maxPendingChars = opts.maxPendingChars ?? 64 * 1024 * 1024;
    this.#writeSync = opts.writeSync ?? writeSync;
    writers.add(this);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', flushAllAtExit);
    }
  }

  /** Lines dropped and not yet reported because the reader was behind. */
  get dropped(): number {
    return this.#dropped;
  }

  write(line: string): boolean {
    if (this.#broken) return false;
    if (this.#pendingChars + line.length > this.#maxPendingChars) {
      this.#dropped += 1;
      return false;
    }
    this.#pending.push(line);
    this.#pendingChars += line.length;
    if (this.#pendingChars >= this.#batchChars && this.#remainder === undefined) this.#writeOut();
    else this.#timer ??= setTimeout(this.#onTimer, this.#intervalMs).unref();
    return true;
  }

  /** Writes what is pending; `done` runs when it is out (or could not be written now). */
  flush(done?: (err?: Error) => void): void {
    this.#writeOut();
    if (done !== undefined) queueMicrotask(() => done());
  }

  /** Writes everything pending before returning, waiting out a reader that is behind (exit paths). */
  flushSync(): void {
    for (let attempts = 0; attempts < 10_000 && !this.#broken && this.#hasWork(); attempts++) {
      if (!this.#writeOut()) Atomics.wait(PAUSE, 0, 0, 1);
    }
  }

  #hasWork(): boolean {
    return this.#remainder !== undefined || this.#pending.length > 0 || this.#dropped > 0;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#writeOut();
  };

  /** One attempt to write everything; false when the reader was behind and something is left. */
  #writeOut(): boolean {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#broken) return true;
    let buffer = this.#remainder ?? this.#takeBatch();
    this.#remainder = undefined;
    while (buffer !== undefined) {
      try {
        const written = this.#writeSync(this.#fd, buffer);
        buffer = written < buffer.length ? buffer.subarray(written) : this.#takeBatch();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.#remainder = buffer;
          this.#timer ??= setTimeout(this.#onTimer, RETRY_MS).unref();
          return false;
        }
        // EPIPE and the like: nobody reads the log any more. Stop writing rather than fail requests.
        this.#broken = true;
        this.#pending = [];
        this.#pendingChars = 0;
        return true;
      }
    }
    return true;
  }

  /** Everything pending as one buffer (with the dropped-lines warning first), or undefined. */
  #takeBatch(): Buffer | undefined {
    if (this.#dropped > 0) {
      this.#pending.unshift(
        `{"level":40,"time":${Date.now()},"msg":"log lines dropped: the log's reader was not keeping up","dropped":${this.#dropped}}\n`,
      );
      this.#dropped = 0;
    }
    if (this.#pending.length === 0) return undefined;
    const text = this.#pending.length === 1 ? this.#pending[0]! : this.#pending.join('');
    this.#pending = [];
    this.#pendingChars = 0;
    return Buffer.from(text, 'utf8');
  }
}

const RETRY_MS = 10;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
