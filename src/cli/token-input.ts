import { closeSync, openSync, readSync } from 'node:fs';
import { UsageError } from '../setup/command-line.js';

/** More than any access token: a larger stdin is something else piped in by mistake. */
const MAX_STDIN_BYTES = 64 * 1024;

/** A token as given on the command line: surrounding space and a `Bearer ` prefix removed. */
export function bareToken(raw: string): string {
  return raw.trim().replace(/^Bearer\s+/i, '');
}

/** A token saved in a file (`.foundry-auth/v1-token.txt`), read up to 64 KiB. */
export function fileToken(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  try {
    const buf = Buffer.alloc(MAX_STDIN_BYTES + 1);
    const n = readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_STDIN_BYTES) throw new UsageError(`${path} holds more than ${MAX_STDIN_BYTES} bytes: not an access token`);
    return bareToken(buf.subarray(0, n).toString('utf8'));
  } finally {
    closeSync(fd);
  }
}

/** A token piped into stdin (keeps it out of the process list), read up to 64 KiB. */
export async function stdinToken(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_STDIN_BYTES) throw new UsageError(`stdin holds more than ${MAX_STDIN_BYTES} bytes: not an access token`);
    chunks.push(chunk as Buffer);
  }
  return bareToken(Buffer.concat(chunks).toString('utf8'));
}
