import { afterEach, describe, expect, it, vi } from 'vitest';
import { command } from '../../src/cli/emulator.js';

/** `foundry-auth emulator` flag errors, in process: exit 2 naming the flag, as every command does. */

class Exited extends Error {
  constructor(readonly code: number | string | null | undefined) {
    super(`process.exit(${String(code)})`);
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

async function exitCodeOf(args: string[]): Promise<{ code: unknown; stderr: string }> {
  vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exited(code);
  });
  let stderr = '';
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    await command().parseAsync(args, { from: 'user' });
  } catch (err) {
    if (err instanceof Exited) return { code: err.code, stderr };
    throw err;
  }
  return { code: undefined, stderr };
}

describe('foundry-auth emulator flags', () => {
  it.each([
    [['--https-port', 'abc'], '--https-port'],
    [['--http-port', ''], '--http-port'],
    [['--http-port', '0x10'], '--http-port'],
    [['--host', '0.0.0.0'], '--host'],
    [['--tenant-id', 'not-a-guid'], '--tenant-id'],
  ])('%j exits 2 naming the flag', async (args, flag) => {
    const r = await exitCodeOf(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(flag);
    expect(r.stderr).toContain('foundry-auth emulator');
  });
});
