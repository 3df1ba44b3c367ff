/**
 * A real redis-server (Debian's) for one test file: its own loopback port, its own temporary
 * directory, no persistence, never the system service. `kill()` and `restart()` simulate an outage
 * on the same port.
 *
 *   const redis = await startRedis({ password: 's3cret' });
 *   redis.url          // redis://127.0.0.1:<port>
 *   await redis.kill(); await redis.restart(); await redis.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemCommand } from './system-packages.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL: the server vanishes without closing connections cleanly. */
  kill(): Promise<void>;
  /** Starts again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startRedis(opts: { password?: string } = {}): Promise<RedisServer> {
  const binary = systemCommand('redis-server');
  const dir = mkdtempSync(join(tmpdir(), 'fa-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;

  async function launch(): Promise<void> {
    const args = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
    ];
    if (opts.password !== undefined) args.push('--requirepass', opts.password);
    const started = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let output = '';
    started.stdout.on('data', (c: Buffer) => (output += c.toString()));
    started.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (started.exitCode !== null) throw new Error(`redis-server exited ${started.exitCode}: ${output}`);
      if (await accepts(port)) return;
      if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port}: ${output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async function end(signal: NodeJS.Signals): Promise<void> {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null) return;
    const exited = once(running, 'exit');
    running.kill(signal);
    await exited;
  }

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill: () => end('SIGKILL'),
    restart: launch,
    async stop(): Promise<void> {
      await end('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function accepts(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
