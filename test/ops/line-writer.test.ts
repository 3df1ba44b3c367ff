import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BatchedLineWriter } from '../../src/ops/line-writer.js';

/** A stand-in for write(2) on a pipe: accepts, refuses with EAGAIN, writes short, or is closed. */
class FakePipe {
  written = '';
  calls = 0;
  mode: 'open' | 'full' | 'closed' = 'open';
  /** Largest write accepted at once (a short write returns less). */
  maxPerWrite = Number.POSITIVE_INFINITY;

  readonly write = (_fd: number, buffer: Buffer): number => {
    this.calls += 1;
    if (this.mode === 'full') throw Object.assign(new Error('EAGAIN: resource temporarily unavailable, write'), { code: 'EAGAIN' });
    if (this.mode === 'closed') throw Object.assign(new Error('EPIPE: broken pipe, write'), { code: 'EPIPE' });
    const n = Math.min(buffer.length, this.maxPerWrite);
    this.written += buffer.subarray(0, n).toString('utf8');
    return n;
  };
}

const line = (i: number): string => `{"level":30,"msg":"request","n":${i}}\n`;

describe('BatchedLineWriter', () => {
  let pipe: FakePipe;
  beforeEach(() => {
    vi.useFakeTimers();
    pipe = new FakePipe();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('holds short lines until the interval ends, then writes them in one call, in order', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 4096, intervalMs: 100, writeSync: pipe.write });
    for (let i = 0; i < 5; i++) expect(writer.write(line(i))).toBe(true);
    expect(pipe.calls).toBe(0);
    vi.advanceTimersByTime(99);
    expect(pipe.calls).toBe(0);
    vi.advanceTimersByTime(1);
    expect(pipe.calls).toBe(1);
    expect(pipe.written).toBe([0, 1, 2, 3, 4].map(line).join(''));
  });

  it('writes at once when a batch is full', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: line(0).length * 3, writeSync: pipe.write });
    writer.write(line(0));
    writer.write(line(1));
    expect(pipe.calls).toBe(0);
    writer.write(line(2));
    expect(pipe.calls).toBe(1);
    expect(pipe.written).toBe(line(0) + line(1) + line(2));
  });

  it('finishes a short write before anything else', () => {
    pipe.maxPerWrite = 7;
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 1, writeSync: pipe.write });
    writer.write('héllo wörld, this is longer than seven bytes\n');
    writer.write('second\n');
    expect(pipe.written).toBe('héllo wörld, this is longer than seven bytes\nsecond\n');
  });

  it('keeps lines while the reader is behind (EAGAIN), retries, and writes them once it reads again', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 1, writeSync: pipe.write });
    pipe.mode = 'full';
    writer.write(line(0));
    writer.write(line(1));
    expect(pipe.written).toBe('');
    pipe.mode = 'open';
    vi.advanceTimersByTime(10);
    expect(pipe.written).toBe(line(0) + line(1));
  });

  it('keeps every line in order while the reader is behind for longer than one batch buffer holds', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 1, writeSync: pipe.write });
    pipe.mode = 'full';
    const lines = Array.from({ length: 15_000 }, (_, i) => line(i));
    for (const l of lines) expect(writer.write(l)).toBe(true);
    expect(lines.join('').length).toBeGreaterThan(4 * 128 * 1024);
    pipe.mode = 'open';
    vi.advanceTimersByTime(10);
    expect(pipe.written).toBe(lines.join(''));
  });

  it('writes a line longer than its batch buffer whole, between the lines around it', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 4096, writeSync: pipe.write });
    const long = `{"msg":"${'é'.repeat(100_000)}"}\n`;
    writer.write(line(0));
    writer.write(long);
    expect(pipe.written).toBe(line(0) + long);
    writer.write(line(1));
    writer.flushSync();
    expect(pipe.written).toBe(line(0) + long + line(1));
  });

  it('drops lines past its memory bound while the reader is behind, and says how many were dropped', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 1, maxPendingChars: line(0).length * 2, writeSync: pipe.write });
    pipe.mode = 'full';
    writer.write(line(0)); // taken into the write that failed
    expect(writer.write(line(1))).toBe(true);
    expect(writer.write(line(2))).toBe(true);
    expect(writer.write(line(3))).toBe(false);
    expect(writer.write(line(4))).toBe(false);
    expect(writer.dropped).toBe(2);
    pipe.mode = 'open';
    vi.advanceTimersByTime(10);
    const lines = pipe.written.trimEnd().split('\n');
    expect(lines[0]).toBe(line(0).trimEnd());
    const notice = JSON.parse(lines[1]!) as { level: number; msg: string; dropped: number };
    expect(notice).toMatchObject({ level: 40, dropped: 2 });
    expect(notice.msg).toContain('dropped');
    expect(lines.slice(2)).toEqual([line(1).trimEnd(), line(2).trimEnd()]);
    expect(writer.dropped).toBe(0);
  });

  it('stops writing, without throwing, once the reader is gone (EPIPE)', () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 1, writeSync: pipe.write });
    pipe.mode = 'closed';
    expect(() => writer.write(line(0))).not.toThrow();
    const calls = pipe.calls;
    expect(writer.write(line(1))).toBe(false);
    writer.flushSync();
    expect(pipe.calls).toBe(calls);
  });

  it('flush() writes what is pending and then calls back', async () => {
    const writer = new BatchedLineWriter({ fd: 99, batchChars: 4096, writeSync: pipe.write });
    writer.write(line(0));
    const done = vi.fn();
    writer.flush(done);
    expect(pipe.written).toBe(line(0));
    await vi.waitFor(() => expect(done).toHaveBeenCalledOnce());
  });

  it('flushSync() waits out a reader that is briefly behind', () => {
    let refusals = 3;
    const writer = new BatchedLineWriter({
      fd: 99,
      batchChars: 4096,
      writeSync: (fd, buffer) => {
        if (refusals-- > 0) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
        return pipe.write(fd, buffer);
      },
    });
    writer.write(line(0));
    writer.flushSync();
    expect(pipe.written).toBe(line(0));
  });
});

describe('the JSON logger on stdout', () => {
  it('writes every line before the process exits, even on process.exit() right after logging', () => {
    const dir = mkdtempSync(join(tmpdir(), 'line-writer-'));
    try {
      const out = join(dir, 'stdout.log');
      const fd = openSync(out, 'w');
      const script = `
        const { createLogger } = await import(${JSON.stringify(`file://${resolve('dist/ops/log.js')}`)});
        const log = createLogger({ level: 'info', format: 'json' });
        for (let i = 0; i < 1000; i++) log.info({ i }, 'line');
        process.exit(0);
      `;
      const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
      closeSync(fd);
      expect(result.stderr).toBe('');
      expect(result.status).toBe(0);
      const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
      expect(lines).toHaveLength(1000);
      expect(lines.map((l) => (JSON.parse(l) as { i: number }).i)).toEqual([...Array(1000).keys()]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
