import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { z } from 'zod';

/** Files a child writes for `dev` to read (ready files, logs), and files `dev` writes for the user. */

/** The parsed file, or undefined while it is missing, incomplete or not yet the expected shape. */
export function readJsonFile<T>(file: string, schema: z.ZodType<T>): T | undefined {
  const text = readText(file);
  if (text === undefined) return undefined;
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** The first JSON line of a log file that matches `schema`. */
export function findLogLine<T>(file: string, marker: string, schema: z.ZodType<T>): T | undefined {
  const text = readText(file);
  if (text === undefined) return undefined;
  for (const line of text.split('\n')) {
    if (!line.includes(marker)) continue;
    try {
      const parsed = schema.safeParse(JSON.parse(line));
      if (parsed.success) return parsed.data;
    } catch {
      // the line is still being written
    }
  }
  return undefined;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Written whole (temp file + rename) and readable by the owner only: for files that hold bearer tokens. */
export function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, file);
}
