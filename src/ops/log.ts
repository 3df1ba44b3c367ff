import { pino, type Logger } from 'pino';
import type { LogLevel } from '../config/config.js';
import { BatchedLineWriter } from './line-writer.js';

export type { Logger };

/**
 * Paths of fields that may hold secrets if a future change logs a request or a response: pino
 * replaces them. The primary rule is still that no code passes a token, key or secret to a logger.
 */
const REDACT = [
  'authorization',
  'headers.authorization',
  'headers["api-key"]',
  'req.headers.authorization',
  'req.headers["api-key"]',
  'access_token',
  'client_secret',
  'client_assertion',
  'token',
];

/** A JSON logger on stdout (asynchronous, so a slow terminal never stalls requests), or pino-pretty for humans. */
export function createLogger(opts: { level: LogLevel; format: 'json' | 'pretty'; name?: string }): Logger {
  const base = { level: opts.level, redact: { paths: REDACT, censor: '[redacted]' }, base: opts.name ? { name: opts.name } : null };
  if (opts.format === 'pretty') {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: process.stdout.isTTY, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  // Lines collect in memory and are written 64 KiB at a time or at the latest every 100 ms: one
  // write (one thread-pool round trip) per batch instead of per line. Exit flushes what is left.
  return pino(base, new BatchedLineWriter({ fd: 1 }));
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
