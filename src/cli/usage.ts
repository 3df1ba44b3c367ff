import { CommanderError, InvalidArgumentError, type Command } from 'commander';
import { EXIT_USAGE } from '../config/exit-codes.js';

/**
 * Commander's own usage errors (unknown flag, missing value, bad choice, no subcommand) print
 * `foundry-auth <command>: <what>` and a pointer to `--help`, and exit 2; `--help` exits 0.
 * Applies to the command's subcommands too (`token inspect`).
 */
export function exitOnUsageError(cmd: Command, label: string = cmd.name()): Command {
  cmd.exitOverride().configureOutput({ writeErr: (text) => process.stderr.write(text.startsWith('error:') ? `foundry-auth ${label}: ${text.slice(7)}` : text) });
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

/** A commander argument parser for a TCP port flag: digits only, 0-65535 (0 = any free port). */
export function portArgument(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError(`${flag} must be a port number 0-65535 (0 = any free port)`);
    return n;
  };
}
