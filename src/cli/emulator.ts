import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { GUID } from '../contracts/azure-ids.js';
import type { LogLevel } from '../config/config.js';
import { DEFAULT_SEED, isLoopbackHost, startEmulator } from '../offline/emulator/index.js';
import { createLogger } from '../ops/log.js';
import { exitOnUsageError, portArgument as port } from './usage.js';

/** `foundry-auth emulator`: the local Entra ID + Microsoft Graph + ARM + managed-identity endpoint (SPEC section 8). */

function pageSize(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

interface Options {
  host: string;
  httpsPort: number;
  httpPort: number;
  state?: string;
  tenantId: string;
  readyFile?: string;
  logLevel: LogLevel;
  logFormat: 'json' | 'pretty';
  armPageSize?: number;
  graphPageSize?: number;
}

export function command(): Command {
  const cmd = new Command('emulator')
    .description('local Entra ID + Microsoft Graph + ARM + managed-identity endpoint for offline development and tests')
    .option(
      '--host <address>',
      'loopback address to listen on',
      (v) => {
        if (!isLoopbackHost(v)) throw new InvalidArgumentError('must be a loopback address (127.0.0.0/8, ::1 or localhost)');
        return v;
      },
      '127.0.0.1',
    )
    .option('--https-port <port>', 'HTTPS port (0 = any free port)', port('--https-port'), 8443)
    .option('--http-port <port>', 'plain HTTP port (0 = any free port)', port('--http-port'), 8444)
    .option('--state <file>', 'persist everything (CA, signing keys, directory, ARM) in this file; restart with it to restore')
    .option(
      '--tenant-id <guid>',
      'the seeded default tenant (new state only)',
      (v) => {
        if (!GUID.test(v)) throw new InvalidArgumentError('must be a GUID');
        return v.toLowerCase();
      },
      DEFAULT_SEED.tenantId,
    )
    .option('--ready-file <file>', 'write the endpoints JSON here once listening')
    .option('--arm-page-size <n>', 'items per ARM list page before nextLink', pageSize)
    .option('--graph-page-size <n>', 'items per Graph list page before @odata.nextLink', pageSize)
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'pretty']).default('json'))
    .action(async (o: Options) => {
      const logger = createLogger({ level: o.logLevel, format: o.logFormat, name: 'emulator' });
      let running;
      try {
        running = await startEmulator({
          host: o.host,
          httpsPort: o.httpsPort,
          httpPort: o.httpPort,
          stateFile: o.state === undefined ? undefined : resolve(o.state),
          tenantId: o.tenantId,
          logger,
          armPageSize: o.armPageSize,
          graphPageSize: o.graphPageSize,
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const msg =
          e.code === 'EADDRINUSE'
            ? `a port is already in use (${e.message}); choose another with --https-port/--http-port or 0 for any free port`
            : e.message;
        process.stderr.write(`foundry-auth emulator: ${msg}\n`);
        process.exitCode = e.code === 'EADDRINUSE' ? 1 : 2;
        return;
      }
      const ready = { event: 'ready', ...running.endpoints };
      if (o.readyFile !== undefined) writeFileSync(o.readyFile, `${JSON.stringify(running.endpoints, null, 2)}\n`);
      process.stdout.write(`${JSON.stringify(ready)}\n`);
      const stop = (): void => {
        void running.close().then(() => {
          logger.flush?.();
          process.exit(0);
        });
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  return exitOnUsageError(cmd);
}
