/**
 * The container image without an image builder: the Dockerfile's structure (Node 24, numeric
 * non-root user, every copied path exists and is in the build context, entrypoint and labels), and
 * its production install replayed on this machine: `npm pack`, the tarball unpacked into an empty
 * directory, `npm ci --omit=dev` at the lock file's versions, then `serve` from there as PID 1 of its
 * own PID namespace, on a read-only root filesystem with only /tmp writable, against the test IdP
 * and upstream: it serves a request and drains on SIGTERM.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestIdp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../fixtures/upstream.js';
import { roleAssignmentsFile, startServe, staticServeFlags } from '../e2e/harness.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Instruction {
  readonly stage: number;
  readonly keyword: string;
  readonly args: string;
}

/** Dockerfile instructions with continuation lines joined and comments dropped; `stage` counts FROMs. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const line of text.split('\n')) {
    if (pending === '' && /^\s*(#|$)/.test(line)) continue;
    pending += line.replace(/\\\s*$/, ' ');
    if (/\\\s*$/.test(line)) continue;
    const match = /^\s*(\w+)\s+(.*)$/.exec(pending);
    pending = '';
    if (!match) continue;
    const keyword = match[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ stage, keyword, args: match[2]!.trim() });
  }
  return out;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const lastStage = Math.max(...dockerfile.map((i) => i.stage));

describe('Dockerfile', () => {
  it('builds every stage on Node 24 (slim or distroless), multi-stage', () => {
    const froms = dockerfile.filter((i) => i.keyword === 'FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from.args).toMatch(/^(node:24-[a-z]+-slim|gcr\.io\/distroless\/nodejs24-debian\d+)(\s+AS\s+\w+)?$/i);
  });

  it('runs the final stage as a numeric non-root user and group', () => {
    const users = dockerfile.filter((i) => i.keyword === 'USER' && i.stage === lastStage);
    expect(users).toHaveLength(1);
    const [uid, gid] = users[0]!.args.split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    expect(users[0]!.args).toMatch(/^\d+:\d+$/);
  });

  it('copies only paths that exist and that .dockerignore lets into the build context; --from names an earlier stage', () => {
    const allowed = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    expect(readFileSync(join(ROOT, '.dockerignore'), 'utf8')).toMatch(/^\*$/m);
    const stages = dockerfile.filter((i) => i.keyword === 'FROM').map((i) => /\s+AS\s+(\w+)$/i.exec(i.args)?.[1]);
    const copies = dockerfile.filter((i) => i.keyword === 'COPY');
    expect(copies.length).toBeGreaterThan(3);
    for (const copy of copies) {
      const words = copy.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice(7);
      const paths = words.filter((w) => !w.startsWith('--'));
      const sources = paths.slice(0, -1);
      if (from !== undefined) {
        expect(stages.slice(0, copy.stage), copy.args).toContain(from);
        continue;
      }
      for (const source of sources) {
        expect(existsSync(join(ROOT, source)), `COPY ${source}`).toBe(true);
        expect(allowed, `COPY ${source} is excluded by .dockerignore`).toContain(source.replace(/\/$/, ''));
      }
    }
  });

  it("starts the package's bin with serve as the default command, and carries OCI labels", () => {
    const entrypoint = JSON.parse(dockerfile.find((i) => i.keyword === 'ENTRYPOINT' && i.stage === lastStage)!.args) as string[];
    expect(entrypoint).toEqual(['node', `/opt/foundry-auth/${pkg.bin['foundry-auth']!}`]);
    expect(JSON.parse(dockerfile.find((i) => i.keyword === 'CMD' && i.stage === lastStage)!.args)).toEqual(['serve']);
    const labels = dockerfile
      .filter((i) => i.keyword === 'LABEL')
      .map((i) => i.args)
      .join(' ');
    for (const key of ['title', 'description', 'version', 'revision', 'licenses']) expect(labels).toContain(`org.opencontainers.image.${key}=`);
    expect(dockerfile.some((i) => i.keyword === 'RUN' && i.args.includes('npm ci --omit=dev'))).toBe(true);
  });
});

describe('production install (as the Dockerfile does it)', () => {
  let dir: string;
  let app: string;
  let idp: TestIdp;
  let up: Upstream;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fa-image-'));
    // dist/ is built by npm test's pretest; --ignore-scripts as in the Dockerfile's build stage.
    execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, stdio: 'pipe' });
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir]);
    app = join(dir, 'package');
    copyFileSync(join(ROOT, 'package-lock.json'), join(app, 'package-lock.json'));
    execFileSync('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: app, stdio: 'pipe' });
    rmSync(join(app, 'package-lock.json'));
    idp = await TestIdp.start();
    up = await startUpstream();
  }, 180_000);

  afterAll(async () => {
    await up?.close();
    await idp?.close();
  });

  it('holds dist/ and the production dependencies only', () => {
    const installed = new Set(readdirSync(join(app, 'node_modules')));
    for (const dep of Object.keys(pkg.dependencies)) expect(installed.has(dep.split('/')[0]!), dep).toBe(true);
    for (const dep of Object.keys(pkg.devDependencies)) expect(installed.has(dep.split('/')[0]!), `${dep} is a devDependency`).toBe(false);
    expect(installed.has('vitest')).toBe(false);
    expect(readdirSync(app).sort()).toEqual(
      ['LICENSE', 'README.md', 'dist', 'node_modules', 'package.json'].filter((f) => existsSync(join(app, f))).sort(),
    );
    expect(existsSync(join(app, 'src'))).toBe(false);
  });

  it('serves a request as PID 1 on a read-only root filesystem, and drains on SIGTERM with exit code 0', async () => {
    // A PID namespace makes node PID 1; a mount namespace makes / and the installation read-only, /tmp writable (the pod's emptyDir).
    const mounts = `mount --make-rprivate / && mount --bind /tmp /tmp && mount --bind ${app} ${app} && mount -o remount,bind,ro ${app} && mount -o remount,bind,ro / && exec "$0" "$@"`;
    const launcher = ['unshare', '--mount', '--pid', '--fork', '--kill-child', 'sh', '-c', mounts];
    const rbac = roleAssignmentsFile();
    const sidecar = await startServe(staticServeFlags(idp, up.url, rbac), {
      cli: join(app, pkg.bin['foundry-auth']!),
      launcher,
      env: { NODE_ENV: 'production' },
    });
    try {
      await sidecar.ready();
      const res = await request(`${sidecar.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await idp.mint()}`, 'content-type': 'application/json' },
        body: '{"model":"m"}',
      });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      expect(up.requests.at(-1)?.target).toBe('/v1/chat/completions');

      // The node process is the unshare process's child; it is PID 1 inside its namespace.
      const unsharePid = sidecar.child.pid!;
      const nodePid = Number(readFileSync(`/proc/${unsharePid}/task/${unsharePid}/children`, 'utf8').trim());
      const nsPid = /^NSpid:\s+\d+\s+(\d+)$/m.exec(readFileSync(`/proc/${nodePid}/status`, 'utf8'))?.[1];
      expect(nsPid).toBe('1');
      const exited = new Promise<number | null>((resolve) => sidecar.child.once('exit', (code) => resolve(code)));
      process.kill(nodePid, 'SIGTERM');
      expect(await exited).toBe(0);
      expect(sidecar.logs.map((l) => l.msg)).toEqual(
        expect.arrayContaining(['signal received', 'shutting down: draining in-flight requests', 'stopped']),
      );
    } finally {
      await sidecar.stop('SIGKILL');
    }
  });
});
