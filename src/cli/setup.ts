import { Command } from 'commander';
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
import { DEV_APP_NAME } from '../offline/dev/registration.js';
import { openDevStack } from '../offline/dev/dev-target.js';
import { exitOnUsageError } from './usage.js';
import { runSetup, type SetupResult } from '../setup/setup.js';
import { terminalReporter, type Terminal } from '../setup/terminal.js';

/** `foundry-auth setup`: the documentation's steps 1-5 and 7 against Microsoft Graph and ARM (SPEC section 10). */

interface SetupFlags extends CommonFlags {
  appName?: string;
  clientId?: string;
  clusterId?: string;
}

export function command(): Command {
  const cmd = new Command('setup')
    .description("register (or repair) the Entra app and the cluster identity's role, idempotently: the documentation's steps 1-5 and 7")
    .option('--app-name <name>', 'display name of the app registration to find or create (required unless --client-id names an existing app)')
    .option('--client-id <guid>', 'use the existing app registration with this Application (client) ID')
    .option('--cluster-id <id>', 'ARM resource ID of the Arc connected cluster: give its identity Cognitive Services OpenAI User there (step 7)');
  addCommonOptions(cmd, { dryRun: true });
  cmd.action((flags: SetupFlags) =>
    runAction('setup', flags.json === true, async (term) => {
      const settings = commonSettings(flags, openDevStack);
      // With --dev the stack's own app and cluster are the defaults.
      const clientId = flags.clientId === undefined ? settings.dev?.clientId : guidFlag('--client-id', flags.clientId);
      // With --client-id the app is found by its ID: the name only labels the output.
      const appName = flags.appName?.trim() ?? (settings.dev !== undefined ? DEV_APP_NAME : clientId);
      if (appName === undefined || appName === '')
        throw new UsageError(
          '--app-name is required (or --client-id of an existing app): the display name of the app registration to find or create, e.g. --app-name foundry-local',
        );
      const clusterId = flags.clusterId === undefined ? settings.dev?.clusterId : clusterFlag(flags.clusterId);
      const clients = clientsOf(settings, undefined, { warmArm: clusterId !== undefined });
      if (!settings.json)
        term.line(
          term.style(
            'bold',
            `${settings.dryRun ? 'Planning' : 'Setting up'} app registration "${appName}"${settings.dryRun ? ' (dry run: nothing is written)' : ''}`,
          ),
        );
      const result = await runSetup(
        {
          appName,
          ...(clientId !== undefined ? { clientId } : {}),
          ...(clusterId !== undefined ? { clusterId } : {}),
          ...(settings.tenantId !== undefined ? { tenantId: settings.tenantId } : {}),
          ...(settings.authority !== undefined ? { authority: settings.authority } : {}),
          armEndpoint: settings.armEndpoint,
          dryRun: settings.dryRun,
        },
        clients,
        terminalReporter(term),
      );
      if (settings.json) term.document(result);
      else printSettings(term, result);
      return EXIT_OK;
    }),
  );
  return exitOnUsageError(cmd);
}

function printSettings(term: Terminal, result: SetupResult): void {
  term.line();
  if (result.dryRun)
    term.line(
      term.style('dim', result.changed ? 'Dry run: rerun without --dry-run to make these changes.' : 'Dry run: everything is already set up.'),
    );
  term.line(term.style('bold', 'Settings for foundry-auth serve (environment):'));
  for (const line of result.serve.env) term.line(line.startsWith('#') ? term.style('dim', line) : `  ${line}`);
  term.line();
  term.line(term.style('bold', 'The same as a --config file (YAML):'));
  for (const line of result.serve.configYaml.trimEnd().split('\n')) term.line(`  ${line}`);
  if (result.clientId !== null) {
    term.line();
    term.line(term.style('dim', `Get a user token to try it: az account get-access-token --scope api://${result.clientId}/foundry_access`));
  }
}
