import { Command, Option } from 'commander';
import { loadServeConfig, type RawValue } from '../config/load.js';
import { SERVE_OPTIONS, envName, fileKey } from '../config/options.js';
import { EXIT_USAGE } from '../config/exit-codes.js';
import { exitOnUsageError } from './usage.js';

export function command(): Command {
  const cmd = new Command('serve')
    .description('the sidecar: authenticate (Entra ID, API keys), authorize (Azure RBAC) and forward to Foundry Local')
    .helpOption('-h, --help', 'show the options');
  addServeOptions(cmd);
  cmd.action(async (opts: Record<string, string | boolean>) => {
    const loaded = loadServeConfig({ flags: serveFlags(opts), env: process.env });
    if (!loaded.ok) {
      for (const line of loaded.errors) process.stderr.write(`foundry-auth serve: ${line}\n`);
      process.exit(EXIT_USAGE);
    }
    const { runSidecar } = await import('../sidecar.js');
    await runSidecar(loaded.config);
  });
  return exitOnUsageError(cmd);
}

/** Declares every `serve` setting of the options table as a flag of `cmd` (also used by `manifests`), except those in `skip`. */
export function addServeOptions(cmd: Command, skip: ReadonlySet<string> = new Set()): void {
  for (const spec of SERVE_OPTIONS) {
    if (skip.has(spec.flag)) continue;
    const syntax = spec.kind === 'boolean' ? `--${spec.flag} [bool]` : `--${spec.flag} <value>`;
    const details = [`env ${envName(spec.flag)}`];
    if ('default' in spec) details.push(`default ${spec.default}`);
    if ('choices' in spec) details.push(`one of ${spec.choices.join('|')}`);
    cmd.addOption(new Option(syntax, `${spec.description} (${details.join('; ')})`));
  }
}

/** The `serve` settings given as flags, keyed by flag name, from commander's parsed options. */
export function serveFlags(opts: Readonly<Record<string, unknown>>, skip: ReadonlySet<string> = new Set()): Record<string, RawValue> {
  const flags: Record<string, RawValue> = {};
  for (const spec of SERVE_OPTIONS) {
    if (skip.has(spec.flag)) continue;
    const value = opts[fileKey(spec.flag)];
    if (typeof value === 'string' || typeof value === 'boolean') flags[spec.flag] = value;
  }
  return flags;
}
