import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import { EXIT_USAGE } from '../config/exit-codes.js';

/**
 * Commander's own usage errors (unknown flag, missing value, bad choice, no subcommand) print
 * `foundry-auth <command>: <what>` and a pointer to `--help`, and exit 2; `--help` exits 0.
 * Applies to the command's subcommands too (`token inspect`).
 */
export function exitOnUsageError(cmd: Command, label: string = cmd.name()): Command {
  // `Usage: foundry-auth serve [options]`, as the command is typed, and examples after the options.
  cmd.configureHelp({ commandUsage: (c) => `foundry-auth ${label} ${c.usage()}` });
  const examples = EXAMPLES[label];
  if (examples !== undefined) cmd.addHelpText('after', `\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}\n`);
  cmd
    .exitOverride()
    .configureOutput({ writeErr: (text) => process.stderr.write(text.startsWith('error:') ? `foundry-auth ${label}: ${text.slice(7)}` : text) });
  for (const sub of cmd.commands) exitOnUsageError(sub, `${label} ${sub.name()}`);
  const parseAsync = cmd.parseAsync.bind(cmd);
  cmd.parseAsync = async (argv, options) => {
    try {
      return await parseAsync(argv, options);
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.exitCode === 0) process.exit(0);
        if (err.code !== 'commander.help') process.stderr.write(`Run "foundry-auth ${label} --help" for the options.\n`);
        process.exit(EXIT_USAGE);
      }
      throw err;
    }
  };
  return cmd;
}

const TEST_TOKEN = `curl -s -X POST http://127.0.0.1:8444/_emulator/tokens -H 'content-type: application/json' -d '{"principal":"alice@emulator.onmicrosoft.com","scope":"api://<client-id>/.default","ageSeconds":7200}'`;

/** Each command's help ends with these: what a first run looks like. */
const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  serve: [
    'foundry-auth serve --upstream http://127.0.0.1:5000 --tenant-id <tenant ID> --client-id <client ID> --rbac-scope <cluster resource ID>',
    'foundry-auth serve --config foundry-auth.yaml          # the same settings as a file (setup prints one)',
  ],
  dev: [
    'npm start                                             # the same as: foundry-auth dev',
    'foundry-auth dev --fresh                              # forget the saved tenant and start over',
    'foundry-auth dev --state-dir /tmp/fa --sidecar-port 0 --admin-port 0 --backend-port 0 --emulator-https-port 0 --emulator-http-port 0',
  ],
  emulator: [
    'foundry-auth emulator --https-port 8443 --http-port 8444 --state emulator.json',
    `${TEST_TOKEN}   # a test token: expired (ageSeconds), "tokenVersion":1, another "principal" or "scope"`,
  ],
  'sample-backend': ['foundry-auth sample-backend --listen 127.0.0.1:5000 --token-rate 20'],
  setup: [
    'az login --tenant <tenant ID> && foundry-auth setup --app-name foundry-local --cluster-id <cluster resource ID>',
    'foundry-auth setup --client-id <client ID> --dry-run   # what would change on an existing app',
    'foundry-auth setup --dev                              # the running dev stack (npm start)',
  ],
  grant: [
    'foundry-auth grant --client-id <client ID> --cluster-id <cluster resource ID> --assignee alice@contoso.com --access inference',
    'foundry-auth grant --client-id <client ID> --cluster-id <cluster resource ID> --assignee <managed identity client ID> --access inference',
    'foundry-auth grant --dev --assignee carol@emulator.onmicrosoft.com --access inference',
  ],
  doctor: [
    'foundry-auth doctor --client-id <client ID> --cluster-id <cluster resource ID> --endpoint https://<sidecar host>:8080',
    'foundry-auth doctor --dev                             # the running dev stack (npm start)',
  ],
  token: ['az account get-access-token --resource api://<client ID> --query accessToken -o tsv | foundry-auth token inspect -'],
  'token inspect': [
    'az account get-access-token --resource api://<client ID> --query accessToken -o tsv | foundry-auth token inspect --client-id <client ID> -',
    'foundry-auth token inspect --dev .foundry-auth .foundry-auth/v1-token.txt   # a file; --dev: the dev stack',
    `${TEST_TOKEN} | node -p 'JSON.parse(require("fs").readFileSync(0)).access_token' | foundry-auth token inspect --dev .foundry-auth -`,
  ],
};

/** A commander argument parser for a TCP port flag: digits only, 0-65535 (0 = any free port). */
export function portArgument(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError(`${flag} must be a port number 0-65535 (0 = any free port)`);
    return n;
  };
}
