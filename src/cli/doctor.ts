import { Command } from 'commander';
import {
  addCommonOptions,
  clientsOf,
  clusterFlag,
  commonArgs,
  commonSettings,
  credentialOf,
  EXIT_FAILED,
  EXIT_OK,
  guidFlag,
  runAction,
  UsageError,
  type CommonFlags,
} from '../setup/command-line.js';
import { bareToken, stdinToken } from './token-input.js';
import { openDevStack } from '../offline/dev/dev-target.js';
import { exitOnUsageError } from './usage.js';
import { runDoctor, type DoctorCheck, type DoctorResult } from '../setup/doctor.js';
import type { Terminal } from '../setup/terminal.js';

/** `foundry-auth doctor`: checks every setting the documentation names and prints the fix (SPEC section 10). */

interface DoctorFlags extends CommonFlags {
  clientId?: string;
  clusterId?: string;
  token?: string;
  endpoint?: string;
}

export function command(): Command {
  const cmd = new Command('doctor')
    .description(
      'check the app registration, the cluster identity, and optionally a token and a live call; print the command that fixes each failure',
    )
    .option('--client-id <guid>', 'the API app registration (setup printed it) (required)')
    .option('--cluster-id <id>', 'ARM resource ID of the Arc connected cluster: also check its identity and role')
    .option('--token <jwt>', 'an access token to check as the sidecar would (- reads it from stdin)')
    .option(
      '--endpoint <url>',
      'a sidecar base URL: call GET /v1/models with --token (or a token for api://<client-id> from --credential) and explain the answer',
    );
  addCommonOptions(cmd);
  cmd.action((flags: DoctorFlags) =>
    runAction('doctor', flags.json === true, async (term) => {
      const settings = commonSettings(flags, openDevStack);
      // With --dev the stack's own app and cluster are the defaults.
      const clientIdFlag = flags.clientId ?? settings.dev?.clientId;
      if (clientIdFlag === undefined) throw new UsageError('--client-id is required: the Application (client) ID of the app registration to check');
      const clientId = guidFlag('--client-id', clientIdFlag);
      const clusterId = flags.clusterId === undefined ? settings.dev?.clusterId : clusterFlag(flags.clusterId);
      const endpoint = flags.endpoint === undefined ? undefined : endpointFlag(flags.endpoint);
      const token = flags.token === '-' ? await stdinToken() : flags.token === undefined ? undefined : bareToken(flags.token);
      const credential = credentialOf(settings);
      const clients = clientsOf(settings, credential, { warmArm: clusterId !== undefined });
      const apiTokens = credential.forResource(`api://${clientId}`);
      const result = await term.waiting('checking', () =>
        runDoctor(
          {
            clientId,
            ...(clusterId !== undefined ? { clusterId } : {}),
            ...(token !== undefined && token !== '' ? { token } : {}),
            ...(endpoint !== undefined ? { endpoint } : {}),
            ...(settings.tenantId !== undefined ? { tenantId: settings.tenantId } : {}),
            authority: settings.authorityOrDefault,
            commandArgs: commonArgs(settings),
            endpointToken: async () => (await apiTokens.getToken()).token,
            ...(settings.dev !== undefined ? { dispatcher: settings.dev.dispatcher } : {}),
          },
          clients,
        ),
      );
      if (settings.json) term.document(result);
      else printResult(term, result);
      return result.ok ? EXIT_OK : EXIT_FAILED;
    }),
  );
  return exitOnUsageError(cmd);
}

function endpointFlag(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`--endpoint must be an absolute http(s) URL, the sidecar's base URL (got "${value.slice(0, 80)}")`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError('--endpoint must use https:// or http://');
  return url.href.replace(/\/+$/, '');
}

function printResult(term: Terminal, result: DoctorResult): void {
  const label: Record<DoctorCheck['status'], string> = {
    pass: term.style('green', 'PASS'),
    fail: term.style('red', 'FAIL'),
    warn: term.style('yellow', 'WARN'),
    skip: term.style('dim', 'SKIP'),
  };
  term.line(term.style('bold', `Checking app ${result.clientId} in tenant ${result.tenantId ?? '?'}`));
  for (const c of result.checks) {
    term.line(`${label[c.status]}  ${c.name.padEnd(24)} ${c.title}`);
    term.line(term.style('dim', `      ${c.detail}`));
    if (c.fix !== undefined) term.line(`      fix: ${c.fix}`);
    if (c.alternative !== undefined) term.line(term.style('dim', `      or:  ${c.alternative}`));
  }
  const failed = result.checks.filter((c) => c.status === 'fail').length;
  const warned = result.checks.filter((c) => c.status === 'warn').length;
  term.line();
  term.line(
    failed === 0
      ? term.style('green', `All checks pass${warned > 0 ? ` (${warned} warning${warned > 1 ? 's' : ''})` : ''}.`)
      : term.style('red', `${failed} check${failed > 1 ? 's' : ''} failed.`),
  );
}
