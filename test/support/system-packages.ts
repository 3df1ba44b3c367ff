/**
 * The real components some tests start (nginx, Caddy, Redis, the Azure CLI) come from Debian. The
 * suite's global setup installs whichever is missing with apt-get, once, before any test file runs
 * (CI runs as root on a fresh machine); a test then asks for the command's path with
 * `systemCommand`, which throws when it is still missing, so a test never passes by skipping.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Command -> the Debian package that provides it. */
export const SYSTEM_PACKAGES: Readonly<Record<string, string>> = {
  nginx: 'nginx-light',
  caddy: 'caddy',
  'redis-server': 'redis-server',
  az: 'azure-cli',
};

export function findCommand(command: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', ...(process.env.PATH ?? '').split(delimiter)]) {
    if (dir === '') continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The absolute path of a command the global setup installed; throws (the test fails) when it is missing. */
export function systemCommand(command: string): string {
  const found = findCommand(command);
  if (found !== undefined) return found;
  const pkg = SYSTEM_PACKAGES[command] ?? command;
  throw new Error(`${command} is not installed and the test suite could not install it: run apt-get install -y ${pkg} (as root)`);
}

/** Installs every missing package with apt-get; throws with apt's own words when that fails. */
export function ensureSystemPackages(log: (line: string) => void = (line) => process.stderr.write(`${line}\n`)): void {
  const missing = Object.entries(SYSTEM_PACKAGES).filter(([command]) => findCommand(command) === undefined);
  if (missing.length === 0) return;
  const packages = [...new Set(missing.map(([, pkg]) => pkg))];
  const names = missing.map(([command]) => command).join(', ');
  if (findCommand('apt-get') === undefined || process.getuid?.() !== 0) {
    throw new Error(`${names} missing and they cannot be installed here (needs apt-get as root): run sudo apt-get install -y ${packages.join(' ')}`);
  }
  log(`test setup: ${names} not found; installing ${packages.join(' ')} with apt-get (about a minute on a fresh machine)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update'], { env, encoding: 'utf8' });
  if (update.status !== 0) log(`test setup: apt-get update exited ${update.status}: ${lastLines(update.stderr)}`);
  const install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env, encoding: 'utf8' });
  if (install.status !== 0) {
    throw new Error(`apt-get install -y ${packages.join(' ')} failed (exit ${install.status}): ${lastLines(install.stderr)}`);
  }
  const still = missing.filter(([command]) => findCommand(command) === undefined).map(([command]) => command);
  if (still.length > 0) throw new Error(`apt-get installed ${packages.join(' ')} but ${still.join(', ')} is still not on the PATH`);
  log(`test setup: installed ${packages.join(' ')}`);
}

function lastLines(text: string): string {
  return text.trim().split('\n').filter(Boolean).slice(-3).join(' / ');
}
