import { Command, Option } from 'commander';
import {
  addCommonOptions,
  clientsOf,
  clusterFlag,
  commonSettings,
  EXIT_OK,
  guidFlag,
  runAction,
  UsageError,
  type CommonFlags,
} from '../setup/command-line.js';
import { openDevStack } from '../offline/dev/dev-target.js';
import { exitOnUsageError } from './usage.js';
import { runGrant } from '../setup/grant.js';
import type { AccessLevel } from '../setup/names.js';
import { terminalReporter } from '../setup/terminal.js';

/** `foundry-auth grant`: step 6 of the documentation, plus the app role for service principals and managed identities. */

interface GrantFlags extends CommonFlags {
  clientId?: string;
  clusterId?: string;
  assignee?: string;
  access?: string;
  revoke?: boolean;
}

export function command(): Command {
  const cmd = new Command('grant')
    .description('give a user, group, service principal or managed identity inference or admin access at the cluster (--revoke takes it away)')
    .option('--client-id <guid>', 'the API app registration (setup printed it) (required)')
    .option('--cluster-id <id>', 'ARM resource ID of the Arc connected cluster (required)')
    .option(
      '--assignee <id>',
      'object ID of a user, group or service principal; a user principal name; or the client ID of a managed identity or service principal (required)',
    )
    .addOption(
      new Option(
        '--access <level>',
        'inference: Cognitive Services OpenAI User (data plane); admin: Cognitive Services Contributor (data and control plane) (required)',
      ).choices(['inference', 'admin']),
    )
    .option('--revoke', 'remove what grant would add');
  addCommonOptions(cmd, { dryRun: true });
  cmd.action((flags: GrantFlags) =>
    runAction('grant', flags.json === true, async (term) => {
      const settings = commonSettings(flags, openDevStack);
      // With --dev the stack's own app and cluster are the defaults.
      const clientIdFlag = flags.clientId ?? settings.dev?.clientId;
      const clusterIdFlag = flags.clusterId ?? settings.dev?.clusterId;
      if (clientIdFlag === undefined)
        throw new UsageError('--client-id is required: the Application (client) ID of the app registration setup created');
      if (clusterIdFlag === undefined) throw new UsageError('--cluster-id is required: the ARM resource ID of the Arc connected cluster');
      if (flags.assignee === undefined || flags.assignee.trim() === '')
        throw new UsageError('--assignee is required: an object ID, a user principal name, or a managed identity client ID');
      if (flags.access === undefined)
        throw new UsageError('--access is required: inference (Cognitive Services OpenAI User) or admin (Cognitive Services Contributor)');
      const clientId = guidFlag('--client-id', clientIdFlag);
      const clusterId = clusterFlag(clusterIdFlag);
      const result = await runGrant(
        {
          clientId,
          clusterId,
          assignee: flags.assignee,
          access: flags.access as AccessLevel,
          revoke: flags.revoke === true,
          dryRun: settings.dryRun,
        },
        clientsOf(settings, undefined, { warmArm: true }),
        terminalReporter(term),
      );
      if (settings.json) term.document(result);
      else {
        term.line();
        if (result.dryRun)
          term.line(term.style('dim', result.changed ? 'Dry run: rerun without --dry-run to make these changes.' : 'Dry run: nothing to change.'));
        else if (result.changed)
          term.line(
            term.style(
              'dim',
              'Azure RBAC changes reach the sidecar within its cache TTL (--rbac-allow-ttl / --rbac-deny-ttl) once ARM has them (usually minutes); new tokens carry app role changes.',
            ),
          );
      }
      return EXIT_OK;
    }),
  );
  return exitOnUsageError(cmd);
}
