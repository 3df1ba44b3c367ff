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
  /**
   * Lines not yet handed to write(2), UTF-8 encoded into this buffer as they come: no string per
   * batch to join and encode again (half the cost per line of join + Buffer.from, measured).
   */
  readonly #batch: Buffer;
  #used = 0;
  /** Full batches copied out of `#batch` while the reader was behind, oldest first. */
  #parked: Buffer[] = [];
  #parkedBytes = 0;
  /** Bytes a short write or EAGAIN left unwritten (always a copy); they go out before anything else. */
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
    this.#batch = Buffer.allocUnsafe(Math.max(2 * this.#batchChars, 128 * 1024));
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
    if (this.#parkedBytes + this.#used + line.length > this.#maxPendingChars) {
      this.#dropped += 1;
      return false;
    }
    // A UTF-16 code unit is at most 3 bytes of UTF-8: a line of this length always fits the rest of the batch.
    if (line.length * 3 > this.#batch.length - this.#used) {
      if (this.#remainder === undefined) this.#writeOut();
      this.#park();
    }
    if (line.length * 3 > this.#batch.length) this.#parkBytes(Buffer.from(line, 'utf8'));
    else this.#used += this.#batch.write(line, this.#used, 'utf8');
    // A full batch, or bytes parked (a line longer than the batch) while the reader keeps up, go out now.
    if ((this.#used >= this.#batchChars || this.#parkedBytes > 0) && this.#remainder === undefined) this.#writeOut();
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
    return this.#remainder !== undefined || this.#parkedBytes > 0 || this.#used > 0 || this.#dropped > 0;
  }

  readonly #onTimer = (): void => {
    this.#timer = undefined;
    this.#writeOut();
  };

  /** What is in the batch, copied out so the batch can take more lines while the reader is behind. */
  #park(): void {
    if (this.#used === 0) return;
    this.#parkBytes(Buffer.from(this.#batch.subarray(0, this.#used)));
    this.#used = 0;
  }

  /** Called with the batch empty (`#park` first), so the order of lines holds. */
  #parkBytes(bytes: Buffer): void {
    this.#parked.push(bytes);
    this.#parkedBytes += bytes.length;
  }

  /** One attempt to write everything; false when the reader was behind and something is left. */
  #writeOut(): boolean {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#broken) return true;
    let buffer = this.#remainder ?? this.#next();
    this.#remainder = undefined;
    while (buffer !== undefined) {
      const bytes = buffer;
      try {
        const written = this.#writeSync(this.#fd, bytes);
        // The batch's own bytes are overwritten by the next lines: what is left of them is kept as a copy.
        buffer = written < bytes.length ? Buffer.from(bytes.subarray(written)) : this.#next();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
          this.#remainder = Buffer.from(bytes);
          this.#timer ??= setTimeout(this.#onTimer, RETRY_MS).unref();
          return false;
        }
        // EPIPE and the like: nobody reads the log any more. Stop writing rather than fail requests.
        this.#broken = true;
        this.#parked = [];
        this.#parkedBytes = 0;
        this.#used = 0;
        return true;
      }
    }
    return true;
  }

  /** The next bytes to write, in order: the dropped-lines warning, parked batches, the batch itself; undefined when nothing is pending. */
  #next(): Buffer | undefined {
    if (this.#dropped > 0) {
      const warning = `{"level":40,"time":${Date.now()},"msg":"log lines dropped: the log's reader was not keeping up","dropped":${this.#dropped}}\n`;
      this.#dropped = 0;
      return Buffer.from(warning, 'utf8');
    }
    const parked = this.#parked.shift();
    if (parked !== undefined) {
      this.#parkedBytes -= parked.length;
      return parked;
    }
    if (this.#used === 0) return undefined;
    const pending = this.#batch.subarray(0, this.#used);
    this.#used = 0;
    return pending;
  }
}

const RETRY_MS = 10;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
