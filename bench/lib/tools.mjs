// nginx and wrk come from Debian. The run installs them with apt when they are missing (and says
// so); when that is impossible the scenarios that need them are skipped with the reason.
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { progress, runCommand, whichSync } from './proc.mjs';

const PACKAGES = { nginx: 'nginx-light', wrk: 'wrk', haproxy: 'haproxy', 'redis-server': 'redis-server' };

/** `{ nginx, wrk, haproxy }`: absolute paths, or undefined with `problems` saying why. */
export async function ensureTools() {
  const missing = Object.keys(PACKAGES).filter((tool) => whichSync(tool) === undefined);
  const problems = [];
  if (missing.length > 0) {
    const packages = missing.map((tool) => PACKAGES[tool]);
    if (whichSync('apt-get') === undefined) {
      problems.push(`${missing.join(' and ')} missing and apt-get is not available: install ${packages.join(' ')} by hand`);
    } else if (process.getuid?.() !== 0) {
      problems.push(`${missing.join(' and ')} missing and this is not root: run sudo apt-get install -y ${packages.join(' ')}`);
    } else {
      progress(`${missing.join(' and ')} not found: installing with apt-get install -y ${packages.join(' ')}`);
      const env = { DEBIAN_FRONTEND: 'noninteractive' };
      let result = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env });
      if (result.code !== 0) {
        progress('apt-get install failed; running apt-get update and trying once more');
        await runCommand('apt-get', ['update'], { env });
        result = await runCommand('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env });
      }
      if (result.code !== 0) {
        const why = result.stderr.trim().split('\n').filter(Boolean).slice(-2).join(' / ');
        problems.push(`apt-get install -y ${packages.join(' ')} failed (exit ${result.code}): ${why}`);
      } else {
        progress(`installed ${packages.join(' ')}`);
      }
    }
  }
  return { nginx: whichSync('nginx'), wrk: whichSync('wrk'), haproxy: whichSync('haproxy'), redis: whichSync('redis-server'), problems };
}

/** What the results came from: CPUs, model, kernel, Node, nginx and wrk versions. */
export async function describeMachine(tools) {
  const cpuinfo = safeRead('/proc/cpuinfo');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const mhz = /^cpu MHz\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim();
  const nginx = tools.nginx ? (await runCommand(tools.nginx, ['-v'])).stderr.trim().replace(/^nginx version:\s*/, '') : 'not installed';
  const wrk = tools.wrk ? ((await runCommand(tools.wrk, ['-v'])).stdout.split('\n')[0] ?? '').replace(/\s+Copyright.*$/, '').trim() : 'not installed';
  const memory = /^MemTotal:\s+(\d+) kB$/m.exec(safeRead('/proc/meminfo'))?.[1];
  return {
    nproc: cpus().length,
    cpuModel: model,
    cpuMHz: mhz === undefined ? undefined : Math.round(Number(mhz)),
    memoryGiB: memory === undefined ? undefined : Math.round(Number(memory) / 1024 / 1024),
    kernel: release(),
    node: process.version,
    nginx,
    wrk,
  };
}

function safeRead(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
