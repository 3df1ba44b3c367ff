import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CLI } from './harness.js';

/** Every command's help reads as it is typed (`Usage: foundry-auth serve [options]`) and ends with examples. */

function help(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args, '--help'], (err, stdout) => (err === null ? resolve(stdout) : reject(new Error(err.message))));
  });
}

describe('--help', () => {
  const commands = [['serve'], ['dev'], ['emulator'], ['sample-backend'], ['setup'], ['grant'], ['doctor'], ['token'], ['token', 'inspect']];
  it.each(commands.map((c) => [c.join(' '), c] as const))('%s: usage as typed, and examples', async (label, args) => {
    const text = await help(args);
    expect(text.split('\n')[0]).toMatch(new RegExp(`^Usage: foundry-auth ${label} \\[options\\]`));
    expect(text).toMatch(/\nExamples:\n {2}\S/);
  });

  it('the four setup commands offer --dev', async () => {
    for (const args of [['setup'], ['grant'], ['doctor'], ['token', 'inspect']]) expect(await help(args)).toContain('--dev [state-dir]');
  });
});
