import { Command } from 'commander';
import { parseDuration } from '../config/duration.js';
import {
  addCommonOptions,
  commonArgs,
  commonSettings,
  EXIT_FAILED,
  EXIT_OK,
  guidFlag,
  runAction,
  UsageError,
  type CommonFlags,
} from '../setup/command-line.js';
import { statSync } from 'node:fs';
import { bareToken, fileToken, stdinToken } from './token-input.js';
import { openDevStack } from '../offline/dev/dev-target.js';
import { exitOnUsageError } from './usage.js';
import { inspectForUser, type InspectReport } from '../setup/inspect.js';
import type { Terminal } from '../setup/terminal.js';

/** `foundry-auth token inspect [TOKEN|-]`: what the sidecar would do with a token, check by check (SPEC section 10). */

interface InspectFlags extends CommonFlags {
  clientId?: string;
  audiences?: string;
  requiredScope?: string;
  requiredAppRole?: string;
  clockSkew?: string;
  offline?: boolean;
}

export function command(): Command {
  const token = new Command('token').description('inspect Entra ID access tokens as the sidecar sees them');
  const inspect = new Command('inspect')
    .description('decode a token (never printing its signature), run every check the sidecar runs, and say what it would answer and what to fix')
    .argument(
      '[token]',
      'the access token, a file holding it, or - to read it from stdin (safer than the token itself: keeps it out of the process list)',
    )
    .option('--client-id <guid>', "the API app's client ID, as serve's --client-id (default: taken from the token's aud)")
    .option('--audiences <list>', 'accepted aud values, comma-separated (default <client-id>,api://<client-id>)')
    .option('--required-scope <scope>', 'delegated scope a user token must carry (default foundry_access)')
    .option('--required-app-role <role>', 'app role an app-only token must carry (default FoundryInferenceAccess)')
    .option('--clock-skew <duration>', 'tolerance on exp/nbf/iat (default 300s)')
    .option('--offline', "do not fetch the tenant's signing keys (the signature is then not checked)");
  addCommonOptions(inspect, { azure: false });
  inspect.action((arg: string | undefined, flags: InspectFlags) =>
    runAction('token inspect', flags.json === true, async (term) => {
      // `--dev TOKEN` (or `--dev FILE`): the optional directory swallowed the token; it is the token, and the directory the default.
      if (arg === undefined && typeof flags.dev === 'string' && !isDirectory(flags.dev)) {
        arg = flags.dev;
        flags.dev = true;
      }
      const settings = commonSettings(flags, openDevStack);
      const dev = settings.dev;
      const clientId = flags.clientId === undefined ? dev?.clientId : guidFlag('--client-id', flags.clientId);
      const skew = flags.clockSkew === undefined ? undefined : parseDuration(flags.clockSkew);
      if (flags.clockSkew !== undefined && skew === undefined)
        throw new UsageError(`--clock-skew must be a duration such as 300 or 5m (got "${flags.clockSkew ?? ''}")`);
      const raw = await readToken(arg);
      const report = await inspectForUser(raw, {
        ...(settings.tenantId !== undefined ? { tenantId: settings.tenantId } : {}),
        ...(clientId !== undefined ? { clientId } : {}),
        authority: settings.authorityOrDefault,
        ...(flags.audiences !== undefined
          ? {
              audiences: flags.audiences
                .split(',')
                .map((a) => a.trim())
                .filter((a) => a !== ''),
            }
          : {}),
        ...(flags.requiredScope !== undefined ? { requiredScope: flags.requiredScope } : {}),
        ...(flags.requiredAppRole !== undefined ? { requiredAppRole: flags.requiredAppRole } : {}),
        ...(skew !== undefined ? { clockSkewSeconds: Math.floor(skew / 1000) } : {}),
        fetchKeys: flags.offline !== true,
        ...(dev !== undefined ? { commandArgs: commonArgs(settings), clusterId: dev.clusterId, dispatcher: dev.dispatcher } : {}),
        ...(dev === undefined && settings.authority !== undefined ? { commandArgs: ['--authority', settings.authority] } : {}),
      });
      if (settings.json) term.document(report);
      else printReport(term, report);
      return report.accepted ? EXIT_OK : EXIT_FAILED;
    }),
  );
  token.addCommand(inspect);
  return exitOnUsageError(token);
}

async function readToken(arg: string | undefined): Promise<string> {
  if (arg === undefined && process.stdin.isTTY)
    throw new UsageError(
      'give the token as an argument, a file holding it, or - to read it from stdin (e.g. az account get-access-token --query accessToken -o tsv | foundry-auth token inspect -)',
    );
  const token = arg === undefined || arg === '-' ? await stdinToken() : isTokenFile(arg) ? fileToken(arg) : bareToken(arg);
  if (token === '') throw new UsageError('the token is empty');
  return token;
}

/** A path rather than a token: a JWT has two dots and no slash, and a file of that name would be a strange coincidence. */
function isTokenFile(arg: string): boolean {
  if (/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(arg.trim().replace(/^Bearer\s+/i, ''))) return false;
  try {
    return statSync(arg).isFile();
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function printReport(term: Terminal, r: InspectReport): void {
  const mark = {
    pass: term.style('green', 'PASS   '),
    fail: term.style('red', 'FAIL   '),
    skip: term.style('dim', 'SKIP   '),
    assumed: term.style('yellow', 'ASSUMED'),
  };
  term.line(
    term.style(
      'bold',
      `Token (${r.kind === 'user' ? 'delegated user token' : r.kind === 'app' ? 'app-only token' : 'not decodable'}; signature not shown)`,
    ),
  );
  const header = Object.entries(r.header)
    .map(([k, v]) => `${k} ${v}`)
    .join('  ');
  if (header !== '') term.line(`  ${'header'.padEnd(19)} ${header}`);
  for (const c of r.claims) term.line(`  ${c.claim.padEnd(19)} ${c.value}`);
  term.line();
  term.line(
    term.style(
      'bold',
      `Checks (as foundry-auth serve --tenant-id ${r.policy.tenantId ?? '?'} --client-id ${r.policy.clientId ?? '?'} --authority ${r.policy.authority})`,
    ),
  );
  const width = Math.max(...r.checks.map((c) => c.check.length));
  for (const c of r.checks) {
    const status = c.skipped ? mark.skip : !c.ok ? mark.fail : c.assumed === true ? mark.assumed : mark.pass;
    term.line(`  ${status}  ${c.check.padEnd(width)}  ${c.detail}`);
  }
  for (const note of r.notes) term.line(term.style('dim', `  note: ${note}`));
  term.line();
  const v = r.verdict;
  if (v.status === 200) {
    term.line(
      v.signatureVerified
        ? term.style('green', 'Verdict: the sidecar would accept this token (authorization against Azure RBAC comes next).')
        : term.style('yellow', 'Verdict: every claim check passes, but the signature was not checked, so acceptance is not proven.'),
    );
  } else {
    term.line(term.style('red', `Verdict: the sidecar would answer ${v.status} ${v.code ?? ''}`.trimEnd()));
    term.line(`  why: ${v.message}`);
    if (r.fix !== undefined && r.fix !== v.message) term.line(`  fix: ${r.fix}`);
  }
}
