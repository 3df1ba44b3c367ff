import { Command, Option } from 'commander';
import { loadServeConfig, type RawValue } from '../config/load.js';
import { SERVE_OPTIONS, envName } from '../config/options.js';
import { EXIT_USAGE } from '../config/exit-codes.js';
import { exitOnUsageError } from './usage.js';


export function command(): Command {
  const cmd = new Command('serve')
    .description('the sidecar: authenticate (Entra ID, API keys), authorize (Azure RBAC) and forward to Foundry Local')
    .helpOption('-h, --help', 'show the options');
  for (const spec of SERVE_OPTIONS) {
    const syntax = spec.kind === 'boolean' ? `--${spec.flag} [bool]` : `--${spec.flag} <value>`;
    const details = [`env ${envName(spec.flag)}`];
    if ('default' in spec) details.push(`default ${spec.default}`);
    if ('choices' in spec) details.push(`one of ${spec.choices.join('|')}`);
    cmd.addOption(new Option(syntax, `${spec.description} (${details.join('; ')})`));
  }
  cmd.action(async (opts: Record<string, string | boolean>) => {
    const flags: Record<string, RawValue> = {};
    for (const spec of SERVE_OPTIONS) {
      const key = spec.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      const value = opts[key];
      if (value !== undefined) flags[spec.flag] = value;
    }
    const loaded = loadServeConfig({ flags, env: process.env });
    if (!loaded.ok) {
      for (const line of loaded.errors) process.stderr.write(`foundry-auth serve: ${line}\n`);
      process.exit(EXIT_USAGE);
    }
    const { runSidecar } = await import('../sidecar.js');
    await runSidecar(loaded.config);
  });
  return exitOnUsageError(cmd);
}
