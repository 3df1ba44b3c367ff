import { Command, Option } from 'commander';
import { rename, rm, writeFile } from 'node:fs/promises';
import { parseHostPort } from '../config/load.js';
import { EXIT_USAGE } from '../config/exit-codes.js';
import { exitOnUsageError } from './usage.js';

/**
 * `foundry-auth sample-backend`: the stand-in Foundry Local server (SPEC section 9). `dev` spawns
 * it with `--listen 127.0.0.1:0 --ready-file F` and reads the URL from F.
 */
export function command(): Command {
  const cmd = new Command('sample-backend')
    .description('a stand-in Foundry Local server: OpenAI-compatible /v1 (JSON and SSE), /healthz, /readyz, in-memory /api/v1 models and deployments')
    .helpOption('-h, --help', 'show the options')
    .addOption(new Option('--listen <host:port>', 'where to listen; port 0 picks a free port').default('127.0.0.1:5000'))
    .addOption(new Option('--token-rate <n>', 'streamed tokens per second; 0 = as fast as the client reads').default('50'))
    .addOption(new Option('--log-format <format>', 'json, or pretty for humans').choices(['json', 'pretty']).default('json'))
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .addOption(new Option('--ready-file <file>', 'write {"url": ...} to this file once listening (removed on exit)'))
    .action(async (opts: { listen: string; tokenRate: string; logFormat: 'json' | 'pretty'; logLevel: 'info'; readyFile?: string }) => {
      const listen = parseHostPort(opts.listen);
      const tokenRate = Number(opts.tokenRate);
      const problems: string[] = [];
      if (listen === undefined) problems.push(`--listen: "${opts.listen}" is not HOST:PORT (e.g. 127.0.0.1:5000, [::1]:5000)`);
      if (!Number.isFinite(tokenRate) || tokenRate < 0) problems.push(`--token-rate: "${opts.tokenRate}" is not a number >= 0`);
      if (problems.length > 0 || listen === undefined) {
        for (const p of problems) process.stderr.write(`foundry-auth sample-backend: ${p}\n`);
        process.exit(EXIT_USAGE);
      }
      await run({ host: listen.host, port: listen.port, tokenRate, logFormat: opts.logFormat, logLevel: opts.logLevel, readyFile: opts.readyFile });
    });
  return exitOnUsageError(cmd);
}

async function run(opts: {
  host: string;
  port: number;
  tokenRate: number;
  logFormat: 'json' | 'pretty';
  logLevel: 'info';
  readyFile: string | undefined;
}): Promise<void> {
  const { createLogger } = await import('../ops/log.js');
  const { startSampleBackend } = await import('../offline/sample-backend/server.js');
  const log = createLogger({ level: opts.logLevel, format: opts.logFormat, name: 'sample-backend' });
  let backend;
  try {
    backend = await startSampleBackend({ host: opts.host, port: opts.port, tokenRate: opts.tokenRate, log });
  } catch (err) {
    process.stderr.write(
      `foundry-auth sample-backend: cannot listen on ${opts.host}:${opts.port}: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    process.exit(1);
  }
  log.info({ url: backend.url, tokenRate: opts.tokenRate }, 'sample backend listening');
  if (opts.readyFile !== undefined) {
    // Written whole or not at all: a reader never sees half a file.
    const temporary = `${opts.readyFile}.${process.pid}.tmp`;
    await writeFile(temporary, `${JSON.stringify({ url: backend.url })}\n`);
    await rename(temporary, opts.readyFile);
  }
  const stop = async (): Promise<void> => {
    log.info('sample backend stopping');
    await backend.close();
    if (opts.readyFile !== undefined) await rm(opts.readyFile, { force: true });
    // The log is buffered (batched writer, or the pretty transport's thread): write out what is pending before exiting.
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}
