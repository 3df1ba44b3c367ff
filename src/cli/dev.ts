import { Command, InvalidArgumentError, Option } from 'commander';
import { exitOnUsageError, portArgument as port } from './usage.js';

/** `foundry-auth dev` (and `npm start`): the whole stack on loopback with a demo tenant (SPEC section 9). */

function tokenRate(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('must be a number >= 0 (0 = as fast as the client reads)');
  return n;
}

interface Options {
  stateDir: string;
  sidecarPort: number;
  adminPort: number;
  backendPort: number;
  emulatorHttpsPort: number;
  emulatorHttpPort: number;
  tokenRate?: number;
  fresh: boolean;
}

export function command(): Command {
  const cmd = new Command('dev')
    .description(
      'local stack on 127.0.0.1: Entra ID/Graph/ARM emulator + sample Foundry Local backend + sidecar, demo tenant seeded; Ctrl-C stops it',
    )
    .option('--state-dir <dir>', 'emulator state, demo passwords, dev.json and logs', '.foundry-auth')
    .option('--sidecar-port <port>', 'the sidecar (clients connect here)', port('--sidecar-port'), 8080)
    .option('--admin-port <port>', "the sidecar's /healthz, /readyz, /metrics", port('--admin-port'), 9090)
    .option('--backend-port <port>', 'the sample Foundry Local backend', port('--backend-port'), 5000)
    .option('--emulator-https-port <port>', "the emulator's HTTPS listener (the Entra ID authority)", port('--emulator-https-port'), 8443)
    .option('--emulator-http-port <port>', "the emulator's HTTP listener (admin API, msi-adapter)", port('--emulator-http-port'), 8444)
    .addOption(new Option('--token-rate <n>', 'streamed tokens per second of the sample backend (default 50)').argParser(tokenRate))
    .option('--fresh', 'discard the saved emulator state and demo tenant and start over', false)
    .action(async (o: Options) => {
      const { runDev } = await import('../offline/dev/stack.js');
      process.exitCode = await runDev(
        {
          stateDir: o.stateDir,
          sidecarPort: o.sidecarPort,
          adminPort: o.adminPort,
          backendPort: o.backendPort,
          emulatorHttpsPort: o.emulatorHttpsPort,
          emulatorHttpPort: o.emulatorHttpPort,
          ...(o.tokenRate === undefined ? {} : { tokenRate: o.tokenRate }),
          fresh: o.fresh,
        },
        { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) },
      );
    });
  return exitOnUsageError(cmd);
}
