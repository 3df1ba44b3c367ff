import { join } from 'node:path';

/** Where `dev` keeps everything, inside the state directory (default `.foundry-auth`). */
export interface StateLayout {
  readonly dir: string;
  /** SPEC section 9: URLs, IDs and the demo principals' tokens. */
  readonly devJson: string;
  /** The copy-paste commands of the banner, machine-readable (for scripts and tests). */
  readonly commandsJson: string;
  /** The emulator's `--state` file: CA, signing keys, directory, ARM. Reused across runs (RSA key generation is slow). */
  readonly emulatorState: string;
  /** The emulator writes its CA certificate next to its state file. */
  readonly emulatorCa: string;
  /** The demo users' passwords (mode 0600): printed nowhere. */
  readonly demoSecrets: string;
  /** A v1.0 access token for the banner's "v1 token mistake" (not part of dev.json's fixed shape). */
  readonly v1Token: string;
  /** While the stack runs: process IDs and the URLs not in dev.json (admin listeners, CA). */
  readonly stackJson: string;
  /** Held by the one `dev` that owns this directory (its PID inside). */
  readonly lockFile: string;
  /** Lines for a POSIX shell that point the Azure CLI at the emulator (`. .foundry-auth/az-env.sh`). */
  readonly azEnv: string;
  /** The Azure CLI's own configuration directory while it talks to the emulator (kept apart from ~/.azure). */
  readonly azConfigDir: string;
  readonly logsDir: string;
  readonly runDir: string;
  log(name: 'emulator' | 'backend' | 'sidecar'): string;
  readyFile(name: 'emulator' | 'backend'): string;
}

export function stateLayout(dir: string): StateLayout {
  const logsDir = join(dir, 'logs');
  const runDir = join(dir, 'run');
  return {
    dir,
    devJson: join(dir, 'dev.json'),
    commandsJson: join(dir, 'commands.json'),
    emulatorState: join(dir, 'emulator.json'),
    emulatorCa: join(dir, 'emulator.ca.pem'),
    demoSecrets: join(dir, 'demo-users.json'),
    v1Token: join(dir, 'v1-token.txt'),
    stackJson: join(runDir, 'stack.json'),
    lockFile: join(runDir, 'dev.lock'),
    azEnv: join(dir, 'az-env.sh'),
    azConfigDir: join(dir, 'azure'),
    logsDir,
    runDir,
    log: (name) => join(logsDir, `${name}.log`),
    readyFile: (name) => join(runDir, `${name}.ready.json`),
  };
}
