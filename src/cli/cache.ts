import { GUID } from '../contracts/azure-ids.js';
import { Command, InvalidArgumentError } from 'commander';
import { request } from 'undici';
import { EXIT_USAGE } from '../config/exit-codes.js';
import { exitOnUsageError } from './usage.js';

/**
 * `foundry-auth cache flush [--admin URL] [--principal OID]`: asks a replica's admin listener to
 * drop cached decisions (`POST /cache/flush`), in every replica when they share a cache. Exit 0 when
 * every replica was reached, 1 when only the asked one was (or it failed), 2 for usage errors.
 */

const DEFAULT_ADMIN = 'http://127.0.0.1:9090';
const TIMEOUT_MS = 10_000;

interface FlushFlags {
  admin: URL;
  principal?: string;
}

export function command(): Command {
  const cache = new Command('cache').description("manage the sidecar's decision cache");
  const flush = new Command('flush')
    .description(
      'drop cached RBAC decisions (after removing a role assignment) in the replica behind --admin and, with --shared-cache, in every replica',
    )
    .option('--admin <url>', "the replica's admin listener (its --admin-listen), reached from the same host", adminUrl, new URL(DEFAULT_ADMIN))
    .option('--principal <oid>', 'object ID of the user or service principal to flush (default: everyone)', principalId)
    .action(async (flags: FlushFlags) => {
      process.exitCode = await run(flags);
    });
  cache.addCommand(flush);
  return exitOnUsageError(cache);
}

async function run(flags: FlushFlags): Promise<number> {
  const url = new URL('/cache/flush', flags.admin);
  const body = flags.principal === undefined ? '' : JSON.stringify({ principal: flags.principal });
  let status: number;
  let text: string;
  try {
    const res = await request(url, {
      method: 'POST',
      headers: body === '' ? {} : { 'content-type': 'application/json' },
      body,
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    process.stderr.write(
      `foundry-auth cache flush: cannot reach ${url.href}: ${(err as Error).message}. Fix: run it on the replica's host and point --admin at its --admin-listen\n`,
    );
    return 1;
  }
  let answer: { status?: string; message?: string; reach?: string } = {};
  try {
    answer = JSON.parse(text) as typeof answer;
  } catch {
    // reported below with the status
  }
  const who = flags.principal ?? 'every principal';
  if (status === 200) {
    process.stdout.write(
      `flushed ${who}: ${answer.reach === 'shared' ? 'every replica sharing the cache' : 'this replica (it has no shared cache)'}\n`,
    );
    return 0;
  }
  process.stderr.write(`foundry-auth cache flush: ${url.href} answered ${status}: ${answer.message ?? answer.status ?? text.slice(0, 200)}\n`);
  return status === 400 ? EXIT_USAGE : 1;
}

function adminUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`--admin must be the admin listener's URL, e.g. ${DEFAULT_ADMIN}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('--admin must be an http:// or https:// URL');
  return url;
}

function principalId(value: string): string {
  if (!GUID.test(value))
    throw new InvalidArgumentError(
      `--principal must be an object ID (GUID), e.g. 00000000-0000-0000-0000-000000000000 (got "${value.slice(0, 80)}")`,
    );
  return value.toLowerCase();
}
