import { CommanderError, type Command } from 'commander';

/** Exit code for usage and configuration errors, for every command. */
export const EXIT_USAGE = 2;

/**
 * Makes commander's usage errors (unknown flag, missing value, bad choice) exit 2 with a pointer to
 * `--help`, and `--help` itself exit 0. The command must call `.exitOverride()`.
 */
export function exitOnUsageError(cmd: Command): Command {
  const parseAsync = cmd.parseAsync.bind(cmd);
  cmd.parseAsync = async (argv, options) => {
    try {
      return await parseAsync(argv, options);
    } catch (err) {
      if (err instanceof CommanderError) {
        if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
        process.stderr.write(`Run "foundry-auth ${cmd.name()} --help" for the options.\n`);
        process.exit(EXIT_USAGE);
      }
      throw err;
    }
  };
  return cmd;
}
