import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SEED } from '../../src/offline/emulator/state.js';
import { alive, FREE_PORTS, ROOT, spawnDev, startDev, tempDir, until, type ReadyDev } from './harness.js';

/**
 * The local loop: every command the stack prints (the banner, carol's 403, doctor's and token
 * inspect's fixes) is pasted into a shell as printed, after sourcing the az-env.sh the banner names,
 * and does what it says against the running stack; `--dev` for setup, grant, doctor and token
 * inspect; the state directory's lock; the signals and the parent's exit that stop the stack.
 */

const dirs: string[] = [];
const started: ReadyDev[] = [];

afterAll(() => {
  for (const d of started)
    for (const pid of [d.child.pid, ...Object.values(d.stack.children)]) if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A command line as a user pastes it, in a shell that sourced the banner's az-env.sh. */
function pasted(command: string, cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', `. ./.foundry-auth/az-env.sh && ${command}`], { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

function status(stdout: string): number {
  return Number(/HTTP (\d{3})\s*$/.exec(stdout)?.[1] ?? 0);
}

describe('every command the dev stack prints, pasted as printed', () => {
  const cwd = tempDir('foundry-auth-loop-');
  dirs.push(cwd);
  let dev: ReadyDev;
  let admin: string;
  let agent: Agent;

  beforeAll(async () => {
    dev = await startDev(cwd);
    started.push(dev);
    admin = dev.stack.emulatorAdmin;
    agent = new Agent({ connect: { ca: readFileSync(dev.stack.caCert, 'utf8') } });
  }, 90_000);

  afterAll(async () => {
    await agent.close();
  });

  /** A test token from the emulator's admin API (documented in docs/EMULATOR.md). */
  async function testToken(body: Record<string, unknown>): Promise<string> {
    const res = await request(`${admin}/tokens`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.body.json()) as { access_token: string };
    expect(res.statusCode).toBe(200);
    return json.access_token;
  }

  async function inspect(args: string): Promise<{
    code: number;
    report: { verdict: { reason?: string; message: string; signatureVerified: boolean }; fix?: string; checks: { check: string; ok: boolean }[] };
  }> {
    const out = await pasted(`foundry-auth token inspect --json ${args}`, cwd);
    return { code: out.code, report: JSON.parse(out.stdout) as never };
  }

  it('the banner says to source az-env.sh and prints doctor --dev, which passes as printed', async () => {
    expect(dev.stdout).toContain('. ./.foundry-auth/az-env.sh');
    expect(existsSync(join(cwd, '.foundry-auth', 'az-env.sh'))).toBe(true);
    const doctor = /^ {3}(foundry-auth doctor --dev .*)$/m.exec(dev.stdout)?.[1];
    expect(doctor).toBe('foundry-auth doctor --dev .foundry-auth');
    expect(dev.stdout).toMatch(/^ {3}az login --tenant /m);
    const out = await pasted(doctor!, cwd);
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).toContain('All checks pass');
  });

  it("carol's 403 names the grant that fixes it; pasted, it succeeds and carol then gets 200", async () => {
    const carol = dev.commands.find((c) => c.id === 'carol-denied')!.command;
    const denied = await pasted(carol, cwd);
    expect(status(denied.stdout)).toBe(403);
    const message = (JSON.parse(denied.stdout.replace(/\nHTTP \d{3}\s*$/, '')) as { error: { message: string } }).error.message;
    const grant = /\((foundry-auth grant [^)]+)\)/.exec(message)?.[1];
    expect(grant).toBe(
      `foundry-auth grant --dev .foundry-auth --client-id ${dev.devJson.clientId} --cluster-id ${dev.devJson.clusterId} --assignee c0ffee00-0000-4000-8000-0000000000c1 --access inference`,
    );
    const granted = await pasted(grant!, cwd);
    expect(granted.code, granted.stdout + granted.stderr).toBe(0);
    expect(granted.stdout).toMatch(/created\s+\[6\] Cognitive Services OpenAI User for user carol@/);
    const deadline = Date.now() + 15_000;
    let last = 0;
    while (Date.now() < deadline && (last = status((await pasted(carol, cwd)).stdout)) !== 200) await new Promise((r) => setTimeout(r, 500));
    expect(last).toBe(200);
  });

  it('token inspect --dev reads the v1 token from its file: verdict v1, and the setup it prints runs as printed', async () => {
    const { code, report } = await inspect('--dev ./.foundry-auth/v1-token.txt');
    expect(code).toBe(1);
    expect(report.verdict.reason).toBe('v1_token');
    const setup = /(foundry-auth setup .*?) \(step 3\)/.exec(report.fix ?? '')?.[1];
    expect(setup).toBe(`foundry-auth setup --client-id ${dev.devJson.clientId} --dev .foundry-auth`);
    const out = await pasted(setup!, cwd);
    expect(out.code, out.stdout + out.stderr).toBe(0);
    expect(out.stdout).not.toMatch(/^(created|updated) /m);
  });

  it('a Graph token and an ARM token: the audience verdict names the resource and api://<client-id>, before the v1 check', async () => {
    for (const [scope, name] of [
      ['https://graph.microsoft.com/.default', 'Microsoft Graph'],
      ['https://management.core.windows.net//.default', 'Azure Resource Manager'],
    ] as const) {
      const token = await testToken({ principal: `alice@${DEFAULT_SEED.tenantDomain}`, scope, listener: 'https' });
      expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())['ver']).toBe('1.0');
      const { report } = await inspect(`--dev .foundry-auth ${token}`);
      expect(report.verdict.reason).toBe('wrong_audience');
      expect(report.verdict.message).toContain(name);
      expect(report.fix).toContain(`az account get-access-token --resource api://${dev.devJson.clientId}`);
      // The sidecar says the same.
      const res = await request(`${dev.devJson.sidecar}/v1/models`, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.body.json()) as { error: { message: string } };
      expect(res.statusCode).toBe(401);
      expect(body.error.message).toContain(`another resource (${name}`);
      expect(body.error.message).toContain(`api://${dev.devJson.clientId}`);
    }
  });

  it('an expired dev token: verdict expiry, the signature checked against the emulator', async () => {
    const token = await testToken({
      principal: `alice@${DEFAULT_SEED.tenantDomain}`,
      scope: `api://${dev.devJson.clientId}/.default`,
      listener: 'https',
      ageSeconds: 3 * 3600,
    });
    // From stdin, as a careful user passes it.
    const out = await pasted(`printf %s '${token}' | foundry-auth token inspect --json --dev .foundry-auth -`, cwd);
    expect(out.code).toBe(1);
    const report = JSON.parse(out.stdout) as { verdict: { reason?: string; signatureVerified: boolean }; checks: { check: string; ok: boolean }[] };
    expect(report.verdict.reason).toBe('expired');
    expect(report.verdict.signatureVerified).toBe(true);
    expect(report.checks.find((c) => c.check === 'issuer')?.ok).toBe(true);
  });

  it('doctor --dev names a broken setting and the setup that repairs it; pasted, doctor passes again', async () => {
    const graph = `${dev.devJson.emulator}/graph/v1.0`;
    const adminToken = await testToken({
      principal: `${DEFAULT_SEED.adminUserName}@${DEFAULT_SEED.tenantDomain}`,
      scope: `${dev.devJson.emulator}/graph/.default`,
      listener: 'https',
    });
    const headers = { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' };
    const list = await request(`${graph}/applications?$filter=${encodeURIComponent(`appId eq '${dev.devJson.clientId}'`)}`, {
      headers,
      dispatcher: agent,
    });
    const app = ((await list.body.json()) as { value: { id: string }[] }).value[0]!;
    const patch = await request(`${graph}/applications/${app.id}`, {
      method: 'PATCH',
      headers,
      body: JSON.stringify({ api: { requestedAccessTokenVersion: null } }),
      dispatcher: agent,
    });
    await patch.body.dump();
    expect(patch.statusCode).toBe(204);

    const broken = await pasted('foundry-auth doctor --dev .foundry-auth --json', cwd);
    expect(broken.code).toBe(1);
    const checks = (JSON.parse(broken.stdout) as { checks: { name: string; status: string; fix?: string }[] }).checks;
    expect(checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual(['token_version']);
    const fix = checks.find((c) => c.name === 'token_version')!.fix!;
    expect(fix).toBe(
      `foundry-auth setup --app-name foundry-auth-dev --client-id ${dev.devJson.clientId} --cluster-id ${dev.devJson.clusterId} --dev .foundry-auth`,
    );
    const repaired = await pasted(fix, cwd);
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(0);
    expect((await pasted('foundry-auth doctor --dev .foundry-auth', cwd)).code).toBe(0);
  });

  it('doctor --dev --token --endpoint: the token and the live call are checked first', async () => {
    const out = await pasted(
      `foundry-auth doctor --dev .foundry-auth --json --endpoint ${dev.devJson.sidecar} --token "$(node -p "require('./.foundry-auth/dev.json').tokens.bob")"`,
      cwd,
    );
    const checks = (JSON.parse(out.stdout) as { checks: { name: string; status: string }[] }).checks;
    expect(checks.slice(0, 2).map((c) => [c.name, c.status])).toEqual([
      ['token', 'pass'],
      ['endpoint', 'pass'],
    ]);
  });

  it('--dev without a running stack there: exit 2, saying how to start it', async () => {
    const out = await pasted(`foundry-auth grant --dev ${join(cwd, 'nothing-here')} --assignee x --access inference`, cwd);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('no foundry-auth dev is running there');
    expect(out.stderr).toContain('npm start');
  });

  it('a second dev on the same state directory is refused, naming the first one’s PID; the first keeps running', async () => {
    const second = spawnDev(cwd);
    expect(await second.exited).toBe(1);
    expect(second.stderr).toContain(`another foundry-auth dev (PID ${dev.child.pid}) is using the state directory`);
    expect(existsSync(join(cwd, '.foundry-auth', 'run', 'stack.json'))).toBe(true);
    const res = await request(`${dev.devJson.sidecar}/v1/models`, { headers: { authorization: `Bearer ${dev.devJson.tokens.alice}` } });
    await res.body.dump();
    expect(res.statusCode).toBe(200);
  });
});

describe('what stops the stack, leaving no process behind (checked by PID)', () => {
  it('SIGHUP (the terminal closed): exit 0', async () => {
    const cwd = tempDir('foundry-auth-hup-');
    dirs.push(cwd);
    const dev = await startDev(cwd);
    started.push(dev);
    const pids = [dev.child.pid!, ...Object.values(dev.stack.children)];
    dev.child.kill('SIGHUP');
    expect(await dev.exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    expect(existsSync(join(cwd, '.foundry-auth', 'run', 'dev.lock'))).toBe(false);
  });

  it('npm start stopped by SIGTERM (npm does not pass it on): dev sees its parent go and stops', async () => {
    const state = join(tempDir('foundry-auth-npm-'), 'state');
    dirs.push(state);
    const npm = spawn('npm', ['start', '--', '--state-dir', state, ...FREE_PORTS], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    npm.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    const proc = { child: npm, stdout: '', stderr: '', cwd: ROOT, exited: once(npm, 'exit').then(([c]) => c as number | null) };
    await until(proc, () => out.includes('Ctrl-C stops everything'), 'banner', 90_000);
    const running = JSON.parse(readFileSync(join(state, 'run', 'stack.json'), 'utf8')) as { pid: number; children: Record<string, number> };
    const pids = [running.pid, ...Object.values(running.children)];
    expect(pids.every(alive)).toBe(true);
    npm.kill('SIGTERM');
    await proc.exited;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && pids.some(alive)) await new Promise((r) => setTimeout(r, 200));
    expect(pids.filter(alive)).toEqual([]);
  }, 120_000);
});
