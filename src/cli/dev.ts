import { Command } from 'commander';

/** Placeholder until this command's issue lands. */
export function command(): Command {
  return new Command('dev').allowUnknownOption().action(() => {
    process.stderr.write('foundry-auth dev: not available yet in this build\n');
    process.exitCode = 1;
  });
}
