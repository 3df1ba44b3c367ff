// The Node the container image runs foundry-auth on: the major of the Dockerfile's `FROM node:<major>-...`.
// When it is not this machine's Node, the bench fetches that major from the npm registry (the
// node-<platform>-<arch> package, as CI does for its second run) into node_modules/.cache once, and
// says so. When that is impossible the caller fails: nothing is measured on a runtime it did not ask for.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { progress, ROOT, runCommand } from './proc.mjs';

/** `{ path, version, major }` of the container image's Node. */
export async function imageNode() {
  const major = /^FROM node:(\d+)[-.\s]/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  if (major === undefined) throw new Error('the Dockerfile names no node:<major> base image');
  if (process.versions.node.split('.')[0] === major) return { path: process.execPath, version: process.version, major };
  const name = `node-${process.platform}-${process.arch}`;
  const dir = join(ROOT, 'node_modules', '.cache', 'foundry-auth-bench', `${name}-${major}`);
  const bin = join(dir, 'package', 'bin', 'node');
  if (!existsSync(bin)) {
    progress(`the container image runs Node ${major}, this machine ${process.version}: fetching ${name}@${major} from the npm registry into ${dir}`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const packed = await runCommand('npm', ['pack', '--silent', `${name}@${major}`], { cwd: dir });
    const tarball = readdirSync(dir).find((file) => file.endsWith('.tgz'));
    if (packed.code !== 0 || tarball === undefined)
      throw new Error(`npm pack ${name}@${major} failed (exit ${packed.code}): ${packed.stderr.trim().slice(-500)}`);
    const unpacked = await runCommand('tar', ['-xzf', tarball], { cwd: dir });
    if (unpacked.code !== 0 || !existsSync(bin)) throw new Error(`unpacking ${tarball} failed: ${unpacked.stderr.trim().slice(-500)}`);
    rmSync(join(dir, tarball));
  }
  const version = (await runCommand(bin, ['--version'])).stdout.trim();
  if (!version.startsWith(`v${major}.`)) throw new Error(`${bin} is ${version || 'not runnable'}, not Node ${major}`);
  return { path: bin, version, major };
}
