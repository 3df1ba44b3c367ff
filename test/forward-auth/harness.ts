/**
 * Real proxies in front of `foundry-auth serve --mode forward-auth`, started from the files the
 * project ships (deploy/forward-auth/), rendered with loopback addresses, each in its own
 * temporary directory on a free loopback port:
 *
 *   const fa = await startForwardAuth(idp, 'nginx', { rbacFile });     // the real serve process
 *   const nginx = await startNginx({ foundryAuth: fa.url, upstream: up.url, cache: true });
 *   const caddy = await startCaddy({ foundryAuth: fa.url, upstream: up.url });
 *   await nginx.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_CLIENT_ID, TEST_TENANT_ID, type TestIdp } from '../fixtures/idp.js';
import { roleAssignmentsFile, startServe, type ServeProcess } from '../e2e/harness.js';
import { systemCommand } from '../support/system-packages.js';

const DEPLOY = fileURLToPath(new URL('../../deploy/forward-auth/', import.meta.url));

/** A shipped file with its `{{NAME}}` placeholders replaced; throws when one is left or unknown. */
export function renderShipped(file: string, values: Readonly<Record<string, string>>): string {
  const text = readFileSync(join(DEPLOY, file), 'utf8');
  const rendered = text.replace(/\{\{([A-Z_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`${file}: no value for {{${name}}}`);
    return value;
  });
  return rendered;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** nginx's `server` address for a URL, or a `unix:` address as it is. */
function hostPort(url: string): string {
  return url.startsWith('unix:') ? url : new URL(url).host;
}

export interface ProxyProcess {
  readonly url: string;
  readonly dir: string;
  readonly child: ChildProcess;
  /** stderr and error log text so far (for failure messages). */
  logs(): string;
  stop(): Promise<void>;
}

/** Resolves once `url` accepts a TCP connection (the proxy is listening). */
async function waitListening(url: string, child: ChildProcess, describe: () => string, timeoutMs = 15_000): Promise<void> {
  const { hostname, port } = new URL(url);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}: ${describe()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.connect(Number(port), hostname);
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`not listening within ${timeoutMs} ms: ${describe()}`);
}

function started(command: string, args: readonly string[], env: Readonly<Record<string, string>>): { child: ChildProcess; output: () => string } {
  const child = spawn(command, args, { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  return { child, output: () => output };
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

/** Real nginx from deploy/forward-auth/nginx.conf; `cache` turns the decision cache on. */
export async function startNginx(opts: { foundryAuth: string; upstream: string; cache: boolean }): Promise<ProxyProcess> {
  const nginx = systemCommand('nginx');
  const dir = mkdtempSync(join(tmpdir(), 'fa-nginx-'));
  mkdirSync(join(dir, 'tmp'));
  // As root, nginx's workers run as nobody: they must reach the cache and temporary directories.
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'tmp'), 0o777);
  const port = await freePort();
  const site = renderShipped('nginx.conf', {
    LISTEN: `127.0.0.1:${port}`,
    FOUNDRY_AUTH: hostPort(opts.foundryAuth),
    UPSTREAM: hostPort(opts.upstream),
    CACHE_PATH: join(dir, 'decisions'),
    DECISION_CACHE: opts.cache ? 'foundry_auth_decisions' : 'off',
  });
  writeFileSync(join(dir, 'foundry-auth.conf'), site);
  const tmp = join(dir, 'tmp');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${tmp};
  proxy_temp_path ${tmp};
  fastcgi_temp_path ${tmp};
  uwsgi_temp_path ${tmp};
  scgi_temp_path ${tmp};
  include ${join(dir, 'foundry-auth.conf')};
}
`,
  );
  const { child, output } = started(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf')], {});
  const logs = (): string => `${output()}\n${safeRead(join(dir, 'error.log'))}`;
  const url = `http://127.0.0.1:${port}`;
  await waitListening(url, child, logs);
  return { url, dir, child, logs, stop: () => stopChild(child, 'SIGQUIT') };
}

/** Real Caddy from deploy/forward-auth/Caddyfile. */
export async function startCaddy(opts: { foundryAuth: string; upstream: string }): Promise<ProxyProcess> {
  const caddy = systemCommand('caddy');
  const dir = mkdtempSync(join(tmpdir(), 'fa-caddy-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const file = join(dir, 'Caddyfile');
  writeFileSync(file, renderShipped('Caddyfile', { SITE: url, FOUNDRY_AUTH: hostPort(opts.foundryAuth), UPSTREAM: hostPort(opts.upstream) }));
  // Caddy keeps its state under HOME / XDG dirs: give it the temporary directory.
  const { child, output } = started(caddy, ['run', '--config', file, '--adapter', 'caddyfile'], {
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
  });
  await waitListening(url, child, output);
  return { url, dir, child, logs: output, stop: () => stopChild(child, 'SIGTERM') };
}

function safeRead(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/** `serve --mode forward-auth` trusting the test IdP, deciding with `--rbac static`, trusting 127.0.0.1 only. */
export async function startForwardAuth(
  idp: TestIdp,
  profile: 'envoy' | 'nginx' | 'forwarded',
  opts: { rbacFile?: string; flags?: Readonly<Record<string, string>> } = {},
): Promise<ServeProcess> {
  const serve = await startServe({
    mode: 'forward-auth',
    'forward-auth-profile': profile,
    'trusted-proxies': '127.0.0.1',
    'tenant-id': TEST_TENANT_ID,
    'client-id': TEST_CLIENT_ID,
    authority: idp.authority,
    rbac: 'static',
    'role-assignments-file': opts.rbacFile ?? roleAssignmentsFile(),
    ...opts.flags,
  });
  return serve;
}
