import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { alive, FREE_PORTS, processesUsing, spawnDev, startDev, stateFile, tempDir, until, type ReadyDev } from './harness.js';

function runningPids(cwd: string): Record<string, number> {
  try {
    return (JSON.parse(readFileSync(`${cwd}/.foundry-auth/run/stack.json`, 'utf8')) as { children: Record<string, number> }).children;
  } catch {
    return {};
  }
}

/**
 * `foundry-auth dev` end to end: the banner's commands, run with a shell exactly as printed, do
 * what the banner says; Ctrl-C leaves no process behind; a dying child brings the stack down; a
 * taken port is named with the flag that moves it.
 */

const dirs: string[] = [];
const running: ReadyDev[] = [];

afterAll(() => {
  for (const d of running)
    for (const pid of [d.child.pid, ...Object.values(d.stack.children)]) if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function sh(command: string, cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', command], { cwd, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

/** The body and the `HTTP nnn` line the banner's `-w` option prints. */
function statusAndBody(stdout: string): {
  status: number;
  body: { error?: { code: string; message: string; type: string } } & Record<string, unknown>;
} {
  const match = /\nHTTP (\d{3})\n?$/.exec(stdout);
  expect(match, stdout).not.toBeNull();
  return { status: Number(match![1]), body: JSON.parse(stdout.slice(0, match!.index)) as never };
}

describe('foundry-auth dev', () => {
  const cwd = tempDir('foundry-auth-dev-');
  dirs.push(cwd);
  let dev: ReadyDev;

  it('starts the stack, writes dev.json as SPEC section 9 says and prints the commands', async () => {
    dev = await startDev(cwd);
    running.push(dev);
    expect(Object.keys(dev.devJson).sort()).toEqual(['backend', 'clientId', 'clusterId', 'emulator', 'sidecar', 'tenantId', 'tokens']);
    expect(Object.keys(dev.devJson.tokens).sort()).toEqual(['alice', 'bob', 'carol', 'inference-client']);
    expect(dev.devJson.sidecar).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.devJson.backend).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.devJson.emulator).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(dev.devJson.clusterId).toMatch(/\/providers\/Microsoft\.Kubernetes\/connectedClusters\/arc-cluster$/);
    expect(dev.commands.map((c) => c.id)).toEqual([
      'alice-chat-stream',
      'carol-denied',
      'bob-control-plane',
      'bob-model-not-allowed',
      'alice-token-limit',
      'v1-token-mistake',
    ]);
    // The machine-readable list is what the banner shows.
    for (const c of dev.commands) expect(dev.stdout).toContain(c.command);
    expect(dev.stdout).toContain('logs/sidecar.log');
    // Printed nowhere: tokens and passwords.
    for (const token of Object.values(dev.devJson.tokens)) expect(dev.stdout + dev.stderr).not.toContain(token.slice(-40));
    // The az login line names the file the password is read from, never the password.
    const passwords = (JSON.parse(readFileSync(`${cwd}/.foundry-auth/demo-users.json`, 'utf8')) as { passwords: Record<string, string> }).passwords;
    for (const p of Object.values(passwords)) expect(dev.stdout + dev.stderr).not.toContain(p);
    expect(dev.stdout + dev.stderr).not.toContain('emulator-admin-password');
  });

  it("runs the banner's commands with a shell and each does what the banner says", async () => {
    const command = (id: string): string => dev.commands.find((c) => c.id === id)!.command;

    const alice = await sh(command('alice-chat-stream'), cwd);
    expect(alice.code, alice.stderr).toBe(0);
    const events = alice.stdout
      .split('\n\n')
      .map((e) => e.trim())
      .filter((e) => e !== '');
    expect(events.length).toBeGreaterThan(3);
    expect(events.every((e) => e.startsWith('data: '))).toBe(true);
    expect(events.at(-1)).toBe('data: [DONE]');
    expect(alice.stdout).toContain('"content":" from"');

    const carol = statusAndBody((await sh(command('carol-denied'), cwd)).stdout);
    expect(carol.status).toBe(403);
    expect(carol.body.error?.code).toBe('insufficient_permissions');
    expect(carol.body.error?.message).toContain('c0ffee00-0000-4000-8000-0000000000c1');
    expect(carol.body.error?.message).toContain('Microsoft.CognitiveServices/accounts/OpenAI/deployments/chat/completions/action');
    expect(carol.body.error?.message).toContain('Cognitive Services OpenAI User');

    const bob = statusAndBody((await sh(command('bob-control-plane'), cwd)).stdout);
    expect(bob.status).toBe(200);
    expect(bob.body).toMatchObject({ name: 'phi-4-mini', namespace: 'default', replicas: 2 });

    const v1 = statusAndBody((await sh(command('v1-token-mistake'), cwd)).stdout);
    expect(v1.status).toBe(401);
    expect(v1.body.error?.code).toBe('invalid_token');
    expect(v1.body.error?.message).toContain('accessTokenAcceptedVersion');

    // The policy file: the model is for an app role alice holds through a group and bob lacks.
    const model = statusAndBody((await sh(command('bob-model-not-allowed'), cwd)).stdout);
    expect(model.status).toBe(403);
    expect(model.body.error?.code).toBe('model_not_allowed');
    expect(model.body.error?.message).toContain('c0ffee00-0000-4000-8000-0000000000b0');
    expect(model.body.error?.message).toContain('FoundryQwenUsers');
    // alice's 100 tokens a minute: 200 while they last (the stream above used some), then 429.
    const limited = (await sh(command('alice-token-limit'), cwd)).stdout.trim().split('\n');
    expect(limited).toHaveLength(5);
    // The first is allowed: alice's token carries the app role through her group (qwen-team).
    expect(limited[0]).toBe('HTTP 200');
    expect(limited.at(-1)).toBe('HTTP 429');
    expect(limited.join(' ')).toMatch(/^(HTTP 200 )*(HTTP 429 ?)+$/);
  });

  it('writes one audit line per request to the sidecar log', async () => {
    const auditLines = (): { status: number; principal?: { oid: string } }[] =>
      readFileSync(`${cwd}/.foundry-auth/logs/sidecar.log`, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"msg":"request"'))
        .map((l) => JSON.parse(l) as { status: number; principal?: { oid: string } });
    // The sidecar's logger writes asynchronously: wait for the lines rather than for time.
    await until(dev, () => auditLines().length >= 10, 'ten audit lines', 10_000);
    const audit = auditLines();
    expect(audit.map((a) => a.status).slice(0, 4)).toEqual([200, 403, 200, 401]);
    expect(audit[4]!.status).toBe(403);
    expect(audit.at(-1)!.status).toBe(429);
    expect(audit[0]!.principal?.oid).toBe('c0ffee00-0000-4000-8000-0000000000a1');
  });

  it('keeps the demo passwords in the state directory only (mode 0600), never in the output or a log', async () => {
    const { statSync } = await import('node:fs');
    const secrets = `${cwd}/.foundry-auth/demo-users.json`;
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    expect(statSync(`${cwd}/.foundry-auth/dev.json`).mode & 0o777).toBe(0o600);
    const { passwords } = JSON.parse(readFileSync(secrets, 'utf8')) as { passwords: Record<string, string> };
    const everything = [
      dev.stdout,
      dev.stderr,
      ...['sidecar', 'backend', 'emulator'].map((n) => readFileSync(`${cwd}/.foundry-auth/logs/${n}.log`, 'utf8')),
    ].join('\n');
    expect(Object.keys(passwords).sort()).toEqual(['alice', 'bob', 'carol']);
    for (const p of Object.values(passwords)) expect(everything).not.toContain(p);
    for (const t of Object.values(dev.devJson.tokens)) expect(everything).not.toContain(t.split('.')[2]);
  });

  it('stops everything on SIGINT: exit 0 and none of its processes left', async () => {
    const pids = [dev.child.pid!, ...Object.values(dev.stack.children)];
    expect(pids).toHaveLength(4);
    expect(pids.every(alive)).toBe(true);
    dev.child.kill('SIGINT');
    expect(await dev.exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(processesUsing(cwd)).toEqual([]);
    expect(dev.stdout).toContain('foundry-auth dev: stopped');
  });

  it('reuses the saved state (warm start) and brings the stack down when a child dies unexpectedly', async () => {
    const again = await startDev(cwd);
    running.push(again);
    expect(again.devJson.clientId).toBe(dev.devJson.clientId);
    const backend = again.stack.children['sample backend']!;
    process.kill(backend, 'SIGKILL');
    expect(await again.exited).toBe(1);
    expect(again.stderr).toContain('the sample backend was killed by SIGKILL; stopping the stack');
    expect(Object.values(again.stack.children).filter(alive)).toEqual([]);
  });
});

describe('foundry-auth dev interrupted while starting', () => {
  it('stops what it started, exits 0 and leaves no process behind', async () => {
    const cwd = tempDir('foundry-auth-dev-interrupt-');
    dirs.push(cwd);
    const dev = spawnDev(cwd);
    // The emulator and the backend are running (a cold emulator takes a while to generate its keys).
    await until(dev, () => stateFile(cwd, 'run/stack.json') && Object.keys(runningPids(cwd)).length >= 2, 'two children');
    const pids = Object.values(runningPids(cwd));
    dev.child.kill('SIGINT');
    expect(await dev.exited).toBe(0);
    expect(dev.stdout).toMatch(/foundry-auth dev: (stopped before the stack was ready|stopped)\n/);
    expect(pids.filter(alive)).toEqual([]);
    expect(processesUsing(cwd)).toEqual([]);
  });
});

describe('foundry-auth dev when a port is taken', () => {
  let blocker: Server;
  afterAll(() => blocker?.close());

  it('names the port and the flag that moves it, starts nothing and exits 1', async () => {
    blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as { port: number }).port;
    const cwd = tempDir('foundry-auth-dev-port-');
    dirs.push(cwd);
    const args = [...FREE_PORTS];
    args[args.indexOf('--backend-port') + 1] = String(taken);
    const dev = spawnDev(cwd, args);
    expect(await dev.exited).toBe(1);
    expect(dev.stderr).toContain(`port ${taken} on 127.0.0.1 (the sample backend) is already in use: choose another with --backend-port <port>`);
    expect(dev.stderr.trim().split('\n')).toHaveLength(1);
  });
});
