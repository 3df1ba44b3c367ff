import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';

/** End to end: `node dist/cli.js sample-backend` (npm test builds dist first). */
const CLI = join(import.meta.dirname, '../../dist/cli.js');

let child: ChildProcess | undefined;
let dir: string | undefined;

afterEach(() => {
  if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function run(args: string[]): { proc: ChildProcess; stdout: () => string; stderr: () => string } {
  const proc = spawn(process.execPath, [CLI, 'sample-backend', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  return { proc, stdout: () => out, stderr: () => err };
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('foundry-auth sample-backend', () => {
  it('writes the ready file, serves, logs requests as JSON, and exits 0 on SIGTERM removing the file', async () => {
    dir = mkdtempSync(join(tmpdir(), 'sample-backend-'));
    const readyFile = join(dir, 'ready.json');
    const started = run(['--listen', '127.0.0.1:0', '--token-rate', '0', '--ready-file', readyFile]);
    child = started.proc;
    await waitFor(() => existsSync(readyFile), 'the ready file');
    const { url } = JSON.parse(readFileSync(readyFile, 'utf8')) as { url: string };
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await request(`${url}/healthz`, { headers: { 'x-ms-client-principal-name': 'bob@contoso.example' } });
    expect(await res.body.json()).toEqual({ status: 'healthy' });
    await waitFor(() => started.stdout().includes('"path":"/healthz"'), 'the request log line');
    const line = started
      .stdout()
      .split('\n')
      .find((l) => l.includes('"path":"/healthz"'))!;
    expect(JSON.parse(line)).toMatchObject({ msg: 'request', status: 200, principalName: 'bob@contoso.example' });
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(existsSync(readyFile)).toBe(false);
  });

  it('exits 2 with a message naming the flag on bad input', async () => {
    const bad = run(['--listen', 'nowhere', '--token-rate', '-1']);
    child = bad.proc;
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(2);
    expect(bad.stderr()).toContain('--listen');
    expect(bad.stderr()).toContain('--token-rate');
  });
});
