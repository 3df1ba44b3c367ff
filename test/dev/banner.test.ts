import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoCommands, type BannerInput } from '../../src/offline/dev/banner.js';
import { tempDir } from './harness.js';

/** The printed commands pass the right token whatever the state directory is called, and wherever the user stands. */

const root = tempDir('foundry-auth-banner-');
let server: Server;
let url: string;
const seen: { authorization: string | undefined; path: string | undefined }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ authorization: req.headers.authorization, path: req.url });
    req.resume();
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(() => {
  server.close();
  rmSync(root, { recursive: true, force: true });
});

function input(stateDir: string, cwd: string): BannerInput {
  return {
    sidecar: url,
    sidecarAdmin: url,
    backend: url,
    emulator: url,
    tenantId: 't',
    clientId: 'c',
    clusterId: '/subscriptions/s',
    devJson: join(stateDir, 'dev.json'),
    v1TokenFile: join(stateDir, 'v1-token.txt'),
    logsDir: join(stateDir, 'logs'),
    sidecarLog: join(stateDir, 'logs', 'sidecar.log'),
    deployment: { namespace: 'default', name: 'phi-4-mini' },
    readyInMs: 1000,
    cwd,
    stateDirArg: stateDir,
    azEnvFile: join(stateDir, 'az-env.sh'),
    demoSecretsFile: join(stateDir, 'demo-users.json'),
  };
}

function sh(command: string, cwd: string): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('sh', ['-c', command], { cwd }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout))),
  );
}

describe('the banner commands', () => {
  it.each([
    ['a relative path below the working directory', '.foundry-auth', true],
    ['an absolute path with spaces and a quote', "it's a state dir", false],
  ])('send each principal’s token from dev.json (%s)', async (_what, name, inside) => {
    const cwd = join(root, `cwd-${seen.length}`);
    const stateDir = inside ? join(cwd, name) : join(root, name);
    mkdirSync(stateDir, { recursive: true });
    mkdirSync(cwd, { recursive: true });
    const tokens = { alice: 'alice-token', bob: 'bob-token', carol: 'carol-token', 'inference-client': 'mi-token' };
    writeFileSync(join(stateDir, 'dev.json'), JSON.stringify({ tokens }));
    writeFileSync(join(stateDir, 'v1-token.txt'), 'v1-token\n');
    const commands = demoCommands(input(stateDir, cwd));
    if (inside) expect(commands[0]!.command).toContain("require('./.foundry-auth/dev.json')");
    seen.length = 0;
    for (const c of commands) await sh(c.command, cwd);
    expect(seen).toEqual([
      { authorization: 'Bearer alice-token', path: '/v1/chat/completions' },
      { authorization: 'Bearer carol-token', path: '/v1/chat/completions' },
      { authorization: 'Bearer bob-token', path: '/api/v1/namespaces/default/deployments/phi-4-mini' },
      { authorization: 'Bearer bob-token', path: '/v1/chat/completions' },
      ...Array.from({ length: 5 }, () => ({ authorization: 'Bearer alice-token', path: '/v1/chat/completions' })),
      { authorization: 'Bearer v1-token', path: '/v1/models' },
    ]);
  });
});
